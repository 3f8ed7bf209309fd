"""A run's schedule: the learning rate at each step (linear warmup, then a cosine that ends at D or
at protocol=kaplan's fixed horizon) and the steps at which it is evaluated."""

from __future__ import annotations

import math

from scaling.experiment.config import RunSpec, TrainConfig


def lr_at(step: int, steps: int, t: TrainConfig) -> float:
    """Learning rate for optimiser step `step` (0-based) of a schedule `steps` long: linear warmup
    to t.lr, then a cosine from t.lr down to t.lr * t.min_lr_ratio that ends exactly at `steps`:
    the run's own D under protocol=chinchilla, Kaplan's fixed horizon otherwise
    (`schedule_steps`)."""
    warmup = round(t.warmup_frac * steps)
    if step < warmup:
        return t.lr * (step + 1) / warmup
    progress_ = (step - warmup) / max(1, steps - warmup)
    floor = t.lr * t.min_lr_ratio
    return floor + 0.5 * (t.lr - floor) * (1.0 + math.cos(math.pi * progress_))


def schedule_steps(spec: RunSpec) -> int:
    """Length of the run's lr schedule in steps: its own steps (chinchilla: the cosine ends at D),
    or protocol.horizon_tokens (kaplan: one horizon for every run, at or past its D, so the lr at a
    given step does not depend on the run's D)."""
    if spec.protocol.name != "kaplan":
        return spec.steps
    return max(spec.steps, round(float(spec.protocol.horizon_tokens or 0) / spec.tokens_per_step))


def eval_steps(steps: int, n_evals: int, exact: bool = False) -> list[int]:
    """About `n_evals` step counts, log-spaced from ~1% of the run to its end (always included).
    exact: exactly min(n_evals, steps) distinct steps (Kaplan's curve points): where rounding makes
    two early points collide, the later ones move up by a step, staying as log-spaced as whole
    steps allow."""
    first = max(1, round(steps / 100))
    if n_evals == 1 or first >= steps:
        return [steps]
    n = min(n_evals, steps) if exact else n_evals
    ratio = (steps / first) ** (1.0 / (n - 1))
    if not exact:
        return sorted({min(steps, round(first * ratio**i)) for i in range(n)} | {steps})
    points = [max(1, round(first * ratio**i)) for i in range(n)]
    for i in range(1, n):  # strictly increasing ...
        points[i] = max(points[i], points[i - 1] + 1)
    points[-1] = steps
    for i in range(n - 2, -1, -1):  # ... and ending at the run's last step
        points[i] = min(points[i], points[i + 1] - 1)
    return points
