"""Kaplan et al.'s law as a plug-in: L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D fitted
to every point, its bootstrap, elasticities, predictions and sections."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from scaling.analysis.laws import intervals as iv
from scaling.analysis.laws.approaches import kaplan
from scaling.analysis.laws.bootstrap import bootstrap_kaplan, interval
from scaling.analysis.laws.forms import KaplanLaw
from scaling.analysis.laws.law_chinchilla import (
    allocation_row,
    formula,
    score_holdout,
    status_lines,
)
from scaling.analysis.laws.registry import Draws, FitContext, Law, register
from scaling.analysis.laws.text import interval_of, md_table, num

NAMES = ("alpha_N", "alpha_D", "N_c", "D_c", "a", "b")


class Kaplan(Law):
    key, label, short, color = "kaplan", "Kaplan law", "Kaplan", "tab:red"
    order, table_order, marker = 20, 4, "D"
    resamples_replicates = True

    def fit(self, ctx: FitContext) -> Any:
        return kaplan(ctx.df)

    def residuals(self, ctx: FitContext, fit: Any) -> np.ndarray:
        return np.log(fit.law.predict(ctx.df["N"], ctx.df["D"])) - np.log(
            ctx.df["loss"].to_numpy(float)
        )

    def bootstrap(self, ctx: FitContext, fit: Any) -> Draws:
        opt = ctx.options
        ps, ok = bootstrap_kaplan(
            ctx.df, fit.law, opt.n_boot, opt.seed, opt.n_jobs, replicates=ctx.replicates
        )
        laws = [KaplanLaw(p[0], p[1], float(np.exp(p[2])), float(np.exp(p[3]))) for p in ps[ok]]
        return Draws(
            {n: np.array([getattr(law, n) for law in laws]) for n in NAMES}, int(ok.sum()), len(ok)
        )

    def jackknife(self, ctx: FitContext, fit: Any) -> dict[str, np.ndarray]:
        return iv.jackknife_kaplan(ctx.df, fit.law)

    def elasticity(self, study: Any, fit: Any, at: tuple[float, float]) -> dict:
        eN, eD = fit.law.elasticities(*at)
        entry = {"N": float(eN), "D": float(eD), "at": {"N": at[0], "D": at[1]}}
        s = study.samples.get(self.key)
        if s and len(s["D_c"]):
            bN, bD = KaplanLaw(*(s[k] for k in NAMES[:4])).elasticities(*at)
            level = study.options.level
            entry["N_ci"], entry["D_ci"] = list(interval(bN, level)), list(interval(bD, level))
        return entry

    def prediction(self, study: Any, fit: Any, C: float) -> dict:
        return allocation_row(self.key, fit.law, C)

    def extrapolate(self, ctx: FitContext, train: pd.DataFrame, preds: pd.DataFrame) -> float:
        return score_holdout(self.key, kaplan(train).law, preds)

    def to_json(self, study: Any, fit: Any) -> dict:
        law = fit.law
        return dict(
            {n: getattr(law, n) for n in NAMES},
            alpha_C=law.alpha_C,
            objective=fit.objective,
            status=fit.status.value,
            formula=formula(law),
            ci=study.cis(self.key, NAMES),
            flags=study.flags(self.key),
        )

    def cli_lines(self, study: Any, fit: Any) -> list[str]:
        return [f"{'Kaplan':<11} {fit.law!r}"] + status_lines(fit)

    def report_lines(self, study: Any, fit: Any, pct: int) -> list[str]:
        law = fit.law
        lines = [
            "",
            (
                f"**Kaplan** `{formula(law)}` (objective {fit.objective:.6g}, "
                f"{fit.status.value}); on the compute frontier L(C) ~ C^-{law.alpha_C:.3f}"
            ),
            "",
        ]
        return lines + md_table(
            ["parameter", "value", f"{pct}% interval"],
            [[n, num(getattr(law, n)), interval_of(study.ci(self.key, n), ".4g")] for n in NAMES],
        )


register(Kaplan())
