"""`fit_study`: every registered law (`scaling.analysis.laws.registry`) on one points frame, with
bootstrap intervals and the comparison; the single entry point for the CLI, plots and reports.
`StudyFit.to_json()` is the stable schema."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from scaling.analysis.laws import intervals as iv
from scaling.analysis.laws import registry
from scaling.analysis.laws.bootstrap import interval
from scaling.analysis.laws.compare import AllocationRow, Comparison, extrapolation_check, verdict
from scaling.analysis.laws.fit import check_fixed_E
from scaling.analysis.laws.law_chinchilla import LOG_SCALE
from scaling.analysis.laws.registry import FitContext
from scaling.errors import ConfigError, DataError, FitError, FitWarning
from scaling.runs import json_safe


@dataclass(frozen=True)
class FitOptions:
    """Knobs of a study; every field maps to one `scaling fit` flag."""

    # Approach 3: "fast" (variable projection + polish) or "grid" (Hoffmann's 4500 starts)
    method: str = "fast"
    n_boot: int = 200  # bootstrap resamples (0: no intervals)
    seed: int = 0
    level: float = 0.95  # interval level
    ci: str = "percentile"  # parameters' and exponents' intervals: "percentile" | "bca" (jackknife)
    approach2_method: str = "akima"  # "akima" | "local" | "full"
    # Approach 1's envelope: "curves" (every evaluation of every run, where logged) or "final"
    # (each run's final point: the choice when each run's schedule ends at its own D)
    approach1_points: str = "curves"
    budget_tol: float = 0.05  # decades of C grouped into one IsoFLOP budget
    drop_edge: bool = True  # leave budgets whose minimum sits on a sampled edge out of Approach 2
    n_jobs: int | None = None  # processes for the bootstraps (None: every available core)
    predict_C: tuple[float, ...] = ()  # budgets for predictions; default: the largest C in the data
    extrapolate: bool = True
    # Approach 3's E held fixed: None (fitted), a positive number, or "floor" (the points'
    # entropy_floor column: the known entropy of our synthetic language; one value per fitted group)
    fix_E: float | str | None = None


APPROACH1_POINTS = ("curves", "final")

# entropy_floor values of one fit may differ by this much (relative) and still be one floor
FLOOR_REL_TOL = 1e-6


def known_floor(df: pd.DataFrame, where: str = "") -> float:
    """The points' known irreducible loss, their entropy_floor column (the synthetic language's
    entropy): the one rule for `--fix-E floor`, the figures and the report. Every row must record
    it and agree to FLOOR_REL_TOL; otherwise a one-line DataError says which and how to fix it."""
    if "entropy_floor" not in df:
        raise DataError(
            "--fix-E floor: the points have no entropy_floor column (only sweeps of "
            "the synthetic language record one); pass --fix-E VALUE or drop --fix-E"
        )
    v = pd.to_numeric(df["entropy_floor"], errors="coerce").to_numpy(float)
    bad = ~np.isfinite(v)
    if bad.any():
        raise DataError(
            f"--fix-E floor: entropy_floor is empty/NaN in {int(bad.sum())} of "
            f"{len(v)} rows{where} (real text and non-decoder objectives have no known "
            "floor); filter them out (--query) or pass --fix-E VALUE"
        )
    lo, hi = float(v.min()), float(v.max())
    if hi - lo > FLOOR_REL_TOL * abs(hi):
        raise DataError(
            f"--fix-E floor: entropy_floor differs between rows{where} ({lo:.6g} to "
            f"{hi:.6g}), so the points come from different data; fit them separately "
            "(--group data) or pass --fix-E VALUE"
        )
    return float(v[0])


def resolve_fix_E(spec: float | str | None, df: pd.DataFrame) -> tuple[float, str] | None:
    """(E, source) to hold fixed in this frame's Approach 3, source 'entropy_floor' or 'value'; None
    for a free E. One-line errors when the floor is unknown or varies, or E is not below every
    loss."""
    if spec is None:
        return None
    where = f" in group {df['group'].iloc[0]!r}" if "group" in df and len(df) else ""
    if isinstance(spec, str):
        if spec != "floor":
            raise ConfigError(f"fix_E must be 'floor' or a positive number; got {spec!r}")
        value, source = known_floor(df, where), "entropy_floor"
    else:
        value, source = float(spec), "value"
    check_fixed_E(value, float(df["loss"].min()), where or " in the fit")  # on the raw losses
    return value, source


@dataclass
class StudyFit:
    """All fits of one points frame: `fits[key]` the result of every registered law that was
    fitted (`skipped[key]` says why one was not); `approach1` ... `kaplan` name the built-in ones.
    Arrays serve the plots: `samples[law][param]` bootstrap draws, `residuals[law]` log residuals
    per point, `approach2.budgets` the IsoFLOP profiles, `approach1.envelope` the envelope."""

    fits: dict[str, Any]
    comparison: Comparison
    n_points: int
    points: pd.DataFrame
    samples: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    residuals: dict[str, np.ndarray] = field(default_factory=dict)
    predictions: list[dict] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    options: FitOptions = field(default_factory=FitOptions)
    fixed_E: tuple[float, str] | None = (
        None  # (E, source) when Approach 3's E was held fixed; no E samples then
    )
    # law -> (refits used, resamples drawn); law -> parameter -> leave-one-out values (BCa only)
    resamples: dict[str, tuple[int, int]] = field(default_factory=dict)
    jackknife: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    # points averaged over replicates (seeds): per law whose bootstrap resamples them, its interval
    # of a with the replicates resampled within each point (the reported one), with the points
    # only, and the share of the width that is seed noise
    seed_noise: dict[str, dict] = field(default_factory=dict)

    approach1 = property(lambda self: self.fits.get("approach1"))
    approach2 = property(lambda self: self.fits.get("approach2"))
    approach3 = property(lambda self: self.fits.get("approach3"))
    kaplan = property(lambda self: self.fits.get("kaplan"))

    def fixed_E_text(self) -> str:
        """e.g. 'E fixed at 0.6970 = entropy_floor'; '' when E was fitted."""
        if self.fixed_E is None:
            return ""
        value, source = self.fixed_E
        what = "entropy_floor" if source == "entropy_floor" else "given value"
        return f"E fixed at {value:.4f} = {what}"

    def approach3_label(self) -> str:
        """'Approach 3', or e.g. 'Approach 3 (E fixed at 0.6970 = entropy_floor)'."""
        return f"Approach 3 ({self.fixed_E_text()})" if self.fixed_E is not None else "Approach 3"

    def estimate(self, law: str, name: str) -> float:
        """The full-data value of parameter `name` of `law` (NaN when the law was skipped)."""
        fit = self.fits.get(law)
        if fit is None:
            return math.nan
        return float(getattr(getattr(fit, "law", None) or fit, name))

    def ci(self, law: str, name: str) -> tuple[float, float]:
        s = self.samples.get(law, {}).get(name)
        if s is None:
            return (math.nan, math.nan)
        return iv.interval(
            s,
            self.options.level,
            self.options.ci,
            self.estimate(law, name),
            self.jackknife.get(law, {}).get(name),
        )

    def cis(self, law: str, names) -> dict[str, list[float]]:
        """{name: [lo, hi]} of the parameters among `names` that have bootstrap draws."""
        return {n: list(self.ci(law, n)) for n in names if n in self.samples.get(law, {})}

    def se(self, law: str, name: str) -> float:
        """Bootstrap standard error; of ln(value) for the scale parameters (E, A, B, N_c, D_c),
        whose resamples are skewed on a linear scale and which the fit works with as logs."""
        s = self.samples.get(law, {}).get(name)
        if s is None:
            return math.nan
        s = s[np.isfinite(s)]
        if name in LOG_SCALE:
            s = np.log(s[s > 0])
        return float(np.std(s, ddof=1)) if s.size > 1 else math.nan

    def flags(self, law: str) -> list[str]:
        """The weaknesses of this law's intervals (`intervals.flags`); [] without a bootstrap."""
        if law not in self.samples:
            return []
        names = [n for n in self.samples[law]]
        used, total = self.resamples.get(law, (0, 0))
        estimates = {n: self.estimate(law, n) for n in names}
        return iv.flags(
            estimates, {n: self.ci(law, n) for n in names}, used, total, self.options.ci
        )

    def to_json(self) -> dict:
        """Stable schema: one entry per law (approach3, kaplan, approach2, approach1, ...),
        comparison, n_points, bootstrap, warnings."""
        return _to_json(self)


def _to_json(s: StudyFit) -> dict:
    out: dict = {"n_points": s.n_points}
    for law in registry.laws():
        if law.key in s.fits:
            out[law.key] = law.to_json(s, s.fits[law.key])
        elif law.key in s.skipped:
            out[law.key] = law.skipped_json(s.skipped[law.key])
    c = s.comparison
    ex = c.extrapolation
    out["comparison"] = dict(
        table=[
            dict(
                approach=r.approach,
                a=r.a,
                a_ci=list(r.a_ci),
                b=r.b,
                b_ci=list(r.b_ci),
                status=r.status,
            )
            for r in c.table
        ],
        elasticities=c.elasticities,
        verdict=c.verdict,
        predictions=s.predictions,
        extrapolation=None
        if ex is None
        else dict(
            holdout_C_min=ex.holdout_C_min,
            n_train=ex.n_train,
            n_holdout=ex.n_holdout,
            errors=ex.errors,
        ),
    )
    out["bootstrap"] = {
        "n": s.options.n_boot,
        "seed": s.options.seed,
        "level": s.options.level,
        "ci": s.options.ci,
        "resamples_used": {k: list(v) for k, v in s.resamples.items()},
    }
    if s.seed_noise:
        out["bootstrap"]["seed_noise"] = s.seed_noise
    out["warnings"] = list(s.warnings)
    return json_safe(out)


def _check(df: pd.DataFrame) -> None:
    if len(df) < 3:
        raise FitError(f"only {len(df)} point(s); every law needs more points than parameters")
    if df["N"].nunique() < 2:
        raise FitError(
            f"all {len(df)} points have one model size (N = {df['N'].iloc[0]:.4g}); "
            "fitting how loss depends on N needs at least 2 sizes (better 3+)"
        )


def _context(
    points, curves: pd.DataFrame | None, opt: FitOptions
) -> tuple[FitContext, list[str], tuple[float, str] | None]:
    """The fit context of a `Points` (or a plain frame), the warnings its loading collected and
    the fixed E with its source (`resolve_fix_E`)."""
    replicates = None
    if hasattr(points, "frame"):
        curves = points.curves if curves is None else curves
        msgs, df = list(points.warnings), points.frame
        if points.replicates is not None and max(len(r) for r in points.replicates) > 1:
            replicates = points.replicates
    else:
        df, msgs = points, []
    df = df.reset_index(drop=True)
    _check(df)
    if opt.approach1_points not in APPROACH1_POINTS:
        raise ConfigError(
            f"--approach1 {opt.approach1_points!r} is unknown; choose one of "
            + ", ".join(APPROACH1_POINTS)
        )
    if opt.approach1_points == "final":
        curves = None
    fixed = resolve_fix_E(opt.fix_E, df)
    return FitContext(df, curves, opt, None if fixed is None else fixed[0], replicates), msgs, fixed


def _attempt(study: StudyFit, key: str, func: Callable[[], Any]) -> Any:
    """func(), its FitWarnings kept in the study's warnings; None (and the reason in `skipped`) when
    it raises FitError."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", FitWarning)
            result = func()
        study.warnings.extend(str(w.message) for w in caught if issubclass(w.category, FitWarning))
        return result
    except FitError as err:
        study.skipped[key] = str(err)
        return None


def fit_study(
    points, curves: pd.DataFrame | None = None, options: FitOptions | None = None
) -> StudyFit:
    """Fit every registered law to `points` (a `scaling.analysis.tables.Points` or a frame with N,
    D, C, loss).

    A law that cannot be fitted on this data (too few budgets, points, ...) is recorded in `skipped`
    with its reason; FitError is raised only when the data support no law at all.
    """
    opt = options or FitOptions()
    ctx, msgs, fixed = _context(points, curves, opt)
    study = StudyFit(
        {},
        Comparison((), {}, None, ""),
        len(ctx.df),
        ctx.df,
        warnings=msgs,
        options=opt,
        fixed_E=fixed,
    )
    for law in registry.laws():
        if law.applies(ctx.df):
            fit = _attempt(study, law.key, lambda: law.fit(ctx))  # noqa: B023  called at once
            if fit is not None:
                study.fits[law.key] = fit
    if not study.fits:
        raise FitError(
            "no law could be fitted: " + "; ".join(f"{k}: {v}" for k, v in study.skipped.items())
        )
    for key, fit in study.fits.items():
        r = registry.get(key).residuals(ctx, fit)
        if r is not None:
            study.residuals[key] = r
    if opt.n_boot > 0:
        _bootstrap(study, ctx)
    study.predictions = _predictions(study)
    study.comparison = _compare(study, ctx)
    return study


def _bootstrap(study: StudyFit, ctx: FitContext) -> None:
    """Every law's bootstrap draws (and leave-one-out values for BCa) into the study."""
    for key, fit in study.fits.items():
        draws = registry.get(key).bootstrap(ctx, fit)
        if draws is None:
            continue
        study.samples[key], study.resamples[key] = draws.samples, (draws.used, draws.total)
        study.warnings.extend(draws.notes)
        if ctx.replicates is not None and registry.get(key).resamples_replicates:
            study.seed_noise[key] = _seed_noise(ctx, key, fit, draws.samples["a"])
    if ctx.options.ci == "bca":
        for key, fit in study.fits.items():
            jack = registry.get(key).jackknife(ctx, fit)
            if jack is not None:
                study.jackknife[key] = jack


def _seed_noise(ctx: FitContext, key: str, fit: Any, a_seeds: np.ndarray) -> dict:
    """A law's interval of a with the replicates resampled within each point (a_seeds) against
    the same resampled points without them: how much of the interval is seed noise."""
    alone = registry.get(key).bootstrap(replace(ctx, replicates=None), fit)
    assert alone is not None
    level = ctx.options.level
    with_seeds, points_only = interval(a_seeds, level), interval(alone.samples["a"], level)
    w1, w0 = with_seeds[1] - with_seeds[0], points_only[1] - points_only[0]
    return {
        "a_ci": list(with_seeds),
        "a_ci_points_only": list(points_only),
        "seed_share": (1 - w0 / w1) if w1 > 0 else 0.0,
        "points": len(ctx.df),
        "replicates_per_point": [int(ctx.df["n_rep"].min()), int(ctx.df["n_rep"].max())],
    }


def _predictions(study: StudyFit) -> list[dict]:
    """N_opt, D_opt (and loss) of every allocating law at the chosen budgets (default: the
    largest C in the data)."""
    rows = []
    for C in study.options.predict_C or (float(study.points["C"].max()),):
        for law in registry.allocating():
            if law.key in study.fits:
                row = law.prediction(study, study.fits[law.key], C)
                if row is not None:
                    rows.append(row)
    return rows


def _compare(study: StudyFit, ctx: FitContext) -> Comparison:
    """The allocation table, the elasticities at the median point, the extrapolation check and the
    verdict."""
    rows = []
    for law in registry.allocating():
        fit = study.fits.get(law.key)
        if fit is None:
            continue
        a, b = law.exponents(fit)
        weak = "; ".join(f for f in study.flags(law.key) if f.startswith(("a ", "intervals from")))
        rows.append(
            AllocationRow(
                law.key, a, study.ci(law.key, "a"), b, study.ci(law.key, "b"), law.status(fit), weak
            )
        )
    at = tuple(float(np.exp(np.median(np.log(ctx.df[c].to_numpy(float))))) for c in ("N", "D"))
    elast = {}
    for key, fit in study.fits.items():
        entry = registry.get(key).elasticity(study, fit, at)  # type: ignore[arg-type]
        if entry is not None:
            elast[key] = entry
    ex = None
    if ctx.options.extrapolate:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitWarning)
            ex = extrapolation_check(ctx)
    return Comparison(tuple(rows), elast, ex, verdict(tuple(rows), ctx.options.level))
