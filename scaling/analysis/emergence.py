"""`scaling emergence PATH... --out DIR`: how each probed ability grows with N, D and C, under a
discontinuous metric (exact-match accuracy) and a continuous one (log-probability of the answer).

Reads sweep folders (runs.csv with the final probe scores, metrics.jsonl for training curves);
never imports torch. Writes one figure per ability (accuracy and log-probability against N, D
and C side by side), an overview figure, emergence.json and emergence.md: the abruptness of each
curve (largest jump between neighbouring points / whole rise) and a plain-words statement of
which abilities look emergent under accuracy and whether the continuous metric grows smoothly.
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from scaling import runs
from scaling.analysis.tables import read_sweep
from scaling.errors import DataError

ABRUPT = 0.5  # a curve whose largest step holds at least this share of its rise "jumps"
MIN_RISE_ACC = 0.1  # accuracy must rise by this much to count as growing at all
MIN_RISE_LOGP = 0.05  # nats per token, likewise for the continuous metrics
LABELS = {
    "icl": "in-context learning (associative recall)",
    "reasoning": "reasoning (all hop counts)",
    "knowledge": "knowledge (memorised facts)",
    "induction": "induction (repeated random tokens)",
    "icl_any": "in-context learning score (late vs early loss)",
}


@dataclass(frozen=True)
class Ability:
    """One ability: its accuracy column (or None) and its continuous column, sign-fixed so that
    higher is better (log p per answer token; minus a loss)."""

    name: str
    acc: str | None
    cont: str
    sign: float
    cont_label: str

    @property
    def label(self) -> str:
        m = re.fullmatch(r"reasoning(\d+)", self.name)
        return f"reasoning, {m.group(1)} step(s)" if m else LABELS.get(self.name, self.name)


def abilities(columns: list[str]) -> list[Ability]:
    """The abilities present in a table, in a fixed order (probes, then the any-data scores)."""
    cols = set(columns)
    out = []
    names = sorted(
        {c[:-4] for c in cols if c.endswith("_acc") and f"{c[:-4]}_logp" in cols},
        key=lambda n: (
            ["icl", "reasoning", "knowledge"].index(re.sub(r"\d+$", "", n))
            if re.sub(r"\d+$", "", n) in ("icl", "reasoning", "knowledge")
            else 9,
            n,
        ),
    )
    for n in names:
        out.append(Ability(n, f"{n}_acc", f"{n}_logp", 1.0, "log p per answer token (nats)"))
    if "induction_loss" in cols:
        out.append(
            Ability(
                "induction",
                "induction_acc" if "induction_acc" in cols else None,
                "induction_loss",
                -1.0,
                "- loss on the repeat (nats)",
            )
        )
    if "icl_late_minus_early" in cols:
        out.append(
            Ability("icl_any", None, "icl_late_minus_early", -1.0, "early - late loss (nats)")
        )
    return out


# ---------------------------------------------------------------- reading sweeps


def load(paths: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(final runs, training curves) of every finished `ok` run under the given sweep folders or
    runs.csv files; raises DataError naming the path and the fix."""
    frames, curves = [], []
    for p in map(Path, paths):
        csv = p if p.is_file() else p / runs.RUNS_CSV
        if not csv.is_file():
            raise DataError(
                f"{p} is neither a sweep folder with {runs.RUNS_CSV} nor a runs.csv file; "
                "pass runs/<sweep> after `scaling sweep` finished"
            )
        df, cv = read_sweep(csv, [])
        missing = [c for c in ("run_id", "N", "D", "C") if c not in df]
        if missing:
            raise DataError(
                f"{csv} lacks the column(s) {', '.join(missing)}; it must be a scaling runs.csv"
            )
        frames.append(df)
        if cv is not None:
            ids = df["run_id"].astype(str)
            cv["N"] = cv["run_id"].map(dict(zip(ids, df["N"])))
            cv["D_run"] = cv["run_id"].map(dict(zip(ids, df["D"])))
            curves.append(cv)
    # a score that is NaN in every run (e.g. a probe longer than the context) carries nothing
    table = pd.concat(frames, ignore_index=True).dropna(axis=1, how="all")
    if len(table) < 2:
        raise DataError(
            f"{len(table)} finished ok run(s) in {', '.join(paths)}; emergence needs at least 2 "
            "(train a sweep over model.size or train.tokens)"
        )
    return table, (pd.concat(curves, ignore_index=True) if curves else pd.DataFrame())


# ---------------------------------------------------------------- abruptness


@dataclass(frozen=True)
class Jump:
    """The largest step of a curve relative to its whole rise (max - min): 1 = all at once,
    1/(n-1) = evenly spread over n points; NaN when the rise is below the noise threshold."""

    score: float
    rise: float
    lo: float  # values at either end of the curve (sorted by x)
    hi: float
    x0: float  # the neighbouring points where the largest step happens
    x1: float
    n: int

    def as_dict(self) -> dict:
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in self.__dict__.items()
        }


def jump(x: np.ndarray, y: np.ndarray, min_rise: float) -> Jump:
    """Abruptness of y(x): mean y per distinct x, sorted by x, then max step / (max - min)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2:
        return Jump(math.nan, math.nan, math.nan, math.nan, math.nan, math.nan, int(ok.sum()))
    xs = np.unique(x[ok])
    ys = np.array([y[ok][x[ok] == v].mean() for v in xs])
    if len(xs) < 2:
        return Jump(math.nan, 0.0, ys[0], ys[0], math.nan, math.nan, 1)
    steps = np.diff(ys)
    i = int(np.argmax(steps))
    rise = float(ys.max() - ys.min())
    score = float(steps[i] / rise) if rise >= min_rise and steps[i] > 0 else math.nan
    return Jump(score, rise, float(ys[0]), float(ys[-1]), float(xs[i]), float(xs[i + 1]), len(xs))


def _groups(df: pd.DataFrame, by: str, along: str) -> list[tuple[float, pd.DataFrame]]:
    """Runs grouped by `by` (rounded to 3 significant digits), largest first, with >= 2 distinct
    `along`."""
    key = df[by].map(lambda v: float(f"{v:.3g}"))
    out = [(k, g) for k, g in df.groupby(key) if g[along].nunique() >= 2]
    return sorted(out, key=lambda kg: -kg[0])


def _frontier(df: pd.DataFrame, col: str) -> tuple[np.ndarray, np.ndarray]:
    """Best score reached at compute <= C (the compute-efficient frontier), sorted by C."""
    d = df[["C", col]].dropna().sort_values("C")
    return d["C"].to_numpy(float), np.maximum.accumulate(d[col].to_numpy(float)) if len(
        d
    ) else np.array([])


def curve(
    df: pd.DataFrame, axis: str, col: str, sign: float = 1.0
) -> tuple[np.ndarray, np.ndarray, str]:
    """The curve an axis is judged on: along N the largest D budget with >= 2 sizes (else every
    run), along D the largest size with >= 2 budgets (else every run), along C the frontier."""
    d = df.assign(_y=sign * df[col])
    if axis == "C":
        x, y = _frontier(d, "_y")
        return x, y, "compute frontier"
    other = "D" if axis == "N" else "N"
    groups = _groups(d, other, axis)
    if groups:
        k, g = groups[0]
        return g[axis].to_numpy(float), g["_y"].to_numpy(float), f"at {other}={k:.3g}"
    return d[axis].to_numpy(float), d["_y"].to_numpy(float), "all runs"


def analyse(df: pd.DataFrame, threshold: float = ABRUPT) -> dict:
    """Abruptness of every ability under both metrics along N, D and C, and its verdict."""
    out = {}
    for ab in abilities(list(df.columns)):
        entry: dict = {
            "label": ab.label,
            "acc_column": ab.acc,
            "cont_column": ab.cont,
            "chance": float(df[f"{ab.name}_chance"].max()) if f"{ab.name}_chance" in df else None,
        }
        for metric, col, sign, floor in (
            ("acc", ab.acc, 1.0, MIN_RISE_ACC),
            ("cont", ab.cont, ab.sign, MIN_RISE_LOGP),
        ):
            if col is None:
                continue
            entry[metric] = {}
            for axis in ("N", "D", "C"):
                x, y, where = curve(df, axis, col, sign)
                entry[metric][axis] = {**jump(x, y, floor).as_dict(), "curve": where}
        entry["verdict"], entry["statement"] = _verdict(ab, entry, threshold)
        out[ab.name] = entry
    return out


def _pct(v: float) -> str:
    return f"{100 * v:.0f}%"


def _verdict(ab: Ability, e: dict, threshold: float) -> tuple[str, str]:
    """One of: emergent-acc-smooth-cont, abrupt-both, emergent-acc, gradual, below-threshold,
    at-chance, flat, too-few; and a sentence."""
    c = e["cont"]["N"]
    if c["n"] < 3:
        return "too-few", (
            f"**{ab.label}**: only {c['n']} distinct size(s) along N; judging abruptness needs at "
            "least 3 (add model sizes to the sweep)."
        )
    c_abrupt, c_grows, c_shape = _continuous_shape(c, threshold)
    if ab.acc is None:
        return _continuous_only_verdict(ab, c, c_abrupt, c_grows, c_shape)
    a = e["acc"]["N"]
    chance = e.get("chance")
    if (
        chance is not None
        and a["hi"] is not None
        and max(a["lo"], a["hi"]) <= chance + MIN_RISE_ACC
    ):
        return (
            "at-chance",
            f"**{ab.label}**: accuracy ends at {a['hi']:.2f}, no better than chance ({chance:.2f}, "
            f"a guesser that knows only the answer format): the format is learned, not the ability"
            + (f"; its log-probability grows {c_shape}." if c_grows else "."),
        )
    if a["score"] is None:
        return _no_accuracy_rise_verdict(ab, a, c_grows, c_shape)
    return _accuracy_rise_verdict(ab, a, threshold, c_abrupt, c_grows, c_shape)


def _continuous_shape(c: dict, threshold: float) -> tuple[bool, bool, str]:
    """Whether the continuous metric jumps, whether it grows at all, and how it grows in words."""
    c_abrupt = c["score"] is not None and c["score"] >= threshold
    c_grows = c["score"] is not None
    c_shape = (
        f"in one jump ({_pct(c['score'])} of the rise between N={c['x0']:.3g} and {c['x1']:.3g})"
        if c_abrupt
        else f"smoothly (largest step {_pct(c['score'])} of the rise over {c['n']} sizes)"
        if c_grows
        else ""
    )
    return c_abrupt, c_grows, c_shape


def _continuous_only_verdict(
    ab: Ability, c: dict, c_abrupt: bool, c_grows: bool, c_shape: str
) -> tuple[str, str]:
    """Verdict of an ability without an accuracy column: flat, abrupt or gradual."""
    if not c_grows:
        c_txt = (
            f"its {ab.cont_label.split(' (')[0]} changes by {c['rise']:.2f} nats along N"
            if c["rise"] is not None and math.isfinite(c["rise"])
            else "its continuous metric is undefined"
        )
        return "flat", f"**{ab.label}**: no growth with N ({c_txt})."
    verdict = "abrupt" if c_abrupt else "gradual"
    return verdict, f"**{ab.label}** (continuous only): grows {c_shape}."


def _no_accuracy_rise_verdict(ab: Ability, a: dict, c_grows: bool, c_shape: str) -> tuple[str, str]:
    """Verdict where accuracy does not rise along N: below-threshold or flat."""
    level = a["hi"] if a["hi"] is not None else float("nan")
    if c_grows:
        return (
            "below-threshold",
            f"**{ab.label}**: accuracy stays near {level:.2f} (no rise of {MIN_RISE_ACC:g} "
            f"along N) while the log-probability already grows {c_shape}: the ability is "
            "building up below the exact-match threshold.",
        )
    return (
        "flat",
        f"**{ab.label}**: neither accuracy (near {level:.2f}) nor log-probability grows along N.",
    )


def _accuracy_rise_verdict(
    ab: Ability, a: dict, threshold: float, c_abrupt: bool, c_grows: bool, c_shape: str
) -> tuple[str, str]:
    """Verdict where accuracy rises along N: emergent (under one or both metrics) or gradual."""
    a_txt = (
        f"accuracy {a['lo']:.2f} -> {a['hi']:.2f}, {_pct(a['score'])} of the rise in one step "
        f"(N={a['x0']:.3g} -> {a['x1']:.3g})"
    )
    if a["score"] >= threshold:
        if c_grows and not c_abrupt:
            return (
                "emergent-acc-smooth-cont",
                f"**{ab.label}** looks emergent under accuracy ({a_txt}), but its log-probability "
                f"grows {c_shape}: the jump is a property of the exact-match metric (Schaeffer et "
                "al. 2023).",
            )
        if c_abrupt:
            return (
                "abrupt-both",
                f"**{ab.label}** looks emergent under accuracy ({a_txt}) and the log-probability "
                f"also moves {c_shape}: sharp under both metrics at this resolution of N.",
            )
        return (
            "emergent-acc",
            f"**{ab.label}** looks emergent under accuracy ({a_txt}); the log-probability shows "
            "no clear trend.",
        )
    return (
        "gradual",
        f"**{ab.label}** grows gradually under accuracy ({a_txt}); log-probability grows "
        f"{c_shape or 'little'}.",
    )


# ---------------------------------------------------------------- figures


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _margins(
    fig,
    left: float = 0.85,
    right: float = 0.15,
    bottom: float = 0.5,
    top: float = 0.55,
    hspace: float = 0.45,
    wspace: float = 0.35,
) -> None:
    """Fixed margins in inches instead of tight_layout, whose text measuring was ~40% of each
    emergence figure's drawing time; the panels' labels fit these margins at every size."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(
        left=left / w,
        right=1 - right / w,
        bottom=bottom / h,
        top=1 - top / h,
        hspace=hspace,
        wspace=wspace,
    )


def _log_x(ax) -> None:
    """A log N/D/C axis without minor ticks (their creation and layout were a third of each
    emergence figure's drawing time); an axis spanning under two decades labels 1, 2 and 5."""
    from matplotlib.ticker import LogLocator, NullLocator

    ax.set_xscale("log")
    ax.xaxis.set_minor_locator(NullLocator())
    lo, hi = ax.get_xlim()
    if hi < 100 * lo:
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))


def _lines(ax, df: pd.DataFrame, axis: str, col: str, sign: float, cmap) -> None:
    """Final scores against `axis`, one line per value of the other axis (colour = its size)."""
    other = "D" if axis == "N" else "N"
    groups = _groups(df, other, axis) or [(float("nan"), df)]
    values = [k for k, _ in groups]
    lo, hi = (
        np.log(np.nanmin(values)) if len(values) > 1 else 0,
        np.log(np.nanmax(values)) if len(values) > 1 else 1,
    )
    for k, g in sorted(groups, key=lambda kg: kg[0]):
        g = g.groupby(axis, as_index=False)[[col]].mean().sort_values(axis)
        shade = (
            0.5 if not math.isfinite(k) or hi == lo else 0.15 + 0.8 * (math.log(k) - lo) / (hi - lo)
        )
        label = f"{other}={k:.3g}" if math.isfinite(k) else "all runs"
        ax.plot(g[axis], sign * g[col], "o-", color=cmap(shade), label=label, ms=3, lw=1.2)
    _log_x(ax)
    ax.legend(fontsize=6, loc="best")


def _c_panel(ax, df: pd.DataFrame, curves: pd.DataFrame, col: str, sign: float, cmap) -> None:
    """Every run's training curve against FLOPs (thin), its final point, and the frontier
    (black)."""
    ns = sorted(df["N"].unique())
    shade = {n: 0.15 + 0.8 * i / max(len(ns) - 1, 1) for i, n in enumerate(ns)}
    if len(curves) and col in curves:  # one collection: a Line2D per run cost more than its drawing
        from matplotlib.collections import LineCollection

        segments, colours = [], []
        for _, c in curves.groupby("run_id"):
            c = c.sort_values("flops")
            segments.append(np.column_stack([c["flops"], sign * c[col]]))
            colours.append(cmap(shade.get(c["N"].iloc[0], 0.5)))
        ax.add_collection(LineCollection(segments, colors=colours, linewidths=0.6, alpha=0.6))
    ax.scatter(df["C"], sign * df[col], c=[cmap(shade[n]) for n in df["N"]], s=12, zorder=3)
    x, y = _frontier(df.assign(_y=sign * df[col]), "_y")
    if len(x):
        ax.step(x, y, where="post", color="black", lw=1.2, label="frontier")
    _log_x(ax)


def figure(df: pd.DataFrame, curves: pd.DataFrame, ab: Ability, entry: dict, path: Path) -> Path:
    """Accuracy (top) and the continuous metric (bottom) against N, D and C for one ability."""
    plt = _plt()
    metrics = [("acc", ab.acc, 1.0, "exact-match accuracy")] if ab.acc else []
    metrics.append(("cont", ab.cont, ab.sign, ab.cont_label))
    fig, axes = plt.subplots(len(metrics), 3, figsize=(12, 3.2 * len(metrics)), squeeze=False)
    for r, (key, col, sign, ylabel) in enumerate(metrics):
        cmap = plt.get_cmap("viridis" if key == "acc" else "plasma")
        for c, axis in enumerate(("N", "D", "C")):
            ax = axes[r, c]
            if axis == "C":
                _c_panel(ax, df, curves, col, sign, cmap)
            else:
                _lines(ax, df, axis, col, sign, cmap)
            j = entry[key][axis]
            score = "flat" if j["score"] is None else f"abruptness {j['score']:.2f}"
            ax.set_title(f"{ylabel.split(' (')[0]} vs {axis}: {score}", fontsize=8)
            ax.set_xlabel(
                {"N": "parameters N", "D": "training tokens D", "C": "training FLOPs C"}[axis]
            )
            if c == 0:
                ax.set_ylabel(ylabel, fontsize=8)
            if key == "acc":
                ax.set_ylim(-0.03, 1.03)
    fig.suptitle(ab.label)
    _margins(fig)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def overview(df: pd.DataFrame, abs_: list[Ability], path: Path) -> Path:
    """Accuracy (top) and continuous metric (bottom) against N for the main abilities."""
    plt = _plt()
    main = [a for a in abs_ if not re.fullmatch(r"reasoning\d+", a.name)]
    fig, axes = plt.subplots(2, len(main), figsize=(3.3 * len(main), 5.6), squeeze=False)
    for i, ab in enumerate(main):
        for r, (col, sign, ylabel) in enumerate(
            ((ab.acc, 1.0, "exact-match accuracy"), (ab.cont, ab.sign, ab.cont_label))
        ):
            ax = axes[r, i]
            if col is None:
                ax.axis("off")
                continue
            _lines(ax, df, "N", col, sign, plt.get_cmap("viridis"))
            ax.set_title(ab.label if r == 0 or ab.acc is None else "", fontsize=8)
            ax.set_xlabel("parameters N", fontsize=8)
            ax.set_ylabel(ylabel, fontsize=7)
            if r == 0:
                ax.set_ylim(-0.03, 1.03)
    _margins(fig, top=0.3, wspace=0.5)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------- report and CLI


def markdown(result: dict, threshold: float) -> str:
    lines = [
        "# Emergent abilities",
        "",
        "Abruptness = the largest increase between neighbouring points / the whole rise (1 = all "
        f"at once; a curve 'jumps' at >= {threshold:g}; with n points an even rise scores "
        "1/(n-1)). Along N the curve is the largest token budget with several sizes, along D the "
        "largest size, along C the compute frontier.",
        "",
        "## Statement",
        "",
    ]
    lines += [f"- {e['statement']}" for e in result.values()]
    lines += [
        "",
        "## Abruptness",
        "",
        "| ability | metric | along N | along D | along C |",
        "| --- | --- | --- | --- | --- |",
    ]
    for e in result.values():
        for key in ("acc", "cont"):
            if key in e:
                cells = [
                    ("flat" if e[key][a]["score"] is None else f"{e[key][a]['score']:.2f}")
                    for a in ("N", "D", "C")
                ]
                lines.append(
                    f"| {e['label']} | {'accuracy' if key == 'acc' else e['cont_column']} | "
                    + " | ".join(cells)
                    + " |"
                )
    return "\n".join(lines) + "\n"


def report(
    paths: list[str], out: str | Path, threshold: float = ABRUPT, n_jobs: int | None = None
) -> dict:
    """Analyse the sweeps at `paths` and write figures, emergence.json and emergence.md to `out`;
    returns the analysis (also for `scaling report`). DataError if no run carries probe scores.
    n_jobs: processes drawing the figures (default every core)."""
    df, curves = load(paths)
    abs_ = abilities(list(df.columns))
    if not abs_:
        raise DataError(
            f"no probe scores (icl_acc, induction_loss, ...) in the runs of {', '.join(paths)}; "
            "train with a trainer that records scaling.experiment.probe_scores.probe_scores"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = analyse(df, threshold)
    from scaling.analysis.laws._parallel import (
        run_forked,
    )  # the nine or so figures drawn side by side

    tasks = [partial(overview, df, abs_, out / "emergence.png")]
    for ab in abs_:
        path = out / f"emergence_{ab.name}.png"
        tasks.append(partial(figure, df, curves, ab, result[ab.name], path))
    files = run_forked(tasks, n_jobs)
    runs.atomic_write_json(
        out / "emergence.json", {"threshold": threshold, "runs": len(df), "abilities": result}
    )
    runs.atomic_write_text(out / "emergence.md", markdown(result, threshold))
    return {
        "abilities": result,
        "files": [str(f) for f in files + [out / "emergence.json", out / "emergence.md"]],
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="scaling emergence", description=__doc__.split("\n\n")[0].replace("\n", " ")
    )
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="sweep folders (runs/<sweep>) or runs.csv files"
    )
    parser.add_argument(
        "--out", default=None, help="output folder (default: <first PATH>/emergence)"
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=ABRUPT,
        help=f"abruptness at which a curve counts as a jump (default {ABRUPT})",
    )
    args = parser.parse_args(argv)
    if not 0 < args.threshold <= 1:
        raise DataError(f"--threshold={args.threshold} must be in (0, 1]; e.g. --threshold 0.5")
    first = Path(args.paths[0])
    out = Path(args.out) if args.out else (first if first.is_dir() else first.parent) / "emergence"
    res = report(args.paths, out, args.threshold)
    for e in res["abilities"].values():
        print("- " + e["statement"].replace("**", ""))
    print(f"wrote {out}/ (emergence.md, emergence.json, {len(res['files']) - 2} figures)")
    return 0
