"""Tests for experiments/train.py and wn_keras.training.

Training runs are in-process (`train.run`) on tiny models; only the
SIGKILL-resume and the command-line error checks start a subprocess.
"""

import csv
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import flags

from wn_keras import training

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "experiments", "train.py")
sys.path.insert(0, os.path.join(ROOT, "experiments"))

import train  # noqa: E402

SYNTHETIC_SMOKE = [
    "--dataset=synthetic",
    "--num_epochs=1",
    "--steps_per_epoch=2",
    "--batch_size=16",
]


def _run(tmp_path, *args):
    return train.run(["train.py", f"--logdir={tmp_path}", *args])


def _csv(run_dir):
    with open(os.path.join(run_dir, "log.csv"), newline="") as stream:
        return list(csv.DictReader(stream))


# CoupledSGD ------------------------------------------------------------------


def test_coupled_sgd_matches_pytorch_update_rule():
    lr, momentum, decay = 0.1, 0.9, 0.01
    start = np.array([1.0, -2.0, 0.5], np.float32)
    gradients = [
        np.array(g, np.float32) for g in ([1, 2, 3], [0, -1, 2], [4, 0, 1])
    ]
    variable = keras.Variable(start)
    optimizer = training.CoupledSGD(lr, momentum=momentum, weight_decay=decay)
    # torch.optim.SGD: d = g + wd * w; buf = m * buf + d; w -= lr * buf.
    w, buffer = start.astype(np.float64), np.zeros(3)
    for gradient in gradients:
        optimizer.apply([gradient], [variable])
        buffer = momentum * buffer + gradient + decay * w
        w = w - lr * buffer
    np.testing.assert_allclose(variable.numpy(), w, rtol=1e-6)


def test_coupled_sgd_without_momentum_is_plain_l2_sgd():
    variable = keras.Variable(np.array([2.0], np.float32))
    optimizer = training.CoupledSGD(0.5, weight_decay=0.1)
    optimizer.apply([np.array([1.0], np.float32)], [variable])
    assert float(variable[0]) == pytest.approx(2.0 - 0.5 * (1.0 + 0.1 * 2.0))
    assert optimizer.momentum_buffers == []


def test_coupled_sgd_config_round_trip():
    optimizer = training.CoupledSGD(0.2, momentum=0.5, weight_decay=1e-4)
    restored = training.CoupledSGD.from_config(optimizer.get_config())
    assert restored.momentum == 0.5 and restored.l2_coefficient == 1e-4
    assert restored.weight_decay is None  # Keras' decoupled decay is off


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(momentum=1.0), r"momentum must be in \[0, 1\).*=1\.0"),
        (dict(momentum=-0.1), r"momentum must be in \[0, 1\).*=-0\.1"),
        (dict(weight_decay=-1.0), r"weight_decay must be >= 0.*=-1\.0"),
    ],
)
def test_coupled_sgd_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        training.CoupledSGD(0.1, **kwargs)


# Strategy --------------------------------------------------------------------


def test_strategies_on_two_logical_cpus():
    assert training.make_strategy("auto").num_replicas_in_sync == 1
    assert training.make_strategy("one_device").num_replicas_in_sync == 1
    cpus = len(tf.config.list_logical_devices("CPU"))
    assert training.make_strategy("mirrored").num_replicas_in_sync == cpus


def test_strategy_errors(monkeypatch):
    with pytest.raises(ValueError, match=r"strategy must be one of.*'tpu'"):
        training.make_strategy("tpu")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match=r"TF_CONFIG .* could not be parsed"):
        training.make_strategy("auto")


class _Resolver:
    def __init__(self, task_type, task_id, cluster):
        self.task_type, self.task_id, self._cluster = (
            task_type,
            task_id,
            cluster,
        )

    def cluster_spec(self):
        return tf.train.ClusterSpec(self._cluster)


@pytest.mark.parametrize(
    "task_type, task_id, has_chief, chief",
    [
        ("chief", 0, True, True),
        ("worker", 0, True, False),
        ("worker", 0, False, True),
        ("worker", 1, False, False),
    ],
)
def test_only_the_chief_writes(task_type, task_id, has_chief, chief):
    cluster = {"worker": ["a:1", "b:1"]}
    if has_chief:
        cluster["chief"] = ["c:1"]
    strategy = type("Strategy", (), {})()
    strategy.cluster_resolver = _Resolver(task_type, task_id, cluster)
    assert training.is_chief(strategy) is chief
    assert training.is_chief(tf.distribute.get_strategy())


# Run files -------------------------------------------------------------------


def test_checkpoint_holds_model_and_optimizer_state(tmp_path):
    def build():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        optimizer = training.CoupledSGD(0.1, momentum=0.9, weight_decay=0.01)
        model.compile(optimizer=optimizer, loss="mse")
        optimizer.build(model.trainable_variables)
        return model

    trained = build()
    x = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    trained.fit(x, x[:, :2], epochs=3, verbose=0)
    path = os.path.join(tmp_path, "ckpt-epoch0003.weights.h5")
    training.save_weights_atomic(trained, path)
    assert os.listdir(tmp_path) == ["ckpt-epoch0003.weights.h5"]
    restored = build()
    restored.load_weights(path)
    assert int(restored.optimizer.iterations.numpy()) == 3
    for mine, theirs in zip(
        trained.optimizer.variables + trained.weights,
        restored.optimizer.variables + restored.weights,
    ):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


def _row(epoch, val_acc):
    return dict(
        epoch=epoch,
        train_loss=1.0,
        val_loss=1.0,
        train_acc=0.5,
        val_acc=val_acc,
        lr=0.1,
        step=10 * epoch,
        epoch_seconds=0.1,
    )


def test_resume_point_needs_checkpoint_and_row(tmp_path):
    files = training.RunFiles(str(tmp_path))
    files.write_rows([_row(1, 0.5), _row(2, 0.9), _row(3, 0.7)])
    # Killed after the checkpoint of epoch 4, before its row: resume at 3.
    for epoch in (2, 3, 4):
        open(files.checkpoint_path(epoch), "w").close()
    epoch, rows = files.resume_point()
    assert epoch == 3 and [row["epoch"] for row in rows] == [1, 2, 3]
    open(os.path.join(tmp_path, ".tmp-ckpt-epoch0005.weights.h5"), "w").close()
    files.tidy(epoch)
    assert sorted(files.checkpoints()) == [2, 3]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")]
    assert training.RunFiles.best(rows)["epoch"] == 2


def test_tidy_drops_rows_without_checkpoint(tmp_path):
    files = training.RunFiles(str(tmp_path))
    files.write_rows([_row(1, 0.5), _row(2, 0.6)])
    open(files.checkpoint_path(1), "w").close()
    assert files.resume_point()[0] == 1
    files.tidy(1)
    assert [row["epoch"] for row in files.rows()] == [1]


def test_prune_keeps_last_and_best(tmp_path):
    files = training.RunFiles(str(tmp_path))
    rows = [_row(1, 0.5), _row(2, 0.9), _row(3, 0.7), _row(4, 0.8)]
    for row in rows:
        open(files.checkpoint_path(row["epoch"]), "w").close()
    files.prune(rows)
    assert sorted(files.checkpoints()) == [2, 4]


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "status.json"
    training.write_json_atomic(str(path), {"epochs_done": 3})

    def failing_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        training.write_json_atomic(str(path), {"epochs_done": 4})
    assert json.loads(path.read_text()) == {"epochs_done": 3}
    assert os.listdir(tmp_path) == ["status.json"]


# End to end ------------------------------------------------------------------


def test_digits_wn_mlp_proposed_learns(tmp_path):
    status = _run(
        tmp_path,
        "--model=e2e",
        "--num_layers=5",
        "--init=orthogonal_proposed",
        "--lr=0.1",
        "--momentum=0.9",
        "--num_epochs=6",
    )
    run_dir = os.path.join(tmp_path, "e2e")
    assert status["state"] == "finished" and not status["diverged"]
    assert status["best_val_acc"] > 0.9
    assert status["test_acc"] > 0.85
    assert status["epochs_done"] == 6 and status["steps_done"] == 6 * 10
    rows = _csv(run_dir)
    assert list(rows[0]) == list(training.CSV_COLUMNS)
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3, 4, 5, 6]
    assert all(float(row["lr"]) == pytest.approx(0.1) for row in rows)
    best = max(rows, key=lambda row: float(row["val_acc"]))
    assert status["best_val_acc"] == pytest.approx(float(best["val_acc"]))
    kept = sorted(training.RunFiles(run_dir).checkpoints())
    assert kept == sorted({6, int(best["epoch"])})
    on_disk = json.loads(open(os.path.join(run_dir, "status.json")).read())
    assert on_disk == status
    assert set(status) == {
        "state", "epochs_done", "num_epochs", "steps_done", "best_epoch",
        "best_val_acc", "best_checkpoint", "last_checkpoint", "test_loss",
        "test_acc", "diverged", "diverged_step", "hessian", "wall_time_s",
        "num_replicas", "run_dir",
    }  # fmt: skip


@pytest.mark.parametrize(
    "architecture",
    [
        ["--nn=mlp", "--hidden_size=16"],
        ["--nn=cnn", "--hidden_size=8", "--init=he_datadep"],
        ["--nn=resnet", "--num_blocks=1", "--init_extra_param=hanin"],
        ["--nn=wrn", "--wrn_n=10", "--wrn_k=1", "--wrn_reduced_memory"],
    ],
    ids=["mlp", "cnn", "resnet", "wrn"],
)
def test_every_network_runs_on_synthetic_data(tmp_path, architecture):
    status = _run(tmp_path, *SYNTHETIC_SMOKE, *architecture)
    assert status["state"] == "finished"
    assert status["epochs_done"] == 1 and status["steps_done"] == 2
    assert 0 <= status["test_acc"] <= 1


def test_tensorboard_step_logging_and_reduced_precision(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    status = _run(
        tmp_path,
        "--model=watched",
        *SYNTHETIC_SMOKE,
        "--tb",
        "--log_every_iter=1",
        "--mixed_precision=mixed_bfloat16",
        "--jit_compile",
        "--verbosity=0",  # absl's INFO level, where the step lines go
    )
    assert status["state"] == "finished"
    assert math.isfinite(status["test_loss"])
    events = os.listdir(
        os.path.join(tmp_path, "watched", "tensorboard", "train")
    )
    assert any(name.startswith("events.out.tfevents") for name in events)
    steps = [
        r.getMessage() for r in caplog.records if "step " in r.getMessage()
    ]
    assert any(m.startswith("step 1: loss") for m in steps)
    assert any(m.startswith("step 2: loss") for m in steps)
    assert keras.mixed_precision.global_policy().name == "float32"


def test_example_config_parses(tmp_path):
    config = os.path.join(ROOT, "experiments", "configs", "digits_mlp.cfg")
    train.FLAGS.unparse_flags()
    train.FLAGS(["train.py", f"--flagfile={config}"])
    assert train.FLAGS.dataset == "digits" and train.FLAGS.num_layers == 5
    assert train.FLAGS.init == "orthogonal_proposed" and train.FLAGS.weight_norm
    train.validate_flags()


@pytest.mark.parametrize(
    "command, name",
    [
        ("", "digits_mlp2x128_wn_orthogonal_proposed_lr0.01_bs128_seed0"),
        ("--init he", "digits_mlp2x128_plain_he_lr0.01_bs128_seed0"),
        (
            "--batch_norm --init orthogonal --momentum 0.9",
            "digits_mlp2x128_bn_orthogonal_lr0.01_mom0.9_bs128_seed0",
        ),
        (
            "--weight_norm --init he --nn resnet --num_blocks 18 "
            "--lr_annealing_type 4 --warmup_epochs 2 --seed 3",
            "digits_resnet110_wn_he_lr0.01_sched4_warmup2_bs128_seed3",
        ),
        (
            "--nn wrn --wrn_n 16 --wrn_k 4 --init_extra_param hanin "
            "--weight_decay 5e-4",
            "digits_wrn16-4_wn_orthogonal_proposed_hanin_lr0.01_wd0.0005"
            "_bs128_seed0",
        ),
    ],
)
def test_run_name_and_weight_norm_default(command, name):
    train.FLAGS.unparse_flags()
    train.FLAGS(["train.py", *command.split()])
    assert train.run_name() == name


def test_paper_command_line_parses_and_runs_on_mock_mnist(tmp_path):
    paper = "--dataset mnist --nn mlp --weight_norm --init orthogonal_proposed"
    train.FLAGS.unparse_flags()
    train.FLAGS(["train.py", *paper.split()])
    assert train.FLAGS.dataset == "mnist" and train.FLAGS.nn == "mlp"
    assert train.FLAGS.weight_norm and train.FLAGS.init == "orthogonal_proposed"
    assert train.run_name() == (
        "mnist_mlp2x128_wn_orthogonal_proposed_lr0.01_bs128_seed0"
    )
    with tfds.testing.mock_data(num_examples=300):
        status = _run(
            tmp_path, *paper.split(), "--num_epochs=1", "--steps_per_epoch=2"
        )
    assert status["state"] == "finished" and status["steps_done"] == 2


def test_cifar_resnet_with_cutout_on_mock_data(tmp_path):
    with tfds.testing.mock_data(num_examples=64):
        status = _run(
            tmp_path,
            "--dataset=cifar10",
            "--nn=resnet",
            "--num_blocks=1",
            "--cutout",
            "--batch_size=16",
            "--steps_per_epoch=2",
            "--num_epochs=2",
            "--lr_annealing_type=3",
            "--warmup_epochs=1",
            "--weight_decay=5e-4",
            "--momentum=0.9",
        )
    assert status["state"] == "finished" and status["steps_done"] == 4
    run_dir = os.path.join(
        tmp_path,
        "cifar10_resnet8_wn_orthogonal_proposed_lr0.01_mom0.9_sched3_warmup1"
        "_wd0.0005_cutout_bs16_seed0",
    )
    rows = _csv(run_dir)
    # Epoch 1 ends inside the warmup: lr at its last step (t = 1 of 2) is
    # (1/2)^2 * 0.01. The WRN decays of a 2-epoch run fall at epochs
    # round(0.6) = 1, round(1.2) = 1 and round(1.6) = 2 (0-based), so the
    # second epoch runs at 0.01 * 0.2^2.
    assert float(rows[0]["lr"]) == pytest.approx(0.0025)
    assert float(rows[1]["lr"]) == pytest.approx(0.01 * 0.2**2)


def test_resume_after_sigkill(tmp_path):
    args = [
        "--model=killed",
        "--num_epochs=40",
        "--hidden_size=32",
        "--lr_annealing_type=1",
    ]
    run_dir = os.path.join(tmp_path, "killed")
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.Popen(
        [sys.executable, SCRIPT, f"--logdir={tmp_path}", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=environment,
    )
    log = os.path.join(run_dir, "log.csv")
    deadline = time.time() + 120
    while time.time() < deadline:
        if os.path.exists(log) and len(_csv(run_dir)) >= 3:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = _csv(run_dir)
    assert 3 <= len(before) < 40, "the run was not killed mid-way"
    status = _run(tmp_path, *args)
    after = _csv(run_dir)
    assert [int(row["epoch"]) for row in after] == list(range(1, 41))
    assert [int(row["step"]) for row in after] == [10 * e for e in range(1, 41)]
    # Epochs finished before the kill are kept as they were (a kill
    # between an epoch's checkpoint and its row loses only that epoch).
    assert after[: len(before) - 1] == before[: len(before) - 1]
    # The schedule continues from the restored step counter: x0.1 from
    # epoch 21 (1/2 of 40) and again from epoch 31 (3/4).
    expected = [0.01] * 20 + [0.001] * 10 + [0.0001] * 10
    np.testing.assert_allclose(
        [float(row["lr"]) for row in after], expected, rtol=1e-5
    )
    assert status["state"] == "finished" and status["steps_done"] == 400


def test_divergence_after_a_good_epoch_is_a_result(tmp_path):
    status = _run(
        tmp_path,
        "--model=diverge",
        "--num_epochs=6",
        "--warmup_epochs=6",
        "--warmup_lr=0.01",
        "--lr=100",
    )
    assert status["state"] == "diverged" and status["diverged"]
    # The quadratic warmup keeps epoch 1 (steps 1-10) finite.
    assert status["diverged_step"] > 10
    assert status["epochs_done"] >= 1
    assert status["test_acc"] is not None  # best checkpoint still tested
    rows = _csv(os.path.join(tmp_path, "diverge"))
    assert len(rows) == status["epochs_done"]
    assert all(math.isfinite(float(row["train_loss"])) for row in rows)


def test_divergence_in_the_first_epoch(tmp_path):
    status = _run(tmp_path, "--model=diverge", "--lr=1e5")
    assert status["state"] == "diverged"
    assert 1 <= status["diverged_step"] <= 10
    assert status["epochs_done"] == 0 and status["test_acc"] is None
    assert not os.path.exists(os.path.join(tmp_path, "diverge", "log.csv"))


@pytest.mark.skipif(
    len(tf.config.list_logical_devices("CPU")) < 2,
    reason="needs the two logical CPUs of conftest.py",
)
def test_mirrored_strategy_on_two_cpus(tmp_path, caplog):
    status = _run(
        tmp_path,
        "--strategy=mirrored",
        "--batch_size=64",
        "--num_epochs=2",
        "--lr=0.1",
        "--momentum=0.9",
        "--init=orthogonal_datadep",
    )
    assert status["state"] == "finished" and status["steps_done"] == 2 * 20
    assert status["num_replicas"] == 2
    assert status["best_val_acc"] > 0.8
    with pytest.raises(train.FlagError, match=r"divisible by the 2 replicas"):
        _run(tmp_path, "--strategy=mirrored", "--batch_size=65")


def test_flagfile_round_trip_and_finished_rerun(tmp_path):
    args = [*SYNTHETIC_SMOKE, "--nn=cnn", "--hidden_size=8", "--lr=0.05"]
    first = _run(tmp_path, "--model=round", *args)
    values = {name: train.FLAGS[name].value for name in train.FLAGS}
    run_dir = os.path.join(tmp_path, "round")
    flagfile = os.path.join(run_dir, "flags.txt")
    mtime = os.path.getmtime(os.path.join(run_dir, "log.csv"))
    # Rerunning from flags.txt is the same configuration: the finished run
    # is reported, not refused and not repeated.
    again = train.run(["train.py", f"--flagfile={flagfile}"])
    assert again == first
    assert os.path.getmtime(os.path.join(run_dir, "log.csv")) == mtime
    for holder in train.RUN_FLAGS:
        if holder.name != "flagfile":
            assert train.FLAGS[holder.name].value == values[holder.name]


def test_other_flags_are_refused_then_overwritten(tmp_path):
    _run(tmp_path, "--model=same", *SYNTHETIC_SMOKE)
    with pytest.raises(
        train.FlagError,
        match=r"holds a run with other flags.*--lr=0\.01 -> "
        r"--lr=0\.02.*--overwrite",
    ):
        _run(tmp_path, "--model=same", *SYNTHETIC_SMOKE, "--lr=0.02")
    status = _run(
        tmp_path, "--model=same", *SYNTHETIC_SMOKE, "--lr=0.02", "--overwrite"
    )
    assert status["state"] == "finished"
    moved = [n for n in os.listdir(tmp_path) if n.startswith("same.replaced-")]
    assert len(moved) == 1
    assert os.path.exists(os.path.join(tmp_path, moved[0], "log.csv"))


def test_hessian_at_initialization(tmp_path):
    status = _run(
        tmp_path,
        *SYNTHETIC_SMOKE,
        "--steps_per_epoch=10",
        "--hidden_size=16",
        "--hessian",
        "--hessian_iterations=3",
    )
    hessian = status["hessian"]
    assert status["state"] == "hessian" and status["epochs_done"] == 0
    assert hessian["num_batches"] == 1 and len(hessian["history"]) == 3
    assert hessian["spectral_norm"] > 0
    assert hessian["log_spectral_norm"] == pytest.approx(
        math.log(hessian["spectral_norm"])
    )


# Bad flags -------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, match",
    [
        (["--lr=-0.1"], r"--lr must be positive; received --lr=-0\.1\. Pass"),
        (
            ["--noweight_norm", "--init=he_proposed"],
            r"--init .*needs --weight_norm; received --init=he_proposed",
        ),
        (["--nn=wrn", "--wrn_n=12"], r"--wrn_n .* 6N\+4.*--wrn_n=12"),
        (["--nn=resnet", "--num_blocks=0"], r"--num_blocks .*--num_blocks=0"),
        (["--momentum=1.5"], r"--momentum must be in \[0, 1\)"),
        (["--cutout"], r"--cutout is a CIFAR augmentation.*digits"),
        (["--init_extra_param=hanin"], r"needs --nn resnet or wrn"),
        (["--val_fraction=1"], r"--val_fraction must lie strictly between"),
        (["--batch_size=5000"], r"batch_size must not exceed the 1294"),
        (["--weight_decay=-1"], r"--weight_decay must be >= 0.*=-1\.0"),
        (["--num_epochs=0"], r"--num_epochs must be a positive integer"),
        (["--lr_annealing_type=6"], r"--lr_annealing_type must be one of 0-5"),
        (["--steps_per_epoch=-1"], r"--steps_per_epoch must be >= 0"),
        (["--hessian_iterations=0"], r"--hessian_iterations must be >= 1"),
        (["--wrn_reduced_memory"], r"--wrn_reduced_memory applies to resid"),
        (["--synthetic_shape=8,x"], r"--synthetic_shape must list positive"),
        (["--cpu_devices=3"], r"--cpu_devices=3 must be applied before"),
        (["--dataset=synthetic", "--nn=cnn", "--synthetic_shape=8,8"],
         r"--synthetic_shape must be \(height, width, channels\)"),
    ],
)  # fmt: skip
def test_bad_flags_are_refused_before_writing(tmp_path, args, match):
    with pytest.raises(train.FlagError, match=match):
        _run(tmp_path, *args)
    assert os.listdir(tmp_path) == []


def test_positional_arguments_are_refused(tmp_path):
    with pytest.raises(train.FlagError, match=r"takes only flags.*'mlp'"):
        _run(tmp_path, "mlp")


def test_model_builder_errors_become_flag_errors(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise ValueError("depth must be 6N+2")

    monkeypatch.setattr(train.models, "mlp", refuse)
    with pytest.raises(
        train.FlagError, match=r"describe no valid model: depth must be 6N"
    ):
        _run(tmp_path)
    assert os.listdir(tmp_path) == []


def test_unknown_scheme_is_refused_by_the_parser(tmp_path):
    with pytest.raises(flags.IllegalFlagValueError, match=r"--init=xavier"):
        _run(tmp_path, "--init=xavier")


def test_missing_tfds_data_is_one_clear_error(tmp_path):
    empty = tmp_path / "tfds"
    empty.mkdir()
    with pytest.raises(train.FlagError, match=r"No prepared copy.*'cifar10'"):
        _run(tmp_path, "--dataset=cifar10", f"--data_dir={empty}")
    assert os.listdir(tmp_path) == ["tfds"]


def test_command_line_error_is_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, SCRIPT, f"--logdir={tmp_path}", "--lr=-1"],
        capture_output=True,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("train.py: error: --lr must be positive")
