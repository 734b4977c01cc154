r"""Runs a named grid of training runs with keras-tuner's grid search.

    python experiments/sweep.py --list
    python experiments/sweep.py --grid=mnist_mlp_cpu --local_workers=2

Every grid of `experiments/grids.py` is a train.py flagfile (the fixed
flags) and axes (what varies). keras-tuner's `GridSearch` oracle hands
out one trial per combination of axis values; a trial runs

    python experiments/train.py --flagfile=<grid's flagfile> \
        --<axis flag>=<value> ... --logdir=<sweep_dir>/runs \
        --model_prefix= --model=<run name>

as a subprocess (the same code path as a hand-run train.py; a crash or an
out-of-memory kill of one run cannot take the sweep down) and reports the
run's best validation accuracy from its `status.json` (a diverged run
scores 0 and reports `diverged = 1`; `--hessian` grids report the log
spectral norm). All flags of every trial are checked against train.py's
definitions before the first one starts.

Files under `--sweep_dir`:

- `runs/<run name>/`: train.py's run folder (`flags.txt`, `log.csv`,
  `status.json`, checkpoints). The run name lists the axis values, e.g.
  `init=he__num_layers=20__lr=0.01__seed=0`.
- `logs/<run name>.log`: the run's console output (appended on reruns);
  `logs/tuner-<id>.log`: each process's output under `--local_workers`.
- `tuner/`: keras-tuner's oracle state (`oracle.json`, `trial_*/`).
- `sweep.json`: the grid, its flagfile's text and every session's start
  and end time.

Resuming: rerunning the same command continues the sweep. Finished and
diverged trials are skipped, a trial cut short by a kill runs again and
train.py resumes it from its last epoch. (keras-tuner 1.4's grid-search
oracle does not save where it stands and never runs more than two trials
at once; `ResumableGridOracle` hands out the first combination not yet
taken instead, and writes its files atomically.) A run that diverges
is a result, never retried. A run that crashes is retried
`--crash_retries` times, then recorded as failed; the sweep goes on. A
run that train.py refuses (bad flags, missing data set) stops the sweep:
fix the grid or the flagfile and rerun.

Several processes and machines (keras-tuner's chief/worker mode): one
chief process serves the oracle over gRPC and each worker pulls trials
from it until the grid is done. Each process runs this same command with

    KERASTUNER_ORACLE_IP    address of the chief (e.g. 127.0.0.1)
    KERASTUNER_ORACLE_PORT  its port (any free one)
    KERASTUNER_TUNER_ID     "chief" for the chief, a unique name for each
                            worker (e.g. worker0, worker1)

and the same `--grid` and `--sweep_dir`. Workers must see the sweep
folder at the same path (a shared file system across machines), because
the runs' files are read there. On one machine `--local_workers=N`
starts a chief and N workers on a free loopback port and waits for them.
A worker that is killed gets its unfinished trial back when it restarts
with the same KERASTUNER_TUNER_ID; the chief exits once every trial has
ended and every worker has asked for more work (it checks every 20 s).

Limitations: a worker that never comes back keeps the chief waiting for
its trial; stop the chief and rerun the sweep, which then runs that trial
again. Trial processes share the machine's cores: on a CPU, more workers
than cores slow each run down.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import itertools
import os
import signal
import socket
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)

import grids  # noqa: E402
import keras_tuner  # noqa: E402
import train  # noqa: E402

from wn_keras import training  # noqa: E402

_GRID = flags.DEFINE_string(
    "grid", None, "Name of the grid to run (see --list and grids.py)."
)
_SWEEP_DIR = flags.DEFINE_string(
    "sweep_dir",
    None,
    "Folder of the sweep's runs, logs and oracle state; default "
    "runs/sweeps/<grid>. Rerunning with the same folder resumes the sweep.",
)
_LIST = flags.DEFINE_bool("list", False, "Print the grids and exit.")
_DRY_RUN = flags.DEFINE_bool(
    "dry_run",
    False,
    "Check every trial's flags, print each train.py command and exit.",
)
_LOCAL_WORKERS = flags.DEFINE_integer(
    "local_workers",
    0,
    "Run the grid with a chief and this many worker processes on this "
    "machine (keras-tuner's chief/worker mode on loopback); 0 runs the "
    "trials one after another in this process.",
)
_TRAIN_SCRIPT = flags.DEFINE_string(
    "train_script",
    None,
    "The script each trial runs, with train.py's command line and outputs; "
    "default experiments/train.py. Tests use a quick stand-in.",
)
_CRASH_RETRIES = flags.DEFINE_integer(
    "crash_retries",
    1,
    "Times a crashed run (not a diverged one) is run again before it is "
    "recorded as failed.",
)

FLAGS = flags.FLAGS

DEFAULT_TRAIN_SCRIPT = os.path.join(_HERE, "train.py")
ROOT = os.path.dirname(_HERE)
# Flags the sweep sets on every trial; an axis may not set them.
_SWEEP_SET_FLAGS = ("logdir", "model_prefix", "model", "overwrite")
_FINISHED_STATES = ("finished", "diverged", "hessian")
_ORACLE_ENV = (
    "KERASTUNER_ORACLE_IP",
    "KERASTUNER_ORACLE_PORT",
    "KERASTUNER_TUNER_ID",
)
# Seconds a worker waits before asking again when the oracle has no trial
# for it yet (others are still running the last ones).
_IDLE_POLL_S = 2.0
_TUNER_PROJECT = "tuner"
_PR_SET_PDEATHSIG = 1
_TrialStatus = keras_tuner.engine.trial.TrialStatus


class SweepError(ValueError):
    """A grid, flag or environment setting the sweep cannot run with."""


# Trials ----------------------------------------------------------------------


def run_dir(sweep_dir: str, grid: grids.Grid, values) -> str:
    """The train.py run folder of one combination of axis values."""
    return os.path.join(sweep_dir, "runs", grid.run_name(values))


def trial_command(
    grid: grids.Grid, values, sweep_dir: str, script: str | None = None
) -> list[str]:
    """The train.py command line of one combination of axis values."""
    return [
        sys.executable,
        script or DEFAULT_TRAIN_SCRIPT,
        f"--flagfile={grid.flagfile_path}",
        *grids.flag_arguments(grid.trial_flags(values)),
        f"--logdir={os.path.join(sweep_dir, 'runs')}",
        "--model_prefix=",
        f"--model={grid.run_name(values)}",
    ]


def trial_metrics(status: dict, objective: str) -> dict[str, float]:
    """What a finished run reports to keras-tuner, from its status.json.

    Args:
        status: The run's status.json, in a finished state.
        objective: The grid's objective, "val_acc" or "log_hessian".

    Returns:
        `{objective: value, "diverged": 0 or 1, ...}`; a diverged run's
        "val_acc" is 0 whatever it reached before diverging.

    Raises:
        keras_tuner.errors.FailedTrialError: If a --hessian run has no
            finite log spectral norm.
    """
    diverged = status["state"] == "diverged"
    metrics = {"diverged": float(diverged)}
    if objective == "log_hessian":
        hessian = status.get("hessian") or {}
        if hessian.get("log_spectral_norm") is None:
            raise keras_tuner.errors.FailedTrialError(
                f"{status.get('run_dir')}: the Hessian estimate "
                f"{hessian.get('spectral_norm')} has no logarithm."
            )
        metrics["log_hessian"] = float(hessian["log_spectral_norm"])
        return metrics
    best = status.get("best_val_acc")
    metrics["val_acc"] = 0.0 if diverged or best is None else float(best)
    if status.get("test_acc") is not None:
        metrics["test_acc"] = float(status["test_acc"])
    return metrics


def _die_with_parent() -> None:
    """In a child process: be killed when the process that started it dies.

    Without this, killing a sweep would leave its running train.py
    behind, and the rerun sweep would start a second one on the same run
    folder. Linux only; elsewhere nothing happens.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _trial_environment() -> dict[str, str]:
    # This checkout's wn_keras first, whether or not it is installed.
    path = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=path)


def _refusal(log_path: str, start: int) -> str | None:
    """train.py's one-line refusal in the log written from `start`, if any."""
    with open(log_path, errors="replace") as stream:
        stream.seek(start)
        for line in stream:
            if line.startswith("train.py: error:"):
                return line.strip()
    return None


# keras-tuner -----------------------------------------------------------------


class ResumableGridOracle(keras_tuner.oracles.GridSearchOracle):
    """keras-tuner's grid-search oracle, parallel and resumable after a kill.

    keras-tuner 1.4's `GridSearchOracle` derives each new trial from one
    that has ended, so no more than two trials ever run at once however
    many workers ask, and it does not save where it stands, so after a
    reload it stops once the trials it had started are done. This oracle
    hands out, in the same order (the last axis varies fastest), the first
    combination that no trial has taken yet; what has been taken is part
    of the saved state. On reload it queues for another run every trial
    that was started but never ended (also one saved between two writes
    of a kill), and it writes its files atomically.
    """

    def populate_space(self, trial_id):
        space = self.get_space().space
        names = [hp.name for hp in space]
        for combination in itertools.product(*(hp.values for hp in space)):
            values = dict(zip(names, combination))
            if not self._duplicate(values):
                return {"status": _TrialStatus.RUNNING, "values": values}
        if self.ongoing_trials:
            return {"status": _TrialStatus.IDLE, "values": None}
        return {"status": _TrialStatus.STOPPED, "values": None}

    def reload(self):
        super().reload()
        # keras-tuner saves before it drops an ended trial from the
        # ongoing ones; such a trial must not run again.
        self._retry_queue = [
            trial_id
            for trial_id in self._retry_queue
            if trial_id not in self.end_order
        ]
        for trial_id in self.trials:
            ended = trial_id in self.end_order
            if not ended and trial_id not in self._retry_queue:
                self._retry_queue.append(trial_id)
            if trial_id not in self.start_order:
                self.start_order.append(trial_id)
            self._record_values(self.trials[trial_id])

    @keras_tuner.synchronized
    def end_trial(self, trial):
        super().end_trial(trial)
        # keras-tuner saved the state before the trial left the ongoing
        # ones; in chief/worker mode nothing saves it again. The chief
        # serves workers from several threads: this save must hold the
        # oracle's lock like the rest of end_trial, or it reads the state
        # while another worker's request changes it.
        self.save()

    def save(self):
        training.write_json_atomic(self._get_oracle_fname(), self.get_state())

    def _save_trial(self, trial):
        path = os.path.join(self._get_trial_dir(trial.trial_id), "trial.json")
        training.write_json_atomic(path, trial.get_state())


class TrainScriptTuner(keras_tuner.Tuner):
    """Runs each trial as a train.py subprocess and reads its status.json.

    Args:
        grid: The grid to run.
        sweep_dir: The sweep's folder.
        crash_retries: Extra runs of a trial whose train.py crashed.
        script: The training script; default experiments/train.py.
    """

    def __init__(
        self,
        grid: grids.Grid,
        sweep_dir: str,
        crash_retries: int,
        script: str | None = None,
    ):
        self.grid = grid
        self.sweep_dir = sweep_dir
        self.script = script
        hyperparameters = keras_tuner.HyperParameters()
        for axis in grid.axes:
            hyperparameters.Choice(axis.name, list(axis.values), ordered=False)
        oracle = ResumableGridOracle(
            objective=keras_tuner.Objective(
                grid.objective, grids.OBJECTIVES[grid.objective]
            ),
            hyperparameters=hyperparameters,
            allow_new_entries=False,
            tune_new_entries=False,
            max_retries_per_trial=crash_retries,
            # Failed runs never stop the sweep.
            max_consecutive_failed_trials=grid.size + 1,
        )
        _adopt_saved_oracle(sweep_dir)
        super().__init__(
            oracle=oracle, directory=sweep_dir, project_name=_TUNER_PROJECT
        )
        self._waiting = False

    def run_trial(self, trial, *args, **kwargs):
        values = trial.hyperparameters.values
        name = self.grid.run_name(values)
        command = trial_command(self.grid, values, self.sweep_dir, self.script)
        log_path = os.path.join(self.sweep_dir, "logs", f"{name}.log")
        with open(log_path, "a") as log:
            start = log.tell()
            log.write(
                f"# {_now()} trial {trial.trial_id} on {self.tuner_id}: "
                f"{' '.join(command)}\n"
            )
            log.flush()
            returncode = subprocess.run(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=_trial_environment(),
                preexec_fn=_die_with_parent,
                check=False,
            ).returncode
        if returncode:
            refusal = _refusal(log_path, start)
            if refusal:
                raise keras_tuner.errors.FatalError(
                    f"Trial {name} was refused: {refusal}. Fix grid "
                    f"{self.grid.name!r} or its flagfile and rerun."
                )
            raise RuntimeError(
                f"train.py exited with status {returncode} in trial {name}; "
                f"its output is in {log_path}."
            )
        status = training.read_json(
            os.path.join(
                run_dir(self.sweep_dir, self.grid, values), "status.json"
            )
        )
        if not status or status.get("state") not in _FINISHED_STATES:
            raise RuntimeError(
                f"train.py left trial {name} unfinished (status "
                f"{status and status.get('state')}); see {log_path}."
            )
        return trial_metrics(status, self.grid.objective)

    def pre_create_trial(self):
        # A worker whose last request got no trial (the oracle waits for
        # running ones) asks again after a pause instead of at once.
        if self._waiting:
            time.sleep(_IDLE_POLL_S)
        self._waiting = True

    def on_trial_begin(self, trial):
        self._waiting = False
        super().on_trial_begin(trial)

    def on_trial_end(self, trial):
        # keras-tuner keeps why a trial failed in trial.json only; say it
        # in this process's log too, where a user watching the sweep looks.
        failed = (_TrialStatus.INVALID, _TrialStatus.FAILED)
        if trial.status in failed and trial.message:
            print(
                f"Trial {trial.trial_id} ({trial.status}) on "
                f"{self.tuner_id}:\n{trial.message}",
                flush=True,
            )
        super().on_trial_end(trial)

    def save(self):
        if not self._is_worker():
            self.oracle.save()
        training.write_json_atomic(self._get_tuner_fname(), self.get_state())


def _adopt_saved_oracle(sweep_dir: str) -> None:
    """Lets a chief or single process reload an oracle that another saved.

    keras-tuner reloads the oracle only when it finds the file of this
    process's tuner id, so a sweep started alone (id tuner0) and rerun
    with workers (chief) would otherwise start the grid afresh.
    """
    project = os.path.join(sweep_dir, _TUNER_PROJECT)
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID", "tuner0")
    is_worker = "KERASTUNER_ORACLE_IP" in os.environ and "chief" not in tuner_id
    tuner_file = os.path.join(project, f"{tuner_id}.json")
    oracle_file = os.path.join(project, "oracle.json")
    if (
        not is_worker
        and os.path.exists(oracle_file)
        and not os.path.exists(tuner_file)
    ):
        training.write_json_atomic(tuner_file, {})


# Checks ----------------------------------------------------------------------


def _check_own_flags() -> None:
    train_flags = sorted(
        f"--{name}" for name in _train_flag_names() if FLAGS[name].present
    )
    if train_flags:
        raise SweepError(
            f"sweep.py received train.py flags {train_flags}; a sweep's "
            "train.py flags come from the grid's flagfile and axes. Edit "
            "experiments/grids.py or the flagfile, or run train.py itself."
        )
    if _LOCAL_WORKERS.value < 0:
        raise SweepError(
            "--local_workers must be >= 0; received "
            f"--local_workers={_LOCAL_WORKERS.value}. Pass 0 to run in this "
            "process, or e.g. 2."
        )
    if _CRASH_RETRIES.value < 0:
        raise SweepError(
            "--crash_retries must be >= 0; received "
            f"--crash_retries={_CRASH_RETRIES.value}. Pass e.g. 1."
        )
    present = [name for name in _ORACLE_ENV if name in os.environ]
    if present and (_LOCAL_WORKERS.value or len(present) != 3):
        raise SweepError(
            "The chief/worker mode needs all of "
            f"{', '.join(_ORACLE_ENV)} in the environment, and "
            "--local_workers=0; received "
            f"{ {name: os.environ[name] for name in present} } with "
            f"--local_workers={_LOCAL_WORKERS.value}. Set all three, or "
            "none and use --local_workers."
        )


def _train_flag_names() -> set[str]:
    return {holder.name for holder in train.RUN_FLAGS}


def check_grid(grid: grids.Grid) -> None:
    """Checks every trial's train.py flags; raises before anything runs.

    Each combination is parsed with train.py's own flag definitions
    (the flagfile, then the axis flags) and checked by train.py's
    validation, as the trial's subprocess will do.

    Raises:
        SweepError: naming the grid, the axis or combination and the
            problem, for a missing flagfile, a flag train.py does not
            know, a flag the sweep sets itself, or a value train.py
            refuses.
    """
    if not os.path.exists(grid.flagfile_path):
        raise SweepError(
            f"grid {grid.name!r}: its flagfile {grid.flagfile_path} does not "
            "exist. Create it or fix Grid.flagfile in experiments/grids.py."
        )
    known = _train_flag_names()
    for axis in grid.axes:
        for value in axis.values:
            for name in axis.flags(value):
                if name not in known or name in _SWEEP_SET_FLAGS:
                    raise SweepError(
                        f"grid {grid.name!r}, axis {axis.name!r} value "
                        f"{value!r} sets --{name}, which "
                        + (
                            "the sweep sets itself"
                            if name in known
                            else "is not a flag of train.py"
                        )
                        + ". Use a flag from `python experiments/train.py "
                        "--helpfull` other than "
                        f"{', '.join(_SWEEP_SET_FLAGS)}."
                    )
    try:
        for values in grid.combinations():
            for name in known:
                FLAGS[name].unparse()
            argv = trial_command(grid, values, "sweep")[1:]
            try:
                FLAGS(argv)
                train.validate_flags()
            except (flags.Error, train.FlagError) as error:
                raise SweepError(
                    f"grid {grid.name!r}: train.py refuses the combination "
                    f"{values} ({error}). Change the axis values in "
                    f"experiments/grids.py or the flagfile {grid.flagfile}."
                ) from error
    finally:
        for name in known:
            FLAGS[name].unparse()


# Sweep folder ----------------------------------------------------------------


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"
    )


def _record_session(sweep_dir: str, grid: grids.Grid, **session) -> int:
    """Adds (or, given `index`, updates) a session in `sweep.json`.

    Returns:
        The session's index.

    Raises:
        SweepError: If the folder holds a sweep of another grid.
    """
    path = os.path.join(sweep_dir, "sweep.json")
    record = training.read_json(path) or {
        "grid": grid.name,
        "axes": {axis.name: list(axis.values) for axis in grid.axes},
        "objective": grid.objective,
        "flagfile": os.path.relpath(grid.flagfile_path, ROOT),
        "sessions": [],
    }
    if record["grid"] != grid.name:
        raise SweepError(
            f"--sweep_dir={sweep_dir} holds a sweep of grid "
            f"{record['grid']!r}, not {grid.name!r}. Pass another "
            "--sweep_dir."
        )
    with open(grid.flagfile_path) as stream:
        record["flagfile_text"] = stream.read()
    index = session.pop("index", None)
    if index is None:
        record["sessions"].append(session)
        index = len(record["sessions"]) - 1
    else:
        record["sessions"][index].update(session)
    training.write_json_atomic(path, record)
    return index


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run_local_workers(grid: grids.Grid, sweep_dir: str, workers: int) -> int:
    """Starts a chief and `workers` workers on loopback; waits for all."""
    port = _free_port()
    command = [
        sys.executable,
        os.path.abspath(__file__),
        f"--grid={grid.name}",
        f"--sweep_dir={sweep_dir}",
        f"--crash_retries={_CRASH_RETRIES.value}",
    ]
    if _TRAIN_SCRIPT.value:
        command.append(f"--train_script={_TRAIN_SCRIPT.value}")
    processes = []
    for tuner_id in ["chief"] + [f"worker{i}" for i in range(workers)]:
        env = dict(
            os.environ,
            KERASTUNER_ORACLE_IP="127.0.0.1",
            KERASTUNER_ORACLE_PORT=str(port),
            KERASTUNER_TUNER_ID=tuner_id,
        )
        log = open(
            os.path.join(sweep_dir, "logs", f"tuner-{tuner_id}.log"), "a"
        )
        processes.append(
            (
                tuner_id,
                subprocess.Popen(
                    command,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=_die_with_parent,
                ),
                log,
            )
        )
    print(
        f"Chief and {workers} workers on 127.0.0.1:{port}; logs in "
        f"{os.path.join(sweep_dir, 'logs')}/tuner-*.log",
        flush=True,
    )
    failed = []
    for tuner_id, process, log in processes:
        if process.wait():
            failed.append(f"{tuner_id} (status {process.returncode})")
        log.close()
    if failed:
        print(f"Processes that failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def _states(sweep_dir: str, grid: grids.Grid) -> dict[str, str]:
    """Run name -> state in its status.json ("not started" without one)."""
    states = {}
    for values in grid.combinations():
        status = training.read_json(
            os.path.join(run_dir(sweep_dir, grid, values), "status.json")
        )
        states[grid.run_name(values)] = (
            status["state"] if status else "not started"
        )
    return states


def _progress(sweep_dir: str, grid: grids.Grid) -> str:
    counts = {}
    for state in _states(sweep_dir, grid).values():
        counts[state] = counts.get(state, 0) + 1
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))


def _search(tuner, grid: grids.Grid, sweep_dir: str, is_worker: bool) -> int:
    """Runs the tuner; a worker that finds the chief gone ends cleanly.

    A worker that starts (or asks for work) after the chief has handed
    out the last trial and exited cannot reach it any more; that is the
    normal end when every run of the grid is done.
    """
    import grpc

    try:
        tuner.search()
    except grpc.RpcError as error:
        if not is_worker:
            raise
        progress = _progress(sweep_dir, grid)
        states = _states(sweep_dir, grid).values()
        if all(state in _FINISHED_STATES for state in states):
            print("The chief has ended and every run is done.", flush=True)
            return 0
        raise SweepError(
            f"worker {tuner.tuner_id} lost the chief at "
            f"{os.environ['KERASTUNER_ORACLE_IP']}:"
            f"{os.environ['KERASTUNER_ORACLE_PORT']} ({error.code()}) with "
            f"runs left ({progress}). Start the chief again, then the "
            "workers."
        ) from error
    return 0


# main ------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    """Lists the grids, or checks and runs one; returns the exit status."""
    if len(argv) > 1:
        raise SweepError(
            f"sweep.py takes only flags; received {argv[1:]}. Write e.g. "
            "--grid=mnist_mlp_cpu."
        )

    # 1. What to do.
    if _LIST.value:
        print(grids.describe())
        return 0
    if not _GRID.value:
        raise SweepError(
            "--grid is required; received none. `python experiments/"
            "sweep.py --list` shows the grids."
        )
    _check_own_flags()
    grid = grids.get(_GRID.value)
    sweep_dir = os.path.abspath(
        _SWEEP_DIR.value or os.path.join("runs", "sweeps", grid.name)
    )

    # 2. Every trial's flags, before anything runs or is written.
    check_grid(grid)
    if _DRY_RUN.value:
        for values in grid.combinations():
            print(
                " ".join(
                    trial_command(grid, values, sweep_dir, _TRAIN_SCRIPT.value)
                )
            )
        return 0

    # 3. The sweep folder.
    os.makedirs(os.path.join(sweep_dir, "logs"), exist_ok=True)
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID", "tuner0")
    is_worker = "KERASTUNER_ORACLE_IP" in os.environ and "chief" not in tuner_id
    started = time.time()
    session = None
    if not is_worker and not _LOCAL_WORKERS.value:
        session = _record_session(
            sweep_dir,
            grid,
            started=_now(),
            host=socket.gethostname(),
            mode="chief" if "KERASTUNER_ORACLE_IP" in os.environ else "single",
        )
    print(f"Grid {grid.name}: {grid.size} runs in {sweep_dir}", flush=True)

    # 4. Run: supervise local workers, or serve / pull / run the trials.
    if _LOCAL_WORKERS.value:
        code = _run_local_workers(grid, sweep_dir, _LOCAL_WORKERS.value)
    else:
        tuner = TrainScriptTuner(
            grid, sweep_dir, _CRASH_RETRIES.value, _TRAIN_SCRIPT.value
        )
        code = _search(tuner, grid, sweep_dir, is_worker)

    # 5. Summary.
    if session is not None:
        _record_session(
            sweep_dir,
            grid,
            index=session,
            finished=_now(),
            wall_time_s=round(time.time() - started, 1),
        )
    print(f"Runs: {_progress(sweep_dir, grid)}", flush=True)
    return code


def _entry(argv: list[str]) -> None:
    try:
        sys.exit(main(argv))
    except (SweepError, ValueError) as error:
        sys.exit(f"sweep.py: error: {error}")


if __name__ == "__main__":
    app.run(_entry)
