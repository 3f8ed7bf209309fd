"""`--best-over COLS`: reduce a hyperparameter sweep (peak lr, warmup, ...) to its best run per
(N, D), as a sweep table must be before any law is fitted to it (e.g. Li et al. 2025's lr sweep)."""

from __future__ import annotations

import pandas as pd

from scaling.errors import DataError


def best_over(
    frame: pd.DataFrame, table: pd.DataFrame, cols: list[str], source: str
) -> tuple[pd.DataFrame, str]:
    """Keep the lowest-loss row of each (N, D[, group]) in `frame` (row-aligned with the raw
    `table`, whose `cols` are the swept hyperparameters); returns the kept rows and a note."""
    missing = [c for c in cols if c not in table]
    if missing:
        raise DataError(
            f"{source}: --best-over names column(s) {', '.join(map(repr, missing))} that "
            f"the table lacks; found columns: {', '.join(map(str, table.columns))}"
        )
    keys = ["N", "D"] + (["group"] if "group" in frame else [])
    best = frame.reset_index(drop=True).groupby(keys, sort=False)["loss"].idxmin()
    kept = frame.reset_index(drop=True).loc[sorted(best.to_numpy())].reset_index(drop=True)
    swept = ", ".join(f"{c} ({table[c].nunique()} values)" for c in cols)
    return (
        kept,
        f"best over {swept}: kept the lowest loss of each (N, D), {len(kept)} of {len(frame)} rows",
    )
