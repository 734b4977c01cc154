r"""Trains one network of arXiv:1906.02341 with one initialization scheme.

The flags follow the command line of the paper's released code, so its
commands run unchanged, e.g.

    python experiments/train.py --dataset mnist --nn mlp --weight_norm \
        --init orthogonal_proposed

The bare command `python experiments/train.py` needs no download: it
trains a weight-normalized 2x128 MLP on scikit-learn's 8x8 digits with the
proposed orthogonal init, with the paper's defaults (plain SGD, batch 128,
lr 0.01, 200 epochs): about a minute on a laptop CPU, ~96% test accuracy.

Outputs, under `<logdir>/<model_prefix>/<model>/` (only the chief writes):

- `flags.txt`: every flag of this script; `--flagfile=flags.txt` reruns
  the same configuration.
- `log.csv`: one row per epoch (columns `wn_keras.training.CSV_COLUMNS`).
- `ckpt-epochNNNN.weights.h5`: model + optimizer state of the last epoch
  and of the best-validation epoch.
- `status.json`: progress and results (see `_status`).
- `tensorboard/` with `--tb`.

Rerunning a command resumes from the last finished epoch; rerunning a
finished run only reports it. A run directory holding a different
configuration is refused unless `--overwrite`, which moves the old
directory aside (to `<dir>.replaced-<UTC time>`) instead of deleting it.
A non-finite loss ends the run as "diverged" (exit status 0).

Limitations: a resumed run restores the model, the optimizer (momentum,
step counter, hence the schedule) and the epoch exactly, but draws a new
shuffle order for its remaining epochs (the input pipeline's position is
not saved), so it is not bit-identical to an uninterrupted run.

`--weight_norm` is on by default only for the inits that need it
(*_proposed, *_datadep), so `--init he` alone is a plain network as in the
released code, while the bare command gets a weight-normalized one.

Departures from the released code: `--wrn_reduced_memory` is mapped to a
stride-2 stem convolution (`downsample_stem=True`); the numbering of
`--lr_annealing_type` is ours (see `wn_keras.schedules`).
"""

from __future__ import annotations

import datetime
import math
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from wn_keras import data, diagnostics, models, schedules, training  # noqa: E402

# Data and model -------------------------------------------------------------
_DATASET = flags.DEFINE_enum(
    "dataset",
    "digits",
    ["mnist", "cifar10", "cifar100", "digits", "synthetic"],
    "Data set. mnist/cifar10/cifar100 come from TensorFlow Datasets "
    "(prepared under --data_dir); digits (scikit-learn's 8x8 digits) and "
    "synthetic need no download.",
)
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "TensorFlow Datasets directory; default: TFDS's own."
)
_DOWNLOAD = flags.DEFINE_bool(
    "download", False, "Download and prepare a missing TFDS data set."
)
_VAL_FRACTION = flags.DEFINE_float(
    "val_fraction",
    0.1,
    "Share of the training set held out for validation, in (0, 1); a "
    "whole percentage for TFDS data sets.",
)
_CUTOUT = flags.DEFINE_bool(
    "cutout", False, "CIFAR only: one 16x16 cutout hole per training image."
)
_SYNTHETIC_SHAPE = flags.DEFINE_list(
    "synthetic_shape", ["8", "8", "1"], "Example shape of --dataset synthetic."
)
_NN = flags.DEFINE_enum(
    "nn", "mlp", ["mlp", "cnn", "resnet", "wrn"], "Network family."
)
_HIDDEN_SIZE = flags.DEFINE_integer(
    "hidden_size", 128, "MLP units / CNN filters per hidden layer."
)
_NUM_LAYERS = flags.DEFINE_integer(
    "num_layers", 2, "Hidden layers of the MLP or CNN."
)
_NUM_BLOCKS = flags.DEFINE_integer(
    "num_blocks", 9, "ResNet: blocks per stage N, depth 6N+2 (9: ResNet-56)."
)
_WRN_N = flags.DEFINE_integer(
    "wrn_n", 40, "Wide ResNet depth d = 6N+4 (e.g. 10, 16, 28, 40)."
)
_WRN_K = flags.DEFINE_integer("wrn_k", 10, "Wide ResNet widening factor.")
_WRN_REDUCED_MEMORY = flags.DEFINE_bool(
    "wrn_reduced_memory",
    False,
    "Residual nets: stride 2 in the first convolution (downsample_stem), "
    "quartering activation memory; our mapping of the released flag.",
)
_INIT = flags.DEFINE_enum(
    "init",
    "orthogonal_proposed",
    list(models.INIT_SCHEMES),
    "Initialization scheme; *_datadep and *_proposed need --weight_norm.",
)
_INIT_EXTRA_PARAM = flags.DEFINE_enum(
    "init_extra_param",
    "none",
    ["none", "hanin"],
    "Residual nets with a *_proposed init: 'hanin' scales block b's second "
    "layer by 0.9**(2b) (stage-wise Hanin) instead of 1/N.",
)
_WEIGHT_NORM = flags.DEFINE_bool(
    "weight_norm",
    None,
    "Weight-normalize the hidden layers. When neither --weight_norm nor "
    "--noweight_norm is given: on exactly for the *_proposed and *_datadep "
    "inits, which need it, so the paper's commands keep their meaning.",
)
_BATCH_NORM = flags.DEFINE_bool("batch_norm", False, "Use batch norm.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of init, shuffling and noise.")

# Optimization ---------------------------------------------------------------
_NUM_EPOCHS = flags.DEFINE_integer("num_epochs", 200, "Training epochs.")
_STEPS_PER_EPOCH = flags.DEFINE_integer(
    "steps_per_epoch",
    0,
    "Optimizer steps per epoch; 0 means one pass over the training set.",
)
_OPTIMIZER = flags.DEFINE_enum(
    "optimizer",
    "sgd",
    ["sgd"],
    "Optimizer: SGD with PyTorch-style (coupled L2) weight decay.",
)
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", 128, "Global batch size, divided evenly over replicas."
)
_LR = flags.DEFINE_float("lr", 0.01, "Base learning rate.")
_LR_ANNEALING_TYPE = flags.DEFINE_integer(
    "lr_annealing_type",
    0,
    "0 constant; 1 x0.1 at 1/2 and 3/4 of training; 2 x0.1 at 1/3 and "
    "2/3; 3 WRN x0.2 at 30/60/80 %; 4 He et al. x0.1 at epochs 91 and "
    "136; 5 He et al. scaled to --num_epochs (91/182, 136/182). Our "
    "numbering.",
)
_MOMENTUM = flags.DEFINE_float("momentum", 0.0, "SGD momentum in [0, 1).")
_WEIGHT_DECAY = flags.DEFINE_float(
    "weight_decay",
    0.0,
    "L2 coefficient added to every variable's gradient (PyTorch style).",
)
_WARMUP_EPOCHS = flags.DEFINE_float(
    "warmup_epochs", 0.0, "Quadratic warmup length in epochs; 0: none."
)
_WARMUP_LR = flags.DEFINE_float(
    "warmup_lr", 0.0, "Learning rate at the start of the warmup."
)

# Run and outputs ------------------------------------------------------------
_LOGDIR = flags.DEFINE_string("logdir", "runs", "Root of all run folders.")
_MODEL_PREFIX = flags.DEFINE_string(
    "model_prefix", "", "Sub-folder of --logdir grouping runs (e.g. a sweep)."
)
_MODEL = flags.DEFINE_string(
    "model", None, "Run name; default: derived from the key flags."
)
_OVERWRITE = flags.DEFINE_bool(
    "overwrite",
    False,
    "Start afresh when the run folder holds another configuration; the "
    "old folder is renamed, not deleted.",
)
_TB = flags.DEFINE_bool("tb", False, "Write TensorBoard events.")
_LOG_EVERY_ITER = flags.DEFINE_integer(
    "log_every_iter", 0, "Log the training loss every N steps; 0: never."
)
_HESSIAN = flags.DEFINE_bool(
    "hessian",
    False,
    "Only measure the Hessian spectral norm at initialization (power "
    "iteration over 10% of the training batches), store it, and stop.",
)
_HESSIAN_ITERATIONS = flags.DEFINE_integer(
    "hessian_iterations", 40, "Power iterations for --hessian."
)

# Devices ---------------------------------------------------------------------
_STRATEGY = flags.DEFINE_enum(
    "strategy",
    "auto",
    ["auto", "mirrored", "multi_worker", "one_device"],
    "auto: multi-worker if TF_CONFIG lists several workers, mirrored on "
    "several GPUs, else one device.",
)
_CPU_DEVICES = flags.DEFINE_integer(
    "cpu_devices",
    0,
    "Split the CPU into this many logical devices (e.g. 2, to try "
    "--strategy mirrored without GPUs); 0 leaves it whole.",
)
_JIT_COMPILE = flags.DEFINE_bool("jit_compile", False, "Compile with XLA.")
_MIXED_PRECISION = flags.DEFINE_enum(
    "mixed_precision",
    "none",
    ["none", "mixed_float16", "mixed_bfloat16"],
    "Keras dtype policy.",
)

FLAGS = flags.FLAGS

# Flags that may differ when a run is resumed: where files are, how the
# run is watched and on which devices it runs. All others must match.
_RESUMABLE_WITH_CHANGES = (
    "data_dir",
    "download",
    "logdir",
    "model_prefix",
    "model",
    "overwrite",
    "tb",
    "log_every_iter",
    "strategy",
    "cpu_devices",
    "jit_compile",
)
# Every flag this script defines (public: experiments/sweep.py checks the
# flags of a grid against them, and calls `validate_flags`).
RUN_FLAGS = [
    holder
    for name, holder in list(globals().items())
    if isinstance(holder, flags.FlagHolder) and name.startswith("_")
]
_FINISHED_STATES = ("finished", "diverged", "hessian")
_CIFAR = ("cifar10", "cifar100")


class FlagError(ValueError):
    """A flag value, or a combination of flags, that cannot run."""


# Phase helpers ---------------------------------------------------------------


def _weight_norm() -> bool:
    """--weight_norm, or when not given, whether --init needs it."""
    if _WEIGHT_NORM.value is not None:
        return _WEIGHT_NORM.value
    return _INIT.value not in ("he", "orthogonal")


def validate_flags() -> None:
    """Checks every flag before anything is created or loaded."""

    def require(condition, flag, rule, fix):
        if not condition:
            value = FLAGS[flag].value
            raise FlagError(
                f"--{flag} {rule}; received --{flag}={value}. {fix}"
            )

    require(_LR.value > 0, "lr", "must be positive", "Pass e.g. --lr 0.01.")
    require(
        0 <= _MOMENTUM.value < 1,
        "momentum",
        "must be in [0, 1)",
        "Pass e.g. --momentum 0.9, or 0 for plain SGD.",
    )
    for name in ("weight_decay", "warmup_epochs", "warmup_lr"):
        require(FLAGS[name].value >= 0, name, "must be >= 0", "0 disables it.")
    for name in ("batch_size", "num_epochs", "hidden_size", "num_layers"):
        require(FLAGS[name].value >= 1, name, "must be a positive integer", "")
    require(
        _NUM_BLOCKS.value >= 1,
        "num_blocks",
        "(ResNet blocks per stage N, depth 6N+2) must be >= 1",
        "Pass e.g. --num_blocks 9 for ResNet-56.",
    )
    require(
        _WRN_N.value >= 10 and (_WRN_N.value - 4) % 6 == 0,
        "wrn_n",
        "(Wide ResNet depth) must be 6N+4 with N >= 1",
        "Pass e.g. 10, 16, 28 or 40.",
    )
    require(_WRN_K.value >= 1, "wrn_k", "must be a positive integer", "")
    require(
        _LR_ANNEALING_TYPE.value in range(6),
        "lr_annealing_type",
        "must be one of 0-5 (see --helpfull)",
        "Pass 0 for a constant rate.",
    )
    require(
        0 < _VAL_FRACTION.value < 1,
        "val_fraction",
        "must lie strictly between 0 and 1",
        "Pass e.g. 0.1.",
    )
    for name in ("steps_per_epoch", "log_every_iter", "cpu_devices"):
        require(FLAGS[name].value >= 0, name, "must be >= 0", "0 is off.")
    require(
        _HESSIAN_ITERATIONS.value >= 1,
        "hessian_iterations",
        "must be >= 1",
        "The paper uses 40.",
    )
    require(
        _weight_norm() or _INIT.value in ("he", "orthogonal"),
        "init",
        "of the *_proposed and *_datadep kinds sets weight-norm lengths and "
        "needs --weight_norm",
        "Add --weight_norm, or use --init he or --init orthogonal.",
    )
    residual = _NN.value in ("resnet", "wrn")
    require(
        _INIT_EXTRA_PARAM.value == "none"
        or (residual and _INIT.value.endswith("_proposed")),
        "init_extra_param",
        "=hanin scales residual branches, so it needs --nn resnet or wrn "
        "and a *_proposed --init",
        f"Drop it (got --nn {_NN.value} --init {_INIT.value}).",
    )
    require(
        not _WRN_REDUCED_MEMORY.value or residual,
        "wrn_reduced_memory",
        "applies to residual networks (--nn resnet or wrn) only",
        f"Drop it for --nn {_NN.value}.",
    )
    require(
        not _CUTOUT.value or _DATASET.value in _CIFAR,
        "cutout",
        "is a CIFAR augmentation",
        f"Drop it for --dataset {_DATASET.value}.",
    )
    try:
        shape = [int(size) for size in _SYNTHETIC_SHAPE.value]
    except ValueError:
        shape = []
    require(
        shape and min(shape) >= 1,
        "synthetic_shape",
        "must list positive integers",
        "Pass e.g. --synthetic_shape 8,8,1.",
    )
    require(
        _NN.value == "mlp" or _DATASET.value != "synthetic" or len(shape) == 3,
        "synthetic_shape",
        f"must be (height, width, channels) for --nn {_NN.value}",
        "Pass e.g. --synthetic_shape 8,8,1.",
    )


def run_name() -> str:
    """A readable run name from the flags that define the experiment."""
    if _MODEL.value:
        return _MODEL.value
    nn = _NN.value
    if nn in ("mlp", "cnn"):
        arch = f"{nn}{_NUM_LAYERS.value}x{_HIDDEN_SIZE.value}"
    elif nn == "resnet":
        arch = f"resnet{6 * _NUM_BLOCKS.value + 2}"
    else:
        arch = f"wrn{_WRN_N.value}-{_WRN_K.value}"
    norm = {
        (True, False): "wn",
        (False, True): "bn",
        (True, True): "wnbn",
        (False, False): "plain",
    }[(_weight_norm(), _BATCH_NORM.value)]
    parts = [_DATASET.value, arch, norm, _INIT.value]
    if _INIT_EXTRA_PARAM.value != "none":
        parts.append(_INIT_EXTRA_PARAM.value)
    parts.append(f"lr{_LR.value:g}")
    if _MOMENTUM.value:
        parts.append(f"mom{_MOMENTUM.value:g}")
    if _LR_ANNEALING_TYPE.value:
        parts.append(f"sched{_LR_ANNEALING_TYPE.value}")
    if _WARMUP_EPOCHS.value:
        parts.append(f"warmup{_WARMUP_EPOCHS.value:g}")
    if _WEIGHT_DECAY.value:
        parts.append(f"wd{_WEIGHT_DECAY.value:g}")
    if _CUTOUT.value:
        parts.append("cutout")
    if _HESSIAN.value:
        parts.append("hessian")
    parts.append(f"bs{_BATCH_SIZE.value}")
    parts.append(f"seed{_SEED.value}")
    return "_".join(parts)


def _serialized_flags() -> dict[str, str]:
    """Flag name -> its `--name=value` form, for every flag of this script."""
    return {holder.name: FLAGS[holder.name].serialize() for holder in RUN_FLAGS}


def _flagfile_text(path: str) -> str:
    lines = [
        "# Every flag of one run; this command reruns (or resumes) it:",
        f"# python experiments/train.py --flagfile={path}",
    ]
    for name, serialized in sorted(_serialized_flags().items()):
        if name != "overwrite" and serialized:
            lines.append(serialized)
    return "\n".join(lines) + "\n"


def _read_flagfile(path: str) -> dict[str, str]:
    """Flag name -> serialized form, from a `flags.txt` of ours."""
    saved = {}
    with open(path) as stream:
        for line in stream:
            line = line.strip()
            if not line.startswith("--"):
                continue
            name = line[2:].split("=", 1)[0]
            if "=" not in line and name.startswith("no") and name[2:] in FLAGS:
                name = name[2:]
            saved[name] = line
    return saved


def _config_differences(path: str) -> list[str]:
    saved = _read_flagfile(path)
    current = _serialized_flags()
    return [
        f"{saved.get(name, f'--{name} (unset)')} -> {current[name]}"
        for name in sorted(current)
        if name not in _RESUMABLE_WITH_CHANGES
        and saved.get(name, current[name]) != current[name]
    ]


def _configure_devices() -> tf.distribute.Strategy:
    if _CPU_DEVICES.value:
        cpus = tf.config.list_physical_devices("CPU")
        try:
            tf.config.set_logical_device_configuration(
                cpus[0],
                [tf.config.LogicalDeviceConfiguration()] * _CPU_DEVICES.value,
            )
        except RuntimeError as error:
            have = len(tf.config.list_logical_devices("CPU"))
            if have != _CPU_DEVICES.value:
                raise FlagError(
                    f"--cpu_devices={_CPU_DEVICES.value} must be applied "
                    "before TensorFlow starts, but it already runs with "
                    f"{have} CPU device(s). Pass it on the command line of a "
                    "fresh process."
                ) from error
    policy = _MIXED_PRECISION.value
    keras.mixed_precision.set_global_policy(
        "float32" if policy == "none" else policy
    )
    strategy = training.make_strategy(_STRATEGY.value)
    replicas = strategy.num_replicas_in_sync
    if _BATCH_SIZE.value % replicas:
        raise FlagError(
            f"--batch_size is the global batch and must be divisible by the "
            f"{replicas} replicas; received --batch_size={_BATCH_SIZE.value}."
            f" Pass a multiple of {replicas}."
        )
    return strategy


def _build_model(splits: data.Splits, strategy, steps: int):
    """The compiled model under `strategy` and its learning-rate schedule."""
    common = dict(
        weight_norm=_weight_norm(),
        batch_norm=_BATCH_NORM.value,
        init=_INIT.value,
        seed=_SEED.value,
    )
    if _NN.value in ("resnet", "wrn"):
        common.update(
            residual_scaling=(
                "hanin" if _INIT_EXTRA_PARAM.value == "hanin" else "proposed"
            ),
            downsample_stem=_WRN_REDUCED_MEMORY.value,
        )
    shape, classes = splits.input_shape, splits.num_classes
    plain = dict(hidden_size=_HIDDEN_SIZE.value, num_layers=_NUM_LAYERS.value)
    builders = {
        "mlp": lambda: models.mlp(shape, classes, **plain, **common),
        "cnn": lambda: models.cnn(shape, classes, **plain, **common),
        "resnet": lambda: models.resnet(
            shape, classes, depth=6 * _NUM_BLOCKS.value + 2, **common
        ),
        "wrn": lambda: models.wide_resnet(
            shape, classes, depth=_WRN_N.value, width=_WRN_K.value, **common
        ),
    }
    with strategy.scope():
        try:
            model = builders[_NN.value]()
        except ValueError as error:
            raise FlagError(
                f"The flags describe no valid model: {error}"
            ) from error
        schedule = schedules.PaperSchedule(
            _LR.value,
            _LR_ANNEALING_TYPE.value,
            _NUM_EPOCHS.value,
            steps,
            _WARMUP_EPOCHS.value,
            _WARMUP_LR.value,
        )
        optimizer = training.CoupledSGD(
            schedule, momentum=_MOMENTUM.value, weight_decay=_WEIGHT_DECAY.value
        )
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc")],
            jit_compile=_JIT_COMPILE.value,
        )
        # Built now so that a checkpoint's optimizer state can be loaded.
        optimizer.build(model.trainable_variables)
    return model, schedule


def _status(previous, **updates) -> dict:
    """status.json: progress and results of the run.

    Keys: state ("running", "finished", "diverged" or "hessian"),
    epochs_done, num_epochs, steps_done, best_epoch, best_val_acc,
    best_checkpoint, last_checkpoint, test_loss, test_acc, diverged,
    diverged_step, hessian (None or the spectral-norm record),
    wall_time_s (summed over sessions), num_replicas (of the latest
    session), run_dir.
    """
    status = {
        "state": "running",
        "epochs_done": 0,
        "num_epochs": _NUM_EPOCHS.value,
        "steps_done": 0,
        "best_epoch": None,
        "best_val_acc": None,
        "best_checkpoint": None,
        "last_checkpoint": None,
        "test_loss": None,
        "test_acc": None,
        "diverged": False,
        "diverged_step": None,
        "hessian": None,
        "wall_time_s": 0.0,
        "num_replicas": 1,
        "run_dir": None,
    }
    status.update(previous or {})
    status.update(updates)
    return status


def _summary(status: dict) -> str:
    lines = [f"Run {status['run_dir']}: {status['state']}"]
    lines.append(
        f"  epochs {status['epochs_done']}/{status['num_epochs']}, "
        f"steps {status['steps_done']}, {status['wall_time_s']:.1f} s"
    )
    if status["diverged"]:
        lines.append(f"  diverged at step {status['diverged_step']}")
    if status["best_val_acc"] is not None:
        lines.append(
            f"  best validation accuracy {status['best_val_acc']:.4f} "
            f"(epoch {status['best_epoch']})"
        )
    if status["test_acc"] is not None:
        lines.append(f"  test accuracy {status['test_acc']:.4f}")
    if status["hessian"]:
        lines.append(
            "  Hessian spectral norm at init "
            f"{status['hessian']['spectral_norm']:.4g} (log "
            f"{status['hessian']['log_spectral_norm']:.3f})"
        )
    return "\n".join(lines)


# main ------------------------------------------------------------------------


def main(argv: list[str]) -> dict:
    """Runs (or resumes, or reports) one training run; returns its status."""
    if len(argv) > 1:
        raise FlagError(
            f"train.py takes only flags; received the arguments {argv[1:]}. "
            "Write flags as --name=value."
        )
    started = time.time()

    # 1. Flags and run directory, checked before anything is written.
    validate_flags()
    run_dir = os.path.join(_LOGDIR.value, _MODEL_PREFIX.value, run_name())
    flags_path = os.path.join(run_dir, "flags.txt")
    replace_old = False
    if os.path.exists(flags_path):
        differences = _config_differences(flags_path)
        if differences and not _OVERWRITE.value:
            raise FlagError(
                f"{run_dir} holds a run with other flags ("
                + "; ".join(differences)
                + "). Pass --model with a new run name, or --overwrite to "
                "move the old run aside and start afresh."
            )
        replace_old = bool(differences)
    previous = None
    epoch, rows = 0, []
    if not replace_old:
        previous = training.read_json(os.path.join(run_dir, "status.json"))
        epoch, rows = training.RunFiles(run_dir).resume_point()
    if previous and previous.get("state") in _FINISHED_STATES:
        logging.info("The run is already complete; nothing to do.")
        print(_summary(previous))
        return previous

    # 2. Devices, strategy and data.
    strategy = _configure_devices()
    chief = training.is_chief(strategy)
    replicas = strategy.num_replicas_in_sync
    keras.utils.set_random_seed(_SEED.value)
    try:
        splits = data.load(
            _DATASET.value,
            _BATCH_SIZE.value,
            _VAL_FRACTION.value,
            data_dir=_DATA_DIR.value,
            download=_DOWNLOAD.value,
            cutout=_CUTOUT.value,
            # A resumed run draws a new shuffle order for its epochs.
            seed=_SEED.value + epoch,
            synthetic_shape=tuple(int(s) for s in _SYNTHETIC_SHAPE.value),
        )
    except (ValueError, data.DataNotFoundError) as error:
        raise FlagError(str(error)) from error
    steps = _STEPS_PER_EPOCH.value or data.steps_per_epoch(
        splits.num_train, _BATCH_SIZE.value
    )

    # 3. Model, optimizer and schedule.
    model, schedule = _build_model(splits, strategy, steps)
    logging.info("Flags:\n%s", _flagfile_text(flags_path))
    logging.info(
        "Replicas %d, global batch %d, per-replica batch %d, %d steps per "
        "epoch, %d parameters, %d training examples.",
        replicas,
        _BATCH_SIZE.value,
        _BATCH_SIZE.value // replicas,
        steps,
        model.count_params(),
        splits.num_train,
    )

    # 4. Run directory: the chief writes; other workers write to a scratch
    # folder. Limitations: multi-worker resume reads the chief's folder, so
    # it needs a file system shared by all workers.
    if chief:
        if replace_old:
            stamp = datetime.datetime.now(datetime.timezone.utc)
            aside = f"{run_dir}.replaced-{stamp:%Y%m%dT%H%M%S}"
            os.replace(run_dir, aside)
            logging.warning("Moved the previous run to %s.", aside)
        os.makedirs(run_dir, exist_ok=True)
        training.write_text_atomic(flags_path, _flagfile_text(flags_path))
        training.RunFiles(run_dir).tidy(epoch)
        write_dir = run_dir
    else:
        write_dir = tempfile.mkdtemp(prefix="wn_keras-worker-")
    files = training.RunFiles(write_dir)
    wall_before = (previous or {}).get("wall_time_s", 0.0)
    status = _status(previous, run_dir=run_dir, num_replicas=replicas)

    def save_status(**updates) -> dict:
        status.update(updates)
        status["wall_time_s"] = round(wall_before + time.time() - started, 3)
        training.write_json_atomic(
            os.path.join(write_dir, "status.json"), status
        )
        return dict(status)

    # 5. Resume, or initialize by the scheme (data-dependent schemes use
    # the first training batch, in cross-replica context).
    if epoch:
        checkpoint = training.RunFiles(run_dir).checkpoint_path(epoch)
        with strategy.scope():
            model.load_weights(checkpoint)
        logging.info(
            "Resuming after epoch %d (step %d).", epoch, rows[-1]["step"]
        )
    else:
        x, _ = next(iter(splits.train))
        with strategy.scope():
            models.initialize(model, _INIT.value, x)

    # 6. --hessian: measure at initialization and stop.
    if _HESSIAN.value:
        final = _measure_hessian(model, splits, steps, save_status)
        print(_summary(final))
        return final

    # 7. Train.
    def record(rows: list[dict]) -> None:
        best = training.RunFiles.best(rows)
        save_status(
            epochs_done=rows[-1]["epoch"],
            steps_done=rows[-1]["step"],
            best_epoch=best and best["epoch"],
            best_val_acc=best and best["val_acc"],
            best_checkpoint=best
            and os.path.basename(files.checkpoint_path(best["epoch"])),
            last_checkpoint=os.path.basename(
                files.checkpoint_path(rows[-1]["epoch"])
            ),
        )

    monitor = training.NonFiniteLossMonitor()
    recorder = training.EpochRecorder(files, rows, schedule, monitor, record)
    callbacks = [monitor, recorder]
    if _LOG_EVERY_ITER.value:
        callbacks.append(training.StepLogger(_LOG_EVERY_ITER.value))
    if _TB.value and chief:
        callbacks.append(
            keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard"))
        )
    if epoch < _NUM_EPOCHS.value:
        model.fit(
            splits.train,
            validation_data=splits.validation,
            epochs=_NUM_EPOCHS.value,
            initial_epoch=epoch,
            steps_per_epoch=steps,
            shuffle=False,  # the training pipeline shuffles itself
            callbacks=callbacks,
            verbose=1 if sys.stdout.isatty() else 2,
        )
    rows = recorder.rows
    if rows:
        record(rows)

    # 8. Test the best-validation checkpoint.
    best = training.RunFiles.best(rows)
    test_loss = test_acc = None
    if best is not None:
        with strategy.scope():
            model.load_weights(files.checkpoint_path(best["epoch"]))
        test_loss, test_acc = model.evaluate(splits.test, verbose=0)
    diverged = monitor.diverged_step is not None
    final = save_status(
        state="diverged" if diverged else "finished",
        diverged=diverged,
        diverged_step=monitor.diverged_step,
        test_loss=test_loss,
        test_acc=test_acc,
    )
    if not chief:
        shutil.rmtree(write_dir, ignore_errors=True)
    print(_summary(final))
    return final


def _measure_hessian(model, splits, steps, save_status) -> dict:
    """Hessian spectral norm at init, stored in status.json."""
    num_batches = max(1, round(0.1 * steps))
    logging.info(
        "Hessian spectral norm at init: %d power iterations over %d batches.",
        _HESSIAN_ITERATIONS.value,
        num_batches,
    )
    result = diagnostics.hessian_spectral_norm(
        model,
        splits.train,
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        iterations=_HESSIAN_ITERATIONS.value,
        num_batches=num_batches,
        seed=_SEED.value,
    )
    estimate = float(result.estimate)
    return save_status(
        state="hessian",
        hessian={
            "spectral_norm": estimate,
            "log_spectral_norm": math.log(estimate) if estimate > 0 else None,
            "iterations": _HESSIAN_ITERATIONS.value,
            "num_batches": num_batches,
            "history": [float(value) for value in result.history],
        },
    )


def run(argv: list[str]) -> dict:
    """Parses `argv` (program name first) into the flags and runs `main`.

    For tests and notebooks: flags from a previous call are reset first.

    Example:

    >>> status = run(["train.py", "--num_epochs=1", "--logdir=/tmp/runs"])
    """
    FLAGS.unparse_flags()
    remaining = FLAGS(argv)
    try:
        return main(remaining)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _entry(argv: list[str]) -> None:
    try:
        main(argv)
    except FlagError as error:
        sys.exit(f"train.py: error: {error}")


if __name__ == "__main__":
    app.run(_entry)
