"""Tabulated symmetric CDFs for sign expectations, evaluated in torch.

The DSignSGD drift needs E sign(g + σZ) = 2F(g/σ) − 1 for the standardized noise CDF F (MATH.md §6.3, [R+D]). torch
has erf but neither the Student-t CDF nor the alpha-stable one, so both are tabulated once per parameter with scipy and
interpolated here (MATH.md §6.6, §10.3, [D]).

The table holds the survival function G = 1 − F on x = sinh(s), s uniform on [0, asinh(x_max)], together with its
derivative dG/ds = −p(x) cosh(s), and interpolates with cubic Hermite polynomials (error O(h⁴)). Beyond x_max the
tail is extended as a power law G(x) = G(x_max) (x_max / x)^tail, exact to leading order for Student-t (tail = ν) and
alpha-stable (tail = α) laws. Storing G rather than F keeps relative precision in the tails.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

_N_POINTS = 2049
_X_MAX = 1.0e6


class SymmetricCDFTable:
    """Interpolated survival function of a symmetric law, for ``sign_mean(z) = 2F(z) − 1``.

    Args:
        sf: survival function G(x) for x ≥ 0 (numpy, vectorized).
        pdf: density p(x) (numpy, vectorized).
        tail: power-law exponent of G at infinity.
    """

    def __init__(self, sf, pdf, tail: float):
        s = np.linspace(0.0, math.asinh(_X_MAX), _N_POINTS)
        x = np.sinh(s)
        self.h = float(s[1] - s[0])
        self.g = sf(x)
        self.dg = -pdf(x) * np.cosh(s) * self.h  # derivative in units of the cell width
        self.s_max = float(s[-1])
        self.tail = float(tail)
        self._cache: dict = {}

    def _tensors(self, dtype, device):
        key = (dtype, device)
        if key not in self._cache:
            self._cache[key] = (torch.tensor(self.g, dtype=dtype, device=device),
                                torch.tensor(self.dg, dtype=dtype, device=device))
        return self._cache[key]

    def sf(self, a: torch.Tensor) -> torch.Tensor:
        """G(a) for a ≥ 0."""
        g, dg = self._tensors(a.dtype, a.device)
        s = torch.asinh(a)
        u = s / self.h
        i = u.floor().clamp(0, _N_POINTS - 2)
        tau = (u - i).clamp(0.0, 1.0)
        i = i.long()
        g0, g1, m0, m1 = g[i], g[i + 1], dg[i], dg[i + 1]
        tau2 = tau * tau
        tau3 = tau2 * tau
        inside = ((2 * tau3 - 3 * tau2 + 1) * g0 + (tau3 - 2 * tau2 + tau) * m0
                  + (-2 * tau3 + 3 * tau2) * g1 + (tau3 - tau2) * m1)
        outside = g[-1] * (_X_MAX / a.clamp_min(_X_MAX)) ** self.tail
        return torch.where(s <= self.s_max, inside, outside)

    def sign_mean(self, z: torch.Tensor) -> torch.Tensor:
        """2F(z) − 1 = sign(z)(1 − 2G(|z|)); ±1 at z = ±inf."""
        a = z.abs()
        finite = torch.isfinite(a)
        val = 1.0 - 2.0 * self.sf(torch.where(finite, a, torch.zeros_like(a)))
        val = torch.where(finite, val, torch.ones_like(val))
        return torch.sign(z) * val


@functools.lru_cache(maxsize=32)
def student_t_table(nu: float) -> SymmetricCDFTable:
    from scipy import stats

    law = stats.t(nu)
    return SymmetricCDFTable(law.sf, law.pdf, tail=nu)


@functools.lru_cache(maxsize=32)
def stable_table(alpha: float) -> SymmetricCDFTable:
    """Standard symmetric alpha-stable law, E exp(iuS) = exp(−|u|^alpha) (scipy's ``levy_stable(alpha, 0)``)."""
    from scipy import stats

    law = stats.levy_stable(alpha, 0.0)
    return SymmetricCDFTable(law.sf, law.pdf, tail=alpha)
