"""Shared timing, statistics and output helpers of the benchmark scripts.

Every benchmark compares variants (with and without weight normalization,
one device against two, ...) inside one process. To keep a change of
machine load from favouring one variant, `interleaved_timings` runs the
variants round-robin: each round times every variant once, and the order
rotates from round to round so that no variant always follows the same
one. Ratios are taken round by round (`paired_ratios`), between samples
measured seconds apart, and then summarized by their median.

Outputs are written atomically (a temporary file in the same directory,
then `os.replace`), so an interrupted run never leaves half a CSV.
"""

from __future__ import annotations

import csv
import importlib.metadata
import io
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from absl import flags, logging


def interleaved_timings(
    variants: dict[str, Callable[[], Any]],
    repeats: int,
    warmup: int = 1,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Times each variant ``repeats`` times, round-robin.

    Two clocks are read around every sample: wall-clock time, which is
    what a user waits, and the CPU time of this process (all threads),
    which leaves out the time other processes hold the cores and so
    varies much less on a shared machine (it does include threads
    spinning while they wait for work, so it is not a pure FLOP count).

    Args:
        variants: name -> a callable that does the measured work once and
            returns only when it is finished (e.g. after `.numpy()`).
        repeats: number of timed rounds.
        warmup: untimed rounds first (tracing, compilation, caches).

    Returns:
        ``(wall, cpu)``: each maps name -> ``repeats`` durations in seconds.
    """
    names = list(variants)
    for round_index in range(warmup):
        for name in names:
            logging.info("warm-up %d/%d: %s", round_index + 1, warmup, name)
            variants[name]()
    wall = {name: [] for name in names}
    cpu = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            wall_start = time.perf_counter()
            cpu_start = time.process_time()
            variants[name]()
            cpu[name].append(time.process_time() - cpu_start)
            wall[name].append(time.perf_counter() - wall_start)
        logging.info(
            "round %d/%d (wall s): %s",
            round_index + 1,
            repeats,
            ", ".join(f"{n}={wall[n][-1]:.4f}" for n in names),
        )
    return wall, cpu


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median and spread (first and third quartile, min, max)."""
    array = np.asarray(values, dtype=float)
    return {
        "median": float(np.median(array)),
        "q1": float(np.percentile(array, 25)),
        "q3": float(np.percentile(array, 75)),
        "min": float(array.min()),
        "max": float(array.max()),
    }


def paired_ratios(
    numerator: Sequence[float], denominator: Sequence[float]
) -> dict[str, float]:
    """Summary of the round-by-round ratios numerator / denominator."""
    ratios = np.asarray(numerator, float) / np.asarray(denominator, float)
    return summary(ratios)


def machine_info() -> dict[str, str]:
    """CPU model, core count and library versions, for the README table."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    try:
        import keras
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
        info["keras"] = keras.__version__
        gpus = tf.config.list_physical_devices("GPU")
        info["gpus"] = str(len(gpus))
    except ImportError:
        pass
    try:
        # Read from the package metadata: importing torch is not needed.
        info["torch"] = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        info["torch"] = "not installed"
    return info


def write_atomic(path: str, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=directory, suffix=".tmp")
    try:
        with os.fdopen(handle, "w", newline="") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def write_csv(
    path: str, rows: Sequence[dict[str, Any]], columns: Sequence[str]
) -> None:
    """Writes ``rows`` (dicts keyed by ``columns``) as CSV, atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns))
    writer.writeheader()
    for row in rows:
        writer.writerow({column: _cell(row.get(column)) for column in columns})
    write_atomic(path, buffer.getvalue())


def script_flags() -> str:
    """The flags defined by the running script, one ``--name=value`` a line."""
    main_module = sys.modules["__main__"]
    key_flags = flags.FLAGS.get_key_flags_for_module(main_module)
    return "\n".join(flag.serialize() for flag in key_flags)


def write_run_info(path: str, flags_text: str) -> None:
    """Writes the machine description and the flags of this run as JSON."""
    record = {"machine": machine_info(), "flags": flags_text.splitlines()}
    write_atomic(path, json.dumps(record, indent=2) + "\n")


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain-text table of ``rows`` with one column per name."""
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [
        max([len(column)] + [len(line[i]) for line in cells])
        for i, column in enumerate(columns)
    ]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(columns, widths)),
        "  ".join("-" * w for w in widths),
    ]
    for line in cells:
        lines.append("  ".join(c.ljust(w) for c, w in zip(line, widths)))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def register_subset_validator(name: str, allowed: Sequence[str]) -> None:
    """Makes absl reject a list flag with an unknown or no entry.

    absl then stops with ``flag --NAME=VALUE: <message>``, which names the
    flag and shows what came.
    """
    flags.register_validator(
        name,
        lambda values: bool(values) and set(values) <= set(allowed),
        message=(
            f"--{name} takes a comma-separated, non-empty subset of "
            f"{','.join(allowed)}"
        ),
    )
