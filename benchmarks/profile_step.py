"""Where the time of a training step goes, per TensorFlow op type.

What is measured: the training step of ``wn_overhead.py`` (same models,
same flags) for each requested normalization, run ``--profile_steps``
times under the TensorFlow profiler. The trace is read back (the XSpace
protocol buffer the profiler writes) and the durations of the executed
ops are summed per op type (``MatMul``, ``Square``, ``Sum``, ...) and
divided by the number of steps. Times are summed over the threads that
ran the ops, so a column can exceed the step's wall-clock time; they are
for comparing the variants side by side (which op types weight
normalization adds or makes slower), not for absolute speed. Under XLA
the trace shows compiled clusters rather than ops, so use ``graph``.

Example:

    python benchmarks/profile_step.py --models=mlp --modes=graph
"""

from __future__ import annotations

import collections
import glob
import os
import tempfile

import benchlib
import tensorflow as tf
import wn_overhead
from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.adopt_module_key_flags(wn_overhead)
flags.DEFINE_integer(
    "profile_steps", 5, "Traced steps per variant.", lower_bound=1
)
flags.DEFINE_integer("top", 15, "Op types shown per model.", lower_bound=1)

COLUMNS_START = ("model", "mode", "op_type")
# Trace events that look like ops but span whole function calls or
# executor phases.
_NOT_OPS = frozenset({"Run", "Process", "Record", "StartRegion"})


def op_times(run, steps: int) -> dict[str, float]:
    """Milliseconds per step for each op type, from a profiler trace."""
    try:
        from tensorflow.tsl.profiler.protobuf import xplane_pb2
    except ImportError as error:
        raise RuntimeError(
            "This TensorFlow build does not ship the profiler's XSpace "
            f"protocol buffer ({error}); profile_step.py cannot read traces."
        ) from error
    run()
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(steps):
            run()
        tf.profiler.experimental.stop()
        paths = glob.glob(
            os.path.join(logdir, "**", "*.xplane.pb"), recursive=True
        )
        space = xplane_pb2.XSpace()
        with open(paths[0], "rb") as stream:
            space.ParseFromString(stream.read())
    totals = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                # Executed ops are traced as "<node>:<op type>"; function
                # calls and executor phases are left out.
                node, _, op_type = name.rpartition(":")
                op_type = op_type.strip()
                if (
                    node
                    and not op_type.startswith("__")
                    and op_type not in _NOT_OPS
                ):
                    totals[op_type] += event.duration_ps * 1e-9 / steps
    return dict(totals)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")

    # Phase 1: configuration (the model flags are wn_overhead.py's).
    if FLAGS.quick:
        wn_overhead.apply_quick()
        FLAGS.profile_steps = 1
    FLAGS.steps = 1
    logging.info("flags:\n%s", benchlib.script_flags())

    # Phase 2: profile each variant.
    rows = []
    normalizations = list(FLAGS.normalizations)
    for name in FLAGS.models:
        for mode in FLAGS.modes:
            per_variant = {}
            for normalization in normalizations:
                model, images, labels = wn_overhead.build_keras_model(
                    name, normalization
                )
                run = wn_overhead.keras_step_runner(
                    model, images, labels, jit_compile=mode == "xla"
                )
                per_variant[normalization] = op_times(run, FLAGS.profile_steps)
            op_types = collections.Counter()
            for times in per_variant.values():
                op_types.update(times)
            for op_type, _ in op_types.most_common(FLAGS.top):
                row = {"model": name, "mode": mode, "op_type": op_type}
                for normalization in normalizations:
                    row[f"{normalization}_ms"] = per_variant[normalization].get(
                        op_type, 0.0
                    )
                rows.append(row)

    # Phase 3: report.
    columns = COLUMNS_START + tuple(f"{n}_ms" for n in normalizations)
    csv_path = os.path.join(FLAGS.output_dir, "profile_step.csv")
    benchlib.write_csv(csv_path, rows, columns)
    benchlib.write_run_info(
        os.path.join(FLAGS.output_dir, "profile_step_run.json"),
        benchlib.script_flags(),
    )
    print(benchlib.format_table(rows, columns))
    print(f"Wrote {csv_path}")


if __name__ == "__main__":
    app.run(main)
