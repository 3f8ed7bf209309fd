"""Compare fitted groups (architectures, setups, data sources): Approach 3's exponents alpha,
beta, a, b per group with their bootstrap intervals, and in plain words whether they differ beyond
those intervals. Text only, so `scaling fit --group` can use it without matplotlib."""

from __future__ import annotations

import math
from itertools import combinations

ARCH_ORDER = ("decoder", "encoder", "encoder_decoder")
EXPONENTS = ("alpha", "beta", "a", "b")  # of Approach 3's L(N, D) = E + A/N^alpha + B/D^beta
MEANING = {
    "alpha": "alpha (L ~ N^-alpha)",
    "beta": "beta (L ~ D^-beta)",
    "a": "a (N_opt ~ C^a)",
    "b": "b (D_opt ~ C^b)",
}


def ordered(studies: dict) -> list[str]:
    """Group names, the three architectures first in their usual order, then the rest as given."""
    names = list(studies)
    return sorted(
        names,
        key=lambda g: (ARCH_ORDER.index(g) if g in ARCH_ORDER else len(ARCH_ORDER), names.index(g)),
    )


def _value(study, name: str) -> tuple[float, float, float]:
    """(value, lo, hi) of an Approach 3 quantity; nan where not fitted or without bootstrap."""
    if study.approach3 is None:
        return math.nan, math.nan, math.nan
    lo, hi = study.ci("approach3", name)
    return float(getattr(study.approach3.law, name)), float(lo), float(hi)


def _fmt(v: float, lo: float, hi: float) -> str:
    if not math.isfinite(v):
        return "not fitted"
    return (
        f"{v:.3f} [{lo:.3f}, {hi:.3f}]"
        if math.isfinite(lo) and math.isfinite(hi)
        else f"{v:.3f} [no interval]"
    )


def comparison_statements(studies: dict) -> list[str]:
    """One plain-words sentence per exponent: which groups differ beyond their intervals."""
    names = ordered(studies)
    pct = int(round(100 * next(iter(studies.values())).options.level)) if studies else 95
    out = []
    for q in EXPONENTS:
        vals = {n: _value(studies[n], q) for n in names}
        missing = [
            n for n, (v, lo, hi) in vals.items() if not (math.isfinite(lo) and math.isfinite(hi))
        ]
        have = [n for n in names if n not in missing]
        lead = (
            (
                f"{MEANING[q]}: no {pct}% interval for {', '.join(missing)} (its Approach 3 fit "
                "has none: not fitted, stopped at a bound, or no bootstrap)"
            )
            if missing
            else f"{MEANING[q]}:"
        )
        if len(have) < 2:
            out.append(f"{lead}; nothing left to compare.")
            continue
        among = " among the others" if missing else ""
        apart = [
            (x, y)
            for x, y in combinations(have, 2)
            if vals[x][2] < vals[y][1] or vals[y][2] < vals[x][1]
        ]
        if not apart:
            out.append(
                f"{lead}{';' if missing else ''}{among} the {pct}% intervals of {', '.join(have)} "
                "overlap, so these runs show no difference beyond the intervals."
            )
            continue
        pairs = "; ".join(
            f"{x} is {'higher' if vals[x][0] > vals[y][0] else 'lower'} than {y}" for x, y in apart
        )
        same = [f"{x} and {y}" for x, y in combinations(have, 2) if (x, y) not in apart]
        tail = f" ({', '.join(same)} overlap)" if same else ""
        out.append(
            f"{lead}{';' if missing else ''}{among} differs beyond the {pct}% intervals: "
            f"{pairs}{tail}."
        )
    return out


def comparison_markdown(studies: dict) -> list[str]:
    """Markdown lines: a table of alpha, beta, a, b per group (Approach 3, with intervals) and the
    plain-words statements. For report.md's grouped branch."""
    names = ordered(studies)
    pct = int(round(100 * next(iter(studies.values())).options.level))
    lines = [
        f"## Exponents per group (Approach 3, {pct}% bootstrap intervals)",
        "",
        "| group | points | " + " | ".join(MEANING[q] for q in EXPONENTS) + " |",
        "|" + "|".join(" --- " for _ in range(len(EXPONENTS) + 2)) + "|",
    ]
    for n in names:
        lines.append(
            f"| {n} | {studies[n].n_points} | "
            + " | ".join(_fmt(*_value(studies[n], q)) for q in EXPONENTS)
            + " |"
        )
    lines += [
        "",
        "Do they differ? (two groups differ when their intervals do not overlap; losses of "
        "different objectives are in different units, so compare exponents, not E, A, B.)",
        "",
    ]
    lines += [f"- {s}" for s in comparison_statements(studies)]
    return lines + [""]


def comparison_text(studies: dict) -> str:
    """The same for a terminal (`scaling fit --group arch`)."""
    names = ordered(studies)
    width = max(8, *(len(n) for n in names))
    head = f"{'group':<{width}}  " + "  ".join(f"{q:>22}" for q in EXPONENTS)
    rows = [
        f"{n:<{width}}  " + "  ".join(f"{_fmt(*_value(studies[n], q)):>22}" for q in EXPONENTS)
        for n in names
    ]
    return "\n".join(
        ["Approach 3 exponents per group:", head, *rows, *comparison_statements(studies)]
    )
