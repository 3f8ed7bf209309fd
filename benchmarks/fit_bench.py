"""Time the Approach 3 fitters and the bootstrap on the Epoch Chinchilla data; prints figures.

    python benchmarks/fit_bench.py [--boot 1000] [--jobs 1] [--loop]

Aims (2-core machine): fast method < 1 s, 4500-start grid < 10 s, 1000-resample bootstrap < 30 s.
--loop also times a plain L-BFGS-B loop over the first 200 grid starts and extrapolates to 4500.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from scaling.laws.bootstrap import bootstrap_chinchilla
from scaling.laws.fit import fit_chinchilla, hoffmann_grid, polish_chinchilla
from scaling.tables import load_points

REF = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "epoch_chinchilla_svg_extracted_data.csv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(REF))
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--loop", action="store_true")
    args = ap.parse_args()
    df = load_points(args.data, drop_top_loss=5).frame
    logs = tuple(np.log(df[c].to_numpy(float)) for c in ("N", "D", "loss"))
    print(f"data: {len(df)} points from {args.data}")
    results = {}
    for method in ("grid", "fast"):
        t = time.perf_counter()
        fit = fit_chinchilla(*logs, method=method)
        dt = time.perf_counter() - t
        results[method] = fit
        print(f"{method:>5}: {dt:7.3f} s  objective {fit.objective:.10e}  status {fit.status.value}  {fit.law!r}")
    t = time.perf_counter()
    theta, ok = bootstrap_chinchilla(df, results["fast"].law.theta, n_boot=args.boot, seed=0, n_jobs=args.jobs)
    dt = time.perf_counter() - t
    se = np.std(theta[ok], axis=0, ddof=1)
    print(f"bootstrap {args.boot} resamples, {args.jobs} job(s): {dt:7.3f} s  converged {ok.mean():.1%}  "
          f"SE alpha {se[3]:.4f} beta {se[4]:.4f} (Epoch, 4000 resamples: 0.0154, 0.021)")
    if args.loop:  # what the screening saves: one tight L-BFGS-B polish per start, for all 4500 starts
        grid = hoffmann_grid()[::45]
        t = time.perf_counter()
        for x0 in grid:
            polish_chinchilla(x0, *logs)
        dt = time.perf_counter() - t
        print(f"plain loop over {len(grid)} grid starts: {dt:.2f} s -> all 4500 ~ {dt * 4500 / len(grid):.0f} s")


if __name__ == "__main__":
    main()
