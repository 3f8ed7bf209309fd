"""Time the Approach 3 fitters and the bootstrap on the Epoch Chinchilla data; prints figures.

    python benchmarks/fit_bench.py [--boot 1000] [--jobs 1] [--loop]
    python benchmarks/fit_bench.py --processes [--runs 5] [--quick runs/quick] [--baseline DIR]

Aims (2-core machine): fast method < 1 s, 4500-start grid < 10 s, 1000-resample bootstrap < 30 s.
--loop also times a plain L-BFGS-B loop over the first 200 grid starts and extrapolates to 4500.
--processes times whole `scaling fit` / `scaling report` processes (start-up included; median of
--runs runs) on Epoch, Porian and a quick sweep folder, and prints a Markdown table; --baseline DIR
(another checkout, e.g. `git worktree add DIR <commit>`) times the same commands with that code,
interleaved run by run, so the ratio holds on a busy machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from scaling.analysis.laws.bootstrap import bootstrap_chinchilla
from scaling.analysis.laws.fit import fit_chinchilla, hoffmann_grid, polish_chinchilla
from scaling.analysis.tables import load_points

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "reference"
REF = SHARED / "epoch_chinchilla_svg_extracted_data.csv"
PORIAN = (
    "--c",
    "flops",
    "--group",
    "label",
    "--query",
    "source_file == 'summary_df' and dataset == 'rw'",
)


def process_cases(quick: str | None) -> list[tuple[str, list[str]]]:
    """(label, `scaling` arguments) of every timed command; OUT stands for a fresh report folder."""
    epoch, porian = str(REF), str(SHARED / "porian2024_isoflop_points.csv")
    cases = [
        (f"fit Epoch --bootstrap {b}", ["fit", epoch, "--bootstrap", str(b)])
        for b in (0, 200, 1000)
    ]
    cases += [
        (
            "report Epoch (committed: --method grid --bootstrap 1000)",
            [
                "report",
                epoch,
                "--drop-top-loss",
                "5",
                "--method",
                "grid",
                "--bootstrap",
                "1000",
                "--out",
                "OUT",
            ],
        ),
        (
            "report Porian (committed: 5 groups, --bootstrap 200)",
            ["report", porian, *PORIAN, "--bootstrap", "200", "--out", "OUT"],
        ),
    ]
    if quick:
        cases.append(
            (
                f"report quick sweep ({Path(quick).name}, --bootstrap 200)",
                ["report", str(Path(quick).resolve()), "--bootstrap", "200", "--out", "OUT"],
            )
        )
    return cases


def time_process(code: Path, args: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one `python -m scaling.cli ARGS` process running `code`'s package; the
    CPU seconds (user + system, its worker processes included) hardly move on a busy machine."""
    with tempfile.TemporaryDirectory() as tmp:
        argv = [str(Path(tmp) / "out") if a == "OUT" else a for a in args]
        env = dict(os.environ, PYTHONPATH=str(code))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "scaling.cli", *argv],
            cwd=code,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        dt = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        why = done.stderr.strip().splitlines()[-1]
        raise SystemExit(f"scaling {' '.join(args)} failed in {code}: {why}")
    return dt, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def processes(
    runs: int, quick: str | None, baseline: str | None, baseline_runs: int, only: str | None
) -> None:
    """Median wall time of whole processes, this checkout against an optional baseline checkout
    (its first `baseline_runs` runs interleaved with this checkout's)."""
    print(
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; median of {runs} runs"
        + (f" ({baseline_runs} of the baseline)" if baseline else "")
    )
    head = "| command | wall (s) | CPU (s) |"
    if baseline:
        head += " baseline wall (s) | baseline CPU (s) | CPU ratio |"
    print(head)
    print("|" + " --- |" * (head.count("|") - 1))
    for label, args in process_cases(quick):
        if only and only not in label:
            continue
        new, old = [], []
        for i in range(runs):
            new.append(time_process(ROOT, args))
            if baseline and i < baseline_runs:
                old.append(time_process(Path(baseline).resolve(), args))
        med = lambda xs, k: statistics.median(x[k] for x in xs)  # noqa: E731
        row = f"| `{label}` | {med(new, 0):.1f} | {med(new, 1):.1f} |"
        if baseline:
            ratio = statistics.median(o[1] / n[1] for o, n in zip(old, new))
            row += f" {med(old, 0):.1f} | {med(old, 1):.1f} | {ratio:.1f}x |"
        print(row, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(REF))
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--loop", action="store_true")
    ap.add_argument("--processes", action="store_true", help="time whole fit/report processes")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", help="a quick sweep folder to report on (e.g. runs/quick)")
    ap.add_argument("--baseline", help="another checkout, timed interleaved with this one")
    ap.add_argument("--baseline-runs", type=int, help="runs of the baseline (default --runs)")
    ap.add_argument("--only", help="time only the commands whose label contains this text")
    args = ap.parse_args()
    if args.processes:
        processes(args.runs, args.quick, args.baseline, args.baseline_runs or args.runs, args.only)
        return
    df = load_points(args.data, drop_top_loss=5).frame
    logs = tuple(np.log(df[c].to_numpy(float)) for c in ("N", "D", "loss"))
    print(f"data: {len(df)} points from {args.data}")
    results = {}
    for method in ("grid", "fast"):
        t = time.perf_counter()
        fit = fit_chinchilla(*logs, method=method)
        dt = time.perf_counter() - t
        results[method] = fit
        print(
            f"{method:>5}: {dt:7.3f} s  objective {fit.objective:.10e}  status {fit.status.value}  "
            f"{fit.law!r}"
        )
    t = time.perf_counter()
    theta, ok = bootstrap_chinchilla(
        df, results["fast"].law.theta, n_boot=args.boot, seed=0, n_jobs=args.jobs
    )
    dt = time.perf_counter() - t
    se = np.std(theta[ok], axis=0, ddof=1)
    print(
        f"bootstrap {args.boot} resamples, {args.jobs} job(s): {dt:7.3f} s  converged "
        f"{ok.mean():.1%}  SE alpha {se[3]:.4f} beta {se[4]:.4f} (Epoch, 4000 resamples: 0.0154, "
        "0.021)"
    )
    if (
        args.loop
    ):  # what the screening saves: one tight L-BFGS-B polish per start, for all 4500 starts
        grid = hoffmann_grid()[::45]
        t = time.perf_counter()
        for x0 in grid:
            polish_chinchilla(x0, *logs)
        dt = time.perf_counter() - t
        print(
            f"plain loop over {len(grid)} grid starts: {dt:.2f} s -> all 4500 ~ "
            f"{dt * 4500 / len(grid):.0f} s"
        )


if __name__ == "__main__":
    main()
