"""Unit sanity checks of a points table: counts given in billions or FLOPs in PF-days pass every
type check but make D/N or C/(6ND) implausible; say so in one warning each."""

from __future__ import annotations

import numpy as np
import pandas as pd

from scaling.flops import FLOPS_PER_PARAM_TOKEN

TOKENS_PER_PARAM = (1e-2, 1e6)  # median D/N outside this: N or D is probably not a raw count
FLOPS_RATIO = (0.2, 5.0)  # median C/(6ND) outside this: C is probably in other units (or N, D are)


def unit_warnings(frame: pd.DataFrame, given: set[str]) -> list[str]:
    """Warnings for implausible ratios of N, D, C (`given`: the columns read, not derived)."""
    out = []
    n, d, c = (frame[k].to_numpy(float) for k in ("N", "D", "C"))
    ratio = float(np.median(d / n))
    if not TOKENS_PER_PARAM[0] <= ratio <= TOKENS_PER_PARAM[1]:
        out.append(
            f"units: median D/N = {ratio:.2g} tokens per parameter is implausible; give N "
            "and D as raw counts (not millions or billions), or C in FLOPs when D is "
            "derived from it"
        )
    if {"N", "D", "C"} <= given:
        r = float(np.median(c / (FLOPS_PER_PARAM_TOKEN * n * d)))
        if not FLOPS_RATIO[0] <= r <= FLOPS_RATIO[1]:
            out.append(
                f"units: median C/(6ND) = {r:.2g}, far from 1; give C in FLOPs and N, D as "
                "raw counts"
            )
    return out
