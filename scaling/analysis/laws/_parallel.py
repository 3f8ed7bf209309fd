"""Forked worker processes for independent pieces of work (bootstrap chunks, figures): the workers
share the parent's arrays and figures without copying them; one process where fork is
unavailable."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence

_TASKS: list = []  # zero-argument callables of the call in progress; forked workers inherit them


def available_cores() -> int:
    """Processors this process may run on (its affinity, which a job scheduler may restrict)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_jobs(n_jobs: int | None) -> int:
    """Processes for a piece of work: n_jobs, or every available core when None."""
    return available_cores() if n_jobs is None else max(1, int(n_jobs))


def _run(i: int):
    return _TASKS[i]()


def run_forked(tasks: Sequence[Callable], n_jobs: int | None = None) -> list:
    """Every task's result, in order, from up to n_jobs forked processes (default: every
    available core); in this process where fork is unavailable or one process would do. Results
    must pickle."""
    global _TASKS
    n = min(resolve_jobs(n_jobs), len(tasks))
    if n <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return [task() for task in tasks]
    _TASKS = list(tasks)
    try:
        with multiprocessing.get_context("fork").Pool(n) as pool:
            return pool.map(_run, range(len(tasks)), chunksize=1)
    finally:
        _TASKS = []


class Forked:
    """`fn()` run in a forked child process while this one goes on (in `result()` itself where
    fork is unavailable): `result()` waits for its return value or raises its exception, `cancel()`
    stops it. Use as a context manager so an error in the parent never leaves the child behind."""

    def __init__(self, fn: Callable):
        self._fn = fn
        self._proc = None
        if "fork" in multiprocessing.get_all_start_methods():
            ctx = multiprocessing.get_context("fork")
            self._recv, send = ctx.Pipe(duplex=False)
            self._proc = ctx.Process(target=self._child, args=(send,))
            self._proc.start()
            send.close()

    def _child(self, send) -> None:
        try:
            send.send((True, self._fn()))
        except BaseException as e:  # handed to the parent, which raises it
            send.send((False, e))

    def result(self):
        if self._proc is None:
            return self._fn()
        try:
            ok, value = self._recv.recv()
        except EOFError:
            raise RuntimeError(f"a forked worker died (exit code {self._proc.exitcode})") from None
        finally:
            self._proc.join()
            self._proc = None
        if not ok:
            raise value
        return value

    def cancel(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.join()
            self._proc = None

    def __enter__(self) -> Forked:
        return self

    def __exit__(self, *exc) -> None:
        self.cancel()
