"""Number and table formatting shared by the laws' CLI lines and report sections, `scaling fit`
and `report.md`: one spelling of a missing value, an interval and a markdown table."""

from __future__ import annotations

import math


def fmt(x, spec: str = ".3f") -> str:
    """A CLI number; '-' for None or non-finite."""
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def ci_text(ci) -> str:
    """A CLI interval '[lo, hi]'; '' when missing or not finite."""
    if not ci or any(v is None or not math.isfinite(v) for v in ci):
        return ""
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def num(x, spec: str = ".4g") -> str:
    """A report number; '-' for None or non-finite."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return format(x, spec)


def interval(lo, hi, spec: str = ".3f") -> str:
    """A report interval '[lo, hi]'; '-' when missing or not finite."""
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return "-"
    return f"[{format(lo, spec)}, {format(hi, spec)}]"


def interval_of(ci: tuple[float, float], spec: str = ".3f") -> str:
    """`interval` of a (lo, hi) pair."""
    return interval(ci[0], ci[1], spec)


def md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    """Markdown table lines; '|' inside cells escaped."""
    rows = [[c.replace("|", "\\|") for c in r] for r in rows]
    return ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"] + [
        "| " + " | ".join(r) + " |" for r in rows
    ]


def seed_share_text(share: float) -> str:
    """How much of an interval's width its seeds add, in words; a share at or below zero (the
    interval with the seeds resampled came out no wider) is said as none."""
    if share <= 0:
        return "none of the width is seed noise (resampling the seeds did not widen it)"
    return f"{share:.0%} of the width is seed noise"
