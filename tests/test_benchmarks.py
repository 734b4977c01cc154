"""The benchmark scripts run at a tiny size and write well-formed CSV.

Each script is started as its own process (as a user runs it), so that
its absl flags and its device set-up are its own. Only the shape of the
output is checked, never a timing. The helpers in `benchlib` are checked
against numpy and the csv module. Each script start imports TensorFlow
(several seconds), so only one run and one flag check are in the default
selection; the others are marked slow.
"""

import csv
import math
import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(REPO, "benchmarks")
sys.path.insert(0, BENCHMARKS)

import benchlib  # noqa: E402

WN_OVERHEAD_COLUMNS = [
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
]
THROUGHPUT_COLUMNS = [
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
]
DATA_INIT_COLUMNS = [
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
]


def run_script(name, *flags):
    """Runs benchmarks/<name> with ``flags``; returns the finished process."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, os.path.join(BENCHMARKS, name), *flags],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def read_csv(path):
    with open(path, newline="") as stream:
        reader = csv.DictReader(stream)
        return reader.fieldnames, list(reader)


def check_positive_numbers(rows, columns):
    for row in rows:
        for column in columns:
            value = float(row[column])
            assert math.isfinite(value) and value > 0, (column, row)


# benchlib -----------------------------------------------------------------


def test_paired_ratios_match_numpy():
    numerator = [2.0, 3.0, 5.0, 7.0]
    denominator = [1.0, 2.0, 4.0, 5.0]
    ratios = np.array(numerator) / np.array(denominator)
    result = benchlib.paired_ratios(numerator, denominator)
    assert result["median"] == pytest.approx(np.median(ratios))
    assert result["q1"] == pytest.approx(np.percentile(ratios, 25))
    assert result["q3"] == pytest.approx(np.percentile(ratios, 75))
    assert result["min"] == pytest.approx(1.25)
    assert result["max"] == pytest.approx(2.0)


def test_interleaved_timings_rotates_the_order():
    calls = []
    variants = {name: (lambda n=name: calls.append(n)) for name in "abc"}
    wall, cpu = benchlib.interleaved_timings(variants, repeats=3, warmup=1)
    assert calls == list("abcabcbcacab")
    assert all(len(wall[n]) == 3 and len(cpu[n]) == 3 for n in "abc")


def test_write_csv_round_trips(tmp_path):
    path = tmp_path / "sub" / "table.csv"
    rows = [{"a": 1, "b": 0.5}, {"a": "x,y", "b": None}]
    benchlib.write_csv(str(path), rows, ["a", "b"])
    fieldnames, read = read_csv(path)
    assert fieldnames == ["a", "b"]
    assert read == [{"a": "1", "b": "0.5"}, {"a": "x,y", "b": ""}]
    assert os.listdir(tmp_path / "sub") == ["table.csv"]


# The scripts ----------------------------------------------------------------


def _quick_graph_mlp(tmp_path, *flags):
    """Runs wn_overhead.py --quick on the MLP in graph mode; its CSV."""
    result = run_script(
        "wn_overhead.py",
        "--quick",
        "--models=mlp",
        "--modes=graph",
        *flags,
        f"--output_dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return read_csv(tmp_path / "wn_overhead.csv")


@pytest.mark.slow
def test_wn_overhead_quick_mlp(tmp_path):
    fieldnames, rows = _quick_graph_mlp(tmp_path)
    assert fieldnames == WN_OVERHEAD_COLUMNS
    variants = {(r["model"], r["normalization"], r["mode"]) for r in rows}
    assert variants == {
        ("mlp", "plain", "graph"),
        ("mlp", "wn", "graph"),
        ("mlp", "bn", "graph"),
    }
    check_positive_numbers(rows, ["step_ms", "ratio_to_plain", "params"])
    assert os.path.exists(tmp_path / "wn_overhead_run.json")


def test_wn_overhead_quick_floor_variants(tmp_path):
    # The two floor diagnostics time a function of the WN model's
    # variables, not a step; they get a row each, with a ratio to the
    # plain step of the same mode.
    _, rows = _quick_graph_mlp(
        tmp_path, "--normalizations=plain,norms_only,kernel_read"
    )
    names = sorted(r["normalization"] for r in rows)
    assert names == ["kernel_read", "norms_only", "plain"]
    check_positive_numbers(rows, ["step_ms", "ratio_to_plain", "params"])


@pytest.mark.slow
def test_wn_overhead_quick_all_variants(tmp_path):
    flags = ["--quick", f"--output_dir={tmp_path}"]
    flags.append(
        "--normalizations=plain,wn,bn,wn_kernel,wn_fixed_scale,wn_sum_norm"
    )
    with_torch = _has_torch()
    if with_torch:
        flags.append("--with_torch")
    result = run_script("wn_overhead.py", *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    fieldnames, rows = read_csv(tmp_path / "wn_overhead.csv")
    assert fieldnames == WN_OVERHEAD_COLUMNS
    assert len([r for r in rows if r["framework"] == "keras"]) == 2 * 6 * 2
    if with_torch:
        torch_rows = [r for r in rows if r["framework"] == "torch"]
        assert len(torch_rows) == 2 * 2
        check_positive_numbers(torch_rows, ["step_ms", "ratio_to_plain"])
        wn_rows = [
            r
            for r in rows
            if r["framework"] == "keras" and r["normalization"] == "wn"
        ]
        check_positive_numbers(wn_rows, ["ratio_to_torch"])


def _has_torch():
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def test_wn_overhead_rejects_unknown_model(tmp_path):
    result = run_script(
        "wn_overhead.py", "--models=mlp,vgg", f"--output_dir={tmp_path}"
    )
    assert result.returncode != 0
    assert "--models" in result.stderr and "vgg" in result.stderr
    assert not os.path.exists(tmp_path / "wn_overhead.csv")


@pytest.mark.slow
def test_profile_step_quick(tmp_path):
    result = run_script(
        "profile_step.py",
        "--quick",
        "--models=mlp",
        "--modes=graph",
        "--normalizations=plain,wn",
        f"--output_dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    fieldnames, rows = read_csv(tmp_path / "profile_step.csv")
    assert fieldnames == ["model", "mode", "op_type", "plain_ms", "wn_ms"]
    op_types = {r["op_type"] for r in rows}
    # The weight-normalized step reduces over the kernel; the plain one
    # does not.
    assert "Sum" in op_types
    assert any("MatMul" in op_type for op_type in op_types)


@pytest.mark.slow
def test_throughput_quick_mlp(tmp_path):
    result = run_script(
        "throughput.py",
        "--quick",
        "--models=mlp",
        "--normalizations=wn",
        f"--output_dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    fieldnames, rows = read_csv(tmp_path / "throughput.csv")
    assert fieldnames == THROUGHPUT_COLUMNS
    variants = {(r["strategy"], r["devices"], r["task"]) for r in rows}
    assert variants == {
        ("one_device", "1", "train"),
        ("one_device", "1", "inference"),
        ("mirrored", "2", "train"),
        ("mirrored", "2", "inference"),
    }
    check_positive_numbers(rows, ["images_per_s", "ratio_to_one_device"])


@pytest.mark.slow
def test_throughput_quick_all_models(tmp_path):
    result = run_script("throughput.py", "--quick", f"--output_dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    fieldnames, rows = read_csv(tmp_path / "throughput.csv")
    assert fieldnames == THROUGHPUT_COLUMNS
    assert {r["model"] for r in rows} == {"mlp", "resnet56", "wrn16_4"}
    assert len(rows) == 3 * 2 * 2 * 2


def test_data_init_cost_quick(tmp_path):
    result = run_script(
        "data_init_cost.py", "--quick", f"--output_dir={tmp_path}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    fieldnames, rows = read_csv(tmp_path / "data_init_cost.csv")
    assert fieldnames == DATA_INIT_COLUMNS
    assert [int(r["depth"]) for r in rows] == [2, 4]
    check_positive_numbers(
        rows, ["init_ms", "eager_forward_ms", "init_over_eager_forward"]
    )


@pytest.mark.slow
def test_data_init_cost_rejects_bad_depth(tmp_path):
    result = run_script(
        "data_init_cost.py", "--depths=10,0", f"--output_dir={tmp_path}"
    )
    assert result.returncode != 0
    assert "--depths" in result.stderr and "'0'" in result.stderr
