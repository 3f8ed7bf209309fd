"""Approach 3 as a plug-in: Hoffmann et al.'s L(N, D) = E + A/N^alpha + B/D^beta fitted to every
point (optionally with E held fixed), its bootstrap, elasticities, predictions and sections."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from scaling.analysis.laws import intervals as iv
from scaling.analysis.laws.approaches import approach3
from scaling.analysis.laws.bootstrap import bootstrap_chinchilla, interval
from scaling.analysis.laws.forms import ChinchillaLaw
from scaling.analysis.laws.registry import Draws, FitContext, Law, register
from scaling.analysis.laws.text import ci_text, fmt, interval_of, md_table, num
from scaling.analysis.laws.text import interval as interval_md

NAMES = ("E", "A", "B", "alpha", "beta", "a", "b")


def formula(law: Any) -> str:
    """The law's formula without its trailing allocation (the first part of its repr)."""
    return repr(law).split("   ")[0]


class Chinchilla(Law):
    key, label, short, color = "approach3", "Approach 3 (L(N, D) fit)", "A3", "tab:blue"
    order, table_order, group_b, marker = 10, 3, True, "s"
    resamples_replicates = True

    def fit(self, ctx: FitContext) -> Any:
        return approach3(ctx.df, ctx.options.method, fix_E=ctx.fix_E)

    def residuals(self, ctx: FitContext, fit: Any) -> np.ndarray:
        return np.log(fit.law.predict(ctx.df["N"], ctx.df["D"])) - np.log(
            ctx.df["loss"].to_numpy(float)
        )

    def bootstrap(self, ctx: FitContext, fit: Any) -> Draws:
        opt = ctx.options
        th, ok = bootstrap_chinchilla(
            ctx.df,
            fit.law.theta,
            opt.n_boot,
            opt.seed,
            opt.n_jobs,
            fix_E=ctx.fix_E,
            replicates=ctx.replicates,
        )
        laws = [ChinchillaLaw.from_theta(t) for t in th[ok]]
        # a fixed E has no bootstrap distribution: no "E" samples (consumers use the fixed value)
        kept = NAMES[1:] if ctx.fix_E is not None else NAMES
        draws = Draws(
            {n: np.array([getattr(law, n) for law in laws]) for n in kept},
            int(ok.sum()),
            len(ok),
        )
        if (~ok).sum() > 0.05 * len(ok):
            draws.notes.append(
                f"Approach 3 bootstrap: {int((~ok).sum())} of {len(ok)} refits did "
                "not converge cleanly; left out, so its intervals come from the "
                f"{int(ok.sum())} that did"
            )
        return draws

    def jackknife(self, ctx: FitContext, fit: Any) -> dict[str, np.ndarray]:
        return iv.jackknife_chinchilla(ctx.df, fit.law.theta, ctx.fix_E)

    def elasticity(self, study: Any, fit: Any, at: tuple[float, float]) -> dict:
        eN, eD = fit.law.elasticities(*at)
        entry = {"N": float(eN), "D": float(eD), "at": {"N": at[0], "D": at[1]}}
        s = study.samples.get(self.key)
        if s and len(s["beta"]):
            s = {"E": fit.law.E, **s}  # E: fixed or sampled
            bN, bD = ChinchillaLaw(*(s[k] for k in NAMES[:5])).elasticities(*at)
            level = study.options.level
            entry["N_ci"], entry["D_ci"] = list(interval(bN, level)), list(interval(bD, level))
        return entry

    def prediction(self, study: Any, fit: Any, C: float) -> dict:
        row = allocation_row(self.key, fit.law, C)
        s = study.samples.get(self.key)
        if s and len(s["A"]):
            level = study.options.level
            bl = ChinchillaLaw(s.get("E", fit.law.E), s["A"], s["B"], s["alpha"], s["beta"])
            bn, bd = bl.allocation(C)
            row["N_opt_ci"], row["D_opt_ci"] = list(interval(bn, level)), list(interval(bd, level))
            row["tokens_per_param_ci"] = list(interval(bd / bn, level))
            row["loss_ci"] = list(interval(bl.loss_at_budget(C), level))
        return row

    def extrapolate(self, ctx: FitContext, train: pd.DataFrame, preds: pd.DataFrame) -> float:
        law = approach3(train, ctx.options.method, fix_E=ctx.fix_E).law
        return score_holdout(self.key, law, preds)

    def to_json(self, study: Any, fit: Any) -> dict:
        law = fit.law
        fixed = (
            None
            if study.fixed_E is None
            else {
                "value": study.fixed_E[0],
                "source": study.fixed_E[1],
                "note": "E held fixed, not fitted: it has no interval or SE",
            }
        )
        return dict(
            {n: getattr(law, n) for n in NAMES},
            objective=fit.objective,
            status=fit.status.value,
            method=fit.method,
            formula=formula(law),
            E_fixed=fixed,
            ci=study.cis(self.key, NAMES),
            se={_se_key(n): study.se(self.key, n) for n in NAMES},
            flags=study.flags(self.key),
        )

    def cli_lines(self, study: Any, fit: Any) -> list[str]:
        lines = [f"{study.approach3_label():<11} {fit.law!r}"] + status_lines(fit)
        pct = round(100 * study.options.level)
        cis = "  ".join(
            f"{n} {ci_text(study.ci(self.key, n))}"
            for n in ("alpha", "beta")
            if ci_text(study.ci(self.key, n))
        )
        ci_name = "BCa" if study.options.ci == "bca" else "CI"
        return lines + [
            f"{'':<11} objective {fit.objective:.6g} ({fit.method}); "
            f"SE alpha {fmt(study.se(self.key, 'alpha'), '.4f')}, "
            f"beta {fmt(study.se(self.key, 'beta'), '.4f')}"
            + (f"; {pct}% {ci_name} {cis}" if cis else "")
            + ("; E fixed, not fitted: no interval" if study.fixed_E is not None else "")
        ]

    def report_lines(self, study: Any, fit: Any, pct: int) -> list[str]:
        law, fixed = fit.law, study.fixed_E is not None
        lines = [
            "",
            (
                f"**{study.approach3_label()}** `{formula(law)}` (objective "
                f"{fit.objective:.6g}, {fit.method}, {fit.status.value})"
            ),
            "",
        ]
        lines += md_table(
            ["parameter", "value", f"{pct}% interval", "bootstrap SE"],
            [
                [
                    n,
                    num(getattr(law, n)),
                    "fixed, not fitted"
                    if fixed and n == "E"
                    else interval_of(study.ci(self.key, n), ".4g"),
                    self._se(study, n),
                ]
                for n in NAMES
            ],
        )
        lines += [
            "",
            (
                "E, A and B are fitted as logs (e = ln E, ...) and their resamples are "
                "skewed, so their standard errors are of the logs."
            ),
        ]
        return lines + _floor_lines(study, law)

    def _se(self, study: Any, n: str) -> str:
        se = study.se(self.key, n)
        return (
            f"{num(se, '.3g')} (of ln {n})"
            if n in ("E", "A", "B") and math.isfinite(se)
            else num(se)
        )


def _floor_lines(study: Any, law: ChinchillaLaw) -> list[str]:
    """The report's sentence on a fixed E, or on the fitted E against the known floor."""
    from scaling.analysis.plots import entropy_floor, loss_units

    if study.fixed_E is not None:
        value, source = study.fixed_E
        what = (
            "the entropy floor of the data (entropy_floor)"
            if source == "entropy_floor"
            else "a given value"
        )
        return [
            "",
            (
                f"E was held fixed at **{value:.4f}** ({loss_units(study)}), {what}, in the "
                "fit, every bootstrap resample and the extrapolation check; it has no "
                "interval. A, B, alpha and beta are fitted given that E."
            ),
        ]
    floor = entropy_floor(study)
    if floor is None:
        return []
    lo, hi = study.ci("approach3", "E")
    inside = math.isfinite(lo) and lo <= floor <= hi
    where = "inside" if inside else "outside"
    return [
        "",
        (
            f"Known irreducible loss (entropy floor of the data): **{floor:.4f}** nats/token; "
            f"fitted E = {law.E:.4f} {interval_md(lo, hi, '.4f')} (the floor lies {where} the "
            f"interval; E - floor = {law.E - floor:+.4f})."
        ),
    ]


def status_lines(fit: Any) -> list[str]:
    """The CLI warning under a law whose fit did not converge cleanly."""
    if fit.status.value == "converged":
        return []
    return [f"{'':<11} WARNING: status {fit.status.value}; these numbers are not a clean optimum"]


def allocation_row(key: str, law: Any, C: float) -> dict:
    """A predictions row: N_opt, D_opt, D/N (and loss, for a loss law) at budget C."""
    n_opt, d_opt = (float(v) for v in law.allocation(C))
    row = {"law": key, "C": C, "N_opt": n_opt, "D_opt": d_opt, "tokens_per_param": d_opt / n_opt}
    if hasattr(law, "loss_at_budget"):
        row["loss"] = float(law.loss_at_budget(C))
    return row


def score_holdout(key: str, law: Any, preds: pd.DataFrame) -> float:
    """Add the law's predicted losses to `preds`; mean |relative error| on them."""
    p = law.predict(preds["N"], preds["D"])
    preds[key] = p
    return float(np.mean(np.abs(p / preds["loss"] - 1)))


LOG_SCALE = ("E", "A", "B", "N_c", "D_c")  # their standard errors are of ln(value)


def _se_key(name: str) -> str:
    return f"ln_{name}" if name in LOG_SCALE else name


register(Chinchilla())
