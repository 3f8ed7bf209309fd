"""`fit_study`: every law on one points frame, with bootstrap intervals and the comparison; the
single entry point for the CLI, plots and reports. `StudyFit.to_json()` is the stable schema."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scaling.errors import ConfigError, DataError, FitError, FitWarning
from scaling.runs import json_safe
from scaling.laws.approaches import Approach1Fit, Approach2Fit, approach1, approach2, approach3, kaplan
from scaling.laws.bootstrap import (bootstrap_approach1, bootstrap_approach2, bootstrap_chinchilla, bootstrap_kaplan,
                                    interval)
from scaling.laws.compare import AllocationRow, Comparison, extrapolation_check, verdict
from scaling.laws.fit import ChinchillaFit, KaplanFit, check_fixed_E
from scaling.laws import intervals as iv
from scaling.laws.forms import ChinchillaLaw, KaplanLaw


@dataclass(frozen=True)
class FitOptions:
    """Knobs of a study; every field maps to one `scaling fit` flag."""

    method: str = "fast"  # Approach 3: "fast" (variable projection + polish) or "grid" (Hoffmann's 4500 starts)
    n_boot: int = 200  # bootstrap resamples (0: no intervals)
    seed: int = 0
    level: float = 0.95  # interval level
    ci: str = "percentile"  # parameters' and exponents' intervals: "percentile" | "bca" (jackknife)
    approach2_method: str = "akima"  # "akima" | "local" | "full"
    budget_tol: float = 0.05  # decades of C grouped into one IsoFLOP budget
    drop_edge: bool = True  # leave budgets whose minimum sits on a sampled edge out of Approach 2
    n_jobs: int | None = None  # processes for the bootstraps (None: every available core)
    predict_C: tuple[float, ...] = ()  # budgets for predictions; default: the largest C in the data
    extrapolate: bool = True
    # Approach 3's E held fixed: None (fitted), a positive number, or "floor" (the points' entropy_floor
    # column: the known entropy of our synthetic language; one value per fitted group)
    fix_E: float | str | None = None


FLOOR_REL_TOL = 1e-6  # entropy_floor values of one fit may differ by this much (relative) and still be one floor


def resolve_fix_E(spec: float | str | None, df: pd.DataFrame) -> tuple[float, str] | None:
    """(E, source) to hold fixed in this frame's Approach 3, source 'entropy_floor' or 'value'; None for
    a free E. One-line errors when the floor is unknown or varies, or E is not below every loss."""
    if spec is None:
        return None
    where = f" in group {df['group'].iloc[0]!r}" if "group" in df and len(df) else ""
    if isinstance(spec, str):
        if spec != "floor":
            raise ConfigError(f"fix_E must be 'floor' or a positive number; got {spec!r}")
        if "entropy_floor" not in df:
            raise DataError("--fix-E floor: the points have no entropy_floor column (only sweeps of the synthetic "
                            "language record one); pass --fix-E VALUE or drop --fix-E")
        v = pd.to_numeric(df["entropy_floor"], errors="coerce").to_numpy(float)
        bad = ~np.isfinite(v)
        if bad.any():
            raise DataError(f"--fix-E floor: entropy_floor is empty/NaN in {int(bad.sum())} of {len(v)} rows{where} "
                            "(real text and non-decoder objectives have no known floor); filter them out (--query) "
                            "or pass --fix-E VALUE")
        lo, hi = float(v.min()), float(v.max())
        if hi - lo > FLOOR_REL_TOL * abs(hi):
            raise DataError(f"--fix-E floor: entropy_floor differs between rows{where} ({lo:.6g} to {hi:.6g}), so the "
                            "points come from different data; fit them separately (--group data) or pass --fix-E VALUE")
        value, source = float(v[0]), "entropy_floor"
    else:
        value, source = float(spec), "value"
    check_fixed_E(value, float(df["loss"].min()), where or " in the fit")  # on the raw losses
    return value, source


@dataclass
class StudyFit:
    """All fits of one points frame. Laws absent from `skipped` are set; arrays serve the plots:
    `samples[law][param]` bootstrap draws, `residuals[law]` log residuals per point,
    `approach2.budgets` the IsoFLOP profiles, `approach1.envelope` the envelope points."""

    approach1: Approach1Fit | None
    approach2: Approach2Fit | None
    approach3: ChinchillaFit | None
    kaplan: KaplanFit | None
    comparison: Comparison
    n_points: int
    points: pd.DataFrame
    samples: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    residuals: dict[str, np.ndarray] = field(default_factory=dict)
    predictions: list[dict] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    options: FitOptions = field(default_factory=FitOptions)
    fixed_E: tuple[float, str] | None = None  # (E, source) when Approach 3's E was held fixed; no E samples then
    # law -> (refits used, resamples drawn); law -> parameter -> leave-one-out values (BCa only)
    resamples: dict[str, tuple[int, int]] = field(default_factory=dict)
    jackknife: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    # points averaged over replicates (seeds): Approach 3's interval of a with the replicates
    # resampled within each point (the reported one), with points only, and the share of seed noise
    seed_noise: dict | None = None

    def fixed_E_text(self) -> str:
        """e.g. 'E fixed at 0.6970 = entropy_floor'; '' when E was fitted."""
        if self.fixed_E is None:
            return ""
        value, source = self.fixed_E
        return f"E fixed at {value:.4f} = {'entropy_floor' if source == 'entropy_floor' else 'given value'}"

    def approach3_label(self) -> str:
        """'Approach 3', or e.g. 'Approach 3 (E fixed at 0.6970 = entropy_floor)'."""
        return f"Approach 3 ({self.fixed_E_text()})" if self.fixed_E is not None else "Approach 3"

    def estimate(self, law: str, name: str) -> float:
        """The full-data value of parameter `name` of `law` (NaN when the law was skipped)."""
        fit = getattr(self, law)
        if fit is None:
            return math.nan
        return float(getattr(getattr(fit, "law", None) or fit, name))

    def ci(self, law: str, name: str) -> tuple[float, float]:
        s = self.samples.get(law, {}).get(name)
        if s is None:
            return (math.nan, math.nan)
        return iv.interval(s, self.options.level, self.options.ci, self.estimate(law, name),
                           self.jackknife.get(law, {}).get(name))

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
        return iv.flags(estimates, {n: self.ci(law, n) for n in names}, used, total, self.options.ci)

    def to_json(self) -> dict:
        """Stable schema: approach1, approach2, approach3, kaplan, comparison, n_points (+ warnings, bootstrap)."""
        return _to_json(self)


LOG_SCALE = ("E", "A", "B", "N_c", "D_c")  # their standard errors are of ln(value)


def _se_key(name: str) -> str:
    return f"ln_{name}" if name in LOG_SCALE else name


def _with_ci(study: StudyFit, law: str, names) -> dict:
    return {n: list(study.ci(law, n)) for n in names if n in study.samples.get(law, {})}


def _to_json(s: StudyFit) -> dict:
    out: dict = {"n_points": s.n_points}
    if s.approach3 is not None:
        law = s.approach3.law
        names = ("E", "A", "B", "alpha", "beta", "a", "b")
        fixed = None if s.fixed_E is None else dict(value=s.fixed_E[0], source=s.fixed_E[1],
                                                        note="E held fixed, not fitted: it has no interval or SE")
        out["approach3"] = dict({n: getattr(law, n) for n in names}, objective=s.approach3.objective,
                                status=s.approach3.status.value, method=s.approach3.method, formula=repr(law).split("   ")[0],
                                E_fixed=fixed, ci=_with_ci(s, "approach3", names),
                                se={_se_key(n): s.se("approach3", n) for n in names},
                                flags=s.flags("approach3"))
    else:
        out["approach3"] = {"status": "skipped", "reason": s.skipped.get("approach3")}
    if s.kaplan is not None:
        law = s.kaplan.law
        names = ("alpha_N", "alpha_D", "N_c", "D_c", "a", "b")
        out["kaplan"] = dict({n: getattr(law, n) for n in names}, alpha_C=law.alpha_C, objective=s.kaplan.objective,
                             status=s.kaplan.status.value, formula=repr(law).split("   ")[0], ci=_with_ci(s, "kaplan", names),
                             flags=s.flags("kaplan"))
    else:
        out["kaplan"] = {"status": "skipped", "reason": s.skipped.get("kaplan")}
    if s.approach2 is not None:
        f = s.approach2
        out["approach2"] = dict(a=f.a, b=f.b, status="converged", method=f.method, ci=_with_ci(s, "approach2", ("a", "b")),
                                flags=s.flags("approach2"),
                                N_opt=repr(f.allocation.n_opt), D_opt=repr(f.allocation.d_opt),
                                budgets=[dict(C=b.C, N_star=b.n_star, D_star=b.d_star, loss_star=b.loss_star,
                                              n_sizes=len(b.N), edge=b.edge, used=b.used) for b in f.budgets])
    else:
        out["approach2"] = {"a": None, "b": None, "status": "skipped", "reason": s.skipped.get("approach2")}
    if s.approach1 is not None:
        f = s.approach1
        out["approach1"] = dict(a=f.a, b=f.b, status="converged", source=f.source, ci=_with_ci(s, "approach1", ("a", "b")),
                                flags=s.flags("approach1"),
                                N_opt=repr(f.allocation.n_opt), D_opt=repr(f.allocation.d_opt), n_envelope=len(f.envelope))
    else:
        out["approach1"] = {"a": None, "b": None, "status": "skipped", "reason": s.skipped.get("approach1")}
    c = s.comparison
    ex = c.extrapolation
    out["comparison"] = dict(
        table=[dict(approach=r.approach, a=r.a, a_ci=list(r.a_ci), b=r.b, b_ci=list(r.b_ci), status=r.status)
               for r in c.table],
        elasticities=c.elasticities, verdict=c.verdict, predictions=s.predictions,
        extrapolation=None if ex is None else dict(holdout_C_min=ex.holdout_C_min, n_train=ex.n_train,
                                                   n_holdout=ex.n_holdout, errors=ex.errors))
    out["bootstrap"] = {"n": s.options.n_boot, "seed": s.options.seed, "level": s.options.level,
                        "ci": s.options.ci, "resamples_used": {k: list(v) for k, v in s.resamples.items()}}
    if s.seed_noise is not None:
        out["bootstrap"]["seed_noise"] = s.seed_noise
    out["warnings"] = list(s.warnings)
    return json_safe(out)


def _check(df: pd.DataFrame) -> None:
    if len(df) < 3:
        raise FitError(f"only {len(df)} point(s); every law needs more points than parameters")
    if df["N"].nunique() < 2:
        raise FitError(f"all {len(df)} points have one model size (N = {df['N'].iloc[0]:.4g}); "
                       "fitting how loss depends on N needs at least 2 sizes (better 3+)")


def fit_study(points, curves: pd.DataFrame | None = None, options: FitOptions | None = None) -> StudyFit:
    """Fit Approaches 1-3 and Kaplan to `points` (a `scaling.tables.Points` or a frame with N, D, C, loss).

    A law that cannot be fitted on this data (too few budgets, points, ...) is recorded in `skipped`
    with its reason; FitError is raised only when the data support no law at all.
    """
    opt = options or FitOptions()
    replicates = None
    if hasattr(points, "frame"):
        curves = points.curves if curves is None else curves
        base_warnings = list(points.warnings)
        df = points.frame
        if points.replicates is not None and max(len(r) for r in points.replicates) > 1:
            replicates = points.replicates
    else:
        df, base_warnings = points, []
    df = df.reset_index(drop=True)
    _check(df)
    fixed = resolve_fix_E(opt.fix_E, df)
    fix_E = None if fixed is None else fixed[0]
    msgs: list[str] = list(base_warnings)
    skipped: dict[str, str] = {}
    samples: dict[str, dict[str, np.ndarray]] = {}
    residuals: dict[str, np.ndarray] = {}
    resamples: dict[str, tuple[int, int]] = {}
    jack: dict[str, dict[str, np.ndarray]] = {}

    def attempt(name, func):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", FitWarning)
                result = func()
            msgs.extend(str(w.message) for w in caught if issubclass(w.category, FitWarning))
            return result
        except FitError as err:
            skipped[name] = str(err)
            return None

    a3 = attempt("approach3", lambda: approach3(df, opt.method, fix_E=fix_E))
    kp = attempt("kaplan", lambda: kaplan(df))
    a2 = attempt("approach2", lambda: approach2(df, opt.approach2_method, opt.budget_tol, opt.drop_edge))
    a1 = attempt("approach1", lambda: approach1(df, curves))
    if all(x is None for x in (a1, a2, a3, kp)):
        raise FitError("no law could be fitted: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))

    logn, logd, logl = (np.log(df[c].to_numpy(float)) for c in ("N", "D", "loss"))
    if a3 is not None:
        residuals["approach3"] = np.log(a3.law.predict(df["N"], df["D"])) - logl
    if kp is not None:
        residuals["kaplan"] = np.log(kp.law.predict(df["N"], df["D"])) - logl

    seed_noise = None
    if opt.n_boot > 0:
        if a3 is not None:
            th, ok = bootstrap_chinchilla(df, a3.law.theta, opt.n_boot, opt.seed, opt.n_jobs,
                                          fix_E=fix_E, replicates=replicates)
            resamples["approach3"] = (int(ok.sum()), len(ok))
            if replicates is not None:
                seed_noise = _seed_noise(df, a3.law.theta, th[ok], opt, fix_E)
            th = th[ok]
            laws = [ChinchillaLaw.from_theta(t) for t in th]
            # a fixed E has no bootstrap distribution: no "E" samples (consumers use the fixed value)
            kept = ("A", "B", "alpha", "beta", "a", "b") if fix_E is not None else ("E", "A", "B", "alpha", "beta", "a", "b")
            samples["approach3"] = {n: np.array([getattr(l, n) for l in laws]) for n in kept}
            if (~ok).sum() > 0.05 * len(ok):
                msgs.append(f"Approach 3 bootstrap: {int((~ok).sum())} of {len(ok)} refits did not converge cleanly; "
                            f"left out, so its intervals come from the {int(ok.sum())} that did")
        if kp is not None:
            ps, ok = bootstrap_kaplan(df, kp.law, opt.n_boot, opt.seed, opt.n_jobs)
            resamples["kaplan"] = (int(ok.sum()), len(ok))
            laws = [KaplanLaw(p[0], p[1], float(np.exp(p[2])), float(np.exp(p[3]))) for p in ps[ok]]
            samples["kaplan"] = {n: np.array([getattr(l, n) for l in laws]) for n in ("alpha_N", "alpha_D", "N_c", "D_c", "a", "b")}
        if a2 is not None:
            ab = bootstrap_approach2(df, opt.n_boot, opt.seed, method=opt.approach2_method, budget_tol=opt.budget_tol,
                                     drop_edge=opt.drop_edge, n_jobs=opt.n_jobs)
            samples["approach2"] = {"a": ab[:, 0], "b": ab[:, 1]}
            resamples["approach2"] = (int(np.isfinite(ab[:, 0]).sum()), len(ab))
        if a1 is not None:
            ab = bootstrap_approach1(df, curves, min(opt.n_boot, 200) if curves is not None else opt.n_boot, opt.seed)
            samples["approach1"] = {"a": ab[:, 0], "b": ab[:, 1]}
            resamples["approach1"] = (int(np.isfinite(ab[:, 0]).sum()), len(ab))
        if opt.ci == "bca":
            jack = _jackknife(df, curves, opt, a1, a2, a3, kp, fix_E)

    study = StudyFit(a1, a2, a3, kp, None, len(df), df, samples, residuals, [], skipped, msgs, opt,  # type: ignore[arg-type]
                     fixed, resamples, jack, seed_noise)
    rows = []
    for name, fit in (("approach1", a1), ("approach2", a2), ("approach3", a3), ("kaplan", kp)):
        if fit is None:
            continue
        status = getattr(fit, "status", None)
        law = getattr(fit, "law", None) or fit
        weak = "; ".join(f for f in study.flags(name) if f.startswith(("a ", "intervals from")))
        rows.append(AllocationRow(name, law.a, study.ci(name, "a"), law.b, study.ci(name, "b"),
                                  status.value if status is not None else "converged", weak))

    # elasticities at the median point, with bootstrap intervals
    Nm, Dm = float(np.exp(np.median(logn))), float(np.exp(np.median(logd)))
    elast = {}
    for name, fit, cls, keys in (("approach3", a3, ChinchillaLaw, ("E", "A", "B", "alpha", "beta")),
                                 ("kaplan", kp, KaplanLaw, ("alpha_N", "alpha_D", "N_c", "D_c"))):
        if fit is None:
            continue
        eN, eD = fit.law.elasticities(Nm, Dm)
        entry = {"N": float(eN), "D": float(eD), "at": {"N": Nm, "D": Dm}}
        if name in samples and len(samples[name][keys[-1]]):
            s = {"E": fit.law.E, **samples[name]} if name == "approach3" else samples[name]  # E: fixed or sampled
            bN, bD = cls(*(s[k] for k in keys)).elasticities(Nm, Dm)
            entry["N_ci"], entry["D_ci"] = list(interval(bN, opt.level)), list(interval(bD, opt.level))
        elast[name] = entry

    # predictions at chosen budgets (default: the largest C in the data)
    for C in (opt.predict_C or (float(df["C"].max()),)):
        for name, fit in (("approach1", a1), ("approach2", a2), ("approach3", a3), ("kaplan", kp)):
            if fit is None:
                continue
            law = getattr(fit, "law", None) or fit.allocation
            n_opt, d_opt = (float(v) for v in law.allocation(C))
            row = {"law": name, "C": C, "N_opt": n_opt, "D_opt": d_opt, "tokens_per_param": d_opt / n_opt}
            if hasattr(law, "loss_at_budget"):
                row["loss"] = float(law.loss_at_budget(C))
            if name == "approach3" and "approach3" in samples and len(samples["approach3"]["A"]):
                s = samples["approach3"]
                bl = ChinchillaLaw(s.get("E", fit.law.E), s["A"], s["B"], s["alpha"], s["beta"])
                bn, bd = bl.allocation(C)
                row["N_opt_ci"], row["D_opt_ci"] = list(interval(bn, opt.level)), list(interval(bd, opt.level))
                row["tokens_per_param_ci"] = list(interval(bd / bn, opt.level))
                row["loss_ci"] = list(interval(bl.loss_at_budget(C), opt.level))
            study.predictions.append(row)

    ex = None
    if opt.extrapolate:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitWarning)
            ex = extrapolation_check(df, opt.method, opt.budget_tol, opt.approach2_method, fix_E)
    study.comparison = Comparison(tuple(rows), elast, ex, verdict(tuple(rows), opt.level))
    return study


def _jackknife(df, curves, opt: FitOptions, a1, a2, a3, kp, fix_E) -> dict[str, dict]:
    """Leave-one-out values of every fitted law's parameters, for the BCa acceleration."""
    out = {}
    if a3 is not None:
        out["approach3"] = iv.jackknife_chinchilla(df, a3.law.theta, fix_E)
    if kp is not None:
        out["kaplan"] = iv.jackknife_kaplan(df, kp.law)
    if a2 is not None:
        out["approach2"] = iv.jackknife_allocation(
            df, lambda sub: approach2(sub, opt.approach2_method, opt.budget_tol, opt.drop_edge))
    if a1 is not None:
        use_curves = curves is not None and len(curves) and "run_id" in df
        out["approach1"] = iv.jackknife_allocation(
            df, lambda sub: approach1(sub, curves[curves["run_id"].isin(sub["run_id"])]
                                      if use_curves else None))
    return out


def _seed_noise(df: pd.DataFrame, theta0, theta_seeds: np.ndarray, opt: FitOptions, fix_E) -> dict:
    """Approach 3's interval of a with replicates resampled within points (theta_seeds) against the
    same resampled points without them: how much of the interval is seed noise."""
    th, ok = bootstrap_chinchilla(df, theta0, opt.n_boot, opt.seed, opt.n_jobs, fix_E=fix_E)
    a = lambda t: t[:, 4] / (t[:, 3] + t[:, 4])  # noqa: E731  beta / (alpha + beta)
    with_seeds, points_only = interval(a(theta_seeds), opt.level), interval(a(th[ok]), opt.level)
    w1, w0 = with_seeds[1] - with_seeds[0], points_only[1] - points_only[0]
    return {"law": "approach3", "a_ci": list(with_seeds), "a_ci_points_only": list(points_only),
            "seed_share": (1 - w0 / w1) if w1 > 0 else 0.0,
            "points": int(len(df)),
            "replicates_per_point": [int(df["n_rep"].min()), int(df["n_rep"].max())]}


def fit_groups(points, options: FitOptions | None = None) -> dict[str, StudyFit]:
    """`fit_study` on every group of a `Points` (one entry 'all' without a group column)."""
    return {name: fit_study(p, options=options) for name, p in points.groups().items()}
