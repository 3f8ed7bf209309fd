"""Approaches 1 and 2 as plug-ins: allocation-only estimators (N_opt ~ C^a, D_opt ~ C^b) from the
lower envelope of the training curves and from the IsoFLOP profiles' minima."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from scaling.analysis.laws import intervals as iv
from scaling.analysis.laws.approaches import approach1, approach2
from scaling.analysis.laws.bootstrap import bootstrap_approach1, bootstrap_approach2
from scaling.analysis.laws.law_chinchilla import allocation_row
from scaling.analysis.laws.registry import Draws, FitContext, Law, register

AB = ("a", "b")


def _draws(ab: np.ndarray) -> Draws:
    """Draws from (n_boot, 2) samples of (a, b), NaN where a refit failed."""
    return Draws({"a": ab[:, 0], "b": ab[:, 1]}, int(np.isfinite(ab[:, 0]).sum()), len(ab))


class _Allocation(Law):
    """What Approaches 1 and 2 share: their JSON head, table row and predictions."""

    name = ""  # e.g. "Approach 2": the CLI and report line

    def prediction(self, study: Any, fit: Any, C: float) -> dict:
        return allocation_row(self.key, fit.allocation, C)

    def skipped_json(self, reason: str | None) -> dict:
        return {"a": None, "b": None, "status": "skipped", "reason": reason}

    def _json(self, study: Any, fit: Any, **extra: Any) -> dict:
        return dict(
            a=fit.a,
            b=fit.b,
            status="converged",
            **extra,
            ci=study.cis(self.key, AB),
            flags=study.flags(self.key),
        )

    def cli_lines(self, study: Any, fit: Any) -> list[str]:
        return [f"{self.name:<11} {fit.allocation!r}"]

    def report_lines(self, study: Any, fit: Any, pct: int) -> list[str]:
        return ["", f"**{self.name}** `{fit.allocation!r}` ({self._details(fit)})"]

    def _details(self, fit: Any) -> str:
        raise NotImplementedError


class IsoFLOP(_Allocation):
    key, label, short, color, name = (
        "approach2",
        "Approach 2 (IsoFLOP)",
        "A2",
        "tab:orange",
        "Approach 2",
    )
    order, table_order, group_b = 30, 2, True
    resamples_replicates = True

    def fit(self, ctx: FitContext) -> Any:
        opt = ctx.options
        return approach2(ctx.df, opt.approach2_method, opt.budget_tol, opt.drop_edge)

    def bootstrap(self, ctx: FitContext, fit: Any) -> Draws:
        opt = ctx.options
        return _draws(
            bootstrap_approach2(
                ctx.df,
                opt.n_boot,
                opt.seed,
                replicates=ctx.replicates,
                method=opt.approach2_method,
                budget_tol=opt.budget_tol,
                drop_edge=opt.drop_edge,
                n_jobs=opt.n_jobs,
            )
        )

    def jackknife(self, ctx: FitContext, fit: Any) -> dict[str, np.ndarray]:
        opt = ctx.options
        return iv.jackknife_allocation(
            ctx.df, lambda sub: approach2(sub, opt.approach2_method, opt.budget_tol, opt.drop_edge)
        )

    def extrapolate(
        self, ctx: FitContext, train: pd.DataFrame, preds: pd.DataFrame
    ) -> float | None:
        """|ln N*| between the N* predicted at the largest budget and the one measured there."""
        opt = ctx.options
        fit_train = approach2(train, opt.approach2_method, opt.budget_tol)
        fit_all = approach2(ctx.df, opt.approach2_method, opt.budget_tol)
        top = max((b for b in fit_all.budgets if b.used), key=lambda b: b.C, default=None)
        if top is None or top.C < preds["C"].min() * 0.99:
            return None
        return float(abs(np.log(fit_train.allocation.n_opt(top.C) / top.n_star)))

    def extrapolation_text(self, error: float) -> tuple[str, str]:
        return f"{error:.3f}", "|ln(N* predicted / N* measured)|"

    def extrapolation_cli(self, error: float) -> str:
        return f"{self.key} |ln N*| {error:.3f}"

    def to_json(self, study: Any, fit: Any) -> dict:
        budgets = [
            {
                "C": b.C,
                "N_star": b.n_star,
                "D_star": b.d_star,
                "loss_star": b.loss_star,
                "n_sizes": len(b.N),
                "edge": b.edge,
                "used": b.used,
            }
            for b in fit.budgets
        ]
        out = self._json(study, fit, method=fit.method)
        return dict(
            out, N_opt=repr(fit.allocation.n_opt), D_opt=repr(fit.allocation.d_opt), budgets=budgets
        )

    def _details(self, fit: Any) -> str:
        return (
            f"{sum(b.used for b in fit.budgets)} of {len(fit.budgets)} budgets used, {fit.method}"
        )


class Envelope(_Allocation):
    key, label, short, color, name = (
        "approach1",
        "Approach 1 (envelope)",
        "A1",
        "tab:green",
        "Approach 1",
    )
    order, table_order, marker = 40, 1, "^"
    resamples_replicates = True

    def fit(self, ctx: FitContext) -> Any:
        return approach1(ctx.df, ctx.curves)

    def bootstrap(self, ctx: FitContext, fit: Any) -> Draws:
        n_boot = ctx.options.n_boot
        n = min(n_boot, 200) if ctx.curves is not None else n_boot
        return _draws(bootstrap_approach1(ctx.df, ctx.curves, n, ctx.options.seed, ctx.replicates))

    def jackknife(self, ctx: FitContext, fit: Any) -> dict[str, np.ndarray]:
        df, curves = ctx.df, ctx.curves
        use_curves = curves is not None and len(curves) and "run_id" in df

        def refit(sub: pd.DataFrame) -> Any:
            if not use_curves or curves is None:
                return approach1(sub, None)
            key = "point_id" if "point_id" in curves else "run_id"  # a point's every seed
            return approach1(sub, curves[curves[key].isin(sub["run_id"])])

        return iv.jackknife_allocation(df, refit)

    def to_json(self, study: Any, fit: Any) -> dict:
        return dict(
            self._json(study, fit, source=fit.source),
            N_opt=repr(fit.allocation.n_opt),
            D_opt=repr(fit.allocation.d_opt),
            n_envelope=len(fit.envelope),
        )

    def _details(self, fit: Any) -> str:
        return f"{len(fit.envelope)} envelope points from {fit.source}"


register(IsoFLOP())
register(Envelope())
