"""Fixtures shared by the tests: runs cut mid-way (a crash in this process) and slowed steps (so
that a child process can be stopped mid-run)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

SLOW_STEPS = Path(__file__).resolve().parent / "slowsteps"  # holds a sitecustomize.py


class Cut(Exception):
    """A run stopped by the `cut_after` fixture, as a crash would stop it."""


@pytest.fixture
def cut_after(
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[int], contextlib.AbstractContextManager]:
    """`with cut_after(n): train_run(cfg)`: every run (or ensemble) trained inside the block dies
    after its n-th step, before asking for the next batch, keeping the checkpoints it wrote; the
    block asserts that a run was cut."""
    from scaling.experiment import train

    @contextlib.contextmanager
    def cut(steps: int) -> Iterator[None]:
        get = train.Batches.get

        def cut_get(self: train.Batches, step: int) -> Any:
            if step >= steps:
                raise Cut(f"cut before step {step + 1}")
            return get(self, step)

        with monkeypatch.context() as patch, pytest.raises(Cut):
            patch.setattr(train.Batches, "get", cut_get)
            yield

    return cut


@pytest.fixture(scope="session")
def slow_steps() -> Callable[[float], dict[str, str]]:
    """`env={**os.environ, **slow_steps(0.05)}`: a child process started with these variables
    sleeps 0.05 s before each training step (tests/slowsteps/sitecustomize.py)."""

    def env(step_s: float) -> dict[str, str]:
        path = os.pathsep.join(p for p in (str(SLOW_STEPS), os.environ.get("PYTHONPATH")) if p)
        return {"SCALING_TEST_STEP_S": str(step_s), "PYTHONPATH": path}

    return env
