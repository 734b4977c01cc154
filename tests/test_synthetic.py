"""experiments/synthetic.py at reduced size: files and Figure-1 properties.

The script runs once, in a subprocess, with 200 inputs of dimension 100,
plain nets of 8 layers and ResNets of 10 blocks, m in {150, 300}. The
properties checked are those of arXiv:1906.02341, Figure 1, with
tolerances for this size: a fixed network of width m changes the squared
norm of a layer's output by a random factor of relative spread about
sqrt(5 / m) (ReLU of Gaussian pre-activations), which averaging over
inputs does not remove once the inputs' representations are correlated.
"""

import csv
import math
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "experiments", "synthetic.py")
NUM_INPUTS = 200
INPUT_DIM = 100
DEPTH = 8
BLOCKS = 10
WIDTHS = (150, 300)
INITS = ("he_g1", "proposed_orthogonal", "proposed_he")
PROPOSED = ("proposed_orthogonal", "proposed_he")
SCRIPT_TIMEOUT_S = 300


def _environment() -> dict[str, str]:
    # The repository root first, so the script imports this checkout's
    # wn_keras even where the package is not installed.
    path = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=path)


def _run(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, SCRIPT, *flags],
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_S,
        env=_environment(),
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Runs the script once; yields (output folder, stdout)."""
    output_dir = tmp_path_factory.mktemp("figure1")
    process = _run(
        f"--output_dir={output_dir}",
        f"--num_inputs={NUM_INPUTS}",
        f"--input_dim={INPUT_DIM}",
        f"--depth={DEPTH}",
        f"--blocks={BLOCKS}",
        "--widths=" + ",".join(str(m) for m in WIDTHS),
        "--seed=0",
    )
    assert process.returncode == 0, process.stderr[-3000:]
    return output_dir, process.stdout


@pytest.fixture(scope="module")
def table(run):
    """The CSV as {(net, m, init): {column: array over layers}}."""
    output_dir, _ = run
    with open(output_dir / "figure1.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    curves = {}
    for row in rows:
        key = (row["net"], int(row["m"]), row["init"])
        curve = curves.setdefault(key, {"layer": []})
        curve["layer"].append(int(row["layer"]))
        for column in (
            "forward_mean",
            "forward_std",
            "backward_mean",
            "backward_std",
        ):
            curve.setdefault(column, []).append(float(row[column]))
    return {
        key: {name: np.array(values) for name, values in curve.items()}
        for key, curve in curves.items()
    }


def _growth_per_layer(values: np.ndarray) -> float:
    """exp of the least-squares slope of log(values) over layers 2..K."""
    layers = np.arange(2, len(values) + 1)
    return math.exp(np.polyfit(layers, np.log(values[1:]), 1)[0])


def test_files_are_written_and_no_temp_file_is_left(run):
    output_dir, stdout = run
    assert sorted(os.listdir(output_dir)) == [
        "figure1.csv",
        "figure1.png",
        "flags.json",
        "summary.txt",
    ]
    with open(output_dir / "figure1.png", "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"
    assert (output_dir / "summary.txt").read_text() == stdout
    assert "Plain WN net" in stdout and "ResNet" in stdout


def test_csv_has_one_row_per_net_width_init_and_layer(run, table):
    output_dir, _ = run
    with open(output_dir / "figure1.csv", newline="") as file:
        header = next(csv.reader(file))
    assert header == [
        "net",
        "m",
        "init",
        "layer",
        "forward_mean",
        "forward_std",
        "backward_mean",
        "backward_std",
    ]
    expected_keys = {
        (net, m, init)
        for net in ("plain", "resnet")
        for m in WIDTHS
        for init in INITS
    }
    assert set(table) == expected_keys
    for (net, _, _), curve in table.items():
        size = DEPTH if net == "plain" else BLOCKS
        np.testing.assert_array_equal(curve["layer"], np.arange(1, size + 1))
        # The backward ratios are relative to the last layer.
        assert curve["backward_mean"][-1] == pytest.approx(1.0)
        assert curve["backward_std"][-1] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("m", WIDTHS)
@pytest.mark.parametrize("init", PROPOSED)
def test_plain_proposed_stays_near_one(table, init, m):
    curve = table[("plain", m, init)]
    # Per layer the norm moves by a random factor of spread about
    # sqrt(5 / m) / 2 (0.09 at m = 150); allow a 3-sigma walk over depth.
    tolerance = 3 * math.sqrt(5 / m) / 2 * math.sqrt(DEPTH)
    log_forward = np.log(curve["forward_mean"])
    log_backward = np.log(curve["backward_mean"])
    assert np.abs(log_forward).max() < tolerance, curve["forward_mean"]
    assert np.abs(log_backward).max() < tolerance, curve["backward_mean"]
    assert _growth_per_layer(curve["forward_mean"]) == pytest.approx(
        1.0, abs=0.1
    )


@pytest.mark.parametrize("m", WIDTHS)
def test_plain_he_with_unit_g_decays_by_one_over_sqrt_two(table, m):
    curve = table[("plain", m, "he_g1")]
    expected = 1 / math.sqrt(2)
    assert _growth_per_layer(curve["forward_mean"]) == pytest.approx(
        expected, abs=0.07
    )
    # Going back towards the input, the gradient shrinks likewise.
    assert 1 / _growth_per_layer(curve["backward_mean"]) == pytest.approx(
        expected, abs=0.07
    )


@pytest.mark.parametrize("m", WIDTHS)
@pytest.mark.parametrize("init", PROPOSED)
def test_resnet_proposed_grows_smoothly_into_the_theory_band(table, init, m):
    curve = table[("resnet", m, init)]
    forward, backward = curve["forward_mean"], curve["backward_mean"]
    # Expected square growth 1 + 1/B per block: 1.61 at B = 10, inside
    # [sqrt(2), sqrt(e)] = [1.414, 1.649]; tolerance 0.06 for this size.
    tolerance = 0.06
    low, high = math.sqrt(2) - tolerance, math.sqrt(math.e) + tolerance
    assert low <= forward[-1] <= high, forward
    assert low <= backward[0] <= high, backward
    # Smooth: monotone, starting near 1 after one block.
    assert forward[0] == pytest.approx(1.0, abs=0.1)
    assert np.all(np.diff(forward) > 0), forward
    assert np.all(np.diff(backward) < 0), backward


@pytest.mark.parametrize("m", WIDTHS)
def test_resnet_he_with_unit_g_explodes(table, m):
    curve = table[("resnet", m, "he_g1")]
    # Square growth 1 + 1/2 per block: 1.5 ** (10 / 2) = 7.6 at B = 10.
    assert curve["forward_mean"][-1] > 4.0
    assert curve["backward_mean"][0] > 4.0


# Both bad --widths cases in one fresh interpreter (one TensorFlow import
# instead of two): it loads the script as a module and prints each error.
_BAD_WIDTHS_PROGRAM = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("synthetic", sys.argv[1])
synthetic = importlib.util.module_from_spec(spec)
spec.loader.exec_module(synthetic)
for widths in (["abc"], ["40"], []):
    try:
        synthetic.parse_widths(widths)
    except ValueError as error:
        print(error)
    else:
        print("accepted", widths)
"""


def test_bad_widths_are_rejected():
    process = subprocess.run(
        [sys.executable, "-c", _BAD_WIDTHS_PROGRAM, SCRIPT],
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_S,
        env=_environment(),
    )
    assert process.returncode == 0, process.stderr[-3000:]
    messages = process.stdout.splitlines()
    assert len(messages) == 3, process.stdout
    assert messages[0].startswith(
        "--widths must be a comma-separated list of integers; received ['abc']"
    )
    assert messages[1].startswith(
        "--widths must hold one or more integers above 50"
    )
    assert "received [40]" in messages[1]
    assert "received []" in messages[2]
