"""How building and training a very deep WN Wide ResNet scales with depth.

What is measured, for each depth, in a fresh Python process (so that the
peak memory belongs to that depth alone and nothing is cached):

- ``build_s``: wall-clock seconds of `wn_keras.models.wide_resnet(depth,
  width=1, weight_norm=True, init="orthogonal_proposed",
  downsample_stem=True)` on 32x32x3 inputs, which creates, initializes and
  connects every layer and assembles the functional model;
- ``model_s``: seconds to construct `keras.Model(model.inputs,
  model.outputs)` once more on the finished graph: the part of the build
  that Keras spends walking and checking the whole graph (it includes a
  name-uniqueness check whose cost grows with the square of the number of
  layers);
- ``step_s``: the first training step (SGD, softmax cross-entropy) on a
  random batch, everything included: eager execution by default, or with
  ``--step_mode=graph`` tracing the whole step into one TensorFlow graph
  and optimizing it first (minutes at these depths);
- ``peak_rss_mib``: the process's peak resident memory at the end.

Build and step are also timed in CPU seconds of the process
(``*_cpu_s``, all its threads), which other processes on a shared machine
disturb much less than wall-clock time. Linear growth shows as constant
``build_cpu_ms_per_block`` and ``step_cpu_ms_per_block`` columns; the
``*_ratio`` columns divide them by those of the smallest depth in the same
run. Compare numbers within one run only.

Depths must be 6N+4 (5,000 is not; 5,002 is, with N = 833).

Example:

    python benchmarks/build_scale.py                       # ~20 minutes
    python benchmarks/build_scale.py --depths=100,202,502 --step_mode=graph
"""

from __future__ import annotations

import cProfile
import json
import os
import resource
import subprocess
import sys
import time

from absl import app, flags, logging

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import benchlib

STEP_MODES = ("eager", "graph")
NUM_CLASSES = 10
IMAGE_SHAPE = (32, 32, 3)
# The child process prints its measurements on a line starting with this.
RESULT_PREFIX = "BUILD_SCALE_RESULT "
COLUMNS = (
    "depth",
    "blocks",
    "layers",
    "params",
    "build_s",
    "build_cpu_s",
    "model_s",
    "step_s",
    "step_cpu_s",
    "peak_rss_mib",
    "build_cpu_ms_per_block",
    "step_cpu_ms_per_block",
    "build_ratio",
    "step_ratio",
    "loss",
)

FLAGS = flags.FLAGS
flags.DEFINE_list(
    "depths",
    ["1000", "2500", "5002", "10000"],
    "Wide-ResNet depths to measure, each of the form 6N+4.",
)
flags.DEFINE_integer("width", 1, "Widening factor k of the Wide ResNet.")
flags.DEFINE_integer("batch_size", 8, "Examples in the training batch.")
flags.DEFINE_enum(
    "step_mode",
    "eager",
    STEP_MODES,
    "eager: run the first training step op by op; graph: trace it into a "
    "tf.function first (includes tracing and graph optimization).",
)
flags.DEFINE_string(
    "output_csv",
    "benchmarks/results/build_scale.csv",
    "Where the table is written (atomically), with a .json of the flags "
    "and machine beside it.",
)
flags.DEFINE_string(
    "profile_dir",
    "",
    "If set, the build of each depth runs under cProfile and its statistics "
    "are written there as build_<depth>.pstats (timings then include the "
    "profiler's overhead).",
)
flags.DEFINE_integer(
    "child_depth",
    0,
    "Internal: measure this one depth in this process and print the "
    "result line; set by the parent for each depth.",
)


def _check_depths(values: list[str]) -> bool:
    try:
        depths = [int(value) for value in values]
    except ValueError:
        return False
    return bool(depths) and all(d >= 10 and (d - 4) % 6 == 0 for d in depths)


flags.register_validator(
    "depths",
    _check_depths,
    message="--depths takes comma-separated integers of the form 6N+4 with "
    "N >= 1, e.g. 1000,2500,5002,10000",
)


def measure_one_depth(depth: int) -> dict:
    """Builds one model, runs one training step; returns the measurements."""
    import keras
    import numpy as np

    from wn_keras import models

    profiler = cProfile.Profile() if FLAGS.profile_dir else None
    start, start_cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    model = models.wide_resnet(
        IMAGE_SHAPE,
        NUM_CLASSES,
        depth=depth,
        width=FLAGS.width,
        weight_norm=True,
        init="orthogonal_proposed",
        downsample_stem=True,
        seed=0,
    )
    if profiler:
        profiler.disable()
        os.makedirs(FLAGS.profile_dir, exist_ok=True)
        profiler.dump_stats(
            os.path.join(FLAGS.profile_dir, f"build_{depth}.pstats")
        )
    build_s = time.perf_counter() - start
    build_cpu_s = time.process_time() - start_cpu
    # The functional-model constructor alone, on the finished graph.
    start = time.perf_counter()
    keras.Model(model.inputs, model.outputs)
    model_s = time.perf_counter() - start

    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=FLAGS.step_mode == "eager",
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(FLAGS.batch_size,) + IMAGE_SHAPE).astype("float32")
    y = rng.integers(0, NUM_CLASSES, size=FLAGS.batch_size)
    start, start_cpu = time.perf_counter(), time.process_time()
    loss = float(model.train_on_batch(x, y))
    step_s = time.perf_counter() - start
    step_cpu_s = time.process_time() - start_cpu

    # ru_maxrss is in KiB on Linux.
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "depth": depth,
        "blocks": 3 * ((depth - 4) // 6),
        "layers": len(model.layers),
        "params": model.count_params(),
        "build_s": build_s,
        "build_cpu_s": build_cpu_s,
        "model_s": model_s,
        "step_s": step_s,
        "step_cpu_s": step_cpu_s,
        "peak_rss_mib": peak_kib / 1024,
        "loss": loss,
    }


def run_child(depth: int) -> dict:
    """Measures `depth` in a fresh interpreter running this script."""
    command = [
        sys.executable,
        os.path.abspath(__file__),
        f"--child_depth={depth}",
        f"--width={FLAGS.width}",
        f"--batch_size={FLAGS.batch_size}",
        f"--step_mode={FLAGS.step_mode}",
        f"--profile_dir={FLAGS.profile_dir}",
    ]
    completed = subprocess.run(
        command, capture_output=True, text=True, check=False
    )
    for line in completed.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    raise RuntimeError(
        f"The measurement of depth {depth} failed (exit code "
        f"{completed.returncode}); its last output:\n"
        + completed.stderr[-3000:]
    )


def add_ratios(rows: list[dict]) -> None:
    """Adds per-block CPU costs and their ratios to the smallest depth."""
    for row in rows:
        for phase in ("build", "step"):
            row[f"{phase}_cpu_ms_per_block"] = (
                1000 * row[f"{phase}_cpu_s"] / row["blocks"]
            )
    base = min(rows, key=lambda row: row["depth"])
    for row in rows:
        for phase in ("build", "step"):
            key = f"{phase}_cpu_ms_per_block"
            row[f"{phase}_ratio"] = row[key] / base[key]


def main(argv: list[str]) -> None:
    del argv
    if FLAGS.child_depth:
        result = measure_one_depth(FLAGS.child_depth)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return

    # Phase 1: set-up.
    depths = sorted(int(depth) for depth in FLAGS.depths)
    flags_text = benchlib.script_flags()
    logging.info("Flags:\n%s", flags_text)
    logging.info("Machine: %s", benchlib.machine_info())

    # Phase 2: one fresh process per depth, smallest first.
    rows = []
    for depth in depths:
        logging.info("Measuring depth %d (%s step)", depth, FLAGS.step_mode)
        rows.append(run_child(depth))
        logging.info("Depth %d: %s", depth, rows[-1])

    # Phase 3: report.
    add_ratios(rows)
    print(benchlib.format_table(rows, COLUMNS))
    benchlib.write_csv(FLAGS.output_csv, rows, COLUMNS)
    info_path = os.path.splitext(FLAGS.output_csv)[0] + ".json"
    benchlib.write_run_info(info_path, flags_text)
    logging.info("Wrote %s and %s", FLAGS.output_csv, info_path)


if __name__ == "__main__":
    app.run(main)
