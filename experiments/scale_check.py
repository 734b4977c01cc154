"""Activation norms at initialization of deep WN networks, across depth.

Checks what the theory of Arpit, Campos & Bengio (arXiv:1906.02341)
promises for the networks of `wn_keras.models`, on standard normal inputs
(as in the paper's synthetic experiment), at depths too large for the
test suite. Two tables are printed.

MLP (width ``--mlp_width`` on flattened 28x28 inputs), one row per depth
and draw (seed): the ratio ``r_l = ||h^l|| / ||x||`` (mean over inputs) of
the post-ReLU activations of every hidden layer: its minimum, maximum and
last value, the share of layers with ``r_l`` in [0.5, 2], and the mean
over layers 2..L of the per-layer energy gain ``||h^l||^2 /
||h^{l-1}||^2``, which ``g = sqrt(2 * fan_in / fan_out)`` sets to 1 in
expectation. Per draw, ``log r_l`` wanders like a random walk (each layer
adds a fluctuation of order ``1 / sqrt(width)``), so at depth 200 and width
128 single draws may leave [0.5, 2] although every layer keeps the energy
on average.

Wide ResNet (on 32x32x3 inputs), one row per depth, draw and stage: the
norm ratio across the stage's identity-shortcut blocks (from the input of
the first such block to the output of the last; a first block with a 1x1
projection changes width and resolution and is left out), next to what
the theory expects of the proposed init (``proposed_theory``) for ``m``
such blocks in a stage of ``B``:
``sqrt((1 + 1/B) ** m)``, at most ``sqrt(e)``.

Example:

    python experiments/scale_check.py                      # ~5 minutes
    python experiments/scale_check.py --wrn_depths=100,1000,2002 \\
        --inits=orthogonal_proposed,orthogonal --seeds=1
"""

import math
import os

from absl import app, flags, logging

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from wn_keras import models  # noqa: E402

MLP_INPUT_SHAPE = (28, 28)
WRN_INPUT_SHAPE = (32, 32, 3)
NUM_CLASSES = 10
# The band the MLP ratio is reported against.
RATIO_BAND = (0.5, 2.0)

FLAGS = flags.FLAGS
flags.DEFINE_list("mlp_depths", ["200"], "MLP depths (hidden layers).")
flags.DEFINE_integer("mlp_width", 128, "Units of every MLP hidden layer.")
flags.DEFINE_list(
    "wrn_depths",
    ["100", "1000"],
    "Wide-ResNet depths, each of the form 6N+4.",
)
flags.DEFINE_integer("wrn_width", 1, "Widening factor k of the Wide ResNet.")
flags.DEFINE_list(
    "inits",
    ["orthogonal_proposed"],
    f"Initialization schemes to compare, from {models.INIT_SCHEMES}.",
)
flags.DEFINE_enum(
    "residual_scaling",
    "proposed",
    list(models.RESIDUAL_SCALINGS),
    "Gain of each block's second convolution under *_proposed.",
)
flags.DEFINE_integer("seeds", 3, "Independent draws of each network.")
flags.DEFINE_integer("batch_size", 32, "Number of Gaussian inputs.")


def _positive_ints(values: list) -> bool:
    return all(value.isdigit() and int(value) > 0 for value in values)


def _wrn_depths(values: list) -> bool:
    return _positive_ints(values) and all(
        int(value) >= 10 and (int(value) - 4) % 6 == 0 for value in values
    )


flags.register_validator(
    "mlp_depths",
    _positive_ints,
    message="--mlp_depths takes comma-separated positive integers",
)
flags.register_validator(
    "wrn_depths",
    _wrn_depths,
    message="--wrn_depths takes comma-separated integers of the form 6N+4 "
    "with N >= 1, e.g. 100,1000",
)


def gaussian_inputs(shape: tuple, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(FLAGS.batch_size,) + shape).astype("float32")


def norms(tensor) -> np.ndarray:
    """Euclidean norm of each example."""
    array = np.asarray(tensor, dtype=np.float64)
    return np.linalg.norm(array.reshape(len(array), -1), axis=1)


def mlp_row(depth: int, init: str, seed: int) -> dict:
    """Norm ratios of one MLP draw."""
    model = models.mlp(
        MLP_INPUT_SHAPE,
        NUM_CLASSES,
        hidden_size=FLAGS.mlp_width,
        num_layers=depth,
        weight_norm=True,
        init=init,
        seed=seed,
    )
    x = gaussian_inputs(MLP_INPUT_SHAPE, seed)
    models.initialize(model, init, x)
    layers = [model.get_layer(f"layer{i}_relu") for i in range(1, depth + 1)]
    probe = keras.Model(model.input, [layer.output for layer in layers])
    hidden = [norms(h) for h in probe(x)]
    x_norm = norms(x)
    ratios = np.array([np.mean(h / x_norm) for h in hidden])
    gains = [np.mean((b / a) ** 2) for a, b in zip(hidden[:-1], hidden[1:])]
    low, high = RATIO_BAND
    return {
        "depth": depth,
        "init": init,
        "seed": seed,
        "min_ratio": ratios.min(),
        "max_ratio": ratios.max(),
        "last_ratio": ratios[-1],
        "share_in_band": np.mean((ratios >= low) & (ratios <= high)),
        "mean_layer_gain": float(np.mean(gains)),
    }


def stage_endpoints(model: keras.Model, stage: int, blocks: int) -> tuple:
    """First tensor and number of identity-shortcut blocks of a stage."""
    names = {layer.name for layer in model.layers}
    if f"stage{stage}_block1_shortcut" in names:
        start = model.get_layer(f"stage{stage}_block1_add").output
        return start, blocks - 1
    return model.get_layer(f"stage{stage}_block1_conv1").input, blocks


def wrn_rows(depth: int, init: str, seed: int) -> list:
    """Stage-wise norm growth of one Wide-ResNet draw."""
    model = models.wide_resnet(
        WRN_INPUT_SHAPE,
        NUM_CLASSES,
        depth=depth,
        width=FLAGS.wrn_width,
        weight_norm=True,
        init=init,
        residual_scaling=FLAGS.residual_scaling,
        seed=seed,
    )
    x = gaussian_inputs(WRN_INPUT_SHAPE, seed)
    models.initialize(model, init, x)
    blocks = (depth - 4) // 6
    tensors, counts = [], []
    for stage in (1, 2, 3):
        start, identity_blocks = stage_endpoints(model, stage, blocks)
        end = model.get_layer(f"stage{stage}_block{blocks}_add").output
        tensors += [start, end]
        counts.append(identity_blocks)
    values = keras.Model(model.input, tensors)(x)
    rows = []
    for stage, identity_blocks in zip((1, 2, 3), counts):
        start, end = values[2 * stage - 2], values[2 * stage - 1]
        rows.append(
            {
                "depth": depth,
                "init": init,
                "seed": seed,
                "stage": stage,
                "blocks": blocks,
                "measured_blocks": identity_blocks,
                "ratio": float(np.mean(norms(end) / norms(start))),
                "proposed_theory": math.sqrt(
                    (1 + 1 / blocks) ** identity_blocks
                ),
                "bound": math.sqrt(math.e),
            }
        )
    return rows


def print_table(title: str, rows: list) -> None:
    columns = list(rows[0])
    cells = [
        [f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values()]
        for row in rows
    ]
    widths = [
        max(len(column), *(len(line[i]) for line in cells))
        for i, column in enumerate(columns)
    ]
    print(f"\n{title}")
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for line in cells:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths)))


def main(argv: list) -> None:
    del argv
    # Phase 1: check the flags.
    unknown = [init for init in FLAGS.inits if init not in models.INIT_SCHEMES]
    if unknown:
        raise app.UsageError(
            f"--inits takes schemes from {models.INIT_SCHEMES}; received "
            f"{unknown}."
        )
    mlp_depths = [int(depth) for depth in FLAGS.mlp_depths]
    wrn_depths = [int(depth) for depth in FLAGS.wrn_depths]
    logging.info(
        "MLP depths %s, WRN depths %s, inits %s, %d seeds, batch %d",
        mlp_depths,
        wrn_depths,
        FLAGS.inits,
        FLAGS.seeds,
        FLAGS.batch_size,
    )

    # Phase 2: MLPs.
    mlp_table = [
        mlp_row(depth, init, seed)
        for depth in mlp_depths
        for init in FLAGS.inits
        for seed in range(FLAGS.seeds)
    ]
    if mlp_table:
        print_table("MLP: ||h^l|| / ||x|| over the hidden layers", mlp_table)

    # Phase 3: Wide ResNets.
    wrn_table = []
    for depth in wrn_depths:
        for init in FLAGS.inits:
            for seed in range(FLAGS.seeds):
                logging.info(
                    "WRN-%d-%d, %s, seed %d", depth, FLAGS.wrn_width, init, seed
                )
                wrn_table += wrn_rows(depth, init, seed)
    if wrn_table:
        print_table(
            "Wide ResNet: norm growth across each stage's identity blocks",
            wrn_table,
        )


if __name__ == "__main__":
    app.run(main)
