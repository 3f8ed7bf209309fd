"""Objectives for the Chinchilla law in log space: Huber on log residuals, vectorised over many
parameter sets at once so a 4500-start grid is one array operation.

The law L = E + A/N^alpha + B/D^beta is written, as Hoffmann et al. did, as
log L = LSE(a - alpha log N, b - beta log D, e) with A, B, E = exp(a), exp(b), exp(e).
A parameter vector theta is (a, b, e, alpha, beta).
"""

from __future__ import annotations

import numpy as np

HUBER_DELTA = 1e-3  # Hoffmann et al.'s delta on log residuals


def huber(r: np.ndarray, delta: float = HUBER_DELTA) -> np.ndarray:
    """Huber loss: r^2/2 inside |r| <= delta, delta*(|r| - delta/2) outside
    (scipy.special.huber)."""
    ar = np.abs(r)
    return np.where(ar <= delta, 0.5 * r * r, delta * (ar - 0.5 * delta))


def lse_terms(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray) -> np.ndarray:
    """The three exponents (a - alpha log N, b - beta log D, e), shape (..., 3, n_points)."""
    theta = np.asarray(theta, dtype=float)
    a, b, e, alpha, beta = (theta[..., i, None] for i in range(5))
    t1 = a - alpha * log_n
    t2 = b - beta * log_d
    t3 = np.broadcast_to(e, t1.shape)
    return np.stack([t1, t2, t3], axis=-2)


def predict_log_loss(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray) -> np.ndarray:
    """log L predicted by theta (shape (..., 5)) at every point: shape (..., n_points)."""
    terms = lse_terms(theta, log_n, log_d)
    m = terms.max(axis=-2, keepdims=True)
    return (m + np.log(np.exp(terms - m).sum(axis=-2, keepdims=True)))[..., 0, :]


def huber_objective(theta, log_n, log_d, log_loss, weights=None, delta: float = HUBER_DELTA):
    """Sum over points of Huber(predicted - observed log loss); theta (..., 5) -> (...)."""
    r = predict_log_loss(theta, log_n, log_d) - log_loss
    h = huber(r, delta)
    return h.sum(axis=-1) if weights is None else (h * weights).sum(axis=-1)


def huber_fg(theta: np.ndarray, log_n, log_d, log_loss, weights, delta: float = HUBER_DELTA):
    """Fast single-vector objective and gradient (the inner loop of every polish and bootstrap
    fit)."""
    a, b, e, alpha, beta = theta
    t1 = a - alpha * log_n
    t2 = b - beta * log_d
    m = np.maximum(np.maximum(t1, t2), e)
    e1, e2, e3 = np.exp(t1 - m), np.exp(t2 - m), np.exp(e - m)
    s = e1 + e2 + e3
    r = m + np.log(s) - log_loss
    ar = np.abs(r)
    h = np.where(ar <= delta, 0.5 * r * r, delta * (ar - 0.5 * delta))
    g = np.clip(r, -delta, delta) * weights / s
    g1, g2 = g * e1, g * e2
    return float(h @ weights), np.array(
        [g1.sum(), g2.sum(), (g * e3).sum(), -(g1 @ log_n), -(g2 @ log_d)]
    )
