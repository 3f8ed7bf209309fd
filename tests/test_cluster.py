"""Sweeps on a live SLURM cluster and a live Ray cluster (the `cluster` marker: `pytest -m cluster`;
the default command deselects them). SLURM: start one with `sudo scripts/local_slurm.sh start`;
Ray: `pip install -e '.[ray]'` (the tests start and stop their own head node on 127.0.0.1).
Where either is missing the tests skip with one line, except under CI=true, where they fail.

Each engine: a 4-run sweep ends with the local sweep's losses bit for bit; a run interrupted at
five kill points (claimed, first evaluation, after a checkpoint, late, finished) by each way a
cluster stops a job ends at the uninterrupted loss, trained once (a finished run never again)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from tiny import TINY_MODEL

from scaling import runs
from scaling.cli import main as cli_main

pytestmark = pytest.mark.cluster

TINY = [
    *TINY_MODEL,
    "data.val_tokens=256",
    "train.precision=fp32",
    "train.compile=false",
    "train.device=cpu",
    "train.threads=1",
    "sweep.report=false",
]
GRID = ["sweep.name=tiny", "model.d_model=16,32", "train.tokens=1280,2560"]  # 4 runs of 10-20 steps
ONE = ["sweep.name=one", "train.tokens=7680", "train.checkpoint_every=5"]  # 1 run of 60 steps
STEP_S = 0.05  # seconds slept per step of the interrupted runs (slow_steps): 60 steps take >= 3 s


def _need(ok: bool, why: str) -> None:
    """Skip with `why`, but fail under CI=true: CI must run the cluster tests, not skip them."""
    if ok:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why} (CI=true: the cluster tests must run)")
    pytest.skip(why)


# ---------------------------------------------------------------- kill points of one run


def _metrics_lines(d: Path) -> int:
    try:
        return len((d / runs.METRICS).read_text().splitlines())
    except FileNotFoundError:
        return 0


KILL_POINTS: dict[str, Callable[[Path], bool]] = {  # run folder -> reached?
    "claimed": lambda d: (d / runs.LOCK).exists() or (d / runs.METRICS).exists(),
    "first-eval": lambda d: (d / runs.METRICS).exists(),
    "checkpointed": lambda d: (d / runs.CHECKPOINT).exists(),
    "late": lambda d: _metrics_lines(d) >= 8,  # past step 38 of 60
    "finished": lambda d: (d / runs.RESULT).exists(),
}


def _one_run_dir(root: Path) -> Path | None:
    dirs = [p for p in (root / "one").glob("*") if p.is_dir() and not p.name.startswith(".")]
    return dirs[0] if dirs else None


def _reached(root: Path, point: str) -> bool:
    run_dir = _one_run_dir(root)
    return run_dir is not None and KILL_POINTS[point](run_dir)


def _wait(predicate: Callable[[], bool], timeout: float, what: str, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(
                f"the sweep ended (rc={proc.returncode}) before {what}:\n{proc.stdout.read()}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _sweep(root: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    """`scaling sweep runs_dir=ROOT ARGS` in its own process group, run in ROOT."""
    argv = [sys.executable, "-m", "scaling.cli", "sweep", f"runs_dir={root}", *TINY, *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.Popen(
        argv,
        cwd=root,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _finish(proc: subprocess.Popen, timeout: float = 240) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out = proc.communicate()[0]
        raise AssertionError(f"the sweep did not finish in {timeout} s:\n{out}") from None
    assert proc.returncode == 0, out
    return out


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def _results(folder: Path) -> dict[str, dict]:
    return {r["run_id"]: r for r in runs.load_results(folder)}


def _val_curve(run_dir: Path) -> list[float]:
    return [m["loss_val"] for m in runs.read_metrics(run_dir)]


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> Path:
    """The 4-run grid and the 60-step run, trained here with the basic launcher: the reference."""
    root = tmp_path_factory.mktemp("local")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert cli_main(["sweep", f"runs_dir={root}", *TINY, *GRID]) == 0
        assert cli_main(["sweep", f"runs_dir={root}", *TINY, *ONE]) == 0
    finally:
        os.chdir(cwd)
    return root


def _same_as_local(local: Path, root: Path, sweep: str, n: int) -> None:
    """`n` ok rows in runs.csv, each with the local run's losses and curve bit for bit."""
    rows = runs.read_runs_csv(root / sweep / runs.RUNS_CSV)
    assert len(rows) == n and len({r["run_id"] for r in rows}) == n
    assert {r["status"] for r in rows} == {"ok"}
    ours, ref = _results(root / sweep), _results(local / sweep)
    assert set(ours) == set(ref)
    for run_id, result in ours.items():
        assert result["loss"] == ref[run_id]["loss"], run_id
        assert result["loss_train"] == ref[run_id]["loss_train"], run_id
        assert _val_curve(root / sweep / run_id) == _val_curve(local / sweep / run_id)


# ---------------------------------------------------------------- SLURM


def _squeue(name: str) -> list[tuple[str, str]]:
    """(job id, state) of the jobs named `name` still in the queue."""
    out = subprocess.run(
        ["squeue", "-h", "-n", name, "-o", "%i %T"], capture_output=True, text=True
    ).stdout
    return [tuple(line.split()) for line in out.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def slurm() -> None:
    _need(
        shutil.which("sbatch") is not None and shutil.which("scontrol") is not None,
        "SLURM is not installed (apt-get install slurm-wlm munge; scripts/local_slurm.sh start)",
    )
    up = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    idle = any(s.startswith(("idle", "mixed", "alloc")) for s in up.stdout.split())
    _need(
        up.returncode == 0 and idle,
        "no SLURM cluster answers sinfo with an idle node (sudo scripts/local_slurm.sh start)",
    )


def _slurm_args(preset: str, name: str) -> list[str]:
    return [
        f"hydra/launcher={preset}",
        f"hydra.launcher.name={name}",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=1",
    ]


@pytest.mark.parametrize("preset", ["submitit_slurm", "slurm"])
def test_a_slurm_sweep_gives_the_local_losses_bit_for_bit(tmp_path, local, slurm, preset):
    name = f"scaling-test-{uuid.uuid4().hex[:8]}"
    out = _finish(_sweep(tmp_path, *GRID, *_slurm_args(preset, name)))
    assert "4 to train" in out and "1 thread(s) per run" in out
    _same_as_local(local, tmp_path, "tiny", 4)
    logs = list((tmp_path / "tiny" / ".hydra").rglob("*_log.out"))  # each run was a SLURM job
    assert len(logs) == 4 and sum(": ok " in p.read_text() for p in logs) == 4


SLURM_STOPS = {  # how a cluster stops a running job, as the command that does it
    "requeue": ["scontrol", "requeue"],  # preemption: SIGTERM, then SLURM puts the job back
    "usr2": ["scancel", "--signal=USR2"],  # the time-limit warning: submitit requeues the job
    "sigterm": ["scancel", "--signal=TERM"],  # checkpoint and exit; the rerun sweep resumes
    "kill": ["scancel", "--signal=KILL"],  # killed outright: the rerun resumes the last checkpoint
}


SLURM_CASES = [  # every kill point for preemption and for a kill; the two signals at two points
    *[("requeue", point) for point in KILL_POINTS],
    *[("kill", point) for point in KILL_POINTS],
    ("usr2", "first-eval"),
    ("usr2", "late"),
    ("sigterm", "first-eval"),
    ("sigterm", "late"),
]


def _release_when_requeued(name: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    """SLURM holds a requeued job for about two minutes (Reason=BeginTime) before it may start
    again; `scontrol update StartTime=now`, as an admin would, ends that wait: tests stay short.
    The update is repeated while the job stays pending (SLURM may set the hold just after it)."""
    deadline = time.monotonic() + timeout
    released = False
    while proc.poll() is None and time.monotonic() < deadline:
        pending = [job for job, state in _squeue(name) if state == "PENDING"]
        if pending:
            subprocess.run(
                ["scontrol", "update", f"JobId={pending[0]}", "StartTime=now"], capture_output=True
            )
            released = True
        elif released:
            return  # running again (or done)
        time.sleep(0.2)


@pytest.mark.parametrize("stop, point", SLURM_CASES)
def test_a_stopped_slurm_job_ends_at_the_uninterrupted_loss_trained_once(
    tmp_path, local, slurm, stop, point, slow_steps
):
    name = f"scaling-test-{uuid.uuid4().hex[:8]}"
    args = [*ONE, *_slurm_args("slurm", name)]
    proc = _sweep(tmp_path, *args, env=slow_steps(STEP_S))
    try:
        _wait(lambda: _reached(tmp_path, point), 120, point, proc)
        jobs = _squeue(name)
        run_dir = _one_run_dir(tmp_path)
        done_at = (run_dir / runs.RESULT).stat().st_mtime_ns if point == "finished" else None
        if jobs:  # a finished run's job may be gone already
            subprocess.run([*SLURM_STOPS[stop], jobs[0][0]], capture_output=True)
        if stop in ("requeue", "usr2"):  # the job comes back by itself
            _release_when_requeued(name, proc)
        if stop in ("sigterm", "kill"):  # the job ends for good: relaunch the sweep once it has
            _wait(lambda: not _squeue(name) or proc.poll() is not None, 120, "the job to end")
            time.sleep(0.5)
            _stop(proc)
            proc = _sweep(tmp_path, *args)
        _finish(proc)
    finally:
        _stop(proc)
        for job, _ in _squeue(name):
            subprocess.run(["scancel", job], capture_output=True)
    _same_as_local(local, tmp_path, "one", 1)
    result = runs.read_result(run_dir)
    if done_at is not None:  # a finished run is never trained again
        assert (run_dir / runs.RESULT).stat().st_mtime_ns == done_at
    elif point in ("checkpointed", "late") or (point == "first-eval" and stop != "kill"):
        # it came back from its checkpoint (a periodic one, or the one a signal made it save)
        assert result["resumed_from_step"] > 0
    assert not (run_dir / runs.CHECKPOINT).exists()


def test_two_slurm_sweeps_at_once_train_each_run_once(tmp_path, local, slurm, slow_steps):
    name = f"scaling-test-{uuid.uuid4().hex[:8]}"
    args = [*GRID, *_slurm_args("slurm", name)]
    procs = [_sweep(tmp_path, *args, env=slow_steps(STEP_S)) for _ in range(2)]
    try:
        for proc in procs:
            _finish(proc)
    finally:
        for proc in procs:
            _stop(proc)
    logs = [p.read_text() for p in (tmp_path / "tiny" / ".hydra").rglob("*_log.out")]
    assert len(logs) == 8  # 2 sweeps x 4 jobs
    trained = [line.split(":")[0] for text in logs for line in text.splitlines() if ": ok " in line]
    assert len(trained) == 4 and len(set(trained)) == 4  # each run trained by exactly one job
    _same_as_local(local, tmp_path, "tiny", 4)


# ---------------------------------------------------------------- Ray


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory, slow_steps) -> str:
    """A local Ray head node with 2 CPUs (2 workers at a time), a small object store, and slow
    steps (slow_steps reaches the workers through the head's environment); stopped
    after."""
    try:
        import hydra_plugins.hydra_ray_launcher  # noqa: F401
        import ray  # noqa: F401
    except ImportError:
        _need(False, "Ray is not installed (pip install -e '.[ray]')")
    ray_cli = Path(sys.executable).with_name("ray")
    _need(ray_cli.is_file(), f"no ray command next to {sys.executable} (pip install -e '.[ray]')")
    address = f"127.0.0.1:{_free_port()}"
    env = {**os.environ, **slow_steps(STEP_S), "RAY_DEDUP_LOGS": "0"}
    subprocess.run(
        [
            str(ray_cli),
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={address.split(':')[1]}",
            "--num-cpus=2",
            "--object-store-memory=100000000",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        yield address
    finally:
        subprocess.run([str(ray_cli), "stop"], capture_output=True, timeout=120)


def _ray_args(address: str) -> list[str]:
    return ["hydra/launcher=ray_cluster", f"hydra.launcher.ray.init.address={address}"]


def test_a_ray_sweep_with_two_workers_gives_the_local_losses_bit_for_bit(tmp_path, local, ray_head):
    out = _finish(_sweep(tmp_path, *GRID, *_ray_args(ray_head)))
    assert "4 to train" in out and "1 thread(s) per run" in out
    _same_as_local(local, tmp_path, "tiny", 4)
    workers = {
        line.split("pid=")[1].split(")")[0]
        for line in out.splitlines()
        if ": ok " in line and "pid=" in line
    }  # Ray prefixes a worker's lines with its pid
    assert len(workers) >= 2  # the runs went to more than one worker process


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_killed_ray_worker_resumes_its_run_to_the_uninterrupted_loss(
    tmp_path, local, ray_head, point
):
    proc = _sweep(tmp_path, *ONE, *_ray_args(ray_head))
    try:
        _wait(lambda: _reached(tmp_path, point), 120, point, proc)
        run_dir = _one_run_dir(tmp_path)
        done_at = (run_dir / runs.RESULT).stat().st_mtime_ns if point == "finished" else None
        try:  # the worker that holds the run's claim wrote `pid@host` into it
            pid = int((run_dir / runs.LOCK).read_text().split("@")[0])
        except (FileNotFoundError, ValueError):
            pid = None  # released already: the run finished, its worker is idle
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        _finish(proc)
    finally:
        _stop(proc)
    _same_as_local(local, tmp_path, "one", 1)
    result = runs.read_result(run_dir)
    if done_at is not None:
        assert (run_dir / runs.RESULT).stat().st_mtime_ns == done_at
    elif pid is not None and point in ("checkpointed", "late"):
        assert result["resumed_from_step"] > 0  # the retried task resumed from the checkpoint
    assert not (run_dir / runs.CHECKPOINT).exists()
