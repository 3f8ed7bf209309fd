"""Seed noise of one IsoFLOP budget: the same runs under several seeds (init, data order), side by
side.

    python scripts/seed_noise.py OUT.md SWEEP_DIR [SWEEP_DIR ...]

Each SWEEP_DIR is one budget's sweep folder trained with one `train.seed` (runs.csv); the table
gives every size's loss per seed, their mean and sample standard deviation, and per seed the
budget's loss-minimising N* (Approach 2's Akima read-off,
scaling.analysis.laws.approaches.isoflop_minimum). Written atomically. Called by
scripts/reference_study.sh.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from scaling.analysis.laws.approaches import isoflop_minimum
from scaling.runs import atomic_write_text


def main(out: str, folders: list[str]) -> None:
    runs = pd.concat([pd.read_csv(Path(f) / "runs.csv") for f in folders], ignore_index=True)
    log_c = np.log10(runs["C"].to_numpy(float))
    if (
        np.ptp(log_c) > 0.05
    ):  # D is rounded to whole steps, so one budget's C differs by a little per size
        sys.exit(
            "seed_noise.py: the folders hold more than one compute budget; give one budget's sweeps"
        )
    table = runs.pivot_table(index=["N", "size"], columns="seed", values="loss").sort_index()
    seeds = list(table.columns)
    lines = [
        f"# Seed noise at C = {10 ** log_c.mean():.3g} FLOPs ({len(seeds)} seeds: "
        f"{', '.join(map(str, seeds))})",
        "",
        "| size | N | "
        + " | ".join(f"loss, seed {s}" for s in seeds)
        + " | mean | std | std / mean |",
        "| --- | --- | " + " | ".join("---" for _ in seeds) + " | --- | --- | --- |",
    ]
    for (n, size), row in table.iterrows():
        v = row.to_numpy(float)
        lines.append(
            f"| {size} | {n:,.0f} | "
            + " | ".join(f"{x:.4f}" for x in v)
            + f" | {v.mean():.4f} | {v.std(ddof=1):.4f} | {v.std(ddof=1) / v.mean():.2%} |"
        )
    log_n = np.log(table.index.get_level_values("N").to_numpy(float))
    stars = {s: float(np.exp(isoflop_minimum(log_n, table[s].to_numpy(float))[0])) for s in seeds}
    lines += [
        "",
        "N* (Akima read-off of each seed's profile): "
        + ", ".join(f"seed {s} {v:,.0f}" for s, v in stars.items())
        + f"; spread max/min = {max(stars.values()) / min(stars.values()):.2f}x",
        "",
    ]
    atomic_write_text(Path(out), "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__.split("\n\n")[1].strip())
    main(sys.argv[1], sys.argv[2:])
