r"""Compressors C: R^d -> R^d, applied along the last axis of a batch.

One contract for all: ``C(x, generator=g)`` returns a tensor of the shape of ``x`` (``g`` is a ``torch.Generator``,
an sdesim stream or an integer seed; deterministic compressors ignore it). Unbiased compressors (E C(x) = x and
E||C(x) − x||² ≤ ω||x||², MATH.md §4) also give

- :meth:`AbstractCompressor.omega`, the variance constant ω(d);
- :meth:`AbstractCompressor.covariance`, the exact covariance Cov_ξ C(x) (dense, for checks and small d);
- :meth:`AbstractCompressor.gaussian`, a Gaussian draw with that covariance in O(d) per point.

The compressors whose covariance is α diag(x²) − β x xᵀ (Identity, Bernoulli, Rand-k) also expose
:meth:`AbstractCompressor.cov_coefficients`; the SDE builder needs this structure to average over the gradient noise
in closed form (MATH.md §4: Cov C(g) = Σ + E_Z Cov_ξ C(g)).

Examples:
    >>> import torch
    >>> from sdesim import compressors
    >>> c = compressors.RandK(k=2)
    >>> c.omega(8)
    3.0
    >>> c(torch.ones(8, dtype=torch.float64), generator=0).count_nonzero().item()
    2
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass

import torch

from . import _checks
from ._linalg import diag_minus_rank_one
from ._rng import as_stream


class AbstractCompressor(abc.ABC):
    """Interface of a compressor.

    Attributes:
        unbiased: whether E C(x) = x for every x.
        exact_variance: whether E||C(x) − x||² = ω||x||² holds with equality (else only ≤).
    """

    unbiased: bool = False
    exact_variance: bool = False

    @abc.abstractmethod
    def __call__(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        """C(x) for each row of ``x`` (shape ``(..., d)``), drawing from ``generator``."""

    def check_dim(self, d: int) -> None:
        """Raise ``ValueError`` if the compressor cannot act on dimension d."""

    def omega(self, d: int) -> float:
        """ω(d) with E||C(x) − x||² ≤ ω||x||² (unbiased compressors only)."""
        raise ValueError(f"{type(self).__name__} is biased: it has no variance constant omega")

    def cov_coefficients(self, d: int) -> tuple[float, float] | None:
        """(α, β) with Cov_ξ C(x) = α diag(x²) − β x xᵀ, or ``None`` when the covariance has another form."""
        return None

    def covariance(self, x: torch.Tensor) -> torch.Tensor:
        """Exact Cov_ξ C(x), shape ``(..., d, d)`` (unbiased compressors only)."""
        coeffs = self._coefficients_or_raise(x.shape[-1])
        alpha, beta = coeffs
        return alpha * torch.diag_embed(x * x) - beta * x.unsqueeze(-1) * x.unsqueeze(-2)

    def variance_diag(self, x: torch.Tensor) -> torch.Tensor:
        """diag Cov_ξ C(x), for compressors whose covariance is diagonal (``ValueError`` otherwise)."""
        alpha, beta = self._coefficients_or_raise(x.shape[-1])
        if beta != 0.0:
            raise ValueError(f"{type(self).__name__} has a non-diagonal covariance")
        return alpha * x * x

    def gaussian(self, x: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        """A N(0, Cov_ξ C(x)) draw in O(d), from standard normals ``xi`` of the shape of ``x``."""
        alpha, beta = self._coefficients_or_raise(x.shape[-1])
        return diag_minus_rank_one(alpha * x * x, beta, x, xi)

    def _coefficients_or_raise(self, d: int) -> tuple[float, float]:
        if not self.unbiased:
            raise ValueError(f"{type(self).__name__} is biased; its covariance is not part of the unbiased model")
        coeffs = self.cov_coefficients(d)
        if coeffs is None:
            raise NotImplementedError(f"{type(self).__name__} overrides covariance and gaussian")
        return coeffs


def _check_k(k: int, d: int, name: str) -> None:
    if k > d:
        raise ValueError(f"k must be <= d: {name}(k={k}) cannot act on d={d} coordinates")


@dataclass(frozen=True)
class Identity(AbstractCompressor):
    """C(x) = x: no compression (ω = 0). DCSGD with it is DSGD."""

    unbiased = True
    exact_variance = True

    def __call__(self, x, generator=None):
        return x

    def omega(self, d):
        return 0.0

    def cov_coefficients(self, d):
        return 0.0, 0.0


@dataclass(frozen=True)
class RandK(AbstractCompressor):
    r"""Rand-k: keep k of the d coordinates uniformly without replacement, rescaled by d/k.

    ω = d/k − 1 (exact), Cov_ξ C(x) = ω (d diag(x²) − x xᵀ)/(d − 1) (MATH.md §4, [D] ✓num).

    Args:
        k: coordinates kept, 1 ≤ k ≤ d.
    """

    k: int
    unbiased = True
    exact_variance = True

    def __post_init__(self):
        object.__setattr__(self, "k", _checks.positive_int("k", self.k))

    def check_dim(self, d):
        _check_k(self.k, d, "RandK")

    def __call__(self, x, generator=None):
        d = x.shape[-1]
        self.check_dim(d)
        if self.k == d:
            return x
        u = as_stream(generator, x.device).uniform(x.shape, x.dtype).to(x.device)
        idx = u.topk(self.k, dim=-1, sorted=False).indices
        mask = torch.zeros_like(x).scatter_(-1, idx, d / self.k)
        return x * mask

    def omega(self, d):
        self.check_dim(d)
        return d / self.k - 1.0

    def cov_coefficients(self, d):
        w = self.omega(d)
        if d == 1:
            return 0.0, 0.0
        return w * d / (d - 1), w / (d - 1)


@dataclass(frozen=True)
class Bernoulli(AbstractCompressor):
    r"""Independent sparsification: keep each coordinate with probability p, rescaled by 1/p.

    ω = 1/p − 1 (exact) and Cov_ξ C(x) = ω diag(x²), diagonal (MATH.md §4, [D]).

    Args:
        p: keep probability in (0, 1].
    """

    p: float
    unbiased = True
    exact_variance = True

    def __post_init__(self):
        object.__setattr__(self, "p", _checks.in_interval("p", self.p, 0.0, 1.0, lo_open=True, hi_open=False))

    def __call__(self, x, generator=None):
        if self.p == 1.0:
            return x
        u = as_stream(generator, x.device).uniform(x.shape, x.dtype).to(x.device)
        return torch.where(u < self.p, x / self.p, torch.zeros_like(x))

    def omega(self, d):
        return 1.0 / self.p - 1.0

    def cov_coefficients(self, d):
        return self.omega(d), 0.0


@dataclass(frozen=True)
class QSGD(AbstractCompressor):
    r"""QSGD / random dithering with s levels (Alistarh et al., NeurIPS 2017).

    C(x)_j = ||x|| sign(x_j) ξ_j / s, where ξ_j ∈ {l, l + 1} with l = ⌊s|x_j|/||x||⌋ and P(ξ_j = l + 1) =
    s|x_j|/||x|| − l, independently across coordinates. Unbiased, with the exact diagonal covariance

        Cov_ξ C(x) = diag(||x||² r_j (1 − r_j) / s²),  r_j = s|x_j|/||x|| − l,

    and E||C(x) − x||² ≤ ω||x||² with ω = min(d/s², √d/s) (their Lemma 3.1; a bound, not an equality).

    Args:
        levels: number of levels s ≥ 1.
    """

    levels: int = 1
    unbiased = True

    def __post_init__(self):
        object.__setattr__(self, "levels", _checks.positive_int("levels", self.levels))

    def _split(self, x):
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
        safe = torch.where(norm > 0, norm, torch.ones_like(norm))
        r = self.levels * x.abs() / safe
        low = r.floor()
        return norm, low, r - low

    def __call__(self, x, generator=None):
        norm, low, frac = self._split(x)
        u = as_stream(generator, x.device).uniform(x.shape, x.dtype).to(x.device)
        xi = low + (u < frac).to(x.dtype)
        return norm * torch.sign(x) * xi / self.levels

    def omega(self, d):
        return min(d / self.levels**2, math.sqrt(d) / self.levels)

    def variance_diag(self, x: torch.Tensor) -> torch.Tensor:
        """diag Cov_ξ C(x) = ||x||² r(1 − r)/s², shape of ``x``."""
        norm, _, frac = self._split(x)
        return (norm / self.levels) ** 2 * frac * (1.0 - frac)

    def covariance(self, x):
        return torch.diag_embed(self.variance_diag(x))

    def gaussian(self, x, xi):
        return self.variance_diag(x).sqrt() * xi


@dataclass(frozen=True)
class TopK(AbstractCompressor):
    r"""Top-k: keep the k coordinates of largest magnitude; biased and deterministic.

    Contractive: ||C(x) − x||² ≤ (1 − k/d)||x||². DCSGD with it runs on the discrete side only (no SDE).

    Args:
        k: coordinates kept, 1 ≤ k ≤ d.
    """

    k: int

    def __post_init__(self):
        object.__setattr__(self, "k", _checks.positive_int("k", self.k))

    def check_dim(self, d):
        _check_k(self.k, d, "TopK")

    def __call__(self, x, generator=None):
        self.check_dim(x.shape[-1])
        idx = x.abs().topk(self.k, dim=-1, sorted=False).indices
        return torch.zeros_like(x).scatter_(-1, idx, x.gather(-1, idx))


@dataclass(frozen=True)
class Sign(AbstractCompressor):
    """C(x) = sign(x), with sign(0) = 0; biased.

    DCSGD with it is DSignSGD: the server averages the signs (MATH.md §4)."""

    def __call__(self, x, generator=None):
        return torch.sign(x)


COMPRESSORS: dict[str, type[AbstractCompressor]] = {
    "identity": Identity,
    "randk": RandK,
    "bernoulli": Bernoulli,
    "qsgd": QSGD,
    "topk": TopK,
    "sign": Sign,
}

__all__ = ["AbstractCompressor", "Identity", "RandK", "Bernoulli", "QSGD", "TopK", "Sign", "COMPRESSORS"]
