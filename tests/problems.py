"""Reference problems with closed-form answers, shared by the tests."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import integrate


class GBM(torch.nn.Module):
    """Geometric Brownian motion dX = μX dt + σX dW (diagonal Itô noise).

    Exact solution X_T = X_0 exp((μ − σ²/2)T + σW_T); E X_T = X_0 e^{μT}. Euler with step h has
    E X_n = X_0 (1 + μh)^n exactly, so its weak error in the mean is X_0 (e^{μT} − (1 + μh)^{T/h}) ~ X_0 e^{μT} μ²T h/2.
    """

    sde_type = "ito"
    noise_type = "diagonal"

    def __init__(self, mu: float, sigma: float):
        super().__init__()
        self.mu, self.sigma = mu, sigma

    def f(self, t, y):
        return self.mu * y

    def g(self, t, y):
        return self.sigma * y

    def exact(self, x0, w_t, t):
        return x0 * torch.exp((self.mu - 0.5 * self.sigma**2) * t + self.sigma * w_t)


class Brownian(torch.nn.Module):
    """dX = dW: its solution is the driving path itself (same seed, same shape => same increments)."""

    sde_type = "ito"
    noise_type = "diagonal"

    def f(self, t, y):
        return torch.zeros_like(y)

    def g(self, t, y):
        return torch.ones_like(y)


class Clock(torch.nn.Module):
    """dX = (1, t) dt, no noise: X_t = (t, t²/2) exactly; Euler gives (n h, h² n(n−1)/2)."""

    sde_type = "ito"
    noise_type = "diagonal"

    def f(self, t, y):
        return torch.stack([torch.ones_like(y[:, 0]), torch.full_like(y[:, 0], float(t))], -1)

    def g(self, t, y):
        return torch.zeros_like(y)


def euler_ou_stationary_m(h: float, lr: float, var: float, dt_t: float, a: float | None = None,
                          mult: float = 0.0) -> float:
    """Stationary E x² of Euler with step dt_t (SDE time) on dX = −aX dt + √(lr (var + mult x²)) dW.

    The moment recursion m ← (1 − a δ)² m + δ lr (var + mult m) has the fixed point
    m = δ lr var / (1 − (1 − aδ)² − δ lr mult) (MATH.md §7.7 with the Euler step made explicit). ``h`` is unused
    except as the default a = h.
    """
    a = h if a is None else a
    d = dt_t
    return d * lr * var / (1 - (1 - a * d) ** 2 - d * lr * mult)


def stationary_density_moment(drift, diff2, fn, lo=-2.0, hi=2.0, n=400_001) -> float:
    """E fn(X) under the stationary law of the 1-D SDE dX = drift(X) dt + √diff2(X) dW, by quadrature:
    p(x) ∝ exp(∫ 2 drift/diff2) / diff2 (the zero-flux solution of the Fokker–Planck equation)."""
    x = np.linspace(lo, hi, n)
    d2 = diff2(x)
    phi = integrate.cumulative_trapezoid(2 * drift(x) / d2, x, initial=0.0)
    phi -= phi.max()
    p = np.exp(phi) / d2
    p /= np.trapezoid(p, x)
    return float(np.trapezoid(fn(x) * p, x))


def fit_slope(x, y) -> float:
    """Least-squares slope of log y on log x."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def normal_se(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1) / math.sqrt(len(values)))
