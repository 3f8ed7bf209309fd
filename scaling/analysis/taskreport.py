"""The family x task report of `scaling tasks --out`: a table per model size (every score with
its 95% bootstrap interval), a figure of each task's score against N and against C per family,
and a plain-words verdict per task set against the textbook division (BERT understands, GPT
generates, T5 transduces). Reads tasks.csv only: no torch.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scaling.analysis.report import MANIFEST, staged_dir
from scaling.errors import DataError

FAMILIES = ("decoder", "encoder", "encoder_decoder")
TASKS = {  # score column -> (title, the family the textbook expects to win, chance level)
    "topic_acc": ("topic (linear probe)", "encoder", 1 / 16),
    "cloze_acc": ("cloze (right context)", "encoder", 0.25),
    "generate_score": ("generation (0 unigram, 1 true)", "decoder", 0.0),
    "s2s_exact": ("seq2seq exact match", "encoder_decoder", 0.0),
    "s2s_token": ("seq2seq per-byte accuracy", "encoder_decoder", None),
}


def load(tables: list[Path]) -> pd.DataFrame:
    frames = [pd.read_csv(t) for t in tables if Path(t).is_file()]
    if not frames:
        raise DataError("no tasks.csv to report; run `scaling tasks SWEEP_DIR` first")
    df = pd.concat(frames, ignore_index=True)
    df["rung"] = df["size"].astype(str)
    return df


def _cell(row: pd.Series, key: str) -> str:
    return f"{row[key]:.3f} [{row[f'{key}_lo']:.3f}, {row[f'{key}_hi']:.3f}]"


def size_tables(df: pd.DataFrame) -> list[str]:
    """One markdown table per size: family rows, task columns (the topic's Bayes optimum beside
    the probe's accuracy: the same for every family, since the documents are)."""
    keys = ["topic_acc", "topic_bayes", *list(TASKS)[1:]]
    titles = " | ".join(TASKS[k][0] if k in TASKS else "topic Bayes optimum" for k in keys)
    lines = []
    for rung, part in df.groupby("rung", sort=False):
        lines += [
            f"### size {rung}",
            "",
            f"| family | N | C | {titles} |",
            "| --- | ---: | ---: | " + " | ".join("---" for _ in keys) + " |",
        ]
        for fam in FAMILIES:
            for _, row in part[part["arch"] == fam].iterrows():
                lines.append(
                    f"| {fam} | {row['N']:,.0f} | {row['C']:.2g} | "
                    + " | ".join(_cell(row, k) for k in keys)
                    + " |"
                )
        lines.append("")
    return lines


def winner(part: pd.DataFrame, key: str) -> tuple[str | None, str]:
    """(family, "clear" | "ahead"): the best family at one size, "clear" when its interval lies
    above every other family's; (None, "tied") when its score equals another's."""
    part = part.sort_values(key, ascending=False)
    if len(part) < 2 or part[key].iloc[0] == part[key].iloc[1]:
        return None, "tied"
    best = part.iloc[0]
    clear = all(best[f"{key}_lo"] > r[f"{key}_hi"] for _, r in part.iloc[1:].iterrows())
    return best["arch"], "clear" if clear else "ahead"


def at_equal_c(df: pd.DataFrame, key: str) -> tuple[str | None, float]:
    """The family scoring best (interpolated in log C) at the largest C all families reach."""
    c = min(part["C"].max() for _, part in df.groupby("arch"))
    scores: dict[Any, float] = {}  # by the arch column's values
    for fam, p in df.groupby("arch"):
        p = p.sort_values("C")
        if p["C"].min() <= c:
            scores[fam] = float(np.interp(math.log(c), np.log(p["C"]), p[key]))
    best = max(scores, key=lambda f: scores[f]) if len(scores) > 1 else None
    if best is not None and sum(v == scores[best] for v in scores.values()) > 1:
        best = None  # tied
    return best, c


def verdict(df: pd.DataFrame) -> list[str]:
    """Per task: who wins at each size, from which size on, and whether that is the textbook's."""
    order = list(dict.fromkeys(df.sort_values("N")["rung"]))
    lines = []
    for key, (title, textbook, chance) in TASKS.items():
        wins = [(rung, *winner(df[df["rung"] == rung], key)) for rung in order]
        clear = [(r, f) for r, f, how in wins if how == "clear"]
        steady = None  # the smallest size from which one family wins clearly at every larger size
        for i, (rung, fam, how) in enumerate(wins):
            if how == "clear" and all(f == fam and h == "clear" for _, f, h in wins[i:]):
                steady = (rung, fam)
                break
        by_size = ", ".join(
            f"{r}: {f or '-'}" + ("" if h == "clear" else f" ({h})") for r, f, h in wins
        )
        eq_fam, eq_c = at_equal_c(df, key)
        if steady:
            said = f"**{steady[1]}** wins clearly from size {steady[0]} on"
        elif clear:
            said = "no family wins clearly at every size from some size on"
        else:
            said = "no family is clearly ahead at any size (the intervals overlap)"
        match = "matches" if steady and steady[1] == textbook else "does not match"
        floor = "" if chance is None else f"; chance {chance:.3g}"
        at_c = f"{eq_fam} scores highest" if eq_fam else "the families tie"
        lines.append(
            f"- **{title}**: {said} (per size: {by_size}); at equal compute "
            f"(C = {eq_c:.2g}) {at_c}{floor}. "
            f"Textbook: {textbook}; "
            f"this {match} it."
        )
    return lines


def figure(df: pd.DataFrame, path: Path) -> Path:
    """Each task's score against N (top row) and C (bottom row), one line per family, with
    bootstrap intervals as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(TASKS), figsize=(4 * len(TASKS), 7), squeeze=False)
    for j, (key, (title, _, chance)) in enumerate(TASKS.items()):
        for i, axis in enumerate(("N", "C")):
            ax = axes[i, j]
            for fam in FAMILIES:
                p = df[df["arch"] == fam].sort_values(axis)
                if len(p):
                    err = np.vstack([p[key] - p[f"{key}_lo"], p[f"{key}_hi"] - p[key]])
                    ax.errorbar(p[axis], p[key], yerr=err, marker="o", capsize=3, label=fam)
            if chance is not None:
                ax.axhline(chance, color="grey", lw=0.8, ls=":", label="chance / floor")
            ax.set_xscale("log")
            ax.set_xlabel("N (parameters)" if axis == "N" else "C (training FLOPs, 6ND)")
            ax.set_title(title, fontsize=10)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(tables: list[Path], out: Path) -> Path:
    """tasks.md, tasks.csv (the rows reported), tasks.png and manifest.json in the folder `out`,
    built beside it and renamed into place (scaling.analysis.report.staged_dir); returns
    out/tasks.md."""
    df = load(tables)
    text = [
        "# Which family suits which task",
        "",
        "Task probes (docs/tasks.md) of the probed runs (by default the largest budget of each "
        "family and size); every "
        "score is the mean over held-out items with its 95% bootstrap interval; the topic "
        "probe's Bayes optimum is the exact topic posterior's accuracy on the same documents.",
        "",
        "## Verdict",
        "",
        *verdict(df),
        "",
        "## Family x task, by size",
        "",
        *size_tables(df),
        "![task scores against N and C](tasks.png)",
        "",
    ]
    with staged_dir(out) as tmp:
        figure(df, tmp / "tasks.png")
        (tmp / "tasks.csv").write_text(df.drop(columns="rung").to_csv(index=False))
        (tmp / "tasks.md").write_text("\n".join(text))
        (tmp / MANIFEST).write_text(
            json.dumps(
                {"written_by": "scaling tasks", "tables": [str(t) for t in tables]}, indent=1
            )
        )
    return out / "tasks.md"
