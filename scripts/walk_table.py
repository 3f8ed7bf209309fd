"""The walk's table and figure (scripts/porian_walk.sh): a with its 95% interval after each step,
for every law, from the step fits' JSON in OUT; writes OUT/walk.md and OUT/walk.png."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STEPS = [
    ("1_kaplan", "Kaplan: one long schedule, curve points, N_nonembed, C_kaplan, lr 3e-3"),
    ("2_counting", "+ every parameter counted, C = 6ND"),
    ("3_schedule", "+ Chinchilla protocol: cosine ending at each run's D, self-centring IsoFLOP"),
    ("4_tuned_lr", "+ tuned lr*(N) (train.lr=auto)"),
    ("5_warmup_beta2", "+ warmup over N tokens, beta2 0.99"),
]
LAWS = [
    ("approach1", "Approach 1"),
    ("approach2", "Approach 2"),
    ("approach3", "Approach 3"),
    ("kaplan", "Kaplan law"),
]


def cell(fit: dict | None) -> tuple[str, float | None, list | None]:
    if not fit or fit.get("a") is None:
        return "-", None, None
    a, ci = fit["a"], (fit.get("ci") or {}).get("a")
    flag = "" if fit.get("status") in (None, "converged") else f" ({fit['status']})"
    text = f"{a:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci and None not in ci else "") + flag
    return text, a, ci


def main(out: Path) -> None:
    fits = {s: json.loads((out / f"{s}.json").read_text()) for s, _ in STEPS}
    lines = [
        "# Porian et al.'s walk on our runs (a in N_opt ~ C^a, 95% interval)",
        "",
        "| step | " + " | ".join(label for _, label in LAWS) + " |",
        "| --- |" + " --- |" * len(LAWS),
    ]
    fig, ax = plt.subplots(figsize=(8, 4))
    for i, (step, label) in enumerate(STEPS):
        cells = []
        for j, (law, name) in enumerate(LAWS):
            text, a, ci = cell(fits[step].get(law))
            cells.append(text)
            if a is not None:
                x = i + (j - 1.5) * 0.15
                err = (
                    [[max(0.0, a - ci[0])], [max(0.0, ci[1] - a)]]
                    if ci and None not in ci
                    else None
                )
                ax.errorbar(
                    x,
                    a,
                    yerr=err,
                    fmt="o",
                    color=f"C{j}",
                    ms=4,
                    capsize=2,
                    label=name if i == 0 else None,
                )
        lines.append(f"| {i + 1}. {label} | " + " | ".join(cells) + " |")
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(len(STEPS)), [f"{i + 1}" for i in range(len(STEPS))])
    ax.set_xlabel("step (walk.md)")
    ax.set_ylabel("a in N_opt ~ C^a")
    ax.set_ylim(-0.3, 1.3)
    ax.legend(fontsize=7, ncol=4, loc="upper right")
    fig.tight_layout()
    tmp = out / ".walk.png"
    fig.savefig(tmp, dpi=110, format="png")
    os.replace(tmp, out / "walk.png")
    lines += [
        "",
        "Steps 1-2 refit runs/reference/kaplan (D >= 2.5e5); 3 and 5 are self-centring",
        "IsoFLOP studies at 1e11-1e12 (runs/reference/walk/); 4 is the tuned study's first",
        "four budgets, seed 0. Every fit with free E and 200 bootstrap resamples.",
        "",
    ]
    tmp = out / ".walk.md"
    tmp.write_text("\n".join(lines))
    os.replace(tmp, out / "walk.md")
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
