"""Tests for experiments/grids.py and experiments/sweep.py.

Most sweeps here run a stand-in training script (`FAKE_TRAIN`, plain
Python, milliseconds per run) that takes train.py's command line and
writes train.py's outputs, so that resuming after a kill, divergence,
crashes and refusals can be checked quickly. One test runs the real
train.py through the chief/worker mode on the `smoke` grid.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import keras_tuner
import pytest
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEP = os.path.join(ROOT, "experiments", "sweep.py")
sys.path.insert(0, os.path.join(ROOT, "experiments"))

import grids  # noqa: E402
import sweep  # noqa: E402

FLAGS = flags.FLAGS
SUBPROCESS_TIMEOUT_S = 300

# A stand-in for train.py: reads --logdir, --model, --init and --seed,
# appends "<run name>" to <logdir>/../invocations.txt, and behaves as the
# JSON plan in $FAKE_PLAN says for its run name: "finish" (default),
# "diverge", "crash" (exit 3, no status), "refuse" (train.py's one-line
# error) or "slow" (sleep, then finish).
FAKE_TRAIN = textwrap.dedent(
    """
    import json, os, sys, time
    args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if "=" in a)
    name = args["model"]
    run_dir = os.path.join(args["logdir"], name)
    sweep_dir = os.path.dirname(args["logdir"])
    with open(os.path.join(sweep_dir, "invocations.txt"), "a") as out:
        out.write(f"{name} {os.getpid()}\\n")
    action = json.loads(os.environ.get("FAKE_PLAN", "{}")).get(name, "")
    if action == "crash":
        sys.exit(3)
    if action == "refuse":
        sys.exit("train.py: error: --lr must be positive; received --lr=-1.")
    if action == "slow":
        time.sleep(60)
    os.makedirs(run_dir, exist_ok=True)
    seed = int(args.get("seed", 0))
    status = {
        "state": "diverged" if action == "diverge" else "finished",
        "best_val_acc": 0.5 + 0.1 * seed,
        "test_acc": 0.4 + 0.1 * seed,
        "epochs_done": 1,
        "num_epochs": 1,
        "run_dir": run_dir,
    }
    with open(os.path.join(run_dir, "status.json"), "w") as out:
        json.dump(status, out)
    """
)
SMOKE = grids.get("smoke")
SMOKE_NAMES = [SMOKE.run_name(values) for values in SMOKE.combinations()]


@pytest.fixture
def fake_train(tmp_path):
    path = tmp_path / "fake_train.py"
    path.write_text(FAKE_TRAIN)
    return str(path)


@pytest.fixture
def fresh_flags():
    FLAGS.unparse_flags()
    yield
    FLAGS.unparse_flags()


def _invocations(sweep_dir) -> list[str]:
    path = os.path.join(sweep_dir, "invocations.txt")
    if not os.path.exists(path):
        return []
    with open(path) as stream:
        return [line.split()[0] for line in stream]


def _status(sweep_dir, name) -> dict:
    with open(os.path.join(sweep_dir, "runs", name, "status.json")) as f:
        return json.load(f)


def _trials(sweep_dir) -> dict[str, dict]:
    """Run name -> trial.json of every keras-tuner trial of a sweep."""
    trials = {}
    tuner_dir = os.path.join(sweep_dir, "tuner")
    for entry in sorted(os.listdir(tuner_dir)):
        if entry.startswith("trial_"):
            with open(os.path.join(tuner_dir, entry, "trial.json")) as f:
                trial = json.load(f)
            trials[SMOKE.run_name(trial["hyperparameters"]["values"])] = trial
    return trials


def _retry_reasons(sweep_dir, logs) -> str:
    """Why trials were run again: their keras-tuner messages, worker logs."""
    parts = [
        f"{name}: {trial.get('message')}"
        for name, trial in _trials(sweep_dir).items()
        if trial.get("message")
    ]
    for log in sorted(logs.glob("tuner-*.log")):
        parts.append(f"{log.name}: ...{log.read_text()[-1500:]}")
    return "\n".join(parts)


def _search(sweep_dir, script, crash_retries=1):
    os.makedirs(os.path.join(sweep_dir, "logs"), exist_ok=True)
    tuner = sweep.TrainScriptTuner(SMOKE, str(sweep_dir), crash_retries, script)
    tuner.search()
    return tuner


def _environment(**extra) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
    environment = dict(os.environ, PYTHONPATH=path, TF_CPP_MIN_LOG_LEVEL="3")
    for name in sweep._ORACLE_ENV:
        environment.pop(name, None)
    environment.update(extra)
    return environment


# grids.py --------------------------------------------------------------------


def test_combinations_names_and_flags_of_a_grid():
    grid = grids.Grid(
        "t",
        "smoke.cfg",
        "test",
        (
            grids.Axis(
                "scheme",
                ("a", "b"),
                presets={
                    "a": {"init": "he", "weight_norm": True},
                    "b": {"init": "orthogonal", "weight_norm": False},
                },
            ),
            grids.Axis("lr", (0.01, 0.1)),
        ),
    )
    assert grid.size == 4
    assert grid.combinations() == [
        {"scheme": "a", "lr": 0.01},
        {"scheme": "a", "lr": 0.1},
        {"scheme": "b", "lr": 0.01},
        {"scheme": "b", "lr": 0.1},
    ]
    values = {"scheme": "b", "lr": 0.1}
    assert grid.run_name(values) == "scheme=b__lr=0.1"
    assert grids.flag_arguments(grid.trial_flags(values)) == [
        "--init=orthogonal",
        "--noweight_norm",
        "--lr=0.1",
    ]


@pytest.mark.parametrize(
    "name, values, presets, match",
    [
        ("lr", (), None, "lists no values"),
        ("lr", (0, 0.1), None, "of one type"),
        ("lr", ([0.1],), None, "of one type"),
        ("lr", (0.1, 0.1), None, "repeats a value"),
        ("scheme", ("a", "b"), {"a": {}}, r"without a preset: \['b'\]"),
    ],
)
def test_bad_axes_are_refused(name, values, presets, match):
    with pytest.raises(ValueError, match=match):
        grids.Axis(name, values, presets=presets)


def test_bad_grids_are_refused():
    axis = grids.Axis("lr", (0.1,))
    with pytest.raises(ValueError, match="names an axis twice"):
        grids.Grid("t", "smoke.cfg", "", (axis, axis))
    with pytest.raises(ValueError, match="objective must be one of"):
        grids.Grid("t", "smoke.cfg", "", (axis,), objective="loss")


def test_unknown_grid_name_lists_the_grids():
    with pytest.raises(ValueError) as error:
        grids.get("mnist")
    message = str(error.value)
    assert "--grid='mnist'" in message and "mnist_mlp_cpu" in message
    assert "--list" in message


# Checks before a sweep starts ------------------------------------------------


def _grid_with(axis, flagfile="smoke.cfg"):
    return grids.Grid("t", flagfile, "test", (axis,))


@pytest.mark.parametrize(
    "axis, match",
    [
        (grids.Axis("learning_rate", (0.1,)), "--learning_rate, which is not"),
        (grids.Axis("model", ("x",)), "--model, which the sweep sets"),
        (grids.Axis("lr", (-1.0,)), r"\{'lr': -1.0\} \(--lr must be positive"),
        (grids.Axis("init", ("bogus",)), r"refuses.*\{'init': 'bogus'\}"),
        (grids.Axis("nn", ("mlp",)), None),
    ],
)
def test_check_grid_refuses_bad_flags_and_values(axis, match, fresh_flags):
    grid = _grid_with(axis)
    if match is None:
        sweep.check_grid(grid)  # a good grid passes
        return
    with pytest.raises(sweep.SweepError, match=match) as error:
        sweep.check_grid(grid)
    assert "grid 't'" in str(error.value)


def test_check_grid_refuses_a_missing_flagfile(fresh_flags):
    grid = _grid_with(grids.Axis("lr", (0.1,)), flagfile="nothing.cfg")
    with pytest.raises(sweep.SweepError, match="nothing.cfg does not exist"):
        sweep.check_grid(grid)


@pytest.mark.parametrize(
    "argv, environment, match",
    [
        ([], {}, "--grid is required"),
        (["--grid=nope"], {}, "--grid='nope'"),
        (["--grid=smoke", "--lr=0.5"], {}, r"train.py flags \['--lr'\]"),
        (["--grid=smoke", "--local_workers=-1"], {}, "--local_workers=-1"),
        (["--grid=smoke", "--crash_retries=-2"], {}, "--crash_retries=-2"),
        (
            ["--grid=smoke"],
            {"KERASTUNER_ORACLE_IP": "127.0.0.1"},
            "needs all of KERASTUNER_ORACLE_IP",
        ),
    ],
)
def test_command_line_errors(
    argv, environment, match, fresh_flags, monkeypatch, tmp_path
):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    FLAGS(["sweep.py", f"--sweep_dir={tmp_path}", *argv])
    with pytest.raises(ValueError, match=match):
        sweep.main(["sweep.py"])
    assert not os.listdir(tmp_path)  # refused before writing anything


def test_a_folder_of_another_grid_is_refused(tmp_path, fresh_flags):
    (tmp_path / "sweep.json").write_text(json.dumps({"grid": "hessian_cpu"}))
    FLAGS(["sweep.py", "--grid=smoke", f"--sweep_dir={tmp_path}"])
    with pytest.raises(sweep.SweepError, match="holds a sweep of grid"):
        sweep.main(["sweep.py"])


def test_dry_run_prints_the_commands(tmp_path, fresh_flags, capsys):
    FLAGS(["sweep.py", "--grid=smoke", f"--sweep_dir={tmp_path}", "--dry_run"])
    assert sweep.main(["sweep.py"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4
    assert lines[0].endswith(
        "--init=orthogonal_proposed --seed=0 "
        f"--logdir={tmp_path}/runs --model_prefix= "
        "--model=init=orthogonal_proposed__seed=0"
    )
    assert not os.listdir(tmp_path)


# Trials ----------------------------------------------------------------------


def test_trial_metrics_score_a_diverged_run_zero():
    finished = {"state": "finished", "best_val_acc": 0.8, "test_acc": 0.7}
    assert sweep.trial_metrics(finished, "val_acc") == {
        "diverged": 0.0,
        "val_acc": 0.8,
        "test_acc": 0.7,
    }
    diverged = {"state": "diverged", "best_val_acc": 0.6, "test_acc": None}
    assert sweep.trial_metrics(diverged, "val_acc") == {
        "diverged": 1.0,
        "val_acc": 0.0,
    }
    hessian = {"state": "hessian", "hessian": {"log_spectral_norm": 1.5}}
    assert sweep.trial_metrics(hessian, "log_hessian") == {
        "diverged": 0.0,
        "log_hessian": 1.5,
    }
    with pytest.raises(keras_tuner.errors.FailedTrialError, match="no log"):
        sweep.trial_metrics({"state": "hessian", "hessian": {}}, "log_hessian")


def test_divergence_is_a_result_and_a_crash_does_not_stop_the_sweep(
    tmp_path, fake_train, monkeypatch, capsys
):
    diverging, crashing = SMOKE_NAMES[1], SMOKE_NAMES[2]
    plan = {diverging: "diverge", crashing: "crash"}
    monkeypatch.setenv("FAKE_PLAN", json.dumps(plan))
    _search(tmp_path, fake_train, crash_retries=1)

    calls = _invocations(tmp_path)
    # Every trial ran once; the crash once more (--crash_retries=1).
    assert sorted(calls) == sorted(SMOKE_NAMES + [crashing])
    trials = _trials(tmp_path)
    assert trials[diverging]["status"] == "COMPLETED"
    metrics = trials[diverging]["metrics"]["metrics"]
    assert metrics["diverged"]["observations"][0]["value"] == [1.0]
    assert metrics["val_acc"]["observations"][0]["value"] == [0.0]
    assert trials[crashing]["status"] == "FAILED"
    assert "exited with status 3" in trials[crashing]["message"]
    # The reason is also in the sweep's own output, once per failed run.
    printed = capsys.readouterr().out
    assert printed.count(f"status 3 in trial {crashing}") == 2
    for name in (SMOKE_NAMES[0], SMOKE_NAMES[3]):
        assert trials[name]["status"] == "COMPLETED"
    # seed=1 scores 0.5 + 0.1 in the stand-in.
    assert trials[SMOKE_NAMES[3]]["score"] == pytest.approx(0.6)

    # A rerun finds the grid done: nothing runs again.
    _search(tmp_path, fake_train)
    assert len(_invocations(tmp_path)) == len(calls)


def test_a_refused_run_stops_the_sweep_with_its_message(
    tmp_path, fake_train, monkeypatch
):
    monkeypatch.setenv("FAKE_PLAN", json.dumps({SMOKE_NAMES[0]: "refuse"}))
    with pytest.raises(keras_tuner.errors.FatalError, match="--lr=-1"):
        _search(tmp_path, fake_train)
    assert _invocations(tmp_path) == [SMOKE_NAMES[0]]


def test_killed_sweep_resumes_where_it_stopped(
    tmp_path, fake_train, fresh_flags
):
    """SIGKILL during the third trial; the rerun completes the grid.

    keras-tuner's own GridSearchOracle would stop after the trials it had
    started before the kill; ResumableGridOracle must not.
    """
    command = [
        sys.executable,
        SWEEP,
        "--grid=smoke",
        f"--sweep_dir={tmp_path}",
        f"--train_script={fake_train}",
    ]
    plan = json.dumps({SMOKE_NAMES[2]: "slow"})
    sweep_process = subprocess.Popen(
        command,
        env=_environment(FAKE_PLAN=plan),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + SUBPROCESS_TIMEOUT_S
    while len(_invocations(tmp_path)) < 3:
        assert sweep_process.poll() is None, "the sweep ended early"
        assert time.time() < deadline, "the third trial never started"
        time.sleep(0.2)
    with open(os.path.join(tmp_path, "invocations.txt")) as stream:
        slow_pid = int(stream.read().splitlines()[2].split()[1])
    sweep_process.send_signal(signal.SIGKILL)
    sweep_process.wait()
    # The trial's process dies with the sweep (no orphan keeps writing).
    for _ in range(50):
        if not os.path.exists(f"/proc/{slow_pid}"):
            break
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{slow_pid}")
    assert not os.path.exists(tmp_path / "runs" / SMOKE_NAMES[2])

    # The rerun, in this process: same command, same folder.
    FLAGS(command[1:])
    assert sweep.main(["sweep.py"]) == 0
    assert sorted(_invocations(tmp_path)) == sorted(
        SMOKE_NAMES + [SMOKE_NAMES[2]]
    )
    for name in SMOKE_NAMES:
        assert _status(tmp_path, name)["state"] == "finished"
    assert sorted(_trials(tmp_path)) == sorted(SMOKE_NAMES)
    record = json.loads((tmp_path / "sweep.json").read_text())
    assert record["grid"] == "smoke" and len(record["sessions"]) == 2
    assert "finished" in record["sessions"][1]


@pytest.mark.parametrize(
    "real",
    [False, pytest.param(True, marks=pytest.mark.slow)],
    ids=["stand-in", "train.py"],
)
def test_chief_and_two_workers_run_each_trial_once(tmp_path, real, fake_train):
    """A chief and two workers on loopback share the smoke grid.

    The slow variant runs the real train.py (2 steps per run).
    """
    script = [] if real else [f"--train_script={fake_train}"]
    result = subprocess.run(
        [
            sys.executable,
            SWEEP,
            "--grid=smoke",
            f"--sweep_dir={tmp_path}",
            "--local_workers=2",
            *script,
        ],
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
    )
    logs = tmp_path / "logs"
    assert result.returncode == 0, (logs / "tuner-chief.log").read_text()[
        -3000:
    ]
    assert "127.0.0.1:" in result.stdout
    for name in SMOKE_NAMES:
        status = _status(tmp_path, name)
        assert status["state"] == "finished" and status["epochs_done"] == 1
        if real:
            assert (tmp_path / "runs" / name / "log.csv").exists()
        # One "# <time> trial <id>: <command>" line per start of the run.
        starts = [
            line
            for line in (logs / f"{name}.log").read_text().splitlines()
            if line.startswith("# ") and " trial " in line
        ]
        assert len(starts) == 1, (starts, _retry_reasons(tmp_path, logs))
    trials = _trials(tmp_path)
    assert sorted(trials) == sorted(SMOKE_NAMES)
    assert all(t["status"] == "COMPLETED" for t in trials.values())
    oracle = json.loads((tmp_path / "tuner" / "oracle.json").read_text())
    assert sorted(oracle["end_order"]) == sorted(
        t["trial_id"] for t in trials.values()
    )
    assert oracle["ongoing_trials"] == {}
    # Trials went to the workers only (the chief serves the oracle).
    runners = {
        line.split(" on ", 1)[1].split(":")[0]
        for name in SMOKE_NAMES
        for line in (logs / f"{name}.log").read_text().splitlines()
        if line.startswith("# ") and " trial " in line
    }
    assert runners <= {"worker0", "worker1"} and runners


def test_worker_that_finds_the_chief_gone(tmp_path, monkeypatch):
    import grpc

    class Lost(grpc.RpcError):
        def code(self):
            return grpc.StatusCode.UNAVAILABLE

    class Tuner:
        tuner_id = "worker1"

        def search(self):
            raise Lost()

    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "1234")
    with pytest.raises(sweep.SweepError) as error:
        sweep._search(Tuner(), SMOKE, str(tmp_path), is_worker=True)
    assert "worker worker1 lost the chief at 127.0.0.1:1234" in str(error.value)
    assert "4 not started" in str(error.value)
    # Once every run is done, losing the chief is the normal end.
    for name in SMOKE_NAMES:
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "status.json").write_text(
            json.dumps({"state": "finished"})
        )
    assert sweep._search(Tuner(), SMOKE, str(tmp_path), is_worker=True) == 0
    # The chief itself never hides the error.
    with pytest.raises(grpc.RpcError):
        sweep._search(Tuner(), SMOKE, str(tmp_path), is_worker=False)


def test_oracle_hands_out_untried_combinations_to_every_worker(tmp_path):
    """Three workers get three trials at once, in grid order.

    keras-tuner's own GridSearchOracle would answer the third with IDLE
    (it derives each new trial from an ended one).
    """
    tuner = sweep.TrainScriptTuner(SMOKE, str(tmp_path), crash_retries=0)
    oracle = tuner.oracle
    trials = [oracle.create_trial(f"worker{i}") for i in range(3)]
    assert [t.status for t in trials] == ["RUNNING"] * 3
    assert [SMOKE.run_name(t.hyperparameters.values) for t in trials] == (
        SMOKE_NAMES[:3]
    )
    # The same worker asking again gets its own unfinished trial back.
    assert oracle.create_trial("worker1").trial_id == trials[1].trial_id
    # With every combination taken, an idle worker waits.
    assert oracle.create_trial("worker3").status == "RUNNING"
    assert oracle.create_trial("worker4").status == "IDLE"
