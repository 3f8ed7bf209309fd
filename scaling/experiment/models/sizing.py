"""Sizes from a continuous rule: any target parameter count N gives a shape at the ladder's aspect
ratio (`model.size=N5e4`), so IsoFLOP windows can sample any N, not only the named rungs.

Pure Python (no torch). The shape is the one whose exact N is nearest the target in log: d_model
runs over multiples of 8, n_layers = d_model / aspect rounded down or up (at least 1), n_heads =
d_model / head_dim (lowered to a divisor of d_model); aspect and head_dim are the medians of the
ladder's rungs (16 and 16 for conf/model/transformer.yaml). The run records the exact N.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import fields
from statistics import median
from typing import Any

from scaling.errors import ConfigError
from scaling.experiment.models.counting import param_counts
from scaling.experiment.models.shape import RUNG_KEYS, ModelShape

SIZE_PATTERN = re.compile(r"N(\d+(?:\.\d*)?(?:[eE]\+?\d+)?)")  # model.size=N50000 or N5e4
WIDTH_STEP = 8  # d_model runs over multiples of this
MAX_D_MODEL = 4096


def target_N(size: Any) -> float | None:
    """The target N of a size name such as "N5e4", or None when the name is not of that form."""
    match = SIZE_PATTERN.fullmatch(str(size))
    return float(match.group(1)) if match else None


def ladder_rule(ladder: Mapping) -> tuple[float, float]:
    """(aspect, head_dim): medians of d_model / n_layers and d_model / n_heads over the rungs."""
    rungs = [
        r
        for r in ladder.values()
        if isinstance(r, Mapping) and {"d_model", "n_layers", "n_heads"} <= set(r)
    ]
    if not rungs:
        raise ConfigError(
            "model.size=N<count> needs a model.ladder to take the aspect ratio from; "
            "keep conf/model/transformer.yaml's ladder"
        )
    return (
        median(r["d_model"] / r["n_layers"] for r in rungs),
        median(r["d_model"] / r["n_heads"] for r in rungs),
    )


def dims_for(d_model: int, aspect: float, head_dim: float) -> list[dict]:
    """The rung-like dimensions of width d_model nearest this aspect ratio (n_layers rounded down
    and up, so N steps finely) and head size."""
    n_heads = max(1, int(d_model / head_dim + 0.5))
    while d_model % n_heads:
        n_heads -= 1
    depths = sorted({max(1, math.floor(d_model / aspect)), max(1, math.ceil(d_model / aspect))})
    return [{"d_model": d_model, "n_layers": n_layers, "n_heads": n_heads} for n_layers in depths]


def shape_for_N(target: float, ladder: Mapping, base: Mapping) -> dict:
    """d_model, n_layers, n_heads of the shape whose exact N is nearest `target` (in log); `base`
    holds the other shape keys (ctx, vocab_size, arch, ...). ConfigError if the target lies below
    the smallest shape or above the largest."""
    if not (math.isfinite(target) and target > 0):
        raise ConfigError(
            f"model.size=N{target:g} must name a positive parameter count, e.g. model.size=N5e4"
        )
    aspect, head_dim = ladder_rule(ladder)
    best, best_gap, smallest = None, math.inf, None
    for d in range(WIDTH_STEP, MAX_D_MODEL + 1, WIDTH_STEP):
        for dims in dims_for(d, aspect, head_dim):
            N = param_counts(ModelShape(**{**base, **dims})).N
            smallest = N if smallest is None else smallest
            gap = abs(math.log(N / target))
            if gap < best_gap:
                best, best_gap = dims, gap
    assert best is not None and smallest is not None  # the width range is never empty
    if target < smallest / 2 or best["d_model"] == MAX_D_MODEL:
        raise ConfigError(
            f"model.size=N{target:g} lies outside the shapes the rule makes "
            f"(N {smallest:,} at d_model {WIDTH_STEP} up to d_model {MAX_D_MODEL}); "
            "choose a target inside that range"
        )
    return best


def smallest_N(model_cfg: Mapping) -> int:
    """N of the smallest shape the rule makes for this model config (d_model = WIDTH_STEP)."""
    shape_keys = {f.name for f in fields(ModelShape)}
    base = {
        k: v
        for k, v in model_cfg.items()
        if k in shape_keys and k not in RUNG_KEYS and v is not None
    }
    aspect, head_dim = ladder_rule(model_cfg.get("ladder") or {})
    return param_counts(ModelShape(**{**base, **dims_for(WIDTH_STEP, aspect, head_dim)[0]})).N
