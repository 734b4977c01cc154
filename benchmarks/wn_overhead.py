"""Training-step cost of weight normalization against the same plain model.

What is measured: the wall-clock time of one SGD training step (forward,
softmax cross-entropy, gradient, ``v -= lr * grad`` for every trainable
variable) of the same architecture built three ways by `wn_keras.models`:

- ``plain``: ordinary Dense / Conv2D layers;
- ``wn``: every hidden layer wrapped in `wn_keras.WeightNorm`;
- ``bn``: batch normalization instead (what weight normalization competes
  with; hidden layers then have no bias).

Models: an MLP (depth 20, width 1024 on 784 inputs) and a Wide ResNet
WRN-16-4 on 32x32x3 images, batch 128, random data. Each step is one
`tf.function`, traced once, run either by TensorFlow's graph executor
(``graph``) or compiled by XLA (``xla``, ``jit_compile=True``).

How: every (normalization, mode) variant of one model gets its own model
and step function; all of them are warmed up (tracing, compilation), then
timed round-robin with a rotating order (see `benchlib`), ``--steps``
steps per sample, ``--repeats`` samples. Reported: the median step time
with its quartiles, and the median over rounds of the per-round ratio
variant / plain in the same mode (so load changes between rounds cancel).

Diagnostic variants (``--normalizations``), each a `WeightNorm` model
whose compute path is replaced on the layer instances:

- ``wn_kernel`` scales the kernel (``x @ (v * g/||v||)``) for Dense layers
  too, as a naive wrapper does: what scaling the outputs saves;
- ``wn_fixed_scale`` multiplies by ``g`` alone, without ``||v||``: what the
  norm and its gradient cost, everything else being equal;
- ``wn_sum_norm`` computes the squared norms as a sum over the kernel's
  leading axes, as `WeightNorm` did before it switched to a
  matrix-vector product with a row of ones;
- ``wn_autodiff_scale`` multiplies the Dense outputs by ``g / ||v||``
  with a plain product whose gradient is left to automatic
  differentiation, as `WeightNorm` did under XLA before it wrote that
  gradient by hand: what the hand-written gradient saves.

Two more diagnostics are not training steps but the floor under the
norm's cost, timed in the same rounds so that their ratio to the plain
step is the share of a step they take:

- ``norms_only``: every `WeightNorm` layer's ``||v||`` as the layer
  computes it, forward only, nothing else;
- ``kernel_read``: the sum of all entries of every direction ``v``, a
  reduction that reads each kernel once at full memory bandwidth. Any
  exact per-step norm has to read every kernel at least this once.

``--with_torch`` adds the same MLP and WRN written in PyTorch, with
and without `torch.nn.utils.parametrizations.weight_norm`, run by a
worker process and timed in the same rounds (see `torch_models.py`).

Example:

    python benchmarks/wn_overhead.py                    # about 10 minutes
    python benchmarks/wn_overhead.py --models=mlp --with_torch
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import benchlib  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from keras import ops  # noqa: E402

from wn_keras import WeightNorm, models, weight_norm  # noqa: E402

NORMALIZATIONS = (
    "plain",
    "wn",
    "bn",
    "wn_kernel",
    "wn_fixed_scale",
    "wn_sum_norm",
    "wn_autodiff_scale",
    "norms_only",
    "kernel_read",
)
# Variants that time a function of the WN model's variables, not a step.
FLOOR_VARIANTS = ("norms_only", "kernel_read")
MODES = ("graph", "xla")
MODELS = ("mlp", "wrn")
NUM_CLASSES = 10

FLAGS = flags.FLAGS
flags.DEFINE_list("models", list(MODELS), "Models to time: mlp, wrn.")
flags.DEFINE_list(
    "normalizations",
    ["plain", "wn", "bn"],
    "Variants: plain, wn (WeightNorm), bn (batch norm), wn_kernel "
    "(diagnostic: WeightNorm that scales the Dense kernel, not outputs), "
    "wn_fixed_scale (diagnostic: WeightNorm without the norm, g only), "
    "wn_sum_norm (diagnostic: squared norms by a sum over the leading "
    "axes instead of a matrix-vector product), wn_autodiff_scale "
    "(diagnostic: Dense output scaling differentiated automatically, "
    "not by the hand-written XLA gradient), norms_only (floor: the "
    "WeightNorm norms alone, forward), kernel_read (floor: one full-"
    "bandwidth read of every WN kernel).",
)
flags.DEFINE_list(
    "modes", list(MODES), "graph (tf.function) and/or xla (jit_compile)."
)
flags.DEFINE_integer("batch_size", 128, "Examples per step.", lower_bound=1)
flags.DEFINE_integer(
    "mlp_depth", 20, "Hidden layers of the MLP.", lower_bound=1
)
flags.DEFINE_integer("mlp_width", 1024, "Units per MLP layer.", lower_bound=1)
flags.DEFINE_integer("mlp_inputs", 784, "MLP input size.", lower_bound=1)
flags.DEFINE_integer("wrn_depth", 16, "WRN depth, 6N+4.", lower_bound=10)
flags.DEFINE_integer("wrn_width", 4, "WRN widening factor.", lower_bound=1)
flags.DEFINE_integer("image_size", 32, "WRN image side.", lower_bound=4)
flags.DEFINE_integer(
    "steps", 1, "Training steps per timed sample.", lower_bound=1
)
flags.DEFINE_integer("repeats", 9, "Timed samples per variant.", lower_bound=1)
flags.DEFINE_integer("warmup", 1, "Untimed rounds first.", lower_bound=1)
flags.DEFINE_float("learning_rate", 1e-3, "SGD step size.")
flags.DEFINE_integer("seed", 0, "Seed of the data and the weights.")
flags.DEFINE_bool(
    "with_torch",
    False,
    "Also time the same models in PyTorch (plain and weight_norm); skipped "
    "with a message when torch is not installed.",
)
flags.DEFINE_bool(
    "quick", False, "Tiny models, batch 8, 2 rounds: checks the script runs."
)
flags.DEFINE_string(
    "output_dir",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"),
    "Where wn_overhead.csv and wn_overhead_run.json are written.",
)
benchlib.register_subset_validator("models", MODELS)
benchlib.register_subset_validator("normalizations", NORMALIZATIONS)
benchlib.register_subset_validator("modes", MODES)

COLUMNS = (
    "model",
    "framework",
    "normalization",
    "mode",
    "batch_size",
    "params",
    "step_ms",
    "step_ms_q1",
    "step_ms_q3",
    "ratio_to_plain",
    "ratio_q1",
    "ratio_q3",
    "cpu_step_ms",
    "cpu_ratio_to_plain",
    "cpu_ratio_q1",
    "cpu_ratio_q3",
    "ratio_to_torch",
    "repeats",
)

# The printed table; the CSV has every column.
TABLE_COLUMNS = (
    "model",
    "framework",
    "normalization",
    "mode",
    "step_ms",
    "ratio_to_plain",
    "ratio_q1",
    "ratio_q3",
    "cpu_ratio_to_plain",
    "ratio_to_torch",
)


def apply_quick() -> None:
    """Shrinks every size so that the whole script runs in seconds."""
    FLAGS.batch_size = 8
    FLAGS.mlp_depth = 2
    FLAGS.mlp_width = 32
    FLAGS.mlp_inputs = 16
    FLAGS.wrn_depth = 10
    FLAGS.wrn_width = 1
    FLAGS.image_size = 8
    FLAGS.steps = 1
    FLAGS.repeats = 2


def _scale_dense_kernel(layer, inputs, scale):
    """Naive WeightNorm compute path: builds the scaled Dense kernel."""
    kernel = ops.multiply(
        ops.convert_to_tensor(layer.layer.kernel),
        layer._broadcast_to_kernel(scale),
    )
    return ops.matmul(inputs, ops.cast(kernel, layer.compute_dtype))


def _without_norm(layer, inputs, scale):
    """Diagnostic compute path: multiplies by ``g`` alone, no ``||v||``."""
    return WeightNorm._scaled_linear(layer, inputs, layer.magnitude)


def _scale_by_autodiff(layer, inputs, scale):
    """Diagnostic Dense path: output scaling left to autodiff."""
    dtype = layer.compute_dtype
    outputs = ops.matmul(
        inputs, ops.cast(ops.convert_to_tensor(layer.layer.kernel), dtype)
    )
    return ops.multiply(outputs, ops.cast(scale, dtype))


def _norm_by_sum(layer):
    """Diagnostic: the per-unit norm as a plain sum of squares."""
    direction = ops.convert_to_tensor(layer.layer.kernel)
    squared = ops.sum(ops.square(direction), axis=layer._norm_axes())
    squared = ops.add(ops.reshape(squared, (-1,)), weight_norm._NORM_EPSILON)
    return ops.sqrt(squared)


def build_keras_model(name: str, normalization: str):
    """The model ``name`` with the given normalization, and its input."""
    options = dict(
        weight_norm=normalization.startswith("wn")
        or normalization in FLOOR_VARIANTS,
        batch_norm=normalization == "bn",
        seed=FLAGS.seed,
    )
    if name == "mlp":
        model = models.mlp(
            (FLAGS.mlp_inputs,),
            NUM_CLASSES,
            hidden_size=FLAGS.mlp_width,
            num_layers=FLAGS.mlp_depth,
            **options,
        )
    else:
        model = models.wide_resnet(
            (FLAGS.image_size, FLAGS.image_size, 3),
            NUM_CLASSES,
            depth=FLAGS.wrn_depth,
            width=FLAGS.wrn_width,
            **options,
        )
    for layer in model.layers:
        if not isinstance(layer, WeightNorm):
            continue
        if normalization == "wn_fixed_scale":
            # The call still computes the norm, but nothing depends on it,
            # so graph pruning and XLA drop it.
            layer._scaled_linear = types.MethodType(_without_norm, layer)
        if normalization == "wn_sum_norm":
            layer._direction_norm = types.MethodType(_norm_by_sum, layer)
        is_dense = isinstance(layer.layer, keras.layers.Dense)
        if normalization == "wn_kernel" and is_dense:
            layer._scaled_linear = types.MethodType(_scale_dense_kernel, layer)
        if normalization == "wn_autodiff_scale" and is_dense:
            layer._scaled_linear = types.MethodType(_scale_by_autodiff, layer)
    rng = np.random.default_rng(FLAGS.seed)
    shape = (FLAGS.batch_size,) + tuple(model.input_shape[1:])
    images = rng.normal(size=shape).astype("float32")
    labels = rng.integers(0, NUM_CLASSES, FLAGS.batch_size).astype("int32")
    return model, images, labels


def keras_step_runner(model, images, labels, jit_compile: bool):
    """A callable running ``--steps`` SGD steps and waiting for the last."""
    variables = model.trainable_variables
    learning_rate = FLAGS.learning_rate
    images = tf.constant(images)
    labels = tf.constant(labels)

    @tf.function(jit_compile=jit_compile)
    def train_step(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)
            )
        gradients = tape.gradient(loss, variables)
        for variable, gradient in zip(variables, gradients):
            variable.assign_sub(learning_rate * gradient)
        return loss

    def run():
        for _ in range(FLAGS.steps):
            loss = train_step(images, labels)
        return float(loss)

    return run


def floor_runner(model, normalization: str, jit_compile: bool):
    """A callable computing one `FLOOR_VARIANTS` quantity of ``model``."""
    layers = [layer for layer in model.layers if isinstance(layer, WeightNorm)]

    @tf.function(jit_compile=jit_compile)
    def compute():
        if normalization == "norms_only":
            parts = [ops.sum(layer.kernel_norm()) for layer in layers]
        else:
            parts = [ops.sum(layer.direction) for layer in layers]
        return ops.sum(ops.stack(parts))

    def run():
        for _ in range(FLAGS.steps):
            total = compute()
        return float(total)

    return run


class TorchPeer:
    """The PyTorch worker process of one model (see `torch_models.py`)."""

    def __init__(self, name: str):
        settings = dict(
            name=name,
            batch_size=FLAGS.batch_size,
            mlp_inputs=FLAGS.mlp_inputs,
            mlp_width=FLAGS.mlp_width,
            mlp_depth=FLAGS.mlp_depth,
            wrn_depth=FLAGS.wrn_depth,
            wrn_width=FLAGS.wrn_width,
            image_size=FLAGS.image_size,
            num_classes=NUM_CLASSES,
            steps=FLAGS.steps,
            learning_rate=FLAGS.learning_rate,
            seed=FLAGS.seed,
        )
        worker = os.path.join(os.path.dirname(__file__), "torch_models.py")
        # See torch_models.py for why its OpenMP threads must not spin.
        env = dict(os.environ)
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        self.process = subprocess.Popen(
            [sys.executable, worker, json.dumps(settings)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        answer = self.process.stdout.readline().split()
        if not answer or answer[0] != "ready":
            raise RuntimeError(f"The PyTorch worker did not start: {answer}")
        self.num_params = {
            item.split("=")[0]: int(item.split("=")[1]) for item in answer[1:]
        }

    def runner(self, normalization: str):
        def run():
            self.process.stdin.write(normalization + "\n")
            self.process.stdin.flush()
            answer = self.process.stdout.readline()
            if not answer.startswith("done"):
                raise RuntimeError(f"The PyTorch worker failed: {answer!r}")

        return run

    def close(self) -> None:
        self.process.stdin.write("\n")
        self.process.stdin.close()
        self.process.wait()


def torch_available() -> bool:
    """True if PyTorch can be imported; says so when it cannot."""
    if importlib.util.find_spec("torch") is None:
        message = "--with_torch: skipped, PyTorch is not installed."
        logging.warning(message)
        print(message)
        return False
    return True


def measure_model(name: str) -> list[dict[str, object]]:
    """Times every variant of one model; returns one row per variant."""
    runners, params = {}, {}
    for normalization in FLAGS.normalizations:
        for mode in FLAGS.modes:
            model, images, labels = build_keras_model(name, normalization)
            key = ("keras", normalization, mode)
            params[key] = model.count_params()
            if normalization in FLOOR_VARIANTS:
                runners[key] = floor_runner(
                    model, normalization, jit_compile=mode == "xla"
                )
            else:
                runners[key] = keras_step_runner(
                    model, images, labels, jit_compile=mode == "xla"
                )
    peer = None
    if FLAGS.with_torch and torch_available():
        peer = TorchPeer(name)
        for normalization in ("plain", "wn"):
            key = ("torch", normalization, "eager")
            runners[key] = peer.runner(normalization)
            params[key] = peer.num_params[normalization]
    logging.info("%s: timing %d variants", name, len(runners))
    labelled = {"/".join(key): runner for key, runner in runners.items()}
    try:
        wall, cpu = benchlib.interleaved_timings(
            labelled, FLAGS.repeats, FLAGS.warmup
        )
    finally:
        if peer is not None:
            peer.close()
    rows = []
    for key in runners:
        framework, normalization, mode = key
        label = "/".join(key)
        plain_label = "/".join((framework, "plain", mode))
        step = benchlib.summary([t / FLAGS.steps for t in wall[label]])
        cpu_step = benchlib.summary([t / FLAGS.steps for t in cpu[label]])
        ratio, cpu_ratio = {}, {}
        if plain_label in wall:
            ratio = benchlib.paired_ratios(wall[label], wall[plain_label])
            cpu_ratio = benchlib.paired_ratios(cpu[label], cpu[plain_label])
        if framework == "torch":
            # The work ran in the worker process; this one only waited.
            cpu_step, cpu_ratio = {"median": float("nan")}, {}
        torch_label = f"torch/{normalization}/eager"
        to_torch = {}
        if framework == "keras" and torch_label in wall:
            to_torch = benchlib.paired_ratios(wall[label], wall[torch_label])
        rows.append(
            {
                "model": name,
                "framework": framework,
                "normalization": normalization,
                "mode": mode,
                "batch_size": FLAGS.batch_size,
                "params": params[key],
                "step_ms": 1e3 * step["median"],
                "step_ms_q1": 1e3 * step["q1"],
                "step_ms_q3": 1e3 * step["q3"],
                "ratio_to_plain": ratio.get("median"),
                "ratio_q1": ratio.get("q1"),
                "ratio_q3": ratio.get("q3"),
                "cpu_step_ms": 1e3 * cpu_step["median"],
                "cpu_ratio_to_plain": cpu_ratio.get("median"),
                "cpu_ratio_q1": cpu_ratio.get("q1"),
                "cpu_ratio_q3": cpu_ratio.get("q3"),
                "ratio_to_torch": to_torch.get("median"),
                "repeats": FLAGS.repeats,
            }
        )
    return rows


def headline(rows: list[dict[str, object]]) -> list[str]:
    """Per model: each variant / plain in the mode where plain is faster."""
    lines = []
    for name in FLAGS.models:
        keras_rows = [
            r for r in rows if r["model"] == name and r["framework"] == "keras"
        ]
        plain = [r for r in keras_rows if r["normalization"] == "plain"]
        if not plain:
            continue
        fastest = min(plain, key=lambda r: r["step_ms"])["mode"]
        for row in keras_rows:
            if row["mode"] != fastest or row["normalization"] == "plain":
                continue
            lines.append(
                f"{name}: {row['normalization']} / plain in the faster mode "
                f"({fastest}): wall {row['ratio_to_plain']:.3f}, "
                f"cpu {row['cpu_ratio_to_plain']:.3f}"
            )
        for row in rows:
            if row["model"] == name and row["framework"] == "torch":
                if row["normalization"] == "wn":
                    lines.append(
                        f"{name}: torch weight_norm / torch plain: wall "
                        f"{row['ratio_to_plain']:.3f}"
                    )
        for row in keras_rows:
            if row["ratio_to_torch"] is not None and row["mode"] == fastest:
                lines.append(
                    f"{name}: keras {row['normalization']} ({fastest}) / "
                    f"torch {row['normalization']}: wall "
                    f"{row['ratio_to_torch']:.3f}"
                )
    return lines


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")

    # Phase 1: configuration.
    if FLAGS.quick:
        apply_quick()
    if (FLAGS.wrn_depth - 4) % 6:
        raise app.UsageError(
            f"--wrn_depth must be 6N+4 (10, 16, 22, ...); got "
            f"--wrn_depth={FLAGS.wrn_depth}."
        )
    for key, value in benchlib.machine_info().items():
        logging.info("%s: %s", key, value)
    logging.info("flags:\n%s", benchlib.script_flags())

    # Phase 2: build and time each model's variants.
    rows = []
    for name in FLAGS.models:
        rows.extend(measure_model(name))

    # Phase 3: report.
    csv_path = os.path.join(FLAGS.output_dir, "wn_overhead.csv")
    benchlib.write_csv(csv_path, rows, COLUMNS)
    benchlib.write_run_info(
        os.path.join(FLAGS.output_dir, "wn_overhead_run.json"),
        benchlib.script_flags(),
    )
    print(benchlib.format_table(rows, TABLE_COLUMNS))
    for line in headline(rows):
        print(line)
    print(f"Wrote {csv_path}")


if __name__ == "__main__":
    app.run(main)
