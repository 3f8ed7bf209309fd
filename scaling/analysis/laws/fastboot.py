"""Approach 1 and 2 refits on plain arrays, for the bootstrap: the same numbers as `approach1` /
`approach2` on resampled frames (to rounding), without building a DataFrame per resample.

Approach 2: every budget's sizes are grouped once; a resample only changes how often each point
counts, so the per-size means of every resample are one matrix product, and the Akima minima of all
profiles with the same number of sizes are found in one array operation (scipy's Akima slopes and
PPoly evaluation, written out along a batch axis). Approach 1 on final points keeps its loop but
works on arrays.
"""

from __future__ import annotations

import numpy as np

from scaling.analysis.laws.approaches import budget_labels, isoflop_minimum

AKIMA_GRID = 401  # points of the interpolant searched for the minimum, as in `isoflop_minimum`


def loglog_slopes(x: np.ndarray, y: np.ndarray, use: np.ndarray) -> np.ndarray:
    """Per row, the least-squares slope of y on x over the entries where `use` (NaN if < 2)."""
    w = use.astype(float)
    n = w.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = np.where(use, x, 0.0).sum(1) / n
        my = np.where(use, y, 0.0).sum(1) / n
        dx = np.where(use, x - mx[:, None], 0.0)
        dy = np.where(use, y - my[:, None], 0.0)
        sxx = (dx * dx).sum(1)
        slope = (dx * dy).sum(1) / sxx
    return np.where((n >= 2) & (sxx > 0), slope, np.nan)


def akima_minima(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """`isoflop_minimum(..., 'akima')`'s ln N* for a batch of profiles: x, y (R, k), x ascending."""
    R, k = x.shape
    i = np.argmin(y, axis=1)
    rows = np.arange(R)
    xx = np.linspace(x[:, 0], x[:, -1], AKIMA_GRID, axis=1)  # (R, G), as np.linspace per row
    if k == 1:
        return x[:, 0].copy()
    if k > 2:
        yy = _akima_eval(x, y, xx)
    else:  # two sizes: the straight line (np.interp)
        yy = y[:, :1] + (y[:, 1:] - y[:, :1]) / (x[:, 1:] - x[:, :1]) * (xx - x[:, :1])
    lo = x[rows, np.maximum(i - 1, 0)][:, None]
    hi = x[rows, np.minimum(i + 1, k - 1)][:, None]
    yy = np.where((xx >= lo) & (xx <= hi), yy, np.inf)
    return xx[rows, np.argmin(yy, axis=1)]


def _akima_eval(x: np.ndarray, y: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """scipy's Akima1DInterpolator (method 'akima') of each row, evaluated at xx (R, G)."""
    R, k = x.shape
    dx = np.diff(x, axis=1)
    m = np.empty((R, k + 3))
    m[:, 2:-2] = np.diff(y, axis=1) / dx
    m[:, 1] = 2.0 * m[:, 2] - m[:, 3]
    m[:, 0] = 2.0 * m[:, 1] - m[:, 2]
    m[:, -2] = 2.0 * m[:, -3] - m[:, -4]
    m[:, -1] = 2.0 * m[:, -2] - m[:, -3]
    t = 0.5 * (m[:, 3:] + m[:, :-3])
    dm = np.abs(np.diff(m, axis=1))
    f1, f2 = dm[:, 2:], dm[:, :-2]
    f12 = f1 + f2
    ind = f12 > 1e-9 * f12.max(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        tk = m[:, 1:-2] + (f2 / f12) * (m[:, 2:-1] - m[:, 1:-2])
    t = np.where(ind, tk, t)
    # CubicHermiteSpline coefficients, then PPoly's evaluation (sum of c_j s^j, low order first)
    slope = np.diff(y, axis=1) / dx
    tt = (t[:, :-1] + t[:, 1:] - 2 * slope) / dx
    c0, c1, c2, c3 = tt / dx, (slope - t[:, :-1]) / dx - tt, t[:, :-1], y[:, :-1]
    seg = np.clip((xx[:, :, None] >= x[:, None, 1:-1]).sum(2), 0, k - 2)  # x[seg] <= xx < x[seg+1]
    take = lambda a: np.take_along_axis(a, seg, axis=1)  # noqa: E731
    s = xx - take(x)
    z = s
    out = take(c3) + take(c2) * z
    z = z * s
    out = out + take(c1) * z
    z = z * s
    return out + take(c0) * z


class Approach2Arrays:
    """A points frame's IsoFLOP structure, built once: budgets, and per budget its points, their
    sizes (sizes within 1% count as one, as `approach2` groups them) and distinct ln N."""

    def __init__(self, N, D, C, loss, budget_tol: float = 0.05):
        self.logn, self.logd = np.log(np.asarray(N, float)), np.log(np.asarray(D, float))
        self.logc, self.loss = np.log(np.asarray(C, float)), np.asarray(loss, float)
        self.tol = budget_tol
        labels = budget_labels(np.asarray(C, float), budget_tol)
        log10c = np.log10(np.asarray(C, float))
        self.groups, self.key_of, self.exact_of = [], [], []
        for lab in np.unique(labels):
            g = np.flatnonzero(labels == lab)  # in frame order: the order the bootstrap draws from
            self.groups.append(g)
            keys = np.round(self.logn[g] / 0.01)
            self.key_of.append(np.unique(keys, return_inverse=True)[1].ravel())
            self.exact_of.append(np.unique(self.logn[g], return_inverse=True)[1].ravel())
        self.log10c = log10c

    def _split(self, present: np.ndarray, g: np.ndarray) -> np.ndarray:
        """Budget of each drawn point of budget g in each resample (R, len(g)), -1 if not drawn:
        `budget_labels` of a resample splits a budget where its drawn points leave a gap > tol."""
        R, n = present.shape
        order = np.argsort(self.log10c[g], kind="stable")
        c, present = self.log10c[g][order], present[:, order]
        pos = np.where(present, np.arange(n), -1)
        # the last drawn point before each one
        prev = np.maximum.accumulate(np.c_[np.full(R, -1), pos[:, :-1]], axis=1)
        new = present & ((prev < 0) | (c - c[np.maximum(prev, 0)] > self.tol))
        sub = np.empty((R, n), int)
        sub[:, order] = np.where(present, np.cumsum(new, axis=1) - 1, -1)
        return sub

    def fit(
        self,
        counts: np.ndarray,
        method: str = "akima",
        drop_edge: bool = True,
        min_points: int = 3,
        loss: np.ndarray | None = None,
    ) -> np.ndarray:
        """(R, 2) samples (a, b) of `approach2` on each row of counts (R, n points); NaN where it
        fails. loss: each row's point losses (R, n) where they differ by row (resampled seeds)."""
        R = len(counts)
        # per profile: row, ln C, ln N*, ln D*, edge
        cols: list[list[np.ndarray]] = [[], [], [], [], []]
        for b, g in enumerate(self.groups):
            sub = self._split(counts[:, g] > 0, g)
            for s in range(int(sub.max()) + 1):
                rows = np.flatnonzero((sub == s).any(1))
                w = np.where(sub[rows] == s, counts[rows][:, g], 0.0)
                rows, w = (
                    rows[(_sum_by(w, self.exact_of[b]) > 0).sum(1) >= min_points],
                    w[(_sum_by(w, self.exact_of[b]) > 0).sum(1) >= min_points],
                )
                if len(rows):
                    logc = np.einsum("rn,n->r", w, self.logc[g]) / w.sum(1)
                    row_loss = None if loss is None else loss[rows][:, g]
                    for c, v in zip(cols, (rows, logc, *self._minima(w, b, method, row_loss))):
                        c.append(v)
        if not cols[0]:
            return np.full((R, 2), np.nan)
        row, logc, nstar, dstar, edge = (np.concatenate(c) for c in cols)
        order = np.argsort(row, kind="stable")  # profiles of each resample side by side
        row, logc, nstar, dstar, edge = (v[order] for v in (row, logc, nstar, dstar, edge))
        n_prof = np.bincount(row, minlength=R)
        slot = np.arange(len(row)) - np.r_[0, np.cumsum(n_prof)[:-1]][row]
        shape = (R, max(int(n_prof.max()), 1))
        have = np.zeros(shape, bool)
        have[row, slot] = True
        mats = []
        for v in (logc, nstar, dstar, edge):
            m = np.zeros(shape, v.dtype)
            m[row, slot] = v
            mats.append(m)
        logc, nstar, dstar, edge = mats
        interior = have & ~edge
        use_interior = drop_edge & (interior.sum(1) >= 2)
        used = np.where(use_interior[:, None], interior, have)
        out = np.column_stack([loglog_slopes(logc, nstar, used), loglog_slopes(logc, dstar, used)])
        out[have.sum(1) < 2] = np.nan
        return out

    def _minima(self, w: np.ndarray, b: int, method: str, loss: np.ndarray | None = None):
        """ln N*, ln D* and the edge flag of every profile (row of weights w over budget b's
        points; loss: the rows' own point losses, else the frame's)."""
        g = self.groups[b]
        cnt = _sum_by(w, self.key_of[b])
        values = (self.logn[g], self.logd[g], self.loss[g] if loss is None else loss)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = [_sum_by(w * v, self.key_of[b]) / cnt for v in values]
        present = cnt > 0
        n_keys = present.sum(1)
        nstar, dstar, edge = np.empty(len(w)), np.empty(len(w)), np.empty(len(w), bool)
        for k in np.unique(n_keys):
            rows = np.flatnonzero(n_keys == k)
            mask = present[rows]
            x, ld, y = (mv[rows][mask].reshape(len(rows), k) for mv in means)
            order = np.argsort(x, axis=1)
            x, ld, y = (np.take_along_axis(v, order, axis=1) for v in (x, ld, y))
            if method == "akima":
                xs = akima_minima(x, y)
            else:
                xs = np.array([isoflop_minimum(xr, yr, method)[0] for xr, yr in zip(x, y)])
            i = np.argmin(y, axis=1)
            edge[rows] = (i == 0) | (i == k - 1)
            nstar[rows] = xs
            dstar[rows] = [np.interp(s, xr, dr) for s, xr, dr in zip(xs, x, ld)]
        return nstar, dstar, edge


def _sum_by(w: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Columns of w (R, n) summed by `index` (n,) into (R, index.max() + 1)."""
    onehot = np.zeros((len(index), int(index.max()) + 1))
    onehot[np.arange(len(index)), index] = 1.0
    return np.einsum("rn,nk->rk", w, onehot)  # not BLAS: a row's sums must not depend on the batch


def envelope_slopes(C, N, D, loss) -> tuple[float, float]:
    """(a, b) of `approach1` on final points (its Pareto envelope of loss against C), NaN if the
    envelope has fewer than 2 points or sizes."""
    labels = budget_labels(C, 1e-6)
    order = np.lexsort((loss, labels))
    first = np.r_[True, np.diff(labels[order]) != 0]
    s = order[first]
    best = np.r_[np.inf, np.minimum.accumulate(loss[s])[:-1]]
    env = s[loss[s] < best]
    if len(env) < 2 or np.unique(N[env]).size < 2:
        return np.nan, np.nan
    x = np.log(C[env])[None, :]
    use = np.ones_like(x, bool)
    return (
        float(loglog_slopes(x, np.log(N[env])[None, :], use)[0]),
        float(loglog_slopes(x, np.log(D[env])[None, :], use)[0]),
    )
