"""Checkpoints and stop signals of a run: save and restore the whole training state (model,
optimizer, data position, curve so far, RNG states), and turn SIGTERM/SIGINT/SIGUSR2 into
"checkpoint after this step, then exit" (`StopSignals`)."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import torch

from scaling import progress, runs
from scaling.experiment.config import RunSpec


def save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    metrics: list,
    wall_s: float,
    loss_sum: float,
    loss_count: int,
) -> None:
    """Model, optimizer (AdamW moments and step counts), the data position and schedule (`step`:
    batch k and lr are pure functions of it), the curve so far, the running train-loss sum and
    the RNG states; written to a temp file and renamed, so a kill mid-save keeps the last one."""
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "metrics": metrics,
        "wall_s": wall_s,
        "loss_sum": loss_sum,
        "loss_count": loss_count,
        "rng": _rng_states(),
    }
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(
    spec: RunSpec, model: torch.nn.Module, optimizer: torch.optim.Optimizer, device: torch.device
) -> tuple[int, list, float, float, int]:
    """Restore model, optimizer and RNG states from the run's checkpoint and rewrite its metrics
    to the checkpoint's curve; returns (step, metrics, wall_s, loss_sum, loss_count)."""
    state = torch.load(spec.run_dir / runs.CHECKPOINT, map_location=device, weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    _set_rng_states(state.get("rng"))
    runs.atomic_write_jsonl(spec.run_dir / runs.METRICS, state["metrics"])
    return state["step"], state["metrics"], state["wall_s"], state["loss_sum"], state["loss_count"]


def _rng_states() -> dict:
    """Torch's global RNG states (CPU, and every CUDA device); nothing in a run draws from them
    today (init and data use explicit seeds), saved so a future dropout would still resume
    exactly."""
    states: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict | None) -> None:
    if not states:
        return
    torch.set_rng_state(states["cpu"].cpu())
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in states["cuda"]])


class StopSignals:
    """SIGTERM, SIGINT and SIGUSR2 (SLURM's pre-timeout signal) become a flag the training loop
    reads after each step: it saves a checkpoint, then `deliver` hands the signal to the handler
    that was there before (Python's SIGINT handler raises KeyboardInterrupt, submitit's requeues
    the job; the default SIGTERM action becomes SystemExit(143), so locks are released). Only in
    the main thread (signals cannot be caught elsewhere); ignored signals stay ignored."""

    SIGNALS = tuple(
        getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGUSR2") if hasattr(signal, name)
    )

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def install(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                old = signal.getsignal(sig)
                if old is not signal.SIG_IGN and old is not None:
                    self._old[sig] = signal.signal(sig, self._note)
        return self

    def _note(self, signum: int, frame: Any) -> None:
        self.signum = signum

    def restore(self) -> None:
        while self._old:
            sig, old = self._old.popitem()
            signal.signal(sig, old)

    def deliver(self, what: str) -> None:
        """Restore the previous handlers and act on the signal that arrived (see the class)."""
        signum = self.signum
        if signum is None:  # no signal came
            return
        old = signal.getsignal(signum) if not self._old else self._old[signum]
        self.restore()
        progress.say(
            f"{what}; stopped by {signal.Signals(signum).name} (rerun the same command to resume)"
        )
        if callable(old):
            old(signum, None)
        raise SystemExit(128 + signum)
