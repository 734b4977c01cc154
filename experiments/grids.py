"""The named sweep grids of the paper's experiments, in one place.

A grid is a flagfile of `experiments/train.py` (the flags every run
shares) and a list of axes (what varies). `experiments/sweep.py` runs
every combination of the axes' values as one keras-tuner trial, and
`experiments/report.py` groups the runs by the same axes.

An axis is either a train.py flag (`Axis("lr", (0.01, 0.1))` passes
`--lr=0.01`, then `--lr=0.1`) or a set of named presets, each standing
for several flags (`Axis("scheme", ..., presets={"hanin": {...}})`).
Axis names that the report understands: `init` and `scheme` (the
initialization compared), `num_layers`, `num_blocks` and `wrn_n` (depth),
`arch` (architecture), `lr`, `warmup_epochs` and `seed`.

Every paper grid (experiments 2 to 7 of the paper, arXiv:1906.02341) has
a `_cpu` sibling sized for a 2-core CPU: scikit-learn's 8x8 digits
instead of MNIST / CIFAR, fewer epochs, smaller nets. Each grid's
flagfile header says what the paper reported and where the grid departs
from it.

This module needs neither TensorFlow nor keras-tuner, so the report can
read the grids cheaply.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Mapping

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
# Value types keras-tuner's `Choice` accepts; one type per axis.
VALUE_TYPES = (bool, int, float, str)
# Objectives a grid can report to keras-tuner: name -> direction.
OBJECTIVES = {"val_acc": "max", "log_hessian": "min"}


@dataclasses.dataclass(frozen=True)
class Axis:
    """One dimension of a grid.

    Attributes:
        name: A flag of `experiments/train.py`, or (with `presets`) a
            label for the dimension.
        values: The values in the order they are run; all of one type
            among `VALUE_TYPES`, no repeats.
        presets: Optional mapping from each value to the train.py flags
            (`{flag name: value}`) that it stands for.
    """

    name: str
    values: tuple
    presets: Mapping[str, Mapping[str, object]] | None = None

    def __post_init__(self):
        where = f"axis {self.name!r}"
        if not self.values:
            raise ValueError(
                f"{where} lists no values; give at least one, e.g. "
                f"Axis({self.name!r}, (0.01,))."
            )
        kinds = {type(value) for value in self.values}
        if len(kinds) != 1 or next(iter(kinds)) not in VALUE_TYPES:
            raise ValueError(
                f"{where} must hold values of one type among bool, int, "
                f"float and str (keras-tuner's Choice); received "
                f"{self.values!r}. Write e.g. 0.0 rather than 0 next to "
                "floats."
            )
        if len(set(self.values)) != len(self.values):
            raise ValueError(
                f"{where} repeats a value: {self.values!r}. List each "
                "value once."
            )
        if self.presets is not None:
            missing = [v for v in self.values if v not in self.presets]
            if missing:
                raise ValueError(
                    f"{where} has values without a preset: {missing}; "
                    f"presets exist for {sorted(self.presets)}. Add the "
                    "preset or drop the value."
                )

    def flags(self, value) -> dict[str, object]:
        """The train.py flags that `value` of this axis stands for."""
        if self.presets is None:
            return {self.name: value}
        return dict(self.presets[value])


@dataclasses.dataclass(frozen=True)
class Grid:
    """A named experiment: a train.py flagfile and the axes that vary.

    Attributes:
        name: What `sweep.py --grid` takes.
        flagfile: File name under `CONFIG_DIR` with the fixed flags.
        description: One line for `sweep.py --list`.
        axes: The dimensions, outermost first.
        objective: What each trial reports to keras-tuner, a key of
            `OBJECTIVES`: "val_acc" (best validation accuracy, 0 for a
            diverged run) or "log_hessian" (`--hessian` runs).
        experiment: The paper's experiment number (PAPER.md), or None.
    """

    name: str
    flagfile: str
    description: str
    axes: tuple[Axis, ...]
    objective: str = "val_acc"
    experiment: int | None = None

    def __post_init__(self):
        names = [axis.name for axis in self.axes]
        if len(set(names)) != len(names):
            raise ValueError(
                f"grid {self.name!r} names an axis twice: {names}."
            )
        if self.objective not in OBJECTIVES:
            raise ValueError(
                f"grid {self.name!r}: objective must be one of "
                f"{sorted(OBJECTIVES)}; received {self.objective!r}."
            )

    @property
    def flagfile_path(self) -> str:
        return os.path.join(CONFIG_DIR, self.flagfile)

    @property
    def size(self) -> int:
        """Number of runs (trials) in the grid."""
        total = 1
        for axis in self.axes:
            total *= len(axis.values)
        return total

    def axis(self, name: str) -> Axis | None:
        """The axis called `name`, or None."""
        return next((a for a in self.axes if a.name == name), None)

    def combinations(self) -> list[dict[str, object]]:
        """Every combination of axis values, in the order they run."""
        names = [axis.name for axis in self.axes]
        return [
            dict(zip(names, values))
            for values in itertools.product(*(a.values for a in self.axes))
        ]

    def trial_flags(self, values: Mapping[str, object]) -> dict[str, object]:
        """train.py flags of one combination (axis name -> value)."""
        merged = {}
        for axis in self.axes:
            merged.update(axis.flags(values[axis.name]))
        return merged

    def run_name(self, values: Mapping[str, object]) -> str:
        """The run folder (train.py's `--model`) of one combination."""
        return "__".join(
            f"{axis.name}={format_value(values[axis.name])}"
            for axis in self.axes
        )


def format_value(value: object) -> str:
    """A value as a train.py flag takes it and as run names show it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def flag_arguments(flags: Mapping[str, object]) -> list[str]:
    """`{name: value}` as train.py arguments (`--name=value`)."""
    arguments = []
    for name, value in flags.items():
        if isinstance(value, bool):
            arguments.append(f"--{name}" if value else f"--no{name}")
        else:
            arguments.append(f"--{name}={format_value(value)}")
    return arguments


# The axes the grids share ----------------------------------------------------

# Every scheme of wn_keras.models.INIT_SCHEMES, restated because this
# module must not import TensorFlow (tests/test_configs.py keeps the two
# equal).
ALL_INITS = Axis(
    "init",
    (
        "he",
        "orthogonal",
        "he_datadep",
        "orthogonal_datadep",
        "he_proposed",
        "orthogonal_proposed",
    ),
)
# Residual schemes of the paper's WRN experiments (all orthogonal).
RESIDUAL_SCHEMES = {
    "proposed": {"init": "orthogonal_proposed", "init_extra_param": "none"},
    "hanin": {"init": "orthogonal_proposed", "init_extra_param": "hanin"},
    "datadep": {"init": "orthogonal_datadep", "init_extra_param": "none"},
    "default": {"init": "orthogonal", "init_extra_param": "none"},
}
SURVIVAL_SCHEMES = ("proposed", "datadep", "default")
# Columns of the paper's test-error table (experiment 6).
TABLE_SCHEMES = {
    "wn_datadep": {
        "weight_norm": True,
        "batch_norm": False,
        "init": "orthogonal_datadep",
        "warmup_epochs": 0.0,
    },
    "wn_proposed": {
        "weight_norm": True,
        "batch_norm": False,
        "init": "orthogonal_proposed",
        "warmup_epochs": 0.0,
    },
    "wn_proposed_warmup": {
        "weight_norm": True,
        "batch_norm": False,
        "init": "orthogonal_proposed",
        "warmup_epochs": 5.0,
    },
    "bn": {
        "weight_norm": False,
        "batch_norm": True,
        "init": "he",
        "warmup_epochs": 0.0,
    },
}
TABLE_ARCHS = {
    "resnet56": {"dataset": "cifar10", "nn": "resnet", "num_blocks": 9},
    "resnet110": {"dataset": "cifar10", "nn": "resnet", "num_blocks": 18},
    "wrn40-10_cutout": {
        "dataset": "cifar10",
        "nn": "wrn",
        "wrn_n": 40,
        "wrn_k": 10,
        "cutout": True,
    },
    "resnet164_cutout": {
        "dataset": "cifar100",
        "nn": "resnet",
        "num_blocks": 27,
        "cutout": True,
    },
}
# CPU stand-ins on the 8x8 digits: small ResNet and Wide ResNet.
TABLE_ARCHS_CPU = {
    "resnet20": {"nn": "resnet", "num_blocks": 3},
    "resnet56": {"nn": "resnet", "num_blocks": 9},
    "wrn16-2": {"nn": "wrn", "wrn_n": 16, "wrn_k": 2},
}
HESSIAN_ARCHS = {
    "wrn40-10_cifar10": {
        "dataset": "cifar10",
        "nn": "wrn",
        "wrn_n": 40,
        "wrn_k": 10,
    },
    "resnet164_cifar100": {
        "dataset": "cifar100",
        "nn": "resnet",
        "num_blocks": 27,
    },
}
HESSIAN_ARCHS_CPU = {
    "wrn40-1": {"nn": "wrn", "wrn_n": 40, "wrn_k": 1},
    "resnet56": {"nn": "resnet", "num_blocks": 9},
}


def _seeds(count: int) -> Axis:
    return Axis("seed", tuple(range(count)))


def _schemes(names, table=None) -> Axis:
    table = table or RESIDUAL_SCHEMES
    return Axis("scheme", tuple(names), presets=table)


_GRID_LIST = (
    # Experiment 2: WN MLP on MNIST against depth.
    Grid(
        "mnist_mlp",
        "mnist_mlp.cfg",
        "Exp. 2: WN MLP on MNIST, depth x all six inits x lr x 3 seeds.",
        (
            ALL_INITS,
            Axis("num_layers", (2, 5, 10, 20, 100, 200)),
            Axis("lr", (0.001, 0.01, 0.1)),
            _seeds(3),
        ),
        experiment=2,
    ),
    Grid(
        "mnist_mlp_cpu",
        "mnist_mlp_cpu.cfg",
        "Exp. 2 on digits: WN MLP, depth x six inits x 2 lr x 3 seeds.",
        # Depth outermost: the costly depths 100 and 200 come last, so a
        # sweep cut short holds every rate and seed of the shallow nets.
        (
            Axis("num_layers", (2, 5, 10, 20, 100, 200)),
            Axis("lr", (0.01, 0.1)),
            _seeds(3),
            ALL_INITS,
        ),
        experiment=2,
    ),
    Grid(
        "mnist_mlp_long_cpu",
        "mnist_mlp_long_cpu.cfg",
        "Exp. 2 on digits, longer: WN MLP of depth 100, 2,000 steps, "
        "default / datadep / proposed orthogonal x 3 seeds.",
        (
            Axis(
                "init",
                ("orthogonal", "orthogonal_datadep", "orthogonal_proposed"),
            ),
            _seeds(3),
        ),
        experiment=2,
    ),
    # Experiment 3: WN CNN on CIFAR-10 against depth.
    Grid(
        "cifar_cnn",
        "cifar_cnn.cfg",
        "Exp. 3: WN CNN on CIFAR-10, depth 5/25/100 x six inits x lr x 3 "
        "seeds.",
        (
            ALL_INITS,
            Axis("num_layers", (5, 25, 100)),
            Axis("lr", (0.001, 0.01, 0.1)),
            _seeds(3),
        ),
        experiment=3,
    ),
    Grid(
        "cifar_cnn_cpu",
        "cifar_cnn_cpu.cfg",
        "Exp. 3 on digits: WN CNN, depth 5/25/100 x datadep/proposed/"
        "default x 3 seeds.",
        (
            Axis(
                "init",
                ("orthogonal", "orthogonal_datadep", "orthogonal_proposed"),
            ),
            Axis("num_layers", (5, 25, 100)),
            _seeds(3),
        ),
        experiment=3,
    ),
    # Experiment 4: WN Wide ResNet after one epoch against depth.
    Grid(
        "wrn_depth",
        "wrn_depth.cfg",
        "Exp. 4: WN WRN on CIFAR-10, one epoch, depth 10 to 10,000 x four "
        "schemes.",
        (
            _schemes(("proposed", "hanin", "datadep", "default")),
            Axis("wrn_n", (10, 100, 1000, 10000)),
            _seeds(1),
        ),
        experiment=4,
    ),
    Grid(
        "wrn_depth_cpu",
        "wrn_depth_cpu.cfg",
        "Exp. 4 on digits: WN WRN-d-1, one 100-step epoch, depth 10/100/1000 "
        "x four schemes x 3 seeds.",
        # Depth outermost, then seeds: the costly depth 1,000 comes last,
        # one seed of every scheme at a time.
        (
            Axis("wrn_n", (10, 100, 1000)),
            _seeds(3),
            _schemes(("proposed", "hanin", "datadep", "default")),
        ),
        experiment=4,
    ),
    Grid(
        "wrn_depth1000_cpu",
        "wrn_depth1000_cpu.cfg",
        "Exp. 4 on digits at depth 1,000 and lr 0.001: WN WRN-1000-1, one "
        "100-step epoch x four schemes x 1 seed.",
        (_schemes(("proposed", "hanin", "datadep", "default")), _seeds(1)),
        experiment=4,
    ),
    # Experiment 5: share of seeds surviving 3 epochs against lr.
    Grid(
        "wrn_survival",
        "wrn_survival.cfg",
        "Exp. 5: WN WRN-40-10, 3 epochs, 3 schemes x warmup x 5 lr x 20 seeds.",
        (
            _schemes(SURVIVAL_SCHEMES),
            Axis("warmup_epochs", (0.0, 1.0)),
            Axis("lr", (0.001, 0.005, 0.01, 0.05, 0.1)),
            _seeds(20),
        ),
        experiment=5,
    ),
    Grid(
        "wrn_survival_cpu",
        "wrn_survival_cpu.cfg",
        "Exp. 5 on digits: WN ResNet-20, 3 epochs, 3 schemes x warmup x 4 "
        "lr x 3 seeds.",
        (
            _seeds(3),
            Axis("warmup_epochs", (0.0, 1.0)),
            Axis("lr", (0.003, 0.01, 0.03, 0.1)),
            _schemes(SURVIVAL_SCHEMES),
        ),
        experiment=5,
    ),
    # Experiment 6: test error of four architectures.
    Grid(
        "test_error",
        "test_error.cfg",
        "Exp. 6: test error of ResNet-56/110, WRN-40-10, ResNet-164 x "
        "WN datadep / proposed / proposed+warmup / BN x 3 seeds.",
        (
            Axis("arch", tuple(TABLE_ARCHS), presets=TABLE_ARCHS),
            Axis("scheme", tuple(TABLE_SCHEMES), presets=TABLE_SCHEMES),
            _seeds(3),
        ),
        experiment=6,
    ),
    Grid(
        "test_error_cpu",
        "test_error_cpu.cfg",
        "Exp. 6 on digits: ResNet-20/56, WRN-16-2 x the four schemes x 3 "
        "seeds.",
        (
            Axis("arch", tuple(TABLE_ARCHS_CPU), presets=TABLE_ARCHS_CPU),
            Axis("scheme", tuple(TABLE_SCHEMES), presets=TABLE_SCHEMES),
            _seeds(3),
        ),
        experiment=6,
    ),
    # Experiment 7: Hessian spectral norm at initialization.
    Grid(
        "hessian",
        "hessian.cfg",
        "Exp. 7: log Hessian spectral norm at init, WRN-40-10 / ResNet-164 "
        "x four schemes.",
        (
            Axis("arch", tuple(HESSIAN_ARCHS), presets=HESSIAN_ARCHS),
            _schemes(("default", "datadep", "hanin", "proposed")),
            _seeds(1),
        ),
        objective="log_hessian",
        experiment=7,
    ),
    Grid(
        "hessian_cpu",
        "hessian_cpu.cfg",
        "Exp. 7 on digits: log Hessian spectral norm at init, WRN-40-1 / "
        "ResNet-56 x four schemes x 3 seeds.",
        (
            Axis("arch", tuple(HESSIAN_ARCHS_CPU), presets=HESSIAN_ARCHS_CPU),
            _schemes(("default", "datadep", "hanin", "proposed")),
            _seeds(3),
        ),
        objective="log_hessian",
        experiment=7,
    ),
)
# A check of the set-up, not an experiment: 4 runs of 2 steps each.
_GRID_LIST += (
    Grid(
        "smoke",
        "smoke.cfg",
        "Set-up check: 2 inits x 2 seeds, 2 steps each on synthetic data.",
        (
            Axis("init", ("orthogonal_proposed", "orthogonal_datadep")),
            _seeds(2),
        ),
    ),
)
GRIDS = {grid.name: grid for grid in _GRID_LIST}


def get(name: str) -> Grid:
    """The grid called `name`.

    Raises:
        ValueError: If there is no such grid; the message lists them.
    """
    if name not in GRIDS:
        raise ValueError(
            f"--grid must name one of the grids {sorted(GRIDS)}; received "
            f"--grid={name!r}. `python experiments/sweep.py --list` "
            "describes them."
        )
    return GRIDS[name]


def describe() -> str:
    """One line per grid: name, runs, flagfile and description."""
    width = max(len(name) for name in GRIDS)
    return "\n".join(
        f"{grid.name:<{width}}  {grid.size:5d} runs  "
        f"configs/{grid.flagfile}  {grid.description}"
        for grid in _GRID_LIST
    )
