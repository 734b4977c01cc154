r"""Figure 1 of arXiv:1906.02341: signal propagation at initialization.

Feeds Gaussian inputs through randomly initialized weight-normalized nets
and measures, layer by layer, `||h|| / ||x||` (forward) and
`||dL/dh|| / ||dL/dh_last||` (backward) with
`wn_keras.diagnostics.signal_propagation` (L: a fixed random projection of
the output).

- Plain net: `--depth` WeightNorm Dense+ReLU layers, hidden widths drawn
  uniformly in [m - 50, m + 50].
- ResNet: `--blocks` blocks `h <- h + W2 ReLU(W1 h)` on an
  `--input_dim`-wide stream, W1: input_dim -> m, W2: m -> input_dim, both
  WeightNorm Dense with zero biases, no ReLU after the addition.
- Inits: "He with g = 1" (Gaussian directions, every unit's weight vector
  of length 1), proposed orthogonal and proposed He (plain: gain 2 in every
  layer; ResNet: gain 2 for W1 and 1 / blocks for W2), with
  `g = sqrt(gain * fan_in / fan_out)`.

Writes figure1.png (rows: plain, ResNet; columns: forward, backward),
figure1.csv (every number), summary.txt (what is printed) and flags.json
into `--output_dir`, each atomically.

The committed results/figure1 come from:
  python experiments/synthetic.py --output_dir=results/figure1
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence

from absl import app, flags, logging

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import matplotlib.figure  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

import wn_keras  # noqa: E402
from wn_keras import diagnostics  # noqa: E402

FLAGS = flags.FLAGS

flags.DEFINE_string(
    "output_dir", "results/figure1", "Folder for the PNG, CSV and summary."
)
flags.DEFINE_integer(
    "num_inputs", 1000, "Number of Gaussian inputs.", lower_bound=2
)
flags.DEFINE_integer(
    "input_dim",
    500,
    "Input dimension, also the ResNet stream width.",
    lower_bound=1,
)
flags.DEFINE_integer(
    "depth", 20, "Hidden layers of the plain net.", lower_bound=2
)
flags.DEFINE_integer(
    "blocks", 40, "Residual blocks of the ResNet.", lower_bound=1
)
flags.DEFINE_list(
    "widths",
    ["200", "1000"],
    "Values of m: centre of the plain net's hidden widths (each drawn in "
    "[m - 50, m + 50]) and the ResNet's branch width. Each must exceed 50.",
)
flags.DEFINE_integer("seed", 0, "Seed of the inputs, widths and weights.")

FLAG_NAMES = (
    "output_dir",
    "num_inputs",
    "input_dim",
    "depth",
    "blocks",
    "widths",
    "seed",
)

# Hidden widths of the plain net are drawn in [m - spread, m + spread].
WIDTH_SPREAD = 50
# Gain of a layer followed by a ReLU (the proposed init's gamma).
RELU_GAIN = 2.0

HE_G1 = "he_g1"
PROPOSED_ORTHOGONAL = "proposed_orthogonal"
PROPOSED_HE = "proposed_he"
INITS = (HE_G1, PROPOSED_ORTHOGONAL, PROPOSED_HE)
PROPOSED_INITS = (PROPOSED_ORTHOGONAL, PROPOSED_HE)
INIT_LABELS = {
    HE_G1: "He, g = 1",
    PROPOSED_ORTHOGONAL: "proposed (orthogonal)",
    PROPOSED_HE: "proposed (He)",
}
INIT_COLORS = {
    HE_G1: "tab:red",
    PROPOSED_ORTHOGONAL: "tab:blue",
    PROPOSED_HE: "tab:green",
}
LINE_STYLES = ("-", "--", ":", "-.")

PLAIN = "plain"
RESNET = "resnet"
CSV_COLUMNS = (
    "net",
    "m",
    "init",
    "layer",
    "forward_mean",
    "forward_std",
    "backward_mean",
    "backward_std",
)


def parse_widths(values: Sequence[str]) -> list[int]:
    """Turns the --widths strings into integers above WIDTH_SPREAD."""
    try:
        widths = [int(value) for value in values]
    except ValueError as error:
        raise ValueError(
            "--widths must be a comma-separated list of integers; received "
            f"{list(values)}. Pass e.g. --widths=200,1000."
        ) from error
    if not widths or min(widths) <= WIDTH_SPREAD:
        raise ValueError(
            f"--widths must hold one or more integers above {WIDTH_SPREAD} "
            "(plain widths are drawn in [m - 50, m + 50]); received "
            f"{widths}. Pass larger values, e.g. --widths=200,1000."
        )
    return widths


def kernel_initializer(
    init: str, gain: float, seed: int
) -> keras.initializers.Initializer:
    """The kernel initializer of one layer under the named scheme.

    Args:
      init: One of INITS.
      gain: The proposed gamma of this layer (ignored by "he_g1").
      seed: Seed of this layer's kernel.

    Returns:
      A wn_keras initializer. Under WeightNorm each unit's norm becomes g:
      1 for "he_g1", `sqrt(gain * fan_in / fan_out)` otherwise.
    """
    if init == HE_G1:
        return wn_keras.ProposedHe(gain=1.0, mode="backward", seed=seed)
    if init == PROPOSED_ORTHOGONAL:
        return wn_keras.ProposedOrthogonal(gain=gain, seed=seed)
    return wn_keras.ProposedHe(gain=gain, seed=seed)


def _wn_dense(
    units: int, init: str, gain: float, seed: int, name: str
) -> wn_keras.WeightNorm:
    return wn_keras.WeightNorm(
        keras.layers.Dense(
            units, kernel_initializer=kernel_initializer(init, gain, seed)
        ),
        name=name,
    )


def build_plain_net(
    input_dim: int,
    hidden_widths: Sequence[int],
    init: str,
    rng: np.random.Generator,
) -> keras.Model:
    """WN Dense+ReLU layers; hidden layer i's ReLU is named `layer{i}_relu`.

    Args:
      input_dim: Input dimension.
      hidden_widths: Width of each hidden layer.
      init: One of INITS; the proposed schemes use gain 2 everywhere.
      rng: Source of the per-layer seeds.

    Returns:
      The model; its output is the last hidden layer's ReLU.
    """
    inputs = keras.Input((input_dim,))
    h = inputs
    for i, width in enumerate(hidden_widths, start=1):
        seed = int(rng.integers(2**31))
        h = _wn_dense(int(width), init, RELU_GAIN, seed, f"layer{i}")(h)
        h = keras.layers.ReLU(name=f"layer{i}_relu")(h)
    return keras.Model(inputs, h, name=f"plain_{init}")


def build_resnet(
    input_dim: int,
    blocks: int,
    width: int,
    init: str,
    rng: np.random.Generator,
) -> keras.Model:
    """Residual blocks `h <- h + W2 ReLU(W1 h)` named `stage1_block{b}_add`.

    Args:
      input_dim: Width of the residual stream.
      blocks: Number of blocks, B.
      width: Width of each branch's hidden layer, m.
      init: One of INITS; the proposed schemes use gain 2 for W1 and 1 / B
        for W2 (arXiv:1906.02341).
      rng: Source of the per-layer seeds.

    Returns:
      The model; its output is the last block's addition.
    """
    inputs = keras.Input((input_dim,))
    h = inputs
    for b in range(1, blocks + 1):
        prefix = f"stage1_block{b}"
        seed_1, seed_2 = (int(s) for s in rng.integers(2**31, size=2))
        branch = _wn_dense(width, init, RELU_GAIN, seed_1, f"{prefix}_dense1")(
            h
        )
        branch = keras.layers.ReLU(name=f"{prefix}_relu")(branch)
        branch = _wn_dense(
            input_dim, init, 1.0 / blocks, seed_2, f"{prefix}_dense2"
        )(branch)
        h = keras.layers.Add(name=f"{prefix}_add")([h, branch])
    return keras.Model(inputs, h, name=f"resnet_{init}")


def per_layer_factor(ratios: np.ndarray, first_layer: int = 2) -> float:
    """Geometric growth per layer: exp of the slope of log(ratio) vs layer.

    Least squares over layers `first_layer..K` (1-based), which leaves out
    the plain net's first layer, whose width change (input_dim -> m) sets
    its own factor.
    """
    layers = np.arange(1, len(ratios) + 1)[first_layer - 1 :]
    slope = np.polyfit(layers, np.log(ratios[first_layer - 1 :]), 1)[0]
    return float(np.exp(slope))


def write_atomically(path: str, write: Callable[[str], None]) -> None:
    """Calls `write(temp_path)`, then renames the temp file onto `path`.

    A crash or a kill leaves either the old file or the new one, never a
    partial one.
    """
    folder, name = os.path.split(os.path.abspath(path))
    stem, extension = os.path.splitext(name)
    # Same folder (so the rename is atomic), same extension (matplotlib
    # picks the format from it), created by `write` itself (so it gets the
    # usual permissions).
    temp_path = os.path.join(
        folder, f".{stem}.tmp-{os.getpid()}-{uuid.uuid4().hex}{extension}"
    )
    try:
        write(temp_path)
        os.replace(temp_path, path)
    except BaseException:
        if os.path.exists(temp_path):
            os.remove(temp_path)
        raise


def write_text(path: str, text: str) -> None:
    """Writes `text` to `path` atomically."""

    def write(temp_path: str) -> None:
        with open(temp_path, "w", encoding="utf-8") as file:
            file.write(text)

    write_atomically(path, write)


def csv_text(rows: list[dict]) -> str:
    """The rows as CSV with CSV_COLUMNS, floats to 6 significant digits."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                key: f"{value:.6g}" if isinstance(value, float) else value
                for key, value in row.items()
            }
        )
    return buffer.getvalue()


def summarize(
    results: dict[tuple[str, int, str], diagnostics.SignalPropagation],
    widths: Sequence[int],
    depth: int,
    blocks: int,
) -> str:
    """The printed summary: the numbers behind each claim of Figure 1."""
    lines = []
    lines.append(f"Plain WN net, {depth} layers (ratios at layer 1 and L):")
    lines.append(
        f"  {'m':>5}  {'init':<22}{'fwd 1':>8}{'fwd L':>10}"
        f"{'max|fwd-1|':>12}{'bwd 1':>10}{'fwd x/layer':>13}"
        f"{'bwd x/layer':>13}"
    )
    for m in widths:
        for init in INITS:
            result = results[(PLAIN, m, init)]
            forward, backward = result.forward_mean, result.backward_mean
            lines.append(
                f"  {m:>5}  {INIT_LABELS[init]:<22}{forward[0]:>8.3f}"
                f"{forward[-1]:>10.3g}{np.abs(forward - 1).max():>12.3f}"
                f"{backward[0]:>10.3g}{per_layer_factor(forward):>13.3f}"
                f"{1 / per_layer_factor(backward):>13.3f}"
            )
    lines.append(
        "  fwd x/layer: fitted growth of ||h|| per layer, layers 2..L.\n"
        "  bwd x/layer: fitted growth of ||dL/dh|| per layer towards the "
        "input.\n"
        "  Expected: about 1/sqrt(2) = "
        f"{1 / math.sqrt(2):.3f} for He with g = 1, about 1 for proposed."
    )
    low, high = math.sqrt(2), math.sqrt(math.e)
    theory = (1 + 1 / blocks) ** (blocks / 2)
    lines.append("")
    lines.append(f"ResNet, {blocks} blocks (ratios at block 1 and B):")
    lines.append(
        f"  {'m':>5}  {'init':<22}{'fwd 1':>8}{'fwd B':>10}{'bwd 1':>10}"
        "  fwd B, bwd 1 in [sqrt(2), sqrt(e)]"
    )
    for m in widths:
        for init in INITS:
            result = results[(RESNET, m, init)]
            forward_end = result.forward_mean[-1]
            backward_start = result.backward_mean[0]
            inside = [low <= v <= high for v in (forward_end, backward_start)]
            lines.append(
                f"  {m:>5}  {INIT_LABELS[init]:<22}"
                f"{result.forward_mean[0]:>8.3f}{forward_end:>10.4g}"
                f"{backward_start:>10.4g}  "
                + ", ".join("yes" if v else "no" for v in inside)
            )
    lines.append(
        f"  [sqrt(2), sqrt(e)] = [{low:.3f}, {high:.3f}]. Proposed: the "
        "squared norm grows by\n  about 1 + 1/B per block, so "
        f"(1 + 1/B)^(B/2) = {theory:.3f} is expected at B = {blocks}.\n"
        "  He with g = 1: about 1 + 1/2 per block, "
        f"1.5^(B/2) = {1.5 ** (blocks / 2):.4g}."
    )
    return "\n".join(lines) + "\n"


def _draw_theory_band(ax, label: str | None = None) -> None:
    """Shades [sqrt(2), sqrt(e)], where the theory puts a stage's growth."""
    ax.axhspan(
        math.sqrt(2),
        math.sqrt(math.e),
        color="tab:gray",
        alpha=0.25,
        label=label,
    )


def _draw_proposed_zoom(
    ax,
    results: dict[tuple[str, int, str], diagnostics.SignalPropagation],
    widths: Sequence[int],
    direction: str,
    bounds: Sequence[float],
) -> None:
    """An inset with the proposed ResNet curves on a linear scale."""
    inset = ax.inset_axes(bounds)
    for index, m in enumerate(widths):
        for init in PROPOSED_INITS:
            result = results[(RESNET, m, init)]
            mean = (
                result.forward_mean
                if direction == "forward"
                else result.backward_mean
            )
            inset.plot(
                np.arange(1, len(mean) + 1),
                mean,
                color=INIT_COLORS[init],
                linestyle=LINE_STYLES[index % len(LINE_STYLES)],
                linewidth=1.2,
            )
    _draw_theory_band(inset)
    inset.axhline(1.0, color="black", linewidth=0.8, alpha=0.5)
    inset.set_title("proposed only, linear scale", fontsize=8)
    inset.tick_params(labelsize=7)
    inset.grid(True, alpha=0.3)


def draw_figure(
    results: dict[tuple[str, int, str], diagnostics.SignalPropagation],
    widths: Sequence[int],
    depth: int,
    blocks: int,
) -> matplotlib.figure.Figure:
    """2x2 panels: rows plain / ResNet, columns forward / backward."""
    figure = matplotlib.figure.Figure(figsize=(13, 10), layout="constrained")
    axes = figure.subplots(2, 2)
    for row, net in enumerate((PLAIN, RESNET)):
        for index, m in enumerate(widths):
            style = LINE_STYLES[index % len(LINE_STYLES)]
            for init in INITS:
                results[(net, m, init)].plot(
                    axes=axes[row],
                    label=f"{INIT_LABELS[init]}, m = {m}",
                    color=INIT_COLORS[init],
                    linestyle=style,
                    marker="o",
                    markersize=3,
                    elinewidth=0.8,
                )
        title = (
            f"Plain WN net, {depth} layers"
            if net == PLAIN
            else f"WN ResNet, {blocks} blocks"
        )
        unit = "layer" if net == PLAIN else "block"
        for ax, direction in zip(
            axes[row], ("forward", "backward"), strict=True
        ):
            ax.axhline(1.0, color="black", linewidth=0.8, alpha=0.5)
            ax.set_yscale("log")
            ax.set_title(f"{title}: {direction} pass")
            ax.set_xlabel(f"{unit} index")
            ax.xaxis.set_major_locator(
                matplotlib.ticker.MaxNLocator(integer=True)
            )
            ax.grid(True, which="both", alpha=0.3)
            if net == RESNET:
                _draw_theory_band(ax, r"theory band $[\sqrt{2}, \sqrt{e}]$")
                # He explodes on one diagonal; the zoom sits on the other.
                bounds = (
                    (0.06, 0.58, 0.4, 0.34)
                    if direction == "forward"
                    else (0.56, 0.58, 0.4, 0.34)
                )
                _draw_proposed_zoom(ax, results, widths, direction, bounds)
    # One legend for all panels, below them, so that no curve is hidden.
    handles, labels = axes[1, 0].get_legend_handles_labels()
    for ax in axes.flat:
        ax.get_legend().remove()
    figure.legend(
        handles, labels, loc="outside lower center", ncol=4, fontsize=9
    )
    return figure


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")

    # Phase 1: arguments and output folder.
    widths = parse_widths(FLAGS.widths)
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    flag_values = {name: FLAGS[name].value for name in FLAG_NAMES}
    logging.info("Flags: %s", flag_values)
    keras.utils.set_random_seed(FLAGS.seed)
    rng = np.random.default_rng(FLAGS.seed)
    start = time.time()

    # Phase 2: inputs and the plain nets' hidden widths (shared by inits).
    x = rng.standard_normal((FLAGS.num_inputs, FLAGS.input_dim))
    hidden_widths = {
        m: rng.integers(
            m - WIDTH_SPREAD, m + WIDTH_SPREAD + 1, size=FLAGS.depth
        )
        for m in widths
    }

    # Phase 3: build every net and measure it.
    results = {}
    rows = []
    for net in (PLAIN, RESNET):
        for m in widths:
            for init in INITS:
                if net == PLAIN:
                    model = build_plain_net(
                        FLAGS.input_dim, hidden_widths[m], init, rng
                    )
                else:
                    model = build_resnet(
                        FLAGS.input_dim, FLAGS.blocks, m, init, rng
                    )
                result = diagnostics.signal_propagation(
                    model, x, seed=int(rng.integers(2**31))
                )
                results[(net, m, init)] = result
                logging.info(
                    "%s m=%d %s: %d params, forward %.4g at the last layer",
                    net,
                    m,
                    init,
                    model.count_params(),
                    result.forward_mean[-1],
                )
                for k in range(len(result.names)):
                    rows.append(
                        {
                            "net": net,
                            "m": m,
                            "init": init,
                            "layer": k + 1,
                            "forward_mean": float(result.forward_mean[k]),
                            "forward_std": float(result.forward_std[k]),
                            "backward_mean": float(result.backward_mean[k]),
                            "backward_std": float(result.backward_std[k]),
                        }
                    )
                keras.backend.clear_session()

    # Phase 4: write the figure, the numbers and the summary.
    summary = summarize(results, widths, FLAGS.depth, FLAGS.blocks)
    elapsed = time.time() - start
    header = (
        "Figure 1 of arXiv:1906.02341, signal propagation at init.\n"
        f"Command: python {' '.join(sys.argv)}\n"
        f"Inputs: {FLAGS.num_inputs} x {FLAGS.input_dim} Gaussian, seed "
        f"{FLAGS.seed}; ratios are mean over inputs. Run time "
        f"{elapsed:.0f} s.\n\n"
    )
    output = FLAGS.output_dir
    write_text(os.path.join(output, "figure1.csv"), csv_text(rows))
    figure = draw_figure(results, widths, FLAGS.depth, FLAGS.blocks)
    write_atomically(
        os.path.join(output, "figure1.png"),
        lambda path: figure.savefig(path, dpi=110),
    )
    write_text(os.path.join(output, "summary.txt"), header + summary)
    write_text(
        os.path.join(output, "flags.json"),
        json.dumps(flag_values, indent=2) + "\n",
    )
    print(header + summary, end="")


if __name__ == "__main__":
    app.run(main)
