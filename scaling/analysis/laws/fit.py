"""Fitters: Approach 3 (Chinchilla law) by Hoffmann's 4500-start grid or a fast global method,
and the Kaplan joint law; every fit reports a status instead of passing off a bad optimum.

Grid: the objective is evaluated on all 4500 starts in one array operation and only the best
`n_polish` starts are polished with L-BFGS-B (analytic gradient): the screening costs 0.3 s where a
loop of 4500 L-BFGS-B runs costs minutes, and on the Epoch data every one of the top 50 starts
lands in the same basin.

Fast ("varpro"): for fixed (alpha, beta) the law is linear in (E, A, B), so on a 64 x 64 grid of
exponents the relative-error least-squares problem min sum ((E + A x + B y)/L - 1)^2, E, A, B >= 0,
is solved exactly (3 x 3 normal equations built from one matrix product, with all 7 active sets
for the sign constraints). The best few exponent pairs under the true Huber objective are then
polished; the search over exponents is global, the polish makes the objective exact.

Fixed E (`fix_E`): where the irreducible loss is known (our synthetic language's entropy floor),
e = log E is held and only (a, b, alpha, beta) are fitted; the linear part per exponent pair is then
A, B >= 0 of (L - E) (target 1 - E/L), the grid's e column is set to the fixed value, and a bound
on e can no longer be hit. Parameter vectors keep all five entries, e included, everywhere.

All polishing runs with OpenBLAS limited to one thread (see `_blas.py`): 70x faster on small
problems.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum

import numpy as np
from scipy.optimize import least_squares, minimize

from scaling.analysis.laws._blas import single_thread_blas
from scaling.analysis.laws.forms import ChinchillaLaw, KaplanLaw
from scaling.analysis.laws.objectives import HUBER_DELTA, huber_fg, huber_objective
from scaling.errors import FitError, FitWarning


class FitStatus(str, Enum):
    """How an optimiser stopped; anything but CONVERGED is printed as a warning next to the
    numbers."""

    CONVERGED = "converged"
    MAX_ITER = "max-iter"
    BOUND_HIT = "bound-hit"


# Bounds on (a, b, e, alpha, beta) = (log A, log B, log E, alpha, beta): wide enough never to bind
# on sensible data; a fit that ends on one says so (BOUND_HIT) rather than printing a limit as a
# value. A, B, E >= e^-23 ~ 1e-10: a term driven to that floor has vanished (e.g. loss flat in N).
CHINCHILLA_BOUNDS = ((-23.0, 60.0), (-23.0, 60.0), (-23.0, 10.0), (0.0, 5.0), (0.0, 5.0))
# Polish tolerances: the Huber(1e-3) objective is nearly L1 and flat, default L-BFGS-B tolerances
# stop far from the optimum (bootstrap spreads shrink tenfold); these reach the optimum to ~1e-10.
LBFGS_OPTIONS = dict(maxiter=5000, maxfun=20000, ftol=1e-15, gtol=1e-12, maxcor=20)
# CHINCHILLA_BOUNDS as arrays of the lower and the upper limits
_LOWER, _UPPER = (np.array([b[i] for b in CHINCHILLA_BOUNDS]) for i in (0, 1))


def hoffmann_grid() -> np.ndarray:
    """Hoffmann et al.'s 4500 starts as (a, b, e, alpha, beta) rows."""
    ab = np.arange(0.0, 30.0, 5.0)  # a, b in {0, 5, ..., 25}
    e = np.arange(-1.0, 1.5, 0.5)  # e in {-1, -0.5, ..., 1}
    ex = np.arange(0.0, 2.5, 0.5)  # alpha, beta in {0, 0.5, ..., 2}
    return np.array(list(itertools.product(ab, ab, e, ex, ex)), dtype=float)


@dataclass(frozen=True)
class ChinchillaFit:
    """One Approach 3 fit: the law, its objective (sum of Huber on log residuals) and how it
    ended."""

    law: ChinchillaLaw
    objective: float
    status: FitStatus
    method: str
    n_starts: int
    messages: tuple[str, ...] = field(default=())
    fixed_E: float | None = None  # E held at this known value (not fitted; no interval), or None

    @property
    def ok(self) -> bool:
        return self.status is FitStatus.CONVERGED


def _on_bound(x: np.ndarray, bounds) -> list[int]:
    return [
        i
        for i, (v, (lo, hi)) in enumerate(zip(x, bounds))
        if min(v - lo, hi - v) < 1e-6 * (hi - lo)
    ]


THETA_NAMES = ("log A", "log B", "log E", "alpha", "beta")
FIXED_E_FREE = np.array([0, 1, 3, 4])  # indices of theta fitted when e = log E is fixed


E_VANISHED = 1e-6  # a fitted E below this share of the lowest loss is zero in all but name


def bound_hits(theta, fixed_e: float | None = None, min_log_loss: float | None = None) -> list[int]:
    """Indices of theta (a, b, e, alpha, beta) on a bound; a fixed e is never counted. Given the
    lowest log loss, a fitted E that has vanished (< E_VANISHED of that loss) counts as on its
    bound: the optimiser often stops at E ~ 1e-9, short of the bound, with the same meaning."""
    idx = np.arange(5) if fixed_e is None else FIXED_E_FREE
    theta = np.asarray(theta, float)
    hits = [int(idx[i]) for i in _on_bound(theta[idx], [CHINCHILLA_BOUNDS[j] for j in idx])]
    if (
        fixed_e is None
        and min_log_loss is not None
        and 2 not in hits
        and theta[2] < min_log_loss + np.log(E_VANISHED)
    ):
        hits = sorted(hits + [2])
    return hits


def _fixed_e_fg(x, fixed_e, log_n, log_d, log_loss, w, delta):
    """huber_fg over (a, b, alpha, beta) with e held at fixed_e."""
    f, g = huber_fg(np.array([x[0], x[1], fixed_e, x[2], x[3]]), log_n, log_d, log_loss, w, delta)
    return f, g[FIXED_E_FREE]


def polish_chinchilla(
    theta0,
    log_n,
    log_d,
    log_loss,
    weights=None,
    delta: float = HUBER_DELTA,
    fixed_e: float | None = None,
):
    """L-BFGS-B from theta0 on the Huber objective; returns (theta, objective, FitStatus).
    fixed_e: hold e = log E at this value and fit (a, b, alpha, beta) only; theta still has 5
    entries."""
    w = np.ones_like(log_n) if weights is None else np.asarray(weights, float)
    theta0 = np.asarray(theta0, float)
    bounds: tuple[tuple[float, float], ...]
    fg: Callable[..., tuple[float, np.ndarray]]
    args: tuple
    if fixed_e is None:
        bounds, fg, args = CHINCHILLA_BOUNDS, huber_fg, (log_n, log_d, log_loss, w, delta)
        x0 = theta0
    else:
        bounds = tuple(CHINCHILLA_BOUNDS[i] for i in FIXED_E_FREE)
        fg, args = _fixed_e_fg, (float(fixed_e), log_n, log_d, log_loss, w, delta)
        x0 = theta0[FIXED_E_FREE]
    x0 = np.clip(x0, [b[0] for b in bounds], [b[1] for b in bounds])
    with single_thread_blas():
        res = minimize(
            fg, x0, args=args, jac=True, method="L-BFGS-B", bounds=bounds, options=LBFGS_OPTIONS
        )
    theta = res.x if fixed_e is None else np.insert(res.x, 2, float(fixed_e))
    status = FitStatus.MAX_ITER if res.status == 1 else FitStatus.CONVERGED
    if bound_hits(theta, fixed_e, float(np.min(log_loss))):
        status = FitStatus.BOUND_HIT
    return theta, float(res.fun), status


def _term_jacobian(
    log_n: np.ndarray, log_d: np.ndarray, free: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """d term_k / d theta of the three LSE terms (a - alpha ln N, b - beta ln D, e) over the free
    parameters, (3, n, k), and their outer products per term and point, (3 n, k k)."""
    n = len(log_n)
    dt = np.zeros((3, n, 5))
    dt[0, :, 0], dt[0, :, 3], dt[1, :, 1], dt[1, :, 4], dt[2, :, 2] = 1.0, -log_n, 1.0, -log_d, 1.0
    dt = dt[:, :, free]
    k = len(free)
    return dt, np.einsum("knj,knl->knjl", dt, dt).reshape(3 * n, k * k)


def _lse_residuals(
    th: np.ndarray, ll: np.ndarray, log_n: np.ndarray, log_d: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Log residuals (R, n) of rows theta (R, 5) and the softmax weights of the terms (R, 3, n)."""
    n = len(log_n)
    t = np.stack(
        [
            th[:, 0, None] - th[:, 3, None] * log_n,
            th[:, 1, None] - th[:, 4, None] * log_d,
            np.broadcast_to(th[:, 2, None], (len(th), n)),
        ],
        1,
    )  # (R, 3, n)
    m = t.max(1, keepdims=True)
    ex = np.exp(t - m)
    s = ex.sum(1, keepdims=True)
    r = (m + np.log(s))[:, 0] - ll
    return r, ex / s


def _huber_sum(r: np.ndarray, ww: np.ndarray, delta: float) -> np.ndarray:
    """Weighted Huber objective per row."""
    ar = np.abs(r)
    return (np.where(ar <= delta, 0.5 * r * r, delta * (ar - 0.5 * delta)) * ww).sum(1)


def _damped_newton_step(
    rr: np.ndarray,
    pp: np.ndarray,
    ww: np.ndarray,
    dt: np.ndarray,
    dtdt: np.ndarray,
    lam: np.ndarray,
    delta: float,
) -> np.ndarray:
    """Levenberg-damped Newton steps (R, k) with the exact Hessian of the Huber objective."""
    k = dt.shape[2]
    G = np.einsum("rkn,knj->rnj", pp, dt)  # d r / d theta (R, n, free)
    h1 = np.clip(rr, -delta, delta) * ww
    h2 = (np.abs(rr) <= delta) * ww
    g = np.einsum("rn,rnj->rj", h1, G)
    # Hessian: sum w [h'' G G' + h' (sum_k p_k dt_k dt_k' - G G')]
    # einsum, not BLAS: a row's numbers must not depend on how many rows share the call
    H = np.einsum("rnj,rnl->rjl", G * (h2 - h1)[:, :, None], G)
    hp = (h1[:, None, :] * pp).reshape(len(rr), -1)
    H += np.einsum("rm,mq->rq", hp, dtdt).reshape(len(rr), k, k)
    scale = np.maximum(np.abs(np.einsum("rjj->rj", H)), 1e-12)
    with np.errstate(all="ignore"):
        return -_solve_rows(H + lam[:, None, None] * scale[:, :, None] * np.eye(k), g)


def polish_chinchilla_batch(
    theta0,
    log_n,
    log_d,
    log_loss,
    weights: np.ndarray,
    fixed_e: float | None = None,
    delta: float = HUBER_DELTA,
    max_iter: int = 60,
):
    """`polish_chinchilla` for many rows at once (resamples, or starts), from theta0 (5,) or (R, 5)
    with weights (R, n) and log_loss (n,) or, one per row, (R, n): damped Newton steps with the
    exact Hessian of the Huber objective, all rows together. Returns (theta (R, 5), settled mask,
    vanished mask); a row that does not settle, or settles on a bound, is for the caller's
    `polish_chinchilla`, except a row whose E vanished (< E_VANISHED of its lowest loss): such a
    refit ends on E's bound whichever way it is polished, so it cannot converge cleanly."""
    R = len(weights)
    w = np.asarray(weights, float)
    free = np.arange(5) if fixed_e is None else FIXED_E_FREE
    theta = _start_rows(theta0, R, fixed_e)
    dt, dtdt = _term_jacobian(log_n, log_d, free)
    log_loss = np.asarray(log_loss, float)
    min_log_loss = np.broadcast_to(np.min(log_loss, axis=-1), (R,))
    r, prob = _lse_residuals(theta, log_loss, log_n, log_d)
    f = _huber_sum(r, w, delta)
    lam = np.full(R, 1e-6)
    active, settled, vanished = np.ones(R, bool), np.zeros(R, bool), np.zeros(R, bool)
    for _ in range(max_iter):
        rows = np.flatnonzero(active)
        if not len(rows):
            break
        ww = w[rows]
        step = _damped_newton_step(r[rows], prob[rows], ww, dt, dtdt, lam[rows], delta)
        ll = log_loss[rows] if log_loss.ndim == 2 else log_loss
        trial, r_new, p_new, f_new, better = _trial_step(
            theta[rows], step, free, ll, log_n, log_d, ww, f[rows], delta
        )
        # stop as L-BFGS-B would (LBFGS_OPTIONS): the step or the decrease is negligible, or no
        # descent is left even along the damped (almost gradient) direction
        negligible = _negligible_progress(step, theta[rows][:, free], f[rows], f_new)
        ok = rows[better]
        theta[ok], f[ok] = trial[better], f_new[better]
        r[ok], prob[ok] = r_new[better], p_new[better]
        lam[rows] = np.where(better, np.maximum(lam[rows] / 10, 1e-12), lam[rows] * 10)
        stalled = lam[rows] > 1e8
        # a row whose E vanishes heads for its bound and stops here (a step out of bounds is only
        # rejected; a row that stalls on a bound is caught by `bound_hits` below)
        if fixed_e is None:
            vanished[rows] = theta[rows, 2] < min_log_loss[rows] + np.log(E_VANISHED)
        settled[rows] = ((better & negligible) | stalled) & ~vanished[rows]
        active[rows[settled[rows] | vanished[rows]]] = False
    for i in np.flatnonzero(settled):
        settled[i] = not bound_hits(theta[i], fixed_e, float(min_log_loss[i]))
    return theta, settled, vanished


def _start_rows(theta0, n_rows: int, fixed_e: float | None) -> np.ndarray:
    """theta0 (5,) or (R, 5) clipped to the bounds as n_rows rows, e set to fixed_e if given."""
    theta = np.broadcast_to(np.clip(np.asarray(theta0, float), _LOWER, _UPPER), (n_rows, 5)).copy()
    if fixed_e is not None:
        theta[:, 2] = fixed_e
    return theta


def _trial_step(
    theta: np.ndarray,
    step: np.ndarray,
    free: np.ndarray,
    log_loss: np.ndarray,
    log_n: np.ndarray,
    log_d: np.ndarray,
    ww: np.ndarray,
    f: np.ndarray,
    delta: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows theta moved by step over the free parameters: (trial theta, log residuals, term
    weights, Huber objective, better mask: inside the bounds with a finite objective <= f)."""
    with np.errstate(all="ignore"):
        trial = theta.copy()
        trial[:, free] += step
        inside = np.all((trial >= _LOWER) & (trial <= _UPPER), axis=1)
        r, prob = _lse_residuals(trial, log_loss, log_n, log_d)
        f_new = _huber_sum(r, ww, delta)
    return trial, r, prob, f_new, inside & np.isfinite(f_new) & (f_new <= f)


def _negligible_progress(
    step: np.ndarray, theta_free: np.ndarray, f: np.ndarray, f_new: np.ndarray
) -> np.ndarray:
    """Per row, whether the step (relative to theta) or the decrease of the objective is too small
    to go on, by L-BFGS-B's tolerances (LBFGS_OPTIONS)."""
    size = 1.0 + np.linalg.norm(theta_free, axis=1)
    small = np.linalg.norm(step, axis=1) <= 1e-11 * size
    flat = f - f_new <= 1e-15 * np.maximum(f, 1.0)
    return small | flat


def _nonneg_lsq(G: np.ndarray, r: np.ndarray, tt: float) -> tuple[np.ndarray, np.ndarray]:
    """Per grid cell, min |target - M c|^2 over c >= 0 from the normal equations G c = r (G = M'M,
    r = M' target, tt = target'target), by trying every active set: (ssr, c)."""
    shape, m = G.shape[:-2], G.shape[-1]
    best_ssr = np.full(shape, np.inf)
    best_coef = np.zeros(shape + (m,))
    for k in range(m, 0, -1):  # every active set; keep the best feasible (all coefficients >= 0)
        for idx in itertools.combinations(range(m), k):
            ix = np.array(idx)
            Gs = G[..., ix[:, None], ix[None, :]]
            rs = r[..., ix]
            with np.errstate(all="ignore"):
                try:
                    c = np.linalg.solve(Gs + 1e-12 * np.eye(k), rs[..., None])[..., 0]
                except np.linalg.LinAlgError:
                    continue
            ssr = tt - (c * rs).sum(-1)  # residual of the normal-equation solution
            ok = np.all(c >= 0, axis=-1) & np.isfinite(ssr) & (ssr < best_ssr)
            full = np.zeros(shape + (m,))
            full[..., ix] = c
            best_ssr = np.where(ok, ssr, best_ssr)
            best_coef = np.where(ok[..., None], full, best_coef)
    return best_ssr, best_coef


def varpro_starts(
    log_n, log_d, log_loss, n_grid: int = 64, n_best: int = 4, fixed_e: float | None = None
) -> np.ndarray:
    """Global search over (alpha, beta): exact nonnegative (E, A, B) per pair, ranked by Huber
    objective. With e = log E fixed the linear part is A, B >= 0 fitted to (L - E)/L (relative error
    as before)."""
    L = np.exp(log_loss)
    exps = np.linspace(0.02, 2.5, n_grid)
    X = np.exp(-exps[:, None] * log_n) / L  # (n_grid, n): columns of the design divided by L
    Y = np.exp(-exps[:, None] * log_d) / L
    shape = (n_grid, n_grid)
    G, r, tt = _varpro_normal_equations(X, Y, L, fixed_e)
    best_ssr, best_coef = _nonneg_lsq(G, r, tt)
    # candidates: the 200 best pairs by least squares, re-ranked by the true Huber objective
    flat = np.argsort(best_ssr, axis=None)[:200]
    ia, ib = np.unravel_index(flat, shape)
    coef = np.maximum(
        best_coef[ia, ib], np.exp(CHINCHILLA_BOUNDS[0][0])
    )  # a zero sits on the bound
    theta = _theta_from_linear(coef, exps[ia], exps[ib], fixed_e)
    obj = huber_objective(theta, log_n, log_d, log_loss)
    return theta[np.argsort(obj)[:n_best]]


def _varpro_normal_equations(
    X: np.ndarray, Y: np.ndarray, L: np.ndarray, fixed_e: float | None
) -> tuple[np.ndarray, np.ndarray, float]:
    """Normal equations (G, r, target'target) of the linear part for every (alpha, beta) pair:
    columns (1/L, X, Y) with target 1, or with e fixed (X, Y) with target 1 - E/L."""
    shape = (len(X), len(Y))
    # Gram matrix entries and right-hand sides for every (alpha, beta) pair, shape (n_grid, n_grid)
    sxx = np.broadcast_to(np.einsum("an,an->a", X, X)[:, None], shape)
    syy = np.broadcast_to(np.einsum("bn,bn->b", Y, Y)[None, :], shape)
    sxy = X @ Y.T
    if fixed_e is not None:  # columns (X, Y), target 1 - E/L: coefficients (A, B)
        t = 1.0 - np.exp(fixed_e) / L
        G = np.stack([np.stack([sxx, sxy], -1), np.stack([sxy, syy], -1)], -2)
        r = np.stack(
            [np.broadcast_to((X @ t)[:, None], shape), np.broadcast_to((Y @ t)[None, :], shape)], -1
        )
        return G, r, float(t @ t)
    # columns (1/L, X, Y), target 1: coefficients (E, A, B)
    one = 1.0 / L
    s11 = np.full(shape, one @ one)
    s1x = np.broadcast_to((X @ one)[:, None], shape)
    s1y = np.broadcast_to((Y @ one)[None, :], shape)
    G = np.stack(
        [
            np.stack([s11, s1x, s1y], -1),
            np.stack([s1x, sxx, sxy], -1),
            np.stack([s1y, sxy, syy], -1),
        ],
        -2,
    )
    r = np.stack(
        [
            np.full_like(s11, one.sum()),
            np.broadcast_to(X.sum(1)[:, None], shape),
            np.broadcast_to(Y.sum(1)[None, :], shape),
        ],
        -1,
    )
    return G, r, float(len(L))


def _theta_from_linear(
    coef: np.ndarray, alpha: np.ndarray, beta: np.ndarray, fixed_e: float | None
) -> np.ndarray:
    """Rows (a, b, e, alpha, beta) from the linear coefficients: (E, A, B), or (A, B) with e
    fixed."""
    if fixed_e is None:  # coef = (E, A, B)
        log_e = np.log(coef[:, 0])
        log_a, log_b = np.log(coef[:, 1]), np.log(coef[:, 2])
    else:  # coef = (A, B)
        log_e = np.full(len(coef), float(fixed_e))
        log_a, log_b = np.log(coef[:, 0]), np.log(coef[:, 1])
    return np.column_stack([log_a, log_b, log_e, alpha, beta])


def check_fixed_E(fix_E: float, min_loss: float, where: str = " in the fit") -> None:
    """FitError unless 0 < fix_E < min_loss (the law needs E below every loss); `where` names the
    data."""
    if not (np.isfinite(fix_E) and fix_E > 0):
        raise FitError(f"a fixed E must be a positive number; got {fix_E}")
    if not fix_E < min_loss:
        raise FitError(
            f"fixed E = {fix_E:.6g} is not strictly below the lowest loss{where} ({min_loss:.6g}); "
            "L = E + A/N^alpha + B/D^beta needs E < every loss: check the loss column or fix a "
            "smaller E"
        )


PRE_POLISH_STARTS = 8  # above this many starts (the grid's 64), Newton steps pre-polish them all


def fit_chinchilla(
    log_n,
    log_d,
    log_loss,
    method: str = "fast",
    weights=None,
    n_polish: int = 64,
    starts: np.ndarray | None = None,
    fix_E: float | None = None,
) -> ChinchillaFit:
    """Approach 3 fit of log L ~ LSE(a - alpha log N, b - beta log D, e) by `method` 'grid' or
    'fast'; fix_E: hold E at this known value (0 < fix_E < every loss) and fit A, B, alpha, beta
    only."""
    log_n, log_d, log_loss = (np.asarray(v, float) for v in (log_n, log_d, log_loss))
    _check_enough_points(len(log_n), fix_E)
    fixed_e = None
    if fix_E is not None:
        fix_E = float(fix_E)
        check_fixed_E(fix_E, float(np.exp(log_loss.min())))
        fixed_e = float(np.log(fix_E))
    if starts is None:
        starts = _chinchilla_starts(method, log_n, log_d, log_loss, weights, n_polish, fixed_e)
    theta, fun, status = _best_polished(starts, log_n, log_d, log_loss, weights, fixed_e)
    msgs: tuple[str, ...] = ()
    if status is not FitStatus.CONVERGED:
        msgs = (_status_message(status, theta, fixed_e, log_loss),)
        warnings.warn(msgs[0], FitWarning, stacklevel=2)
    law = ChinchillaLaw.from_theta(theta)
    if fix_E is not None:
        law = replace(law, E=fix_E)  # exactly the value given, not exp(log(E))
    return ChinchillaFit(law, fun, status, method, len(starts), msgs, fix_E)


def _check_enough_points(n_points: int, fix_E: float | None) -> None:
    """FitError unless there is at least one point more than Approach 3 has parameters."""
    n_par = 5 if fix_E is None else 4
    if n_points < n_par + 1:
        raise FitError(
            f"Approach 3 has {n_par} parameters{' (E fixed)' if fix_E is not None else ''} and "
            f"needs at least {n_par + 1} points; got {n_points}"
        )


def _chinchilla_starts(
    method: str, log_n, log_d, log_loss, weights, n_polish: int, fixed_e: float | None
) -> np.ndarray:
    """Starts to polish: the `n_polish` best of Hoffmann's grid ('grid') or the varpro search
    ('fast')."""
    if method == "grid":
        grid = hoffmann_grid()
        if fixed_e is not None:  # the e column collapses to the fixed value: 900 distinct starts
            grid[:, 2] = fixed_e
            grid = np.unique(grid, axis=0)
        obj = huber_objective(grid, log_n, log_d, log_loss, weights)
        return grid[np.argsort(obj)[:n_polish]]
    if method == "fast":
        return varpro_starts(log_n, log_d, log_loss, fixed_e=fixed_e)
    raise FitError(f"unknown Approach 3 method {method!r}; choose 'fast' or 'grid'")


def _best_polished(
    starts: np.ndarray, log_n, log_d, log_loss, weights, fixed_e: float | None
) -> tuple[np.ndarray, float, FitStatus]:
    """Every start polished by L-BFGS-B: (theta, objective, FitStatus) of the lowest objective."""
    best = None
    with single_thread_blas():
        if len(starts) > PRE_POLISH_STARTS:
            # every start taken close to its optimum by batched Newton steps first: L-BFGS-B then
            # only confirms it (a few iterations, not hundreds); unsettled starts go as given
            w = np.ones_like(log_n) if weights is None else np.asarray(weights, float)
            pre, settled, _ = polish_chinchilla_batch(
                starts,
                log_n,
                log_d,
                log_loss,
                np.tile(w, (len(starts), 1)),
                fixed_e=fixed_e,
                max_iter=150,
            )
            starts = np.where(settled[:, None], pre, starts)
        for x0 in starts:
            theta, fun, status = polish_chinchilla(
                x0, log_n, log_d, log_loss, weights, fixed_e=fixed_e
            )
            if best is None or fun < best[1]:
                best = (theta, fun, status)
    assert best is not None  # at least one start
    return best


def _status_message(status: FitStatus, theta, fixed_e: float | None, log_loss) -> str:
    """The warning for a fit that did not converge cleanly: its status and the bounds it hit."""
    hit = (
        ", ".join(THETA_NAMES[i] for i in bound_hits(theta, fixed_e, float(np.min(log_loss))))
        or "iteration limit"
    )
    return (
        f"Approach 3 fit ended with status {status.value} ({hit}); its numbers are not a "
        "clean optimum"
    )


# ---- Kaplan joint law -------------------------------------------------------------------------
KAPLAN_BOUNDS = (np.array([1e-3, 1e-3, -200.0, -200.0]), np.array([5.0, 5.0, 2000.0, 2000.0]))


def _kaplan_residuals(p, log_n, log_d, log_loss, sqrt_w):
    alpha_n, alpha_d, lnc, ldc = p
    pred = alpha_d * np.logaddexp((alpha_n / alpha_d) * (lnc - log_n), ldc - log_d)
    return (pred - log_loss) * sqrt_w


@dataclass(frozen=True)
class KaplanFit:
    """The Kaplan joint law fitted by least squares on log loss."""

    law: KaplanLaw
    objective: float
    status: FitStatus
    messages: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.status is FitStatus.CONVERGED


def _solve_rows(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve A[r] x[r] = b[r] for every row; a singular row gets NaN (the others are unaffected)."""
    try:
        return np.linalg.solve(A, b[..., None])[..., 0]
    except np.linalg.LinAlgError:
        out = np.full(b.shape, np.nan)
        for r in range(len(b)):
            try:
                out[r] = np.linalg.solve(A[r], b[r])
            except np.linalg.LinAlgError:
                pass
        return out


def kaplan_batch(p0, log_n, log_d, log_loss, weights: np.ndarray, max_iter: int = 200):
    """Kaplan refits for many weight vectors at once (the bootstrap), from p0: Levenberg-Marquardt
    on all rows together (4 x 4 normal equations per row); log_loss is one vector or one per row.
    Returns (params (R, 4), settled mask); a row that stops near a bound or does not settle is
    left to `fit_kaplan` by the caller."""
    R = len(weights)
    sw = np.sqrt(np.asarray(weights, float))
    ll = np.broadcast_to(log_loss, sw.shape)  # one loss vector, or one per row
    p = np.tile(np.asarray(p0, float), (R, 1))
    lam = np.full(R, 1e-3)
    active = np.ones(R, bool)
    settled = np.zeros(R, bool)

    def cost_of(p, w, ll):
        an, ad, lnc, ldc = (p[:, i, None] for i in range(4))
        pred = ad * np.logaddexp((an / ad) * (lnc - log_n), ldc - log_d)
        return (((pred - ll) * w) ** 2).sum(1)

    cost = cost_of(p, sw, ll)
    lo, hi = KAPLAN_BOUNDS
    for _ in range(max_iter):
        rows = np.flatnonzero(active)
        if not len(rows):
            break
        pr, w, lr = p[rows], sw[rows], ll[rows]
        an, ad, lnc, ldc = (pr[:, i, None] for i in range(4))
        u, v = (an / ad) * (lnc - log_n), ldc - log_d
        lse = np.logaddexp(u, v)
        pu, pv = np.exp(u - lse), np.exp(v - lse)
        r = (ad * lse - lr) * w
        J = np.stack([pu * (lnc - log_n), lse - pu * u, an * pu, ad * pv], -1) * w[..., None]
        g = np.einsum("rnk,rn->rk", J, r)
        H = np.einsum("rnk,rnl->rkl", J, J)
        d = np.einsum("rkk->rk", H)
        with np.errstate(all="ignore"):
            step = -_solve_rows(H + lam[rows, None, None] * d[:, :, None] * np.eye(4), g)
            trial = pr + step
            new_cost = cost_of(trial, w, lr)
        better = np.isfinite(new_cost) & (new_cost <= cost[rows])
        # scipy's xtol and ftol tests at the tolerances of `fit_kaplan` (1e-12)
        small = np.linalg.norm(step, axis=1) <= 1e-12 * (1e-12 + np.linalg.norm(pr, axis=1))
        flat = better & (cost[rows] - new_cost <= 1e-12 * cost[rows])
        p[rows[better]], cost[rows[better]] = trial[better], new_cost[better]
        lam[rows] = np.where(better, lam[rows] / 3, lam[rows] * 4)
        done = (better & (small | flat)) | (lam[rows] > 1e12)
        settled[rows] = better & (small | flat)
        active[rows[done]] = False
    inside = np.all((p - lo > 1e-6 * (hi - lo)) & (hi - p > 1e-6 * (hi - lo)), axis=1)
    return p, settled & inside


def kaplan_starts(log_n, log_d, log_loss) -> np.ndarray:
    """Starts on a small exponent grid, with N_c, D_c chosen so each term alone matches the median
    loss."""
    mn, md, ml = np.median(log_n), np.median(log_d), np.median(log_loss)
    return np.array(
        [[an, ad, mn + ml / an, md + ml / ad] for an in (0.05, 0.1, 0.3) for ad in (0.05, 0.1, 0.3)]
    )


def fit_kaplan(log_n, log_d, log_loss, weights=None, starts: np.ndarray | None = None) -> KaplanFit:
    """Kaplan's L(N, D) fitted to log loss by least squares (trust-region, bounded), best of its
    starts."""
    log_n, log_d, log_loss = (np.asarray(v, float) for v in (log_n, log_d, log_loss))
    if len(log_n) < 5:
        raise FitError(
            f"the Kaplan law has 4 parameters and needs at least 5 points; got {len(log_n)}"
        )
    sqrt_w = np.ones_like(log_n) if weights is None else np.sqrt(np.asarray(weights, float))
    starts = kaplan_starts(log_n, log_d, log_loss) if starts is None else np.atleast_2d(starts)
    best = None
    with single_thread_blas():
        for x0 in starts:
            x0 = np.clip(x0, KAPLAN_BOUNDS[0], KAPLAN_BOUNDS[1])
            res = least_squares(
                _kaplan_residuals,
                x0,
                bounds=KAPLAN_BOUNDS,
                args=(log_n, log_d, log_loss, sqrt_w),
                method="trf",
                x_scale="jac",
                xtol=1e-12,
                ftol=1e-12,
                gtol=1e-12,
                max_nfev=2000,
            )
            fun = float(2 * res.cost)
            if best is None or fun < best[1]:
                best = (res, fun)
    assert best is not None  # at least one start
    res, fun = best
    status = FitStatus.CONVERGED if res.status > 0 else FitStatus.MAX_ITER
    bounds = list(zip(*KAPLAN_BOUNDS))
    if _on_bound(res.x, bounds) or np.any(res.active_mask != 0):
        status = FitStatus.BOUND_HIT
    msgs: tuple[str, ...] = ()
    if status is not FitStatus.CONVERGED:
        msgs = (
            f"Kaplan fit ended with status {status.value}; its numbers are not a clean optimum",
        )
        warnings.warn(msgs[0], FitWarning, stacklevel=2)
    an, ad, lnc, ldc = res.x
    return KaplanFit(
        KaplanLaw(float(an), float(ad), float(np.exp(lnc)), float(np.exp(ldc))), fun, status, msgs
    )
