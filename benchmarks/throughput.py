"""Training and inference throughput (images per second) of the models.

What is measured: images per second of a training step (forward,
cross-entropy, gradient, `keras.optimizers.SGD`) and of an inference step
(forward pass) for the MLP (depth 20, width 1024, on 784
inputs), ResNet-56 and WRN-16-4 (on 32x32x3 images) built by
`wn_keras.models`, with weight normalization (``wn``) and without
(``plain``), at a global batch of 128 random examples:

- on one device: the first GPU when there is one, else the CPU;
- under `tf.distribute.MirroredStrategy` over two devices: two GPUs when
  there are two or more; without GPUs the CPU is split into two logical
  devices before TensorFlow initializes, each replica taking half of the
  global batch. Both logical CPU devices share the same cores and thread
  pool, so on a CPU this measures the cost of the replication machinery
  (splitting the batch, all-reducing gradients), not a speed-up.

How: per model, every (normalization, strategy) variant is compiled and
warmed up (one training and one inference sample, which trace them),
then timed round-robin ``--repeats`` times with a rotating order (see
`benchlib`); each sample is ``--steps`` calls of the `tf.function` step
on a repeated in-memory batch, taken from a distributed `tf.data`
iterator. Reported: median images per
second with quartiles, and the per-round ratio mirrored / one device.

Example:

    python benchmarks/throughput.py                # about 8 minutes
    python benchmarks/throughput.py --models=mlp,resnet56 --repeats=5
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import benchlib  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from wn_keras import models  # noqa: E402

MODELS = ("mlp", "resnet56", "wrn16_4")
NORMALIZATIONS = ("wn", "plain")
STRATEGIES = ("one_device", "mirrored")
NUM_CLASSES = 10
NUM_MIRRORED_DEVICES = 2

FLAGS = flags.FLAGS
flags.DEFINE_list("models", list(MODELS), "Models: mlp, resnet56, wrn16_4.")
flags.DEFINE_list(
    "normalizations", list(NORMALIZATIONS), "wn (WeightNorm) and/or plain."
)
flags.DEFINE_list(
    "strategies", list(STRATEGIES), "one_device and/or mirrored (2 devices)."
)
flags.DEFINE_integer(
    "batch_size", 128, "Global batch (all replicas).", lower_bound=2
)
flags.DEFINE_integer("steps", 2, "Batches per timed sample.", lower_bound=1)
flags.DEFINE_integer("repeats", 3, "Timed samples per variant.", lower_bound=1)
flags.DEFINE_integer("image_size", 32, "Image side.", lower_bound=4)
flags.DEFINE_integer(
    "mlp_depth", 20, "Hidden layers of the MLP.", lower_bound=1
)
flags.DEFINE_integer("mlp_width", 1024, "Units per MLP layer.", lower_bound=1)
flags.DEFINE_bool("jit_compile", False, "Compile the steps with XLA.")
flags.DEFINE_integer("seed", 0, "Seed of the data and the weights.")
flags.DEFINE_bool(
    "quick", False, "Tiny models, batch 8, 1 round: checks the script runs."
)
flags.DEFINE_string(
    "output_dir",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"),
    "Where throughput.csv and throughput_run.json are written.",
)
benchlib.register_subset_validator("models", MODELS)
benchlib.register_subset_validator("normalizations", NORMALIZATIONS)
benchlib.register_subset_validator("strategies", STRATEGIES)

COLUMNS = (
    "model",
    "normalization",
    "strategy",
    "devices",
    "task",
    "batch_size",
    "images_per_s",
    "images_per_s_q1",
    "images_per_s_q3",
    "ratio_to_one_device",
    "repeats",
)


def split_devices() -> tuple[list[str], list[str]]:
    """Device lists of the two strategies; splits the CPU when needed.

    Must run before TensorFlow initializes its runtime (before any op).
    """
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = [f"/gpu:{i}" for i in range(len(gpus))]
        return names[:1], names[:NUM_MIRRORED_DEVICES]
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0],
            [tf.config.LogicalDeviceConfiguration()] * NUM_MIRRORED_DEVICES,
        )
    except RuntimeError as error:
        logging.warning("Could not split the CPU (%s).", error)
    names = [d.name for d in tf.config.list_logical_devices("CPU")]
    return names[:1], names[:NUM_MIRRORED_DEVICES]


def build_model(name: str, normalization: str) -> keras.Model:
    options = dict(weight_norm=normalization == "wn", seed=FLAGS.seed)
    image = (FLAGS.image_size, FLAGS.image_size, 3)
    if name == "mlp":
        return models.mlp(
            (28 * 28,),
            NUM_CLASSES,
            hidden_size=FLAGS.mlp_width,
            num_layers=FLAGS.mlp_depth,
            **options,
        )
    if name == "resnet56":
        depth = 8 if FLAGS.quick else 56
        return models.resnet(image, NUM_CLASSES, depth=depth, **options)
    depth, width = (10, 1) if FLAGS.quick else (16, 4)
    return models.wide_resnet(
        image, NUM_CLASSES, depth=depth, width=width, **options
    )


def make_runners(name, normalization, strategy):
    """Training and inference callables for one variant.

    Each call runs ``--steps`` batches and waits for the last. A training
    step is forward, cross-entropy, gradient and `keras.optimizers.SGD`
    inside ``strategy.run`` (the optimizer sums the replicas' gradients);
    an inference step is the forward pass in inference mode.
    """
    with strategy.scope():
        model = build_model(name, normalization)
        optimizer = keras.optimizers.SGD(learning_rate=1e-3)
        optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(FLAGS.seed)
    shape = (FLAGS.batch_size,) + tuple(model.input_shape[1:])
    images = rng.normal(size=shape).astype("float32")
    labels = rng.integers(0, NUM_CLASSES, FLAGS.batch_size).astype("int32")
    dataset = tf.data.Dataset.from_tensors((images, labels)).repeat()
    batches = iter(strategy.experimental_distribute_dataset(dataset))
    variables = model.trainable_variables

    def replica_train_step(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            # Summed over the replica's examples, divided by the global
            # batch: the replicas' gradients then add up to the mean's.
            loss = tf.reduce_sum(
                tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)
            ) / float(FLAGS.batch_size)
        gradients = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(gradients, variables))
        return loss

    def replica_predict_step(x):
        return tf.reduce_sum(model(x, training=False))

    @tf.function(jit_compile=FLAGS.jit_compile or None)
    def train_step(iterator):
        x, y = next(iterator)
        losses = strategy.run(replica_train_step, args=(x, y))
        return strategy.reduce("SUM", losses, axis=None)

    @tf.function(jit_compile=FLAGS.jit_compile or None)
    def predict_step(iterator):
        x, _ = next(iterator)
        sums = strategy.run(replica_predict_step, args=(x,))
        return strategy.reduce("SUM", sums, axis=None)

    def train():
        for _ in range(FLAGS.steps):
            result = train_step(batches)
        return float(result)

    def predict():
        for _ in range(FLAGS.steps):
            result = predict_step(batches)
        return float(result)

    return {"train": train, "inference": predict}, model.count_params()


def measure_model(name, strategies) -> list[dict[str, object]]:
    runners = {}
    for normalization in FLAGS.normalizations:
        for strategy_name, strategy in strategies.items():
            tasks, params = make_runners(name, normalization, strategy)
            logging.info(
                "%s/%s/%s: %d parameters, %d replicas, %d per replica",
                name,
                normalization,
                strategy_name,
                params,
                strategy.num_replicas_in_sync,
                FLAGS.batch_size // strategy.num_replicas_in_sync,
            )
            for task, runner in tasks.items():
                runners[(normalization, strategy_name, task)] = runner
    labelled = {"/".join(key): runner for key, runner in runners.items()}
    wall, _ = benchlib.interleaved_timings(labelled, FLAGS.repeats)
    rows = []
    images = FLAGS.batch_size * FLAGS.steps
    for key in runners:
        normalization, strategy_name, task = key
        label = "/".join(key)
        rate = benchlib.summary([images / t for t in wall[label]])
        reference = "/".join((normalization, "one_device", task))
        ratio = {}
        if reference in wall:
            # A throughput ratio is the inverse ratio of the times.
            ratio = benchlib.paired_ratios(wall[reference], wall[label])
        rows.append(
            {
                "model": name,
                "normalization": normalization,
                "strategy": strategy_name,
                "devices": strategies[strategy_name].num_replicas_in_sync,
                "task": task,
                "batch_size": FLAGS.batch_size,
                "images_per_s": rate["median"],
                "images_per_s_q1": rate["q1"],
                "images_per_s_q3": rate["q3"],
                "ratio_to_one_device": ratio.get("median"),
                "repeats": FLAGS.repeats,
            }
        )
    return rows


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")

    # Phase 1: devices (before TensorFlow runs anything) and configuration.
    one_device, mirrored_devices = split_devices()
    if FLAGS.quick:
        FLAGS.batch_size = 8
        FLAGS.steps = 1
        FLAGS.repeats = 1
        FLAGS.image_size = 8
        FLAGS.mlp_depth = 2
        FLAGS.mlp_width = 16
    strategies = {}
    if "one_device" in FLAGS.strategies:
        strategies["one_device"] = tf.distribute.OneDeviceStrategy(
            one_device[0]
        )
    if "mirrored" in FLAGS.strategies:
        if len(mirrored_devices) < NUM_MIRRORED_DEVICES:
            logging.warning(
                "Only %s available: the mirrored runs are skipped.",
                mirrored_devices,
            )
        else:
            strategies["mirrored"] = tf.distribute.MirroredStrategy(
                mirrored_devices
            )
    if FLAGS.batch_size % NUM_MIRRORED_DEVICES and "mirrored" in strategies:
        raise app.UsageError(
            f"--batch_size must split evenly over {NUM_MIRRORED_DEVICES} "
            f"replicas; got --batch_size={FLAGS.batch_size}."
        )
    for key, value in benchlib.machine_info().items():
        logging.info("%s: %s", key, value)
    logging.info("one device: %s, mirrored: %s", one_device, mirrored_devices)
    logging.info(
        "global batch %d, per replica %d (mirrored)",
        FLAGS.batch_size,
        FLAGS.batch_size // NUM_MIRRORED_DEVICES,
    )
    logging.info("flags:\n%s", benchlib.script_flags())

    # Phase 2: time each model's variants.
    rows = []
    for name in FLAGS.models:
        rows.extend(measure_model(name, strategies))

    # Phase 3: report.
    csv_path = os.path.join(FLAGS.output_dir, "throughput.csv")
    benchlib.write_csv(csv_path, rows, COLUMNS)
    benchlib.write_run_info(
        os.path.join(FLAGS.output_dir, "throughput_run.json"),
        benchlib.script_flags(),
    )
    print(benchlib.format_table(rows, COLUMNS))
    print(f"Wrote {csv_path}")


if __name__ == "__main__":
    app.run(main)
