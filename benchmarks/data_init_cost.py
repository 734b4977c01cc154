"""Cost of `wn_keras.data_dependent_init` against depth, per forward pass.

What is measured: for weight-normalized MLPs of increasing depth (10 to
1,000 hidden layers, ``--width`` units, one batch of ``--batch_size``
random inputs), the wall-clock time of

- ``data_dependent_init(model, x)``: one sweep that initializes every
  layer, run eagerly as it is in practice;
- ``model(x)``: one eager forward pass of the same model, the like-for-like
  reference (both run op by op, layer by layer, from Python);
- a compiled forward pass (``tf.function(model)``, traced once before
  timing), the cost of the arithmetic alone.

The initialization visits each layer once, so its time over one eager
forward pass should stay flat as the depth grows; a ratio that rises with
depth would mean work that grows faster than the layer count. The ratio
to the compiled forward pass also shows how much of either is Python and
per-op dispatch rather than arithmetic.

How: per depth, one model is built; the three variants are warmed up once
and then timed round-robin ``--repeats`` times with a rotating order (see
`benchlib`). Reported: medians with quartiles and the median of the
per-round ratios.

Example:

    python benchmarks/data_init_cost.py              # about 7 minutes
    python benchmarks/data_init_cost.py --depths=10,100 --repeats=3
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import benchlib  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from wn_keras import data_dependent_init, models  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list(
    "depths",
    ["10", "30", "100", "300", "1000"],
    "Numbers of hidden layers of the WN MLPs, comma-separated.",
)
flags.DEFINE_integer("width", 128, "Units per hidden layer.", lower_bound=1)
flags.DEFINE_integer("inputs", 784, "Input size.", lower_bound=1)
flags.DEFINE_integer("batch_size", 256, "Examples in the batch.", lower_bound=2)
flags.DEFINE_integer("repeats", 3, "Timed rounds per depth.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the data and the weights.")
flags.DEFINE_bool(
    "quick", False, "Depths 2 and 4, width 8, 2 rounds: checks the script."
)
flags.DEFINE_string(
    "output_dir",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"),
    "Where data_init_cost.csv and data_init_cost_run.json are written.",
)
flags.register_validator(
    "depths",
    lambda values: (
        bool(values) and all(v.isdigit() and int(v) >= 1 for v in values)
    ),
    message="--depths takes comma-separated positive integers",
)

NUM_CLASSES = 10
COLUMNS = (
    "depth",
    "width",
    "batch_size",
    "build_s",
    "init_ms",
    "init_ms_q1",
    "init_ms_q3",
    "eager_forward_ms",
    "compiled_forward_ms",
    "init_over_eager_forward",
    "ratio_q1",
    "ratio_q3",
    "init_over_compiled_forward",
    "init_ms_per_layer",
    "repeats",
)


def measure_depth(depth: int) -> dict[str, object]:
    """Builds one WN MLP of ``depth`` layers and times the three variants."""
    start = time.perf_counter()
    model = models.mlp(
        (FLAGS.inputs,),
        NUM_CLASSES,
        hidden_size=FLAGS.width,
        num_layers=depth,
        weight_norm=True,
        init="he_datadep",
        seed=FLAGS.seed,
    )
    build_seconds = time.perf_counter() - start
    rng = np.random.default_rng(FLAGS.seed)
    batch = rng.normal(size=(FLAGS.batch_size, FLAGS.inputs))
    batch = tf.constant(batch.astype("float32"))
    compiled = tf.function(model)

    variants = {
        "init": lambda: data_dependent_init(model, batch),
        "eager_forward": lambda: model(batch).numpy(),
        "compiled_forward": lambda: compiled(batch).numpy(),
    }
    wall, _ = benchlib.interleaved_timings(variants, FLAGS.repeats)
    init = benchlib.summary(wall["init"])
    eager = benchlib.summary(wall["eager_forward"])
    graph = benchlib.summary(wall["compiled_forward"])
    to_eager = benchlib.paired_ratios(wall["init"], wall["eager_forward"])
    to_graph = benchlib.paired_ratios(wall["init"], wall["compiled_forward"])
    return {
        "depth": depth,
        "width": FLAGS.width,
        "batch_size": FLAGS.batch_size,
        "build_s": build_seconds,
        "init_ms": 1e3 * init["median"],
        "init_ms_q1": 1e3 * init["q1"],
        "init_ms_q3": 1e3 * init["q3"],
        "eager_forward_ms": 1e3 * eager["median"],
        "compiled_forward_ms": 1e3 * graph["median"],
        "init_over_eager_forward": to_eager["median"],
        "ratio_q1": to_eager["q1"],
        "ratio_q3": to_eager["q3"],
        "init_over_compiled_forward": to_graph["median"],
        "init_ms_per_layer": 1e3 * init["median"] / depth,
        "repeats": FLAGS.repeats,
    }


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")

    # Phase 1: configuration.
    if FLAGS.quick:
        FLAGS.depths = ["2", "4"]
        FLAGS.width = 8
        FLAGS.inputs = 16
        FLAGS.batch_size = 16
        FLAGS.repeats = 2
    depths = [int(depth) for depth in FLAGS.depths]
    for key, value in benchlib.machine_info().items():
        logging.info("%s: %s", key, value)
    logging.info("flags:\n%s", benchlib.script_flags())

    # Phase 2: one model per depth, timed.
    rows = []
    for depth in depths:
        logging.info("depth %d", depth)
        rows.append(measure_depth(depth))

    # Phase 3: report.
    csv_path = os.path.join(FLAGS.output_dir, "data_init_cost.csv")
    benchlib.write_csv(csv_path, rows, COLUMNS)
    benchlib.write_run_info(
        os.path.join(FLAGS.output_dir, "data_init_cost_run.json"),
        benchlib.script_flags(),
    )
    print(benchlib.format_table(rows, COLUMNS))
    print(f"Wrote {csv_path}")


if __name__ == "__main__":
    app.run(main)
