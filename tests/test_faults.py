"""Scale-out and faults, for real: sweeps through the joblib and submitit_local launchers, a run
killed with SIGKILL (or stopped by SIGTERM/SIGINT) that resumes to exactly the uninterrupted
loss, a killed sweep restarted, two concurrent sweeps on one folder, crash-cut metrics files."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny import TINY_MODEL

from scaling import runs
from scaling.cli import main as cli_main
from scaling.experiment.config import compose, resolve_run
from scaling.experiment.sweep import available_cores
from scaling.experiment.train import train_run

TINY = [
    *TINY_MODEL,
    "data.val_tokens=256",
    "train.precision=fp32",
    "train.compile=false",
    "train.device=cpu",
    "train.threads=1",
]
GRID = ["sweep.name=tiny", "model.d_model=16,32", "train.tokens=1280,2560", "sweep.report=false"]
RUN = [*TINY, "sweep=single", "train.tokens=7680"]  # 60 steps of 8 x 16 tokens


def _cli(*args: str, env: dict | None = None, **popen) -> subprocess.Popen:
    """`python -m scaling.cli ARGS` in a child process (env: e.g. the slow_steps fixture's)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "scaling.cli", *args],
        env=full_env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # SIGINT as a terminal gives it, also when the tests run as a background job (which
        # starts with SIGINT ignored, and a run respects an ignored signal)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        **popen,
    )


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(
                f"the process ended (rc={proc.returncode}) first:\n{proc.stdout.read()}"
            )
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def _with_env(text: str) -> list[int]:
    """Pids of the live processes whose environment holds `text` (orphans included)."""
    pids = []
    for env in Path("/proc").glob("[0-9]*/environ"):
        with contextlib.suppress(OSError):
            if text.encode() in env.read_bytes():
                pids.append(int(env.parent.name))
    return pids


def _rows(folder) -> list[dict]:
    return runs.read_runs_csv(folder / runs.RUNS_CSV)


@pytest.mark.parametrize(
    "launcher",
    [
        ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
        ["hydra/launcher=submitit_local"],
    ],
)
def test_a_sweep_through_a_parallel_launcher_finishes_every_run_once(tmp_path, launcher):
    proc = _cli("sweep", f"runs_dir={tmp_path}", *TINY[:-1], *GRID, *launcher, cwd=tmp_path)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out
    rows = _rows(tmp_path / "tiny")
    assert (
        len(rows) == 4
        and len({r["run_id"] for r in rows}) == 4
        and {r["status"] for r in rows} == {"ok"}
    )
    workers = 2 if "joblib" in launcher[0] else 4  # submitit_local starts every job at once
    assert f"{max(1, available_cores() // workers)} thread(s) per run" in out
    if (
        "submitit" in launcher[0]
    ):  # the jobs went through submitit: its per-job logs are in the run store
        assert list((tmp_path / "tiny" / ".hydra").rglob("*_log.out"))


def test_a_run_killed_with_sigkill_resumes_to_exactly_the_uninterrupted_loss(tmp_path, slow_steps):
    whole = train_run(compose([f"runs_dir={tmp_path / 'whole'}", *RUN]))
    argv = [f"runs_dir={tmp_path / 'cut'}", *RUN, "train.checkpoint_every=5"]
    folder = resolve_run(compose(argv)).run_dir
    proc = _cli("train", *argv, env=slow_steps(0.05))
    try:
        _wait_for(lambda: (folder / runs.CHECKPOINT).is_file(), proc)
        time.sleep(0.3)  # a few steps past the checkpoint: those are lost and retrained
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL and not runs.is_finished(folder)
    resumed = train_run(compose(argv))
    assert resumed["status"] == "ok" and 0 < resumed["resumed_from_step"] < 60
    assert resumed["loss"] == whole["loss"] and resumed["loss_train"] == whole["loss_train"]
    assert [m["loss_val"] for m in runs.read_metrics(folder)] == [
        m["loss_val"] for m in runs.read_metrics(tmp_path / "whole" / "single" / whole["run_id"])
    ]
    assert not (folder / runs.CHECKPOINT).exists()  # removed once the run finished


@pytest.mark.parametrize("sig, rc", [(signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGINT, 130)])
def test_sigterm_and_sigint_save_a_checkpoint_then_exit(tmp_path, sig, rc, slow_steps):
    whole = train_run(compose([f"runs_dir={tmp_path / 'whole'}", *RUN]))
    argv = [
        f"runs_dir={tmp_path / 'cut'}",
        *RUN,
        "train.checkpoint_every=0",
    ]  # no periodic checkpoints
    folder = resolve_run(compose(argv)).run_dir
    proc = _cli("train", *argv, env=slow_steps(0.05))
    _wait_for(lambda: (folder / runs.METRICS).is_file(), proc)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == rc, out
    assert f"stopped by {signal.Signals(sig).name}" in out
    assert (folder / runs.CHECKPOINT).is_file() and not runs.is_finished(
        folder
    )  # saved at exit only
    assert not (folder / runs.LOCK).exists()  # the claim was released on the way out
    resumed = train_run(compose(argv))
    assert 0 < resumed["resumed_from_step"] < 60 and resumed["loss"] == whole["loss"]


def test_a_joblib_sweep_stopped_by_sigterm_to_its_own_pid_checkpoints_every_run(
    tmp_path, slow_steps
):
    """SIGTERM sent to the sweep process alone reaches the runs its joblib workers train: each
    saves a checkpoint and stops, no worker is left behind, the sweep exits 143, and the rerun
    ends every run at exactly the loss of an uninterrupted sweep."""
    grid = ["sweep.name=cut", "model.d_model=16,32", "train.tokens=7680", "sweep.report=false"]
    argv = [*TINY, *grid, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    folder = tmp_path / "cut"
    proc = _cli("sweep", f"runs_dir={tmp_path}", *argv, env=slow_steps(0.05), cwd=tmp_path)
    _wait_for(lambda: len(list(folder.glob(f"*/{runs.METRICS}"))) == 2, proc, timeout=120)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "sweep stopped by SIGTERM" in out and out.count("checkpoint saved at step") == 2
    assert len(list(folder.glob(f"*/{runs.CHECKPOINT}"))) == 2 and not runs.load_results(folder)
    assert not _with_env(f"scaling-sweep-stop-{proc.pid}")  # none of its workers trains on
    whole = tmp_path / "whole"
    for root in (tmp_path, whole):
        done = _cli("sweep", f"runs_dir={root}", *argv, cwd=tmp_path)
        assert done.wait(timeout=120) == 0, done.stdout.read()
    resumed = {r["run_id"]: r for r in _rows(folder)}
    assert all(0 < int(r["resumed_from_step"]) < 60 for r in resumed.values())
    assert {r["run_id"]: r["loss"] for r in _rows(whole / "cut")} == {
        k: r["loss"] for k, r in resumed.items()
    }


def test_a_killed_sweep_restarted_ends_with_every_run_once(tmp_path, capsys, slow_steps):
    argv = [f"runs_dir={tmp_path}", *TINY, *GRID, "train.checkpoint_every=4"]
    folder = tmp_path / "tiny"
    proc = _cli("sweep", *argv, env=slow_steps(0.03), cwd=tmp_path, start_new_session=True)

    def one_done_one_cut() -> bool:
        return len(runs.load_results(folder)) >= 1 and any(folder.glob(f"*/{runs.CHECKPOINT}"))

    try:
        _wait_for(one_done_one_cut, proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    before = {p.parent.name: p.stat().st_mtime_ns for p in folder.glob(f"*/{runs.RESULT}")}
    assert 1 <= len(before) < 4
    assert cli_main(["sweep", *argv]) == 0
    out = capsys.readouterr().out
    assert f"{len(before)} finished, {4 - len(before)} to train" in out
    rows = _rows(folder)
    assert (
        len(rows) == 4
        and len({r["run_id"] for r in rows}) == 4
        and {r["status"] for r in rows} == {"ok"}
    )
    assert {
        p.parent.name: p.stat().st_mtime_ns
        for p in folder.glob(f"*/{runs.RESULT}")
        if p.parent.name in before
    } == before  # finished runs were not trained again
    assert any(
        int(r["resumed_from_step"]) > 0 for r in rows
    )  # the cut run resumed from its checkpoint
    assert not list(folder.glob(f"*/{runs.CHECKPOINT}"))


def test_two_concurrent_sweeps_on_one_folder_train_each_run_once(tmp_path, slow_steps):
    argv = ["sweep", f"runs_dir={tmp_path}", *TINY, *GRID]
    env = slow_steps(0.03)
    procs = [_cli(*argv, env=env, cwd=tmp_path) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    trained = [line.split(":")[0] for out in outs for line in out.splitlines() if ": ok " in line]
    assert (
        len(trained) == 4 and len(set(trained)) == 4
    )  # every run trained by exactly one of the two
    rows = _rows(tmp_path / "tiny")
    assert sorted(r["run_id"] for r in rows) == sorted(trained)


def test_a_metrics_file_cut_by_a_crash_is_read_with_a_warning(tmp_path):
    from scaling.analysis import tables
    from scaling.errors import DataError

    result = train_run(compose([f"runs_dir={tmp_path}", *RUN, "sweep.name=cut"]))
    folder = tmp_path / "cut" / result["run_id"]
    full = runs.read_metrics(folder)
    text = (folder / runs.METRICS).read_text()
    (folder / runs.METRICS).write_text(text[: len(text) - 25])  # the last line loses its end
    with pytest.warns(RuntimeWarning, match="truncated"):
        assert runs.read_metrics(folder) == full[:-1]
    sink: list[str] = []  # the fitting side's reader (scaling fit/plot/report) says the same
    with pytest.warns(UserWarning, match="truncated"):
        assert tables.read_curve(folder, sink) == full[:-1]
    assert len(sink) == 1
    # a damaged line before the last is not a crash artefact: a one-line DataError
    lines = text.splitlines()
    (folder / runs.METRICS).write_text("\n".join([lines[0], "{oops", *lines[1:]]) + "\n")
    with pytest.raises(DataError, match="line 2"):
        runs.read_metrics(folder)
    # a folder without result.json is an unfinished run, never a result
    (folder / runs.RESULT).unlink()
    assert runs.unfinished_run_dirs(tmp_path / "cut") == [folder]
    assert runs.read_runs_csv(runs.rebuild_runs_csv(tmp_path / "cut")) == []


def test_a_finished_run_keeps_its_final_checkpoint_only_when_asked(tmp_path):
    import torch

    kept = train_run(
        compose(
            [f"runs_dir={tmp_path}", *RUN, "train.checkpoint_every=5", "train.keep_checkpoint=true"]
        )
    )
    state = torch.load(tmp_path / "single" / kept["run_id"] / runs.CHECKPOINT, weights_only=True)
    assert state["step"] == 60 and kept["status"] == "ok"
