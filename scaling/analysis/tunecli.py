"""`scaling tune RUNS`: the best lr of every size of an lr sweep, lr*(N) (and B*(C) where the batch
was swept) as power laws, written to the file `train.lr=auto` reads, with two figures."""

from __future__ import annotations

import argparse
import io
import math
import shlex
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from scaling import runs, tuned
from scaling.analysis import tune
from scaling.errors import ConfigError, DataError, FitError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NEEDED = ("size", "N", "D", "C", "lr", "batch_size", "loss")


def read_lr_runs(path: Path) -> list[dict]:
    """The finished runs of an lr sweep folder as typed rows (diverged runs get loss = nan)."""
    table = path / runs.RUNS_CSV
    if not table.is_file():
        raise DataError(
            f"{table} does not exist; give the folder of an lr sweep "
            "(e.g. runs/lr after `scaling sweep sweep=lr`)"
        )
    raw = runs.read_runs_csv(table)
    missing = [c for c in NEEDED if raw and c not in raw[0]]
    if not raw or missing:
        raise DataError(
            f"{table} has no runs or lacks column(s) {', '.join(missing)}; "
            "rebuild it with `scaling sweep` on the lr sweep"
        )
    rows = []
    for r in raw:
        loss = float(r["loss"]) if r["loss"] and r.get("status", "ok") == "ok" else math.nan
        rows.append(
            {
                "size": r["size"],
                "N": float(r["N"]),
                "D": float(r["D"]),
                "C": float(r["C"]),
                "lr": float(r["lr"]),
                "batch_size": int(float(r["batch_size"])),
                "loss": loss,
            }
        )
    return rows


def tune_runs(rows: list[dict], *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Every (size, batch)'s lr minimum, lr*(N) at the most-sampled batch, B*(C) when the batch
    varies: the content of the tuned file (plus `_minima` and `_laws` objects for the figures)."""
    groups: dict[tuple[float, int], list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["N"], r["batch_size"])].append(r)
    minima = {}
    for (N, batch), rs in sorted(groups.items()):
        try:
            minima[(N, batch)] = tune.find_lr_minimum(
                np.asarray([r["lr"] for r in rs], dtype=float),
                np.asarray([r["loss"] for r in rs], dtype=float),
                n_boot=n_boot,
                level=level,
                seed=seed,
            )
        except FitError as err:
            raise FitError(f"size {rs[0]['size']} (N={N:.0f}, batch {batch}): {err}") from None
    per_batch = defaultdict(list)
    for N, batch in minima:
        per_batch[batch].append(N)
    batch = max(per_batch, key=lambda b: (len(per_batch[b]), b == 16, -b))
    inner = [
        (N, minima[(N, batch)]) for N in sorted(per_batch[batch]) if not minima[(N, batch)].edge
    ]
    edges = [f"N={N:.0f} ({m.edge} edge)" for (N, b), m in minima.items() if b == batch and m.edge]
    if len(inner) < 2:
        raise FitError(
            f"{len(inner)} size(s) have their best lr inside the sampled range (at an edge: "
            f"{', '.join(edges)}); sweep those sizes again with lrs past that edge (a rerun "
            "into the same folder trains only the new runs)"
        )
    lr_law = tune.fit_power_law(
        np.array([N for N, _ in inner]),
        [m.log_samples for _, m in inner],
        tuned.N_REF,
        level=level,
        seed=seed,
    )
    sizes = {r["N"]: (r["size"], r["D"], r["C"]) for r in rows}
    table = [tune.minimum_row(sizes[N][0], N, b, sizes[N][1], m) for (N, b), m in minima.items()]
    out = {
        "kind": tuned.FILE_KIND,
        "level": level,
        "bootstrap": n_boot,
        "lr": tune.law_dict(
            lr_law, batch_size=batch, N_range=[inner[0][0], inner[-1][0]], sizes_used=len(inner)
        ),
        "minima": table,
        "batch": None,
    }
    if len(per_batch) > 1:
        out["batch"] = _batch_law(minima, sizes)
    out["_minima"], out["_law"] = minima, lr_law
    return out


def _batch_law(minima: dict, sizes: dict) -> dict:
    """B*(C): at each size the batch whose best lr gave the lowest loss, against the size's C, as
    a least-squares power law (the batch grid is discrete, so no interval)."""
    best: dict[float, tuple[float, int]] = {}
    for (N, batch), m in minima.items():
        if N not in best or m.loss < best[N][0]:
            best[N] = (m.loss, batch)
    C = np.array([sizes[N][2] for N in sorted(best)])
    B = np.array([best[N][1] for N in sorted(best)], dtype=float)
    points = [{"N": N, "C": c, "batch_size": int(b)} for N, c, b in zip(sorted(best), C, B)]
    if np.unique(C).size < 2:
        return {"points": points}
    slope, icpt = np.polyfit(np.log(C / tune.C_REF), np.log(B), 1)
    return {
        "coef": float(math.exp(icpt)),
        "exponent": float(slope),
        "ref": tune.C_REF,
        "points": points,
    }


# ---------------------------------------------------------------- figures


def _save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=130)
    runs.atomic_write_bytes(path, buf.getvalue())


def write_figures(rows: list[dict], result: dict, out: Path) -> list[Path]:
    """lr_curves.png (loss against lr per size, each minimum with its interval) and lr_fit.png
    (lr* against N with the fitted power law and its band)."""
    paths = [out / "lr_curves.png", out / "lr_fit.png"]
    _save(_lr_curves_figure(rows, result), paths[0])
    _save(_lr_fit_figure(result), paths[1])
    return paths


def _lr_curves_figure(rows: list[dict], result: dict) -> Figure:
    """Loss against lr per size, each minimum a star with its interval."""
    from matplotlib.figure import Figure

    minima = result["_minima"]
    fig = Figure(figsize=(6.2, 4.4))
    ax = fig.add_subplot()
    for (N, batch), m in minima.items():
        pts = sorted((r["lr"], r["loss"]) for r in rows if r["N"] == N and r["batch_size"] == batch)
        label = f"N={N:,.0f}" + (f", B={batch}" if result["batch"] else "")
        (line,) = ax.plot(*zip(*pts), "o-", ms=4, label=label)
        ax.errorbar(
            [m.lr],
            [m.loss],
            xerr=[[m.lr - m.lo], [m.hi - m.lr]],
            fmt="*",
            ms=11,
            color=line.get_color(),
            mec="k",
            capsize=3,
        )
    ax.set_xscale("log")
    ax.set_xlabel("peak learning rate")
    ax.set_ylabel("final validation loss (nats/token)")
    ax.set_title("Loss against lr per size (stars: best lr, 95% interval)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return fig


def _lr_fit_figure(result: dict) -> Figure:
    """lr* against N with the fitted power law (minima at the sweep's edge drawn apart)."""
    from matplotlib.figure import Figure

    minima, law = result["_minima"], result["_law"]
    fig = Figure(figsize=(6.2, 4.4))
    ax = fig.add_subplot()
    batch = result["lr"]["batch_size"]
    for (N, b), m in minima.items():
        if b != batch:
            continue
        ax.errorbar(
            [N],
            [m.lr],
            yerr=[[m.lr - m.lo], [m.hi - m.lr]],
            fmt="o" if not m.edge else "x",
            color="C0" if not m.edge else "C3",
            capsize=3,
        )
    Ns = np.array(sorted(N for N, b in minima if b == batch))
    grid = np.geomspace(Ns.min() / 1.5, Ns.max() * 1.5, 50)
    e_lo, e_hi = law.exponent_interval
    ax.plot(
        grid,
        law(grid),
        "k-",
        label=f"lr* = {law.coef:.3g} (N/1e5)^{law.exponent:.3f} [{e_lo:.2f}, {e_hi:.2f}]",
    )
    ax.axhline(3e-3, color="grey", ls=":", label="old default 3e-3")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("N (parameters)")
    ax.set_ylabel("best peak lr")
    ax.set_title(f"Best lr against N (batch {batch}; x: minimum at the sweep's edge, not fitted)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return fig


# ---------------------------------------------------------------- scaling tune


def format_table(result: dict) -> str:
    lines = [
        f"{'size':<6} {'N':>9} {'batch':>5} {'best lr':>9} {'95% interval':>21} {'loss':>7} edge"
    ]
    for r in result["minima"]:
        lines.append(
            f"{r['size']:<6} {r['N']:>9,.0f} {r['batch_size']:>5} {r['lr']:>9.3g} "
            f"{'[' + format(r['lo'], '.3g') + ', ' + format(r['hi'], '.3g') + ']':>21} "
            f"{r['loss']:>7.4f} {r['edge'] or '-'}"
        )
    law = result["lr"]
    lines.append(
        f"lr*(N) = {law['coef']:.4g} [{law['coef_interval'][0]:.3g}, {law['coef_interval'][1]:.3g}]"
        f" * (N/1e5)^{law['exponent']:.3f} [{law['exponent_interval'][0]:.3f}, "
        f"{law['exponent_interval'][1]:.3f}]  "
        f"(batch {law['batch_size']}, {law['sizes_used']} sizes)"
    )
    if result["batch"] and "coef" in result["batch"]:
        b = result["batch"]
        lines.append(f"B*(C) = {b['coef']:.3g} * (C/1e12)^{b['exponent']:.3f}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="scaling tune",
        description="The best lr of every size of an lr sweep, lr*(N) (and B*(C) where the batch "
        "was swept) as power laws, written to the file train.lr=auto reads (docs/tuning.md).",
    )
    p.add_argument("path", help="an lr sweep folder (runs/lr after `scaling sweep sweep=lr`)")
    p.add_argument(
        "--out",
        help="the tuned file to write (default PATH/tuned.json, where "
        "train.lr_fit points for runs_dir=PATH/..)",
    )
    p.add_argument(
        "--figures", metavar="DIR", help="also write lr_curves.png and lr_fit.png into DIR"
    )
    p.add_argument(
        "--bootstrap", type=int, default=1000, metavar="N", help="bootstrap draws (default 1000)"
    )
    p.add_argument("--level", type=float, default=0.95, help="interval level (default 0.95)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    args = p.parse_args(argv)
    if args.bootstrap < 1 or not 0 < args.level < 1:
        raise ConfigError("--bootstrap must be >= 1 and --level between 0 and 1")
    path = Path(args.path)
    rows = read_lr_runs(path)
    result = tune_runs(rows, n_boot=args.bootstrap, level=args.level, seed=args.seed)
    print(format_table(result))
    out = Path(args.out) if args.out else path / "tuned.json"
    body = {k: v for k, v in result.items() if not k.startswith("_")}
    body.update(source=str(path), command="scaling tune " + shlex.join(argv))
    try:
        runs.atomic_write_json(out, body)
        if args.figures:
            for fig in write_figures(rows, result, Path(args.figures)):
                print(f"figure: {fig}")
    except OSError as err:
        raise ConfigError(
            f"cannot write {out} or the figures ({err.strerror}); choose a writable --out/--figures"
        ) from None
    print(f"tuned: {out} (train.lr=auto reads it when train.lr_fit points there)")
    return 0
