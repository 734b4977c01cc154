"""Every flagfile of experiments/configs parses with train.py's flags.

Also checks each grid flagfile's header (the exact commands, the paper's
numbers, the departures), that the commands in the header run with
train.py's flags, that every paper experiment's flagfile has a `_cpu`
sibling grid, and that every combination of every grid passes train.py's
checks.
"""

import os
import re
import shlex
import sys

import pytest
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_DIR = os.path.join(ROOT, "experiments", "configs")
sys.path.insert(0, os.path.join(ROOT, "experiments"))

import grids  # noqa: E402
import sweep  # noqa: E402
import train  # noqa: E402

FLAGS = flags.FLAGS
FLAGFILES = sorted(
    name for name in os.listdir(CONFIG_DIR) if name.endswith(".cfg")
)
GRID_LIST = list(grids.GRIDS.values())


@pytest.fixture(autouse=True)
def fresh_flags():
    FLAGS.unparse_flags()
    yield
    FLAGS.unparse_flags()


def _parse(argv):
    """Parses train.py arguments and runs train.py's flag checks."""
    FLAGS.unparse_flags()
    FLAGS(["train.py", *argv])
    train.validate_flags()


def _header(path) -> list[str]:
    """The leading comment lines of a flagfile, without the "#"."""
    lines = []
    with open(path) as stream:
        for line in stream:
            if not line.startswith("#"):
                break
            lines.append(line[1:].strip())
    return lines


def _commands(header: list[str], script: str) -> list[list[str]]:
    """The `python experiments/<script>` commands in a header, as argv."""
    text = "\n".join(header).replace("\\\n", " ")
    pattern = rf"python experiments/{script} ([^\n]*)"
    return [shlex.split(match) for match in re.findall(pattern, text)]


def test_every_grid_flagfile_exists_and_is_listed():
    used = {grid.flagfile for grid in GRID_LIST}
    assert used <= set(FLAGFILES)
    # The rest belongs to train.py's own examples.
    assert set(FLAGFILES) - used == {"digits_mlp.cfg"}


@pytest.mark.parametrize("name", FLAGFILES)
def test_flagfile_parses_with_train_flags(name):
    path = os.path.join(CONFIG_DIR, name)
    _parse([f"--flagfile={path}"])
    assert _header(path), f"{name} must start with a comment"


def test_an_unknown_flag_in_a_flagfile_fails(tmp_path):
    path = tmp_path / "bad.cfg"
    path.write_text(
        "# python experiments/train.py --flagfile=bad.cfg\n--lrate=1\n"
    )
    with pytest.raises(flags.UnrecognizedFlagError, match="lrate"):
        _parse([f"--flagfile={path}"])


@pytest.mark.parametrize("grid", GRID_LIST, ids=lambda grid: grid.name)
def test_grid_flagfile_header(grid):
    header = _header(grid.flagfile_path)
    text = " ".join(header)
    assert f"python experiments/sweep.py --grid={grid.name}" in text
    train_commands = _commands(header, "train.py")
    assert train_commands, f"{grid.flagfile}: no train.py command"
    for argv in train_commands:
        assert f"--flagfile=experiments/configs/{grid.flagfile}" in argv
        _parse(
            [a.replace("experiments/", f"{ROOT}/experiments/", 1) for a in argv]
        )
    for argv in _commands(header, "sweep.py"):
        assert argv[0] == f"--grid={grid.name}"
    assert "Paper" in text, f"{grid.flagfile}: what the paper reported"
    assert re.search("[Dd]eparture", text), f"{grid.flagfile}: departures"


@pytest.mark.parametrize(
    "grid",
    [g for g in GRID_LIST if g.experiment and not g.name.endswith("_cpu")],
    ids=lambda grid: grid.name,
)
def test_paper_grid_has_a_cpu_sibling(grid):
    sibling = grids.GRIDS.get(f"{grid.name}_cpu")
    assert sibling is not None, f"{grid.name} has no _cpu grid"
    assert sibling.flagfile == grid.flagfile.replace(".cfg", "_cpu.cfg")
    assert sibling.experiment == grid.experiment
    assert os.path.exists(sibling.flagfile_path)


def test_all_inits_axis_lists_every_scheme_of_the_library():
    from wn_keras import models

    assert grids.ALL_INITS.values == models.INIT_SCHEMES


def test_every_paper_experiment_has_a_grid():
    assert {g.experiment for g in GRID_LIST if g.experiment} == set(range(2, 8))


@pytest.mark.parametrize("grid", GRID_LIST, ids=lambda grid: grid.name)
def test_every_combination_passes_train_checks(grid):
    sweep.check_grid(grid)
