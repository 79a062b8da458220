"""Objectives: loss, gradient and Hessian-vector products for a batch of points.

Every objective acts on ``x`` of shape ``(..., d)``: ``loss(x)`` has shape ``(...)``, ``grad(x)`` and ``hvp(x, v)``
have shape ``(..., d)``. The analytic objectives here document their (L0, L1)-smoothness constants (MATH.md §2.4,
[D]): ``||∇²f(x)||₂ ≤ L0 + L1 ||∇f(x)||₂`` for all x. Only :class:`Quadratic` is also L-smooth; the others are the
(L0, L1) examples on which normalization matters.

Examples:
    >>> import torch
    >>> from sdesim import objectives
    >>> f = objectives.Quadratic(h=[1.0, 4.0])
    >>> f.loss(torch.tensor([[1.0, 1.0]], dtype=torch.float64))
    tensor([2.5000], dtype=torch.float64)
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np
import torch

from . import _checks
from ._config import TensorCache


class AbstractObjective(abc.ABC):
    """Interface of an objective f: R^d -> R, evaluated on a batch of points.

    Attributes:
        dim: the dimension d the objective requires, or ``None`` when it accepts any d.
        L0, L1: constants with ``||∇²f(x)|| ≤ L0 + L1 ||∇f(x)||`` (MATH.md §2.4).
        f_star: the minimum value.
    """

    dim: int | None = None
    f_star: float = 0.0

    @property
    @abc.abstractmethod
    def smoothness(self) -> tuple[float, float]:
        """The (L0, L1) constants."""

    @abc.abstractmethod
    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """f(x), shape ``x.shape[:-1]``."""

    @abc.abstractmethod
    def grad(self, x: torch.Tensor) -> torch.Tensor:
        """∇f(x), shape ``x.shape``."""

    @abc.abstractmethod
    def hvp(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """∇²f(x) v, shape ``x.shape``."""

    def minimizer(self, d: int) -> np.ndarray:
        """A point where f attains ``f_star`` (the origin for every objective in this module)."""
        return np.zeros(self.check_dim(d))

    def check_dim(self, d: int) -> int:
        """Raise ``ValueError`` (naming ``x0``) unless the objective accepts dimension ``d``."""
        if self.dim is not None and d != self.dim:
            raise ValueError(f"x0 must have last dimension {self.dim} for {type(self).__name__}, got {d}")
        return d


@dataclass(frozen=True, eq=False)
class Quadratic(AbstractObjective):
    r"""Separable quadratic f(x) = ½ Σ_j h_j x_j².

    (L0, L1) = (max_j |h_j|, 0): L-smooth (MATH.md §2.4, [D]). Minimum 0 at x = 0 when every h_j > 0; the closed
    forms of MATH.md §7.6–§7.7 hold for this objective.

    Args:
        h: curvatures, shape ``(d,)`` (a list, array or tensor); a scalar with ``dim`` gives an isotropic quadratic.
        dim: dimension when ``h`` is a scalar.
    """

    h: np.ndarray
    dim: int | None = None
    _h: TensorCache = field(init=False, repr=False)

    def __post_init__(self):
        h = _checks.real_array("h", self.h, max_ndim=1)
        if h.ndim == 0:
            if self.dim is None:
                raise ValueError("h is a scalar, so dim must be given (e.g. Quadratic(h=1.0, dim=10))")
            h = np.full(_checks.positive_int("dim", self.dim), float(h))
            h.setflags(write=False)
        elif self.dim is not None and self.dim != h.shape[0]:
            raise ValueError(f"dim={self.dim} does not match len(h)={h.shape[0]}")
        object.__setattr__(self, "h", h)
        object.__setattr__(self, "dim", int(h.shape[0]))
        object.__setattr__(self, "_h", TensorCache(h))

    @property
    def smoothness(self) -> tuple[float, float]:
        return float(np.max(np.abs(self.h))), 0.0

    @property
    def f_star(self) -> float:  # type: ignore[override]
        return 0.0 if np.all(self.h >= 0) else -np.inf

    def _ht(self, x: torch.Tensor) -> torch.Tensor:
        return self._h.get(x.dtype, x.device)

    def loss(self, x):
        return 0.5 * (self._ht(x) * x * x).sum(-1)

    def grad(self, x):
        return self._ht(x) * x

    def hvp(self, x, v):
        return self._ht(x) * v


@dataclass(frozen=True)
class Quartic(AbstractObjective):
    r"""f(x) = Σ_j x_j⁴ / 4, any dimension.

    ∇²f = diag(3x²) and |∇_j f| = |x_j|³; since 3u² ≤ 4 + u³ for u ≥ 0 ((u−2)²(u+1) ≥ 0), f is (4, 1)-smooth and not
    L-smooth (MATH.md §2.4, [D] ✓num). Minimum 0 at x = 0. Gradient descent on it is stable only while
    η x² < 2 (MATH.md §7.1).
    """

    @property
    def smoothness(self) -> tuple[float, float]:
        return 4.0, 1.0

    def loss(self, x):
        return 0.25 * (x * x).square().sum(-1)

    def grad(self, x):
        return x * x * x

    def hvp(self, x, v):
        return 3.0 * x * x * v


@dataclass(frozen=True)
class _Sharp(AbstractObjective):
    """Base of the separable exponential-type objectives: a sharpness a > 0 and (L0, L1) = (1, a)."""

    a: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "a", _checks.positive("a", self.a))

    @property
    def smoothness(self) -> tuple[float, float]:
        return 1.0, self.a


@dataclass(frozen=True)
class CoshSum(_Sharp):
    r"""f(x) = Σ_j (cosh(a x_j) − 1) / a², any dimension.

    ∇f = sinh(a x)/a and ∇²f = diag(cosh(a x)); cosh(u) ≤ 1 + |sinh(u)| gives ||∇²f|| ≤ 1 + a ||∇f||, so f is
    (1, a)-smooth and not L-smooth ([D], MATH.md §2.4 style). Minimum 0 at x = 0.

    Args:
        a: sharpness; the curvature at the minimum is 1 and grows like e^{a|x|}.
    """

    def loss(self, x):
        return ((torch.cosh(self.a * x) - 1.0) / self.a**2).sum(-1)

    def grad(self, x):
        return torch.sinh(self.a * x) / self.a

    def hvp(self, x, v):
        return torch.cosh(self.a * x) * v


@dataclass(frozen=True)
class ExpSum(_Sharp):
    r"""f(x) = Σ_j (e^{a x_j} − a x_j − 1) / a², any dimension; asymmetric around its minimum.

    ∇f = (e^{a x} − 1)/a and ∇²f = diag(e^{a x}) = I + a diag(∇f), so ||∇²f|| ≤ 1 + a ||∇f||: (1, a)-smooth, not
    L-smooth (the example e^x of MATH.md §2.4 made to have a minimum, [D]). Minimum 0 at x = 0.

    Args:
        a: sharpness of the exponential wall (on the side x > 0).
    """

    def loss(self, x):
        ax = self.a * x
        return (torch.expm1(ax) - ax).sum(-1) / self.a**2

    def grad(self, x):
        return torch.expm1(self.a * x) / self.a

    def hvp(self, x, v):
        return torch.exp(self.a * x) * v


OBJECTIVES: dict[str, type[AbstractObjective]] = {
    "quadratic": Quadratic,
    "quartic": Quartic,
    "coshsum": CoshSum,
    "expsum": ExpSum,
}

__all__ = ["AbstractObjective", "Quadratic", "Quartic", "CoshSum", "ExpSum", "OBJECTIVES"]
