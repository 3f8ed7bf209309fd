"""SIGTERM for sweeps whose runs train in local worker processes (the joblib launcher).

A signal sent to the `scaling sweep` process alone never reaches its workers. While the launcher
runs, `stop_workers_on_sigterm` passes a SIGTERM on to them and leaves a marker file; each
worker's run saves its checkpoint and stops as it would in-process (checkpoint.StopSignals), the
job returns instead of ending the worker (loky would kill the other workers before they saved),
and jobs that start after the marker train nothing. The sweep then exits 143: rerun to resume.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STOP_ENV = "SCALING_SWEEP_STOP"  # in the workers: the marker file whose presence stops the sweep
WORKER_MARK = b"LokyProcess"  # in a joblib (loky) worker's command line


def worker_pids(parent: int | None = None) -> list[int]:
    """The pids of `parent`'s (default: this process's) joblib workers, read from /proc."""
    parent = os.getpid() if parent is None else parent
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its last ")"
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if ppid == parent and WORKER_MARK in (stat.parent / "cmdline").read_bytes():
                out.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
    return out


@contextlib.contextmanager
def stop_workers_on_sigterm() -> Iterator[list[int]]:
    """While the block runs, a SIGTERM to this process marks the sweep stopped and is passed on
    to its joblib workers. Yields a list that holds the signal number once one came (the caller
    exits with it after the launcher returns). Main thread only; elsewhere a no-op."""
    came: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield came
        return
    marker = Path(tempfile.gettempdir()) / f"scaling-sweep-stop-{os.getpid()}"
    marker.unlink(missing_ok=True)

    def forward(signum: int, frame: Any) -> None:
        came.append(signum)
        marker.touch()
        for pid in worker_pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)

    old_env = os.environ.get(STOP_ENV)
    os.environ[STOP_ENV] = str(marker)  # inherited by the workers the launcher starts
    old = signal.signal(signal.SIGTERM, forward)
    try:
        yield came
    finally:
        signal.signal(signal.SIGTERM, old)
        marker.unlink(missing_ok=True)
        if old_env is None:
            os.environ.pop(STOP_ENV, None)
        else:
            os.environ[STOP_ENV] = old_env


def stopped() -> bool:
    """In a worker: the sweep was stopped (start no new run)."""
    marker = os.environ.get(STOP_ENV)
    return marker is not None and Path(marker).exists()


def in_worker() -> bool:
    """This job runs in a worker of a sweep that stops its workers on SIGTERM."""
    return bool(os.environ.get(STOP_ENV))
