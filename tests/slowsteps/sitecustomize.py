"""Imported at start-up by every Python process with this folder on PYTHONPATH (the `slow_steps`
fixture of tests/conftest.py puts it there for child processes): with SCALING_TEST_STEP_S set,
each training step of a run or an ensemble first sleeps that many seconds, so that a test can
stop a child process mid-run."""

from __future__ import annotations

import os
import time

STEP_S = float(os.environ.get("SCALING_TEST_STEP_S") or 0)

if STEP_S:
    import torch

    from scaling.experiment import train

    _get = train.Batches.get  # every step of a run or an ensemble asks for its batch here

    def _slow_get(self: train.Batches, step: int) -> torch.Tensor:
        time.sleep(STEP_S)
        return _get(self, step)

    train.Batches.get = _slow_get  # type: ignore[method-assign]
