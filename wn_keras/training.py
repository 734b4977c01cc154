"""Pieces of the training loop: optimizer, strategy, run files, callbacks.

`experiments/train.py` assembles these; they are kept here so that other
scripts (sweeps, notebooks) train the same way.

- `CoupledSGD`: SGD with momentum and L2 weight decay the way PyTorch's
  `torch.optim.SGD` (used by the paper's released code) applies them.
- `make_strategy`, `is_chief`: the distribution strategy of a run.
- `write_text_atomic`, `write_json_atomic`: files that are either the old
  or the new version, never half written.
- `RunFiles`: the per-epoch checkpoints and `log.csv` of a run directory,
  and where a killed run resumes.
- `NonFiniteLossMonitor`, `EpochRecorder`, `StepLogger`: callbacks.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf
from absl import logging
from keras import ops

STRATEGIES = ("auto", "mirrored", "multi_worker", "one_device")
CSV_COLUMNS = (
    "epoch",
    "train_loss",
    "val_loss",
    "train_acc",
    "val_acc",
    "lr",
    "step",
    "epoch_seconds",
)
LearningRate = float | keras.optimizers.schedules.LearningRateSchedule
_CHECKPOINT = re.compile(r"^ckpt-epoch(\d+)\.weights\.h5$")


@keras.saving.register_keras_serializable(package="wn_keras")
class CoupledSGD(keras.optimizers.Optimizer):
    """SGD with momentum and coupled (L2) weight decay, as in PyTorch.

    For every variable `w` with gradient `grad`, step `t` does

        d = grad + weight_decay * w          # L2 decay joins the gradient
        buffer = momentum * buffer + d       # (no buffer if momentum == 0)
        w = w - lr_t * buffer

    This is `torch.optim.SGD` without dampening or Nesterov. It differs
    from `keras.optimizers.SGD`, whose `weight_decay` is decoupled (it
    shrinks `w` outside the momentum) and whose momentum buffer holds
    `lr * grad` (so a change of learning rate acts on new gradients only).
    The decay applies to every trainable variable the optimizer updates
    (kernels, biases, weight-norm lengths, batch-norm scales), as in the
    released code of arXiv:1906.02341.

    Args:
        learning_rate: A float or a `LearningRateSchedule`.
        momentum: Momentum factor in [0, 1).
        weight_decay: L2 coefficient, >= 0.
        name: Name of the optimizer.
        **kwargs: Other `keras.optimizers.Optimizer` arguments (e.g.
            `clipnorm`); Keras' own decoupled `weight_decay` is not
            available here.

    Raises:
        ValueError: If `momentum` is outside [0, 1) or `weight_decay < 0`.

    Example:

    >>> w = keras.Variable([1.0])
    >>> opt = CoupledSGD(learning_rate=0.1, momentum=0.9, weight_decay=0.5)
    >>> opt.apply([keras.ops.ones(1)], [w])  # d = 1 + 0.5, w = 1 - 0.15
    >>> round(float(w[0]), 4)
    0.85
    """

    def __init__(
        self,
        learning_rate: LearningRate = 0.01,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        name: str = "coupled_sgd",
        **kwargs: Any,
    ):
        if not 0 <= momentum < 1:
            raise ValueError(
                f"momentum must be in [0, 1); received momentum={momentum!r}."
            )
        if weight_decay < 0:
            raise ValueError(
                "weight_decay must be >= 0 (0 disables it); received "
                f"weight_decay={weight_decay!r}."
            )
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.momentum = float(momentum)
        # Not `self.weight_decay`: the base class would apply that one
        # decoupled, on top of ours.
        self.l2_coefficient = float(weight_decay)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momentum_buffers = []
        if self.momentum:
            self.momentum_buffers = self.add_optimizer_variables(
                variables, "momentum_buffer"
            )

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        direction = ops.cast(gradient, variable.dtype)
        if self.l2_coefficient:
            direction = direction + self.l2_coefficient * variable
        if self.momentum:
            buffer = self.momentum_buffers[self._get_variable_index(variable)]
            self.assign(buffer, self.momentum * buffer + direction)
            direction = buffer
        self.assign_sub(variable, learning_rate * direction)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(momentum=self.momentum, weight_decay=self.l2_coefficient)
        return config


# Strategy --------------------------------------------------------------------


def _tf_config() -> dict:
    try:
        return json.loads(os.environ.get("TF_CONFIG", "") or "{}")
    except json.JSONDecodeError as error:
        raise ValueError(
            "The TF_CONFIG environment variable must hold JSON describing "
            f"the cluster; it could not be parsed ({error})."
        ) from error


def _num_workers(tf_config: dict) -> int:
    cluster = tf_config.get("cluster", {})
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def make_strategy(name: str) -> tf.distribute.Strategy:
    """Creates the distribution strategy called `name`.

    - "auto": `MultiWorkerMirroredStrategy` when `TF_CONFIG` lists several
      workers, `MirroredStrategy` over the GPUs when there are several,
      otherwise TensorFlow's default (single-device) strategy.
    - "mirrored": `MirroredStrategy` over all GPUs, or over all logical
      CPU devices when there is no GPU (e.g. a CPU split in two).
    - "multi_worker": `MultiWorkerMirroredStrategy` from `TF_CONFIG`.
    - "one_device": `OneDeviceStrategy` on the first GPU, else the CPU.

    Args:
        name: One of `STRATEGIES`.

    Returns:
        The strategy.

    Raises:
        ValueError: For an unknown `name` or an unparsable `TF_CONFIG`.
    """
    if name not in STRATEGIES:
        raise ValueError(
            f"strategy must be one of {STRATEGIES}; received {name!r}."
        )
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        if _num_workers(_tf_config()) > 1:
            name = "multi_worker"
        elif len(gpus) > 1:
            name = "mirrored"
        else:
            return tf.distribute.get_strategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        devices = gpus or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    device = gpus[0].name if gpus else "/cpu:0"
    return tf.distribute.OneDeviceStrategy(device)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files (only one does)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = bool(resolver.cluster_spec().as_dict().get("chief"))
    return (
        resolver.task_type == "worker"
        and resolver.task_id == 0
        and (not has_chief)
    )


# Atomic files ----------------------------------------------------------------


def write_text_atomic(path: str, text: str) -> None:
    """Writes `text` to `path` through a temporary file and a rename."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(
        dir=directory, prefix=".tmp-", suffix=os.path.basename(path)
    )
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def write_json_atomic(path: str, value: Any) -> None:
    """Writes `value` as indented JSON to `path`, atomically."""
    write_text_atomic(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def read_json(path: str) -> dict | None:
    """The JSON object in `path`, or None when the file does not exist."""
    if not os.path.exists(path):
        return None
    with open(path) as stream:
        return json.load(stream)


# Run directory ---------------------------------------------------------------


class RunFiles:
    """Per-epoch checkpoints and the metrics CSV of one run directory.

    After epoch `e` (1-based) `EpochRecorder` writes, in this order, the
    checkpoint `ckpt-epoch{e:04d}.weights.h5` (model and optimizer state,
    step counter included), the row of `e` in `log.csv`, then removes the
    checkpoints that are neither the last nor the best by validation
    accuracy. A run killed at any point therefore resumes from the last
    epoch that has both a checkpoint and a CSV row (`resume_point`).

    Args:
        directory: Where the files live (created if missing).
    """

    LOG = "log.csv"

    def __init__(self, directory: str):
        self.directory = directory

    def checkpoint_path(self, epoch: int) -> str:
        return os.path.join(self.directory, f"ckpt-epoch{epoch:04d}.weights.h5")

    def checkpoints(self) -> dict[int, str]:
        """Epoch -> path of every complete checkpoint in the directory."""
        found = {}
        if os.path.isdir(self.directory):
            for name in os.listdir(self.directory):
                match = _CHECKPOINT.match(name)
                if match:
                    found[int(match.group(1))] = os.path.join(
                        self.directory, name
                    )
        return found

    def rows(self) -> list[dict[str, float]]:
        """The rows of `log.csv` as numbers, in file order."""
        path = os.path.join(self.directory, self.LOG)
        if not os.path.exists(path):
            return []
        with open(path, newline="") as stream:
            rows = []
            for row in csv.DictReader(stream):
                parsed = {key: float(value) for key, value in row.items()}
                parsed["epoch"] = int(parsed["epoch"])
                parsed["step"] = int(parsed["step"])
                rows.append(parsed)
            return rows

    def write_rows(self, rows: list[dict[str, float]]) -> None:
        """Rewrites `log.csv` with `rows`, atomically."""
        buffer = io.StringIO()
        writer = csv.DictWriter(
            buffer, fieldnames=CSV_COLUMNS, lineterminator="\n"
        )
        writer.writeheader()
        for row in rows:
            writer.writerow({key: row[key] for key in CSV_COLUMNS})
        write_text_atomic(
            os.path.join(self.directory, self.LOG), buffer.getvalue()
        )

    @staticmethod
    def best(rows: list[dict[str, float]]) -> dict[str, float] | None:
        """The row with the highest validation accuracy (earliest on ties)."""
        finite = [row for row in rows if math.isfinite(row["val_acc"])]
        if not finite:
            return None
        return max(finite, key=lambda row: (row["val_acc"], -row["epoch"]))

    def resume_point(self) -> tuple[int, list[dict[str, float]]]:
        """Finds the epoch a killed or stopped run resumes from.

        Returns:
            `(epoch, rows)`: the last epoch with both a checkpoint and a CSV
            row (0 when none), and the CSV rows up to it. Nothing is
            changed on disk; see `tidy`.
        """
        checkpoints = self.checkpoints()
        rows = self.rows()
        logged = {row["epoch"] for row in rows}
        complete = [epoch for epoch in checkpoints if epoch in logged]
        epoch = max(complete, default=0)
        return epoch, [row for row in rows if row["epoch"] <= epoch]

    def tidy(self, epoch: int) -> None:
        """Removes CSV rows and checkpoints of epochs after `epoch`.

        They are what a kill between the two writes of an epoch leaves;
        the resumed run writes them afresh. Temporary files of interrupted
        writes (`.tmp-*`) go too.
        """
        for name in os.listdir(self.directory):
            if name.startswith(".tmp-"):
                os.remove(os.path.join(self.directory, name))
        rows = self.rows()
        kept = [row for row in rows if row["epoch"] <= epoch]
        if len(kept) != len(rows):
            self.write_rows(kept)
        for later, path in self.checkpoints().items():
            if later > epoch:
                os.remove(path)

    def prune(self, rows: list[dict[str, float]]) -> None:
        """Removes checkpoints other than the last and the best epoch's."""
        best = self.best(rows)
        keep = {rows[-1]["epoch"]} if rows else set()
        if best is not None:
            keep.add(best["epoch"])
        for epoch, path in self.checkpoints().items():
            if epoch not in keep:
                os.remove(path)


def save_weights_atomic(model: keras.Model, path: str) -> None:
    """`model.save_weights(path)` through a temporary file and a rename."""
    directory, name = os.path.split(path)
    temporary = os.path.join(directory, ".tmp-" + name)
    model.save_weights(temporary)
    os.replace(temporary, path)


# Callbacks -------------------------------------------------------------------


class NonFiniteLossMonitor(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite.

    Attributes:
        diverged_step: 1-based global optimizer step whose loss was not
            finite, or None. Keras reports the running mean of the epoch's
            losses, which turns non-finite at the first non-finite batch.
    """

    def __init__(self):
        super().__init__()
        self.diverged_step = None

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        self.diverged_step = int(self.model.optimizer.iterations.numpy())
        logging.warning(
            "Non-finite loss %s at step %d: stopping the run.",
            float(loss),
            self.diverged_step,
        )
        self.model.stop_training = True


class StepLogger(keras.callbacks.Callback):
    """Logs the running training loss every `every` optimizer steps."""

    def __init__(self, every: int):
        super().__init__()
        self.every = every

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step % self.every == 0:
            logs = logs or {}
            logging.info(
                "step %d: loss %.4f, acc %.4f, lr %.3g",
                step,
                float(logs.get("loss", float("nan"))),
                float(logs.get("acc", float("nan"))),
                float(self.model.optimizer.learning_rate),
            )


class EpochRecorder(keras.callbacks.Callback):
    """Checkpoints, logs and reports each finished epoch of a run.

    Args:
        files: The run's `RunFiles`.
        rows: CSV rows already written (a resumed run's history).
        schedule: Learning rate as a function of the optimizer step, for
            the `lr` column (the rate of the epoch's last step).
        monitor: The run's `NonFiniteLossMonitor`; after divergence the
            epoch is not recorded (its weights are not finite).
        on_record: Called with the rows after every recorded epoch, e.g.
            to rewrite `status.json`.
    """

    def __init__(
        self,
        files: RunFiles,
        rows: list[dict[str, float]],
        schedule: Callable[[int], Any],
        monitor: NonFiniteLossMonitor,
        on_record: Callable[[list[dict[str, float]]], None],
    ):
        super().__init__()
        self.files = files
        self.rows = list(rows)
        self.schedule = schedule
        self.monitor = monitor
        self.on_record = on_record
        self._started = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor.diverged_step is not None:
            return
        logs = logs or {}
        step = int(self.model.optimizer.iterations.numpy())
        row = {
            "epoch": epoch + 1,
            "train_loss": float(logs.get("loss", float("nan"))),
            "val_loss": float(logs.get("val_loss", float("nan"))),
            "train_acc": float(logs.get("acc", float("nan"))),
            "val_acc": float(logs.get("val_acc", float("nan"))),
            "lr": float(self.schedule(max(step - 1, 0))),
            "step": step,
            "epoch_seconds": round(time.time() - self._started, 3),
        }
        save_weights_atomic(self.model, self.files.checkpoint_path(epoch + 1))
        self.rows.append(row)
        self.files.write_rows(self.rows)
        self.files.prune(self.rows)
        self.on_record(self.rows)
