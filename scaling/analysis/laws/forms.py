"""Typed, immutable scaling laws that print their own formula with fitted values.

Every law answers the same questions: `predict` a loss, the compute-optimal `allocation(C)` under
C = 6ND, its exponents `a` (N_opt ~ C^a) and `b` (D_opt ~ C^b), and the loss `elasticities`
d log L / d log N and d log L / d log D at a point (how much each axis matters there).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scaling.flops import FLOPS_PER_PARAM_TOKEN


def _g(x: float) -> str:
    """Four significant figures, scientific only when it reads better."""
    return f"{x:.4g}"


@dataclass(frozen=True)
class PowerLaw:
    """y = coef * x^exponent, fitted by least squares in log-log space (N_opt(C), D_opt(C), ...)."""

    coef: float
    exponent: float
    x_name: str = "C"
    y_name: str = "N_opt"

    def __call__(self, x):
        return self.coef * np.asarray(x, dtype=float) ** self.exponent

    @classmethod
    def fit(cls, x, y, x_name: str = "C", y_name: str = "N_opt") -> PowerLaw:
        """Ordinary least squares of log y on log x (needs two distinct x)."""
        slope, intercept = np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)
        return cls(float(np.exp(intercept)), float(slope), x_name, y_name)

    def __repr__(self) -> str:
        return f"{self.y_name}({self.x_name}) = {_g(self.coef)} * {self.x_name}^{self.exponent:.3f}"


class Exponents:
    """`a` in N_opt ~ C^a and `b` in D_opt ~ C^b of a law or allocation, from its `exponents()`."""

    def exponents(self) -> tuple[float, float]:
        raise NotImplementedError

    @property
    def a(self) -> float:
        return self.exponents()[0]

    @property
    def b(self) -> float:
        return self.exponents()[1]


class LossLaw(Exponents):
    """A law of the loss L(N, D) with its compute-optimal allocation (N_opt(C), D_opt(C))."""

    def predict(self, N, D):
        raise NotImplementedError

    def allocation(self, C):
        raise NotImplementedError

    def tokens_per_param(self, C):
        n, d = self.allocation(C)
        return d / n

    def loss_at_budget(self, C):
        """L on the compute frontier (at the optimal allocation)."""
        return self.predict(*self.allocation(C))


@dataclass(frozen=True)
class ChinchillaLaw(LossLaw):
    """L(N, D) = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022, Approach 3)."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float

    @classmethod
    def from_theta(cls, theta) -> ChinchillaLaw:
        """From the log-space vector (a, b, e, alpha, beta) with A, B, E = exp(a), exp(b),
        exp(e)."""
        a, b, e, alpha, beta = (float(v) for v in theta)
        return cls(
            E=float(np.exp(e)), A=float(np.exp(a)), B=float(np.exp(b)), alpha=alpha, beta=beta
        )

    @property
    def theta(self) -> np.ndarray:
        return np.array([np.log(self.A), np.log(self.B), np.log(self.E), self.alpha, self.beta])

    def predict(self, N, D):
        N, D = np.asarray(N, float), np.asarray(D, float)
        return self.E + self.A / N**self.alpha + self.B / D**self.beta

    def exponents(self) -> tuple[float, float]:
        """a = beta / (alpha + beta) and b = alpha / (alpha + beta) = 1 - a."""
        total = self.alpha + self.beta
        return self.beta / total, self.alpha / total

    def allocation(self, C):
        """(N_opt, D_opt) minimising L at fixed C = 6ND: N_opt = G (C/6)^a, D_opt = (C/6)^b / G."""
        g = (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))
        x = np.asarray(C, float) / FLOPS_PER_PARAM_TOKEN
        return g * x**self.a, x**self.b / g

    def elasticities(self, N, D):
        """(d log L / d log N, d log L / d log D): both negative; the larger magnitude matters more
        there."""
        L = self.predict(N, D)
        return -self.alpha * self.A / np.asarray(
            N, float
        ) ** self.alpha / L, -self.beta * self.B / np.asarray(D, float) ** self.beta / L

    def __repr__(self) -> str:
        return (
            f"L(N, D) = {self.E:.4g} + {self.A:.4g}/N^{self.alpha:.3f} + "
            f"{self.B:.4g}/D^{self.beta:.3f}   [N_opt ~ C^{self.a:.3f}, D_opt ~ C^{self.b:.3f}]"
        )


@dataclass(frozen=True)
class KaplanLaw(LossLaw):
    """L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D (Kaplan et al. 2020, eq. 1.5).

    Its limits are L(N) = (N_c/N)^alpha_N (D -> inf) and L(D) = (D_c/D)^alpha_D (N -> inf);
    minimising over N at fixed C = 6ND gives N_opt ~ C^(alpha_D/(alpha_N+alpha_D)) and L(C) ~
    C^-alpha_C on the frontier with alpha_C = alpha_N alpha_D / (alpha_N + alpha_D).
    """

    alpha_N: float
    alpha_D: float
    N_c: float
    D_c: float

    def predict(self, N, D):
        N, D = np.asarray(N, float), np.asarray(D, float)
        return ((self.N_c / N) ** (self.alpha_N / self.alpha_D) + self.D_c / D) ** self.alpha_D

    def loss_n(self, N):
        """L(N): the data-unlimited limit."""
        return (self.N_c / np.asarray(N, float)) ** self.alpha_N

    def loss_d(self, D):
        """L(D): the model-unlimited limit."""
        return (self.D_c / np.asarray(D, float)) ** self.alpha_D

    def exponents(self) -> tuple[float, float]:
        total = self.alpha_N + self.alpha_D
        return self.alpha_D / total, self.alpha_N / total

    @property
    def alpha_C(self) -> float:
        return self.alpha_N * self.alpha_D / (self.alpha_N + self.alpha_D)

    def allocation(self, C):
        """Setting d L / d N = 0 at D = C/(6N): D_c 6N/C = r (N_c/N)^r with r = alpha_N/alpha_D."""
        r = self.alpha_N / self.alpha_D
        C = np.asarray(C, float)
        n = (r * self.N_c**r * C / (FLOPS_PER_PARAM_TOKEN * self.D_c)) ** (1.0 / (1.0 + r))
        return n, C / (FLOPS_PER_PARAM_TOKEN * n)

    def elasticities(self, N, D):
        r = self.alpha_N / self.alpha_D
        u = (self.N_c / np.asarray(N, float)) ** r
        v = self.D_c / np.asarray(D, float)
        return -self.alpha_N * u / (u + v), -self.alpha_D * v / (u + v)

    def __repr__(self) -> str:
        return (
            f"L(N, D) = [({self.N_c:.4g}/N)^({self.alpha_N:.3f}/{self.alpha_D:.3f}) + "
            f"{self.D_c:.4g}/D]^{self.alpha_D:.3f}   [N_opt ~ C^{self.a:.3f}, D_opt ~ "
            f"C^{self.b:.3f}, L(C) ~ C^-{self.alpha_C:.3f}]"
        )


@dataclass(frozen=True)
class Allocation(Exponents):
    """Compute-optimal allocation measured directly (Approaches 1 and 2): N_opt(C) and D_opt(C)."""

    n_opt: PowerLaw
    d_opt: PowerLaw

    def exponents(self) -> tuple[float, float]:
        return self.n_opt.exponent, self.d_opt.exponent

    def allocation(self, C):
        return self.n_opt(C), self.d_opt(C)

    def tokens_per_param(self, C):
        return self.d_opt(C) / self.n_opt(C)

    def __repr__(self) -> str:
        return f"{self.n_opt!r};  {self.d_opt!r}"
