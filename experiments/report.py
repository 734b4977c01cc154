r"""Tables and figures of a sweep made by experiments/sweep.py.

    python experiments/report.py runs/sweeps/mnist_mlp_cpu
    python experiments/report.py runs/sweeps/mnist_mlp_cpu \
        --out_dir=results/mlp

Reads the sweep's `sweep.json` (which grid it ran) and, for every
combination of the grid's axes, the run folder's `flags.txt`,
`status.json` and `log.csv`; runs that have not started or not finished
are counted as such. Writes, under `--out_dir` (default
`<sweep_dir>/report`):

- `report.md`: the sweep (grid, flagfile, states of the runs, run time)
  and every table below, with the figures linked.
- `runs.csv`: one row per run: axis values, state, epochs, best
  validation accuracy, test accuracy, divergence step, Hessian, time.
- `summary.md` / `summary.csv`: runs grouped by every axis but the seed.
- Where the grid has the axes for them: `depth.md` / `depth.csv` and
  `accuracy_vs_depth.png` (an initialization axis, `init` or `scheme`,
  and a depth axis, `num_layers`, `num_blocks` or `wrn_n`);
  `lr_heatmap.png` (initialization and `lr`); `survival.md` /
  `survival.csv` and `survival.png` (`lr` and `warmup_epochs`);
  `test_error.md` / `test_error.csv` (`arch` and initialization, accuracy
  grids); `hessian.md` / `hessian.csv` and `hessian.png` (Hessian grids).

Conventions, stated in every table: a run's accuracy is the test
accuracy of its best-validation checkpoint; a diverged run (non-finite
loss) counts as accuracy 0 and is also counted in the "diverged" column;
mean +- std are over the seeds that have a result, with the sample
standard deviation (n - 1 in the denominator), "-" for a single seed.
Where the grid has an `lr` axis, the depth table and figure show, for
each scheme and depth, the rate with the highest mean validation accuracy
(diverged runs count 0 there too). A run "survives" when it finished all
its epochs without diverging.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import tempfile

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import grids  # noqa: E402

_OUT_DIR = flags.DEFINE_string(
    "out_dir", None, "Where the tables and figures go; default <sweep>/report."
)

SCHEME_AXES = ("init", "scheme")
DEPTH_AXES = ("num_layers", "num_blocks", "wrn_n")
DEPTH_LABELS = {
    "num_layers": "hidden layers",
    "num_blocks": "residual blocks per stage",
    "wrn_n": "depth (layers)",
}
SCHEME_LABELS = {
    "he": "default WN (He)",
    "orthogonal": "default WN (orthogonal)",
    "he_datadep": "data-dependent (He)",
    "orthogonal_datadep": "data-dependent (orthogonal)",
    "he_proposed": "proposed (He)",
    "orthogonal_proposed": "proposed (orthogonal)",
    "proposed": "proposed",
    "hanin": "stage-wise Hanin",
    "datadep": "data-dependent",
    "default": "default WN",
    "wn_datadep": "WN data-dependent",
    "wn_proposed": "WN proposed",
    "wn_proposed_warmup": "WN proposed + warmup",
    "bn": "batch norm",
}
_DONE = ("finished", "diverged", "hessian")
_CONVENTION = (
    "Accuracy: test accuracy of the best-validation checkpoint; a diverged "
    "run counts 0. Mean +- sample std over seeds."
)


class ReportError(ValueError):
    """A sweep folder the report cannot read."""


# Reading ---------------------------------------------------------------------


def read_flags(path: str) -> dict[str, str]:
    """`--name=value` lines of a train.py flags.txt as {name: value}.

    Booleans written `--name` / `--noname` become "true" / "false".
    """
    values = {}
    if not os.path.exists(path):
        return values
    with open(path) as stream:
        for line in stream:
            line = line.strip()
            if not line.startswith("--"):
                continue
            name, has_value, value = line[2:].partition("=")
            if has_value:
                values[name] = value
            elif name.startswith("no"):
                values[name[2:]] = "false"
            else:
                values[name] = "true"
    return values


def _read_json(path: str) -> dict | None:
    if not os.path.exists(path):
        return None
    with open(path) as stream:
        return json.load(stream)


def _read_log(path: str) -> list[dict[str, str]]:
    if not os.path.exists(path):
        return []
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def load_sweep(sweep_dir: str) -> tuple[dict, grids.Grid, list[dict]]:
    """The sweep's record, its grid and one record per combination.

    Returns:
        `(sweep, grid, runs)`: `sweep.json`, the `grids.Grid` it names, and
        for every combination of axis values a dict with the values, the
        run's state ("not started", "running" or a finished state) and
        its numbers (None where missing).

    Raises:
        ReportError: If `sweep_dir` has no readable `sweep.json` or names
            an unknown grid.
    """
    path = os.path.join(sweep_dir, "sweep.json")
    sweep = _read_json(path)
    if sweep is None:
        raise ReportError(
            f"{path} does not exist: the argument must be a folder made by "
            "experiments/sweep.py (its --sweep_dir)."
        )
    try:
        grid = grids.get(sweep["grid"])
    except ValueError as error:
        raise ReportError(f"{path}: {error}") from error
    runs = []
    for values in grid.combinations():
        directory = os.path.join(sweep_dir, "runs", grid.run_name(values))
        status = _read_json(os.path.join(directory, "status.json")) or {}
        log = _read_log(os.path.join(directory, "log.csv"))
        hessian = status.get("hessian") or {}
        run = dict(values)
        run.update(
            name=grid.run_name(values),
            state=status.get("state", "not started"),
            flags=read_flags(os.path.join(directory, "flags.txt")),
            epochs_done=status.get("epochs_done"),
            num_epochs=status.get("num_epochs"),
            best_val_acc=status.get("best_val_acc"),
            test_acc=status.get("test_acc"),
            diverged_step=status.get("diverged_step"),
            log_hessian=hessian.get("log_spectral_norm"),
            wall_time_s=status.get("wall_time_s"),
            last_train_loss=_float(log[-1]["train_loss"]) if log else None,
        )
        runs.append(run)
    return sweep, grid, runs


def _float(text: str | None) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


# Statistics ------------------------------------------------------------------


def accuracy(run: dict) -> float | None:
    """A run's accuracy: test accuracy, 0 if diverged, None if not done."""
    if run["state"] == "diverged":
        return 0.0
    if run["state"] == "finished" and run["test_acc"] is not None:
        return float(run["test_acc"])
    return None


def validation_score(run: dict) -> float | None:
    """Best validation accuracy, 0 if diverged (the sweep's objective)."""
    if run["state"] == "diverged":
        return 0.0
    if run["state"] == "finished" and run["best_val_acc"] is not None:
        return float(run["best_val_acc"])
    return None


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation; None where undefined."""
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(variance)


def format_mean_std(mean, std, scale: float = 1.0, digits: int = 3) -> str:
    if mean is None:
        return "-"
    text = f"{mean * scale:.{digits}f}"
    return text + (f" +- {std * scale:.{digits}f}" if std is not None else "")


def group(runs: list[dict], keys: list[str]) -> dict[tuple, list[dict]]:
    """Runs grouped by their values of `keys`, in first-seen order."""
    groups = {}
    for run in runs:
        groups.setdefault(tuple(run[key] for key in keys), []).append(run)
    return groups


def summarize(runs: list[dict]) -> dict:
    """Counts and accuracy / Hessian statistics of one group of runs."""
    scores = [a for a in map(accuracy, runs) if a is not None]
    finished_scores = [
        accuracy(run) for run in runs if run["state"] == "finished"
    ]
    finished_scores = [a for a in finished_scores if a is not None]
    validation = [v for v in map(validation_score, runs) if v is not None]
    hessians = [
        float(run["log_hessian"])
        for run in runs
        if run["log_hessian"] is not None
    ]
    acc_mean, acc_std = mean_std(scores)
    fin_mean, _ = mean_std(finished_scores)
    val_mean, _ = mean_std(validation)
    hessian_mean, hessian_std = mean_std(hessians)
    return {
        "runs": len(runs),
        "done": sum(run["state"] in _DONE for run in runs),
        "diverged": sum(run["state"] == "diverged" for run in runs),
        "survived": sum(run["state"] == "finished" for run in runs),
        "acc_mean": acc_mean,
        "acc_std": acc_std,
        "acc_mean_not_diverged": fin_mean,
        "val_mean": val_mean,
        "log_hessian_mean": hessian_mean,
        "log_hessian_std": hessian_std,
        "wall_time_s": sum(run["wall_time_s"] or 0.0 for run in runs),
    }


# Writing ---------------------------------------------------------------------
# wn_keras.training has an atomic text writer and a JSON reader, but
# importing wn_keras loads TensorFlow (seconds), which a report never needs;
# hence the small local `_write_atomic` (bytes, PNG figures too) and
# `_read_json` above.


def _write_atomic(path: str, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(
        dir=os.path.dirname(path), prefix=".tmp-"
    )
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def _write_csv(path: str, header: list[str], rows: list[list]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if cell is None else cell for cell in row])
    _write_atomic(path, buffer.getvalue().encode())


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in rows:
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return "\n".join(lines) + "\n"


def _save_figure(figure, path: str) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    _write_atomic(path, buffer.getvalue())


def _label(value) -> str:
    return SCHEME_LABELS.get(value, grids.format_value(value))


# Tables and figures ----------------------------------------------------------


def runs_table(grid: grids.Grid, runs: list[dict], out_dir: str) -> None:
    names = [axis.name for axis in grid.axes]
    fields = [
        "state",
        "epochs_done",
        "num_epochs",
        "best_val_acc",
        "test_acc",
        "diverged_step",
        "log_hessian",
        "last_train_loss",
        "wall_time_s",
    ]
    _write_csv(
        os.path.join(out_dir, "runs.csv"),
        names + fields,
        [[run[key] for key in names + fields] for run in runs],
    )


def summary_table(grid: grids.Grid, runs: list[dict], out_dir: str) -> str:
    keys = [axis.name for axis in grid.axes if axis.name != "seed"]
    header = keys + ["runs", "done", "diverged"]
    hessian = grid.objective == "log_hessian"
    header += (
        ["log Hessian norm"] if hessian else ["accuracy", "acc. w/o diverged"]
    )
    rows, csv_rows = [], []
    for key, members in group(runs, keys).items():
        stats = summarize(members)
        counts = [stats["runs"], stats["done"], stats["diverged"]]
        if hessian:
            cells = [
                format_mean_std(
                    stats["log_hessian_mean"], stats["log_hessian_std"]
                )
            ]
            numbers = [stats["log_hessian_mean"], stats["log_hessian_std"]]
        else:
            cells = [
                format_mean_std(stats["acc_mean"], stats["acc_std"]),
                format_mean_std(stats["acc_mean_not_diverged"], None),
            ]
            numbers = [
                stats["acc_mean"],
                stats["acc_std"],
                stats["acc_mean_not_diverged"],
            ]
        labels = [grids.format_value(v) for v in key]
        rows.append(labels + counts + cells)
        csv_rows.append(labels + counts + numbers)
    csv_header = keys + ["runs", "done", "diverged"]
    csv_header += (
        ["log_hessian_mean", "log_hessian_std"]
        if hessian
        else ["acc_mean", "acc_std", "acc_mean_not_diverged"]
    )
    _write_csv(os.path.join(out_dir, "summary.csv"), csv_header, rows=csv_rows)
    text = (
        f'## Summary by setting\n\n{_CONVENTION} "acc. w/o diverged": '
        "mean over the runs that did not diverge.\n\n"
        + markdown_table(header, rows)
    )
    _write_atomic(os.path.join(out_dir, "summary.md"), text.encode())
    return text


def _scheme_axis(grid: grids.Grid) -> grids.Axis | None:
    return next((grid.axis(n) for n in SCHEME_AXES if grid.axis(n)), None)


def _depth_axis(grid: grids.Grid) -> grids.Axis | None:
    return next((grid.axis(n) for n in DEPTH_AXES if grid.axis(n)), None)


def best_lr_cells(grid: grids.Grid, runs: list[dict]) -> dict[tuple, dict]:
    """(scheme, depth) -> statistics at the rate with the best validation.

    Without an `lr` axis there is one rate, the flagfile's.
    """
    scheme, depth = _scheme_axis(grid), _depth_axis(grid)
    has_lr = grid.axis("lr") is not None
    cells = {}
    keys = [scheme.name, depth.name] + (["lr"] if has_lr else [])
    for key, members in group(runs, keys).items():
        stats = summarize(members)
        stats["lr"] = key[2] if has_lr else None
        best = cells.get(key[:2])
        if best is None or (stats["val_mean"] or -1) > (best["val_mean"] or -1):
            cells[key[:2]] = stats
    return cells


def depth_report(grid: grids.Grid, runs: list[dict], out_dir: str) -> str:
    import matplotlib.pyplot as plt

    scheme, depth = _scheme_axis(grid), _depth_axis(grid)
    cells = best_lr_cells(grid, runs)
    has_lr = grid.axis("lr") is not None
    header = ["scheme"] + [
        f"{DEPTH_LABELS[depth.name]} {d}" for d in depth.values
    ]
    rows, csv_rows = [], []
    for s in scheme.values:
        row = [_label(s)]
        for d in depth.values:
            stats = cells[(s, d)]
            text = format_mean_std(stats["acc_mean"], stats["acc_std"])
            details = f"{stats['diverged']}/{stats['done']} div."
            if has_lr:
                details = f"lr {grids.format_value(stats['lr'])}, " + details
            row.append(f"{text} ({details})" if stats["done"] else "-")
            csv_rows.append(
                [
                    s,
                    d,
                    stats["lr"],
                    stats["acc_mean"],
                    stats["acc_std"],
                    stats["done"],
                    stats["diverged"],
                ]
            )
        rows.append(row)
    _write_csv(
        os.path.join(out_dir, "depth.csv"),
        [
            scheme.name,
            depth.name,
            "lr",
            "acc_mean",
            "acc_std",
            "done",
            "diverged",
        ],
        csv_rows,
    )

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for s in scheme.values:
        xs, means, stds, lost = [], [], [], []
        for d in depth.values:
            stats = cells[(s, d)]
            if stats["acc_mean"] is None:
                continue
            xs.append(d)
            means.append(stats["acc_mean"])
            stds.append(stats["acc_std"] or 0.0)
            if stats["done"] and stats["diverged"] == stats["done"]:
                lost.append((d, stats["acc_mean"]))
        line = axes.errorbar(
            xs, means, yerr=stds, marker="o", capsize=3, label=_label(s)
        )
        if lost:
            axes.scatter(
                [x for x, _ in lost],
                [y for _, y in lost],
                marker="x",
                s=90,
                color=line[0].get_color(),
                zorder=5,
            )
    axes.scatter([], [], marker="x", color="black", label="all seeds diverged")
    axes.set_xscale("log")
    axes.minorticks_off()
    axes.set_xticks(list(depth.values))
    axes.set_xticklabels([str(d) for d in depth.values])
    axes.set_xlabel(DEPTH_LABELS[depth.name] + " (log scale)")
    axes.set_ylabel("test accuracy (diverged run = 0)")
    axes.set_ylim(-0.03, 1.03)
    title = f"{grid.name}: accuracy against depth\n{grid.description}"
    if has_lr:
        title += "\n(each point at the lr with the best validation accuracy)"
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    _save_figure(figure, os.path.join(out_dir, "accuracy_vs_depth.png"))
    plt.close(figure)

    note = (
        "Each cell: mean +- std over seeds of the test accuracy, "
        + (
            "at the lr with the best mean validation accuracy, "
            if has_lr
            else ""
        )
        + "and how many of the runs diverged. A diverged run counts 0."
    )
    text = (
        "## Accuracy against depth\n\n"
        + note
        + "\n\n"
        + markdown_table(header, rows)
        + "\n![accuracy against depth](accuracy_vs_depth.png)\n"
    )
    _write_atomic(os.path.join(out_dir, "depth.md"), text.encode())
    return text


def lr_heatmap(grid: grids.Grid, runs: list[dict], out_dir: str) -> str:
    import matplotlib.pyplot as plt

    scheme, depth = _scheme_axis(grid), _depth_axis(grid)
    lrs = grid.axis("lr").values
    panels = list(depth.values) if depth else [None]
    figure, axes = plt.subplots(
        1,
        len(panels),
        figsize=(
            2.2 + 1.0 * len(lrs) * len(panels),
            1.2 + 0.45 * len(scheme.values),
        ),
        squeeze=False,
    )
    keys = [scheme.name, "lr"] + ([depth.name] if depth else [])
    stats = {k: summarize(m) for k, m in group(runs, keys).items()}
    image = None
    for index, panel in enumerate(panels):
        ax = axes[0][index]
        matrix = []
        for s in scheme.values:
            row = []
            for lr in lrs:
                key = (s, lr) + ((panel,) if depth else ())
                mean = stats[key]["acc_mean"]
                row.append(float("nan") if mean is None else mean)
            matrix.append(row)
        image = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for i, row in enumerate(matrix):
            for j, value in enumerate(row):
                if not math.isnan(value):
                    ax.text(
                        j,
                        i,
                        f"{value:.2f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if value < 0.6 else "black",
                    )
        ax.set_xticks(range(len(lrs)))
        ax.set_xticklabels([grids.format_value(lr) for lr in lrs], fontsize=8)
        ax.set_xlabel("learning rate")
        ax.set_yticks(range(len(scheme.values)))
        ax.set_yticklabels(
            [_label(s) for s in scheme.values] if index == 0 else [],
            fontsize=8,
        )
        if depth:
            ax.set_title(f"{DEPTH_LABELS[depth.name]}: {panel}", fontsize=9)
    colorbar = figure.colorbar(image, ax=axes[0].tolist(), shrink=0.9)
    colorbar.set_label("mean test accuracy (diverged = 0)")
    figure.suptitle(
        f"{grid.name}: accuracy by learning rate and scheme (blank: no "
        f"result yet)\n{grid.description}",
        fontsize=10,
        y=1.08,
    )
    _save_figure(figure, os.path.join(out_dir, "lr_heatmap.png"))
    plt.close(figure)

    # Share of (depth, lr) settings where the scheme's mean reaches 0.9.
    header = ["scheme", "settings with mean accuracy >= 0.9"]
    rows = []
    for s in scheme.values:
        means = [
            st["acc_mean"]
            for key, st in stats.items()
            if key[0] == s and st["acc_mean"] is not None
        ]
        good = sum(m >= 0.9 for m in means)
        rows.append([_label(s), f"{good} / {len(means)}"])
    return (
        "## Learning rate x scheme\n\nSettings are the (depth, lr) pairs "
        "with a result; mean over seeds, diverged runs count 0.\n\n"
        + markdown_table(header, rows)
        + "\n![lr heatmap](lr_heatmap.png)\n"
    )


def survival_report(grid: grids.Grid, runs: list[dict], out_dir: str) -> str:
    import matplotlib.pyplot as plt

    scheme = _scheme_axis(grid)
    lrs = grid.axis("lr").values
    warmups = grid.axis("warmup_epochs").values
    stats = {
        key: summarize(members)
        for key, members in group(
            runs, [scheme.name, "warmup_epochs", "lr"]
        ).items()
    }
    header = ["scheme", "warmup epochs"] + [
        f"lr {grids.format_value(lr)}" for lr in lrs
    ]
    rows, csv_rows = [], []
    for s in scheme.values:
        for w in warmups:
            row = [_label(s), grids.format_value(w)]
            for lr in lrs:
                st = stats[(s, w, lr)]
                share = st["survived"] / st["done"] if st["done"] else None
                row.append(
                    "-"
                    if share is None
                    else f"{100 * share:.0f}% ({st['survived']}/{st['done']})"
                )
                csv_rows.append([s, w, lr, st["survived"], st["done"], share])
            rows.append(row)
    _write_csv(
        os.path.join(out_dir, "survival.csv"),
        [scheme.name, "warmup_epochs", "lr", "survived", "done", "share"],
        csv_rows,
    )

    figure, panels = plt.subplots(
        1, len(warmups), figsize=(5 * len(warmups), 4.2), sharey=True
    )
    panels = panels if len(warmups) > 1 else [panels]
    for axes, w in zip(panels, warmups):
        for index, s in enumerate(scheme.values):
            # Schemes side by side around each rate, so equal shares stay
            # visible.
            shift = 1 + 0.04 * (index - (len(scheme.values) - 1) / 2)
            xs, ys = [], []
            for lr in lrs:
                st = stats[(s, w, lr)]
                if st["done"]:
                    xs.append(lr * shift)
                    ys.append(100 * st["survived"] / st["done"])
            axes.plot(xs, ys, marker="o", label=_label(s))
        axes.set_xscale("log")
        axes.set_xticks(list(lrs))
        axes.set_xticklabels([grids.format_value(lr) for lr in lrs])
        axes.minorticks_off()
        axes.set_xlabel("learning rate (log scale)")
        axes.set_title(
            "no warmup"
            if not w
            else f"warmup over {grids.format_value(w)} epoch(s)"
        )
        axes.set_ylim(-5, 105)
        axes.grid(alpha=0.3)
    panels[0].set_ylabel("seeds that finish without diverging (%)")
    panels[0].legend(fontsize=8, loc="best")
    figure.suptitle(
        f"{grid.name}: share of seeds that survive\n{grid.description}",
        fontsize=10,
        y=1.06,
    )
    _save_figure(figure, os.path.join(out_dir, "survival.png"))
    plt.close(figure)

    text = (
        "## Seed survival\n\nShare of the seeds that finish all epochs "
        "without a non-finite loss (survived / done).\n\n"
        + markdown_table(header, rows)
        + "\n![survival](survival.png)\n"
    )
    _write_atomic(os.path.join(out_dir, "survival.md"), text.encode())
    return text


def arch_table(grid: grids.Grid, runs: list[dict], out_dir: str) -> str:
    """Architecture x scheme: test error (%) or the log Hessian norm."""
    import matplotlib.pyplot as plt

    scheme = _scheme_axis(grid)
    archs = grid.axis("arch").values if grid.axis("arch") else [None]
    hessian = grid.objective == "log_hessian"
    keys = ([] if archs == [None] else ["arch"]) + [scheme.name]
    stats = {k: summarize(m) for k, m in group(runs, keys).items()}
    header = ["architecture"] + [_label(s) for s in scheme.values]
    rows, csv_rows = [], []
    for arch in archs:
        row = [arch or grid.name]
        for s in scheme.values:
            st = stats[((arch,) if arch else ()) + (s,)]
            if hessian:
                mean, std = st["log_hessian_mean"], st["log_hessian_std"]
                cell = format_mean_std(mean, std, digits=2)
                cell += f" (n={st['done']})"
            else:
                mean = None if st["acc_mean"] is None else 1 - st["acc_mean"]
                std = st["acc_std"]
                cell = format_mean_std(mean, std, scale=100, digits=2)
                cell += f" (n={st['done']}, {st['diverged']} div.)"
            row.append(cell)
            csv_rows.append([arch, s, mean, std, st["done"], st["diverged"]])
        rows.append(row)
    name = "hessian" if hessian else "test_error"
    value = "log_hessian" if hessian else "test_error"
    _write_csv(
        os.path.join(out_dir, f"{name}.csv"),
        [
            "arch",
            scheme.name,
            f"{value}_mean",
            f"{value}_std",
            "done",
            "diverged",
        ],
        csv_rows,
    )
    if hessian:
        figure, axes = plt.subplots(figsize=(7, 4))
        width = 0.8 / len(scheme.values)
        for index, s in enumerate(scheme.values):
            means, stds = [], []
            for arch in archs:
                st = stats[((arch,) if arch else ()) + (s,)]
                means.append(st["log_hessian_mean"] or float("nan"))
                stds.append(st["log_hessian_std"] or 0.0)
            axes.bar(
                [i + index * width for i in range(len(archs))],
                means,
                width,
                yerr=stds,
                capsize=3,
                label=_label(s),
            )
        axes.set_xticks(
            [i + 0.4 - width / 2 for i in range(len(archs))],
            [arch or grid.name for arch in archs],
        )
        axes.set_ylabel("log spectral norm of the Hessian at init")
        axes.set_title(
            f"{grid.name}: Hessian at initialization (lower is flatter)"
        )
        axes.grid(alpha=0.3, axis="y")
        axes.legend(fontsize=8)
        _save_figure(figure, os.path.join(out_dir, "hessian.png"))
        plt.close(figure)
        text = (
            "## Log spectral norm of the Hessian at initialization\n\n"
            "Mean +- sample std over seeds (n = seeds measured).\n\n"
            + markdown_table(header, rows)
            + "\n![hessian](hessian.png)\n"
        )
    else:
        text = (
            "## Test error (%)\n\n100 x (1 - accuracy), mean +- sample std "
            "over seeds; a diverged run counts as 100% error.\n\n"
            + markdown_table(header, rows)
        )
    _write_atomic(os.path.join(out_dir, f"{name}.md"), text.encode())
    return text


def overview(sweep: dict, grid: grids.Grid, runs: list[dict]) -> str:
    states = {}
    for run in runs:
        states[run["state"]] = states.get(run["state"], 0) + 1
    run_time = sum(run["wall_time_s"] or 0.0 for run in runs)
    lines = [
        f"# Sweep {grid.name}",
        "",
        f"{grid.description}",
        "",
        f"- Flagfile: `{sweep.get('flagfile', grid.flagfile)}`; axes: "
        + "; ".join(
            f"{axis.name} = {', '.join(map(grids.format_value, axis.values))}"
            for axis in grid.axes
        ),
        f"- Runs: {len(runs)} ("
        + ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
        + ")",
        f"- Training time summed over runs: {run_time / 60:.1f} min",
    ]
    for session in sweep.get("sessions", []):
        lines.append(
            f"- Session on {session.get('host', '?')} ({session.get('mode')}):"
            f" {session.get('started')} to {session.get('finished', '?')}"
            + (
                f", {session['wall_time_s'] / 60:.1f} min"
                if session.get("wall_time_s")
                else ""
            )
        )
    return "\n".join(lines) + "\n"


# main ------------------------------------------------------------------------


def write_report(sweep_dir: str, out_dir: str | None = None) -> str:
    """Writes every table and figure of a sweep; returns report.md's text."""
    import matplotlib

    matplotlib.use("Agg")
    sweep, grid, runs = load_sweep(sweep_dir)
    out_dir = out_dir or os.path.join(sweep_dir, "report")
    os.makedirs(out_dir, exist_ok=True)

    parts = [overview(sweep, grid, runs)]
    runs_table(grid, runs, out_dir)
    parts.append(summary_table(grid, runs, out_dir))
    scheme, depth = _scheme_axis(grid), _depth_axis(grid)
    accuracy_grid = grid.objective == "val_acc"
    if accuracy_grid and scheme and depth:
        parts.append(depth_report(grid, runs, out_dir))
    if accuracy_grid and scheme and grid.axis("lr"):
        if grid.axis("warmup_epochs"):
            parts.append(survival_report(grid, runs, out_dir))
        else:
            parts.append(lr_heatmap(grid, runs, out_dir))
    if scheme and (grid.axis("arch") or not accuracy_grid):
        parts.append(arch_table(grid, runs, out_dir))
    text = "\n".join(parts)
    _write_atomic(os.path.join(out_dir, "report.md"), text.encode())
    return text


def main(argv: list[str]) -> None:
    """Reads one sweep folder and writes its report."""
    if len(argv) != 2:
        raise ReportError(
            "report.py takes one argument, the sweep folder; received "
            f"{argv[1:]}. Run e.g. `python experiments/report.py "
            "runs/sweeps/mnist_mlp_cpu`."
        )
    sweep_dir = argv[1]
    if not os.path.isdir(sweep_dir):
        raise ReportError(
            f"the sweep folder {sweep_dir!r} does not exist; pass the "
            "--sweep_dir of a sweep.py run."
        )
    out_dir = _OUT_DIR.value or os.path.join(sweep_dir, "report")
    text = write_report(sweep_dir, out_dir)
    print(text)
    print(f"Report written to {out_dir}")


def _entry(argv: list[str]) -> None:
    try:
        main(argv)
    except ReportError as error:
        sys.exit(f"report.py: error: {error}")


if __name__ == "__main__":
    app.run(_entry)
