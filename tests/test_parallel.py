"""`scaling.analysis.laws._parallel`: forked work returns its result or its exception, in order,
and a cancelled or failed background child never outlives its parent's call."""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest

from scaling.analysis.laws._parallel import Forked, run_forked


def _pid_and(x):
    return os.getpid(), x


def _fail():
    raise ValueError("bad probe column")


def test_run_forked_keeps_order_and_uses_other_processes():
    out = run_forked([lambda i=i: _pid_and(i) for i in range(6)], n_jobs=2)
    assert [x for _, x in out] == list(range(6))
    assert os.getpid() not in {pid for pid, _ in out}


def test_forked_returns_the_child_result_from_another_process():
    job = Forked(lambda: _pid_and([1, 2, 3]))
    pid, value = job.result()
    assert value == [1, 2, 3] and pid != os.getpid()


def _children() -> set[int]:
    """Live child processes' pids (other tests' pools, e.g. joblib's workers, may be among them)."""
    return {p.pid for p in multiprocessing.active_children()}


def test_forked_raises_the_child_exception_in_the_parent():
    before = _children()
    with Forked(_fail) as job, pytest.raises(ValueError, match="bad probe column"):
        job.result()
    assert _children() <= before


def test_leaving_the_block_on_an_error_stops_the_child_at_once():
    before = _children()
    start = time.perf_counter()
    with pytest.raises(OSError, match="disk full"), Forked(lambda: time.sleep(60)):
        raise OSError("disk full")
    assert time.perf_counter() - start < 10
    assert _children() <= before
