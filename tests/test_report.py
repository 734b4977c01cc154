"""Tests for experiments/report.py on sweep folders written by hand.

Each test fabricates the files sweep.py and train.py leave (sweep.json,
runs/<name>/status.json, flags.txt, log.csv) for a few runs of a real
grid, runs the report, and compares its numbers with values computed
here by hand.
"""

import csv
import json
import math
import os
import subprocess
import sys

import pytest
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPORT = os.path.join(ROOT, "experiments", "report.py")
sys.path.insert(0, os.path.join(ROOT, "experiments"))

import grids  # noqa: E402
import report  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _sweep(tmp_path, grid_name):
    (tmp_path / "sweep.json").write_text(
        json.dumps(
            {
                "grid": grid_name,
                "flagfile": f"experiments/configs/{grid_name}.cfg",
                "sessions": [
                    {
                        "host": "testhost",
                        "mode": "single",
                        "started": "2026-01-01T00:00:00+00:00",
                        "finished": "2026-01-01T00:10:00+00:00",
                        "wall_time_s": 600.0,
                    }
                ],
            }
        )
    )
    return grids.get(grid_name)


def _run(tmp_path, grid, state, test_acc=None, val_acc=None, **values):
    """Writes one run's folder, as train.py would leave it."""
    directory = tmp_path / "runs" / grid.run_name(values)
    directory.mkdir(parents=True)
    flags = grids.flag_arguments(grid.trial_flags(values))
    (directory / "flags.txt").write_text("\n".join(flags) + "\n")
    (directory / "log.csv").write_text(
        "epoch,train_loss,val_loss,train_acc,val_acc,lr,step,epoch_seconds\n"
        "1,0.5,0.6,0.8,0.7,0.1,20,1.0\n"
    )
    status = {
        "state": state,
        "epochs_done": 1,
        "num_epochs": 1,
        "best_val_acc": val_acc,
        "test_acc": test_acc,
        "diverged_step": 7 if state == "diverged" else None,
        "hessian": values.pop("_hessian", None),
        "wall_time_s": 10.0,
    }
    (directory / "status.json").write_text(json.dumps(status))


def _csv(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def _sample_std(values):
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _is_png(path):
    with open(path, "rb") as stream:
        return stream.read(8) == PNG_SIGNATURE


def test_mean_std_against_hand_values():
    assert report.mean_std([]) == (None, None)
    assert report.mean_std([0.5]) == (0.5, None)
    mean, std = report.mean_std([1.0, 2.0, 4.0])
    assert mean == pytest.approx(7 / 3)
    # sum of squares around 7/3: 16/9 + 1/9 + 25/9 = 42/9; / (3 - 1).
    assert std == pytest.approx(math.sqrt(42 / 18))


def test_depth_table_picks_the_lr_by_validation(tmp_path):
    grid = _sweep(tmp_path, "mnist_mlp_cpu")
    common = {"init": "orthogonal_proposed", "num_layers": 200}
    # lr 0.01: two good seeds and one diverged run (counts 0).
    for seed, acc in ((0, 0.9), (1, 0.8)):
        _run(tmp_path, grid, "finished", acc, acc, lr=0.01, seed=seed, **common)
    _run(tmp_path, grid, "diverged", 0.85, 0.86, lr=0.01, seed=2, **common)
    # lr 0.1: higher validation accuracy, so the table shows this rate.
    for seed, (test, val) in enumerate(
        ((0.95, 0.96), (0.93, 0.94), (0.97, 0.98))
    ):
        _run(tmp_path, grid, "finished", test, val, lr=0.1, seed=seed, **common)
    report.write_report(str(tmp_path))
    out = tmp_path / "report"

    rows = {
        (r["init"], r["num_layers"], r["lr"]): r
        for r in _csv(out / "summary.csv")
    }
    low = rows[("orthogonal_proposed", "200", "0.01")]
    assert (low["runs"], low["done"], low["diverged"]) == ("3", "3", "1")
    assert float(low["acc_mean"]) == pytest.approx((0.9 + 0.8 + 0) / 3)
    assert float(low["acc_std"]) == pytest.approx(_sample_std([0.9, 0.8, 0]))
    assert float(low["acc_mean_not_diverged"]) == pytest.approx(0.85)
    untouched = rows[("he", "2", "0.01")]
    assert (untouched["done"], untouched["acc_mean"]) == ("0", "")

    depth = {(r["init"], r["num_layers"]): r for r in _csv(out / "depth.csv")}
    cell = depth[("orthogonal_proposed", "200")]
    assert float(cell["lr"]) == 0.1
    assert float(cell["acc_mean"]) == pytest.approx(0.95)
    assert float(cell["acc_std"]) == pytest.approx(0.02)
    text = (out / "report.md").read_text()
    assert "0.950 +- 0.020 (lr 0.1, 0/3 div.)" in text
    assert "1 diverged, 5 finished, 210 not started" in text
    assert "testhost" in text
    runs = _csv(out / "runs.csv")
    assert len(runs) == grid.size
    for name in ("accuracy_vs_depth.png", "lr_heatmap.png"):
        assert _is_png(out / name)


def test_survival_shares(tmp_path):
    grid = _sweep(tmp_path, "wrn_survival_cpu")
    common = {"scheme": "proposed", "warmup_epochs": 0.0, "lr": 0.03}
    _run(tmp_path, grid, "finished", 0.9, 0.9, seed=0, **common)
    _run(tmp_path, grid, "finished", 0.9, 0.9, seed=1, **common)
    _run(tmp_path, grid, "diverged", None, None, seed=2, **common)
    # seed 3 never ran: it is not counted.
    warm = dict(common, warmup_epochs=1.0)
    for seed in range(4):
        _run(tmp_path, grid, "finished", 0.9, 0.9, seed=seed, **warm)
    report.write_report(str(tmp_path))
    out = tmp_path / "report"
    shares = {
        (r["scheme"], r["warmup_epochs"], r["lr"]): r
        for r in _csv(out / "survival.csv")
    }
    cold = shares[("proposed", "0.0", "0.03")]
    assert (cold["survived"], cold["done"]) == ("2", "3")
    assert float(cold["share"]) == pytest.approx(2 / 3)
    assert float(shares[("proposed", "1.0", "0.03")]["share"]) == 1.0
    assert shares[("default", "0.0", "0.03")]["share"] == ""
    assert "67% (2/3)" in (out / "survival.md").read_text()
    assert _is_png(out / "survival.png")


def test_test_error_table(tmp_path):
    grid = _sweep(tmp_path, "test_error_cpu")
    accuracies = (0.97, 0.95, 0.96)
    for seed, acc in enumerate(accuracies):
        _run(
            tmp_path,
            grid,
            "finished",
            acc,
            acc,
            arch="resnet20",
            scheme="wn_proposed",
            seed=seed,
        )
    _run(
        tmp_path,
        grid,
        "diverged",
        None,
        None,
        arch="resnet20",
        scheme="wn_datadep",
        seed=0,
    )
    report.write_report(str(tmp_path))
    rows = {
        (r["arch"], r["scheme"]): r
        for r in _csv(tmp_path / "report" / "test_error.csv")
    }
    cell = rows[("resnet20", "wn_proposed")]
    assert float(cell["test_error_mean"]) == pytest.approx(1 - 0.96)
    assert float(cell["test_error_std"]) == pytest.approx(0.01)
    # A diverged run is 100% error.
    assert float(rows[("resnet20", "wn_datadep")]["test_error_mean"]) == 1.0
    text = (tmp_path / "report" / "test_error.md").read_text()
    assert "4.00 +- 1.00 (n=3, 0 div.)" in text


def test_hessian_table(tmp_path):
    grid = _sweep(tmp_path, "hessian_cpu")
    logs = (1.2, 1.5, 1.8)
    for seed, value in enumerate(logs):
        _run(
            tmp_path,
            grid,
            "hessian",
            arch="wrn40-1",
            scheme="proposed",
            seed=seed,
            _hessian={"log_spectral_norm": value, "spectral_norm": 1.0},
        )
    report.write_report(str(tmp_path))
    out = tmp_path / "report"
    rows = {(r["arch"], r["scheme"]): r for r in _csv(out / "hessian.csv")}
    cell = rows[("wrn40-1", "proposed")]
    assert float(cell["log_hessian_mean"]) == pytest.approx(1.5)
    assert float(cell["log_hessian_std"]) == pytest.approx(0.3)
    assert "1.50 +- 0.30 (n=3)" in (out / "hessian.md").read_text()
    assert _is_png(out / "hessian.png")


def test_read_flags_booleans_and_values(tmp_path):
    path = tmp_path / "flags.txt"
    path.write_text("# comment\n--lr=0.1\n--weight_norm\n--nobatch_norm\n")
    assert report.read_flags(str(path)) == {
        "lr": "0.1",
        "weight_norm": "true",
        "batch_norm": "false",
    }


@pytest.mark.parametrize(
    "arguments, match",
    [
        ([], "takes one argument, the sweep folder; received \\[\\]"),
        (["/no/such/folder"], "'/no/such/folder' does not exist"),
        (["{tmp}"], "sweep.json does not exist"),
    ],
)
def test_command_line_errors(tmp_path, arguments, match):
    flags.FLAGS(["report.py"])
    arguments = [a.format(tmp=tmp_path) for a in arguments]
    with pytest.raises(report.ReportError, match=match):
        report.main(["report.py", *arguments])


def test_unknown_grid_in_sweep_json(tmp_path):
    (tmp_path / "sweep.json").write_text(json.dumps({"grid": "nope"}))
    with pytest.raises(report.ReportError, match="--grid='nope'"):
        report.load_sweep(str(tmp_path))


def test_script_writes_to_out_dir(tmp_path):
    grid = _sweep(tmp_path, "smoke")
    _run(
        tmp_path, grid, "finished", 0.5, 0.5, init="orthogonal_proposed", seed=0
    )
    out = tmp_path / "elsewhere"
    result = subprocess.run(
        [sys.executable, REPORT, str(tmp_path), f"--out_dir={out}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (out / "report.md").exists() and (out / "runs.csv").exists()
    bad = subprocess.run(
        [sys.executable, REPORT, str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("report.py: error:")
