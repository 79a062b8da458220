r"""Gradient-noise models: the law of one agent's noise Z_i in ∇f_{γ_i}(x) = ∇f(x) + Z_i(x) (MATH.md §1, §3).

Each model gives what both sides need:

- the discrete side: :meth:`AbstractNoise.sample`, independent draws for every run and agent;
- the Brownian SDE side: :meth:`AbstractNoise.variance_terms`, the diagonal covariance
  Σ_i(x) = diag(v0_i + v1_i ||∇f(x)||²);
- the sign methods: :meth:`AbstractNoise.sign_mean`, E sign(∇f + Z_i) coordinate-wise;
- the Lévy SDE (:class:`Stable` only): :meth:`Stable.levy_scale`.

Scales (``sigma``, ``sigma0``, ``sigma1``) may be a scalar, a per-coordinate vector of shape ``(d,)``, or an
``(n_agents, d)`` array (``(n_agents, 1)`` for per-agent scalars) for heterogeneous agents. Coordinates are
independent in every model (MATH.md §3.2: use independent coordinates).

Examples:
    >>> from sdesim import noise
    >>> z = noise.StudentT(nu=3.0, sigma=0.5)
    >>> z.finite_variance
    True
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass

import numpy as np
import torch

from . import _checks, _tables
from ._checks import NoSDEError
from ._rng import Stream


def agent_array(name: str, arr: np.ndarray, n_agents: int, d: int) -> np.ndarray:
    """Broadcast a scale to shape ``(1 or n_agents, 1 or d)``; ``ValueError`` naming ``name`` if it cannot be."""
    if arr.ndim == 0:
        return arr.reshape(1, 1)
    if arr.ndim == 1:
        if arr.shape[0] not in (1, d):
            raise ValueError(f"{name} has {arr.shape[0]} entries but the problem has d={d} coordinates "
                             f"(a 1-D {name} is per coordinate; use shape (n_agents, 1) for per-agent scalars)")
        return arr.reshape(1, -1)
    if arr.shape[0] not in (1, n_agents) or arr.shape[1] not in (1, d):
        raise ValueError(f"{name} has shape {arr.shape}; with n_agents={n_agents} and d={d} it must broadcast to "
                         f"({n_agents}, {d})")
    return arr


class AbstractNoise(abc.ABC):
    """Interface of a gradient-noise model (one agent's law; agents draw independently)."""

    #: whether Z has a finite variance (otherwise the D(C)SGD iterates have no Brownian SDE).
    finite_variance: bool = True

    def __post_init__(self):
        object.__setattr__(self, "_cache", {})

    def _scale(self, name: str, n_agents: int, d: int, dtype, device) -> torch.Tensor:
        key = (name, n_agents, d, dtype, device)
        cache = self._cache  # type: ignore[attr-defined]
        if key not in cache:
            arr = agent_array(name, getattr(self, name), n_agents, d)
            cache[key] = torch.tensor(arr, dtype=dtype, device=device)
        return cache[key]

    def check(self, n_agents: int, d: int) -> None:
        """Raise ``ValueError`` unless the scales broadcast to ``(n_agents, d)``."""
        for name in self._scale_names:  # type: ignore[attr-defined]
            agent_array(name, getattr(self, name), n_agents, d)

    def homogeneous(self) -> bool:
        """True when every agent has the same law (no scale has an agent axis > 1)."""
        return all(np.ndim(getattr(self, n)) < 2 or np.shape(getattr(self, n))[0] == 1
                   for n in self._scale_names)  # type: ignore[attr-defined]

    @abc.abstractmethod
    def sample(self, grad: torch.Tensor, n_agents: int, stream: Stream, *, x=None, objective=None) -> torch.Tensor:
        """Draws of Z_i at the current point.

        Args:
            grad: full gradients ∇f(x), shape ``(runs, d)``.
            n_agents: number of agents N.
            stream: random stream (see :mod:`sdesim._rng`).
            x, objective: the current points ``(runs, d)`` and the objective, for noise that depends on them
                (:class:`Minibatch`); the injected-noise models ignore them.

        Returns:
            Tensor of shape ``(runs, n_agents, d)``.
        """

    @abc.abstractmethod
    def variance_terms(self, n_agents: int, d: int) -> tuple[np.ndarray, np.ndarray]:
        """(v0, v1), arrays broadcastable to ``(n_agents, d)``, with Var Z_{i,j}(x) = v0_{ij} + v1_{ij} ||∇f(x)||².

        Raises:
            NoSDEError: the variance is infinite.
        """

    @abc.abstractmethod
    def sign_mean(self, grad: torch.Tensor, n_agents: int, *, x=None, objective=None) -> torch.Tensor:
        """E sign(∇f + Z_i), coordinate-wise, shape ``(runs, 1 or n_agents, d)``."""


def _sign_where(scale: torch.Tensor, grad: torch.Tensor, fn) -> torch.Tensor:
    """fn(grad/scale) where scale > 0, sign(grad) where the noise vanishes."""
    g = grad.unsqueeze(-2)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    return torch.where(scale > 0, fn(g / safe), torch.sign(g))


_SQRT_HALF = math.sqrt(0.5)


@dataclass(frozen=True, eq=False)
class Gaussian(AbstractNoise):
    r"""Z_i ~ N(0, diag(σ_i²)) (MATH.md §3.1, [R]).

    Sign expectation: E sign(g + Z) = erf(g / (√2 σ)) ([C] Cor. 3.3, MATH.md §6.3, [R+D ✓num]).

    Args:
        sigma: standard deviation per coordinate; scalar, ``(d,)`` or ``(n_agents, d)``; ≥ 0.
    """

    sigma: np.ndarray = 1.0  # type: ignore[assignment]
    _scale_names = ("sigma",)

    def __post_init__(self):
        object.__setattr__(self, "sigma", _checks.real_array("sigma", self.sigma, min_value=0.0))
        super().__post_init__()

    def sample(self, grad, n_agents, stream, *, x=None, objective=None):
        r, d = grad.shape
        s = self._scale("sigma", n_agents, d, grad.dtype, grad.device)
        return s * stream.normal((r, n_agents, d), grad.dtype).to(grad.device)

    def variance_terms(self, n_agents, d):
        return self.sigma**2, np.zeros(())

    def sign_mean(self, grad, n_agents, *, x=None, objective=None):
        s = self._scale("sigma", n_agents, grad.shape[-1], grad.dtype, grad.device)
        return _sign_where(s, grad, lambda z: torch.erf(_SQRT_HALF * z))


@dataclass(frozen=True, eq=False)
class Affine(AbstractNoise):
    r"""Affine-variance Gaussian noise: Z_{i,j} ~ N(0, σ0_{ij}² + σ1_{ij}² ||∇f(x)||²) (MATH.md §3.3, [S]).

    ``Affine(0, σ)`` is the pure multiplicative noise N(0, σ²||g||² I) of the normalization experiment
    (MATH.md §8.1 E1).

    Args:
        sigma0: additive standard deviation; scalar, ``(d,)`` or ``(n_agents, d)``; ≥ 0.
        sigma1: multiplicative factor on ||∇f||; same shapes; ≥ 0.
    """

    sigma0: np.ndarray = 0.0  # type: ignore[assignment]
    sigma1: np.ndarray = 0.0  # type: ignore[assignment]
    _scale_names = ("sigma0", "sigma1")

    def __post_init__(self):
        object.__setattr__(self, "sigma0", _checks.real_array("sigma0", self.sigma0, min_value=0.0))
        object.__setattr__(self, "sigma1", _checks.real_array("sigma1", self.sigma1, min_value=0.0))
        super().__post_init__()

    def std(self, grad: torch.Tensor, n_agents: int) -> torch.Tensor:
        """Standard deviation per run, agent and coordinate, shape ``(runs, 1 or n_agents, 1 or d)``."""
        d = grad.shape[-1]
        s0 = self._scale("sigma0", n_agents, d, grad.dtype, grad.device)
        s1 = self._scale("sigma1", n_agents, d, grad.dtype, grad.device)
        g2 = (grad * grad).sum(-1)[:, None, None]
        return torch.sqrt(s0 * s0 + s1 * s1 * g2)

    def sample(self, grad, n_agents, stream, *, x=None, objective=None):
        r, d = grad.shape
        return self.std(grad, n_agents) * stream.normal((r, n_agents, d), grad.dtype).to(grad.device)

    def variance_terms(self, n_agents, d):
        return self.sigma0**2, self.sigma1**2

    def sign_mean(self, grad, n_agents, *, x=None, objective=None):
        return _sign_where(self.std(grad, n_agents), grad, lambda z: torch.erf(_SQRT_HALF * z))


def _student_sign(nu: float):
    if nu == 1.0:
        return lambda z: (2.0 / math.pi) * torch.atan(z)
    if nu == 2.0:
        return lambda z: z / torch.sqrt(2.0 + z * z)
    table = _tables.student_t_table(nu)
    return table.sign_mean


@dataclass(frozen=True, eq=False)
class StudentT(AbstractNoise):
    r"""Z_{i,j} = σ_{ij} T_{ij}, T i.i.d. standard Student-t with ν degrees of freedom (MATH.md §3.2).

    Variance σ²ν/(ν−2) for ν > 2, infinite for ν ≤ 2 (ν = 1 is Cauchy, without a mean). Sign expectation
    E sign(g + Z) = 2Ξ_ν(g/σ) = 2F_ν(g/σ) − 1 ([C], MATH.md §6.3, [R+D ✓num]); F_ν is exact for ν ∈ {1, 2} and
    tabulated from scipy otherwise (:mod:`sdesim._tables`).

    Args:
        nu: degrees of freedom, > 0.
        sigma: scale; scalar, ``(d,)`` or ``(n_agents, d)``; ≥ 0.
    """

    nu: float = 3.0
    sigma: np.ndarray = 1.0  # type: ignore[assignment]
    _scale_names = ("sigma",)

    def __post_init__(self):
        object.__setattr__(self, "nu", _checks.positive("nu", self.nu))
        object.__setattr__(self, "sigma", _checks.real_array("sigma", self.sigma, min_value=0.0))
        super().__post_init__()

    @property
    def finite_variance(self) -> bool:  # type: ignore[override]
        return self.nu > 2.0

    def sample(self, grad, n_agents, stream, *, x=None, objective=None):
        r, d = grad.shape
        s = self._scale("sigma", n_agents, d, grad.dtype, grad.device)
        return s * stream.student_t(self.nu, (r, n_agents, d), grad.dtype).to(grad.device)

    def variance_terms(self, n_agents, d):
        if self.nu <= 2.0:
            raise NoSDEError(
                f"StudentT(nu={self.nu:g}) has infinite variance, so D(C)SGD under it has no Brownian SDE (MATH.md "
                "§6.6). Use DSignSGD (its drift stays bounded), StudentT with nu > 2, or Stable noise, whose "
                "D(C)SGD limit is the Lévy-driven SDE.")
        return self.sigma**2 * (self.nu / (self.nu - 2.0)), np.zeros(())

    def sign_mean(self, grad, n_agents, *, x=None, objective=None):
        s = self._scale("sigma", n_agents, grad.shape[-1], grad.dtype, grad.device)
        return _sign_where(s, grad, _student_sign(self.nu))


@dataclass(frozen=True, eq=False)
class Stable(AbstractNoise):
    r"""Symmetric alpha-stable noise Z_{i,j} = (σ_{ij}/√2) S_{ij}, with E exp(iuS) = exp(−|u|^α).

    Convention (MATH.md §6.6 asks for one): σ is the standard deviation of the Gaussian reached at α = 2, so
    ``Stable(2, σ)`` has the law of ``Gaussian(σ)`` and the family is continuous in α. Equivalently Z has the law
    ``scipy.stats.levy_stable(alpha, 0, scale=sigma/sqrt(2))``. For α < 2 the variance is infinite; α = 1 is Cauchy
    with scale σ/√2.

    Samples use the Chambers–Mallows–Stuck transform (:meth:`sdesim._rng.Stream.stable`). Sign expectation:
    2F_α(√2 g/σ) − 1 with F_α tabulated from scipy (exact at α = 1 and 2).

    Args:
        alpha: stability index in (0, 2].
        sigma: scale; scalar, ``(d,)`` or ``(n_agents, d)``; ≥ 0.
    """

    alpha: float = 1.5
    sigma: np.ndarray = 1.0  # type: ignore[assignment]
    _scale_names = ("sigma",)

    def __post_init__(self):
        object.__setattr__(self, "alpha", _checks.in_interval("alpha", self.alpha, 0.0, 2.0,
                                                              lo_open=True, hi_open=False))
        object.__setattr__(self, "sigma", _checks.real_array("sigma", self.sigma, min_value=0.0))
        super().__post_init__()

    @property
    def finite_variance(self) -> bool:  # type: ignore[override]
        return self.alpha == 2.0

    def _c(self, n_agents, d, dtype, device):
        return self._scale("sigma", n_agents, d, dtype, device) * _SQRT_HALF

    def sample(self, grad, n_agents, stream, *, x=None, objective=None):
        r, d = grad.shape
        c = self._c(n_agents, d, grad.dtype, grad.device)
        return c * stream.stable(self.alpha, (r, n_agents, d), grad.dtype).to(grad.device)

    def variance_terms(self, n_agents, d):
        if self.alpha < 2.0:
            raise NoSDEError(
                f"Stable(alpha={self.alpha:g}) has infinite variance, so no Brownian SDE exists. For DSGD "
                "(DCSGD with Identity compression) sdesim integrates the Lévy-driven SDE of MATH.md §6.6; "
                "compressed DCSGD has no SDE here (its compressor covariance needs E||g||² < ∞); DSignSGD "
                "keeps a Brownian SDE.")
        return self.sigma**2, np.zeros(())

    def levy_scale(self, n_agents: int, d: int) -> np.ndarray:
        r"""Scale of the agent average (1/N) Σ_i c_i S_i in units of a standard S, per coordinate.

        A sum of independent SαS variables c_i S_i is (Σ_i c_i^α)^{1/α} S, so the average has scale
        (1/N)(Σ_i c_i^α)^{1/α}; with equal c this is c N^{1/α − 1} (MATH.md §6.6, [D]). Shape ``(1 or d,)``.
        """
        c = agent_array("sigma", self.sigma, n_agents, d) * _SQRT_HALF
        c = np.broadcast_to(c, (n_agents, c.shape[1]))
        return (c**self.alpha).sum(0) ** (1.0 / self.alpha) / n_agents

    def sign_mean(self, grad, n_agents, *, x=None, objective=None):
        c = self._c(n_agents, grad.shape[-1], grad.dtype, grad.device)
        if self.alpha == 2.0:
            fn = lambda z: torch.erf(z)  # noqa: E731  (S ~ N(0, 2): F(z) = Φ(z/√2))
        elif self.alpha == 1.0:
            fn = lambda z: (2.0 / math.pi) * torch.atan(z)  # noqa: E731
        else:
            fn = _tables.stable_table(self.alpha).sign_mean
        return _sign_where(c, grad, fn)


@dataclass(frozen=True, eq=False)
class Minibatch(AbstractNoise):
    r"""Real minibatch noise on a :class:`~sdesim.objectives.Network`: agent i's gradient is the mean gradient over
    its own ``batch_size`` examples drawn without replacement (or with, ``replace=True``) at every step.

    With per-example gradients g_j and ḡ = ∇f, the minibatch mean has covariance c_B Σ₁,
    Σ₁ = (1/n) Σ_j (g_j − ḡ)(g_j − ḡ)ᵀ, c_B = (n − B)/(B(n − 1)) without replacement and 1/B with [D]. The SDE of
    D(C)SGD uses the exact low-rank factor: the increment a Σ_j (ζ_j − ζ̄) g_j with ζ ~ N(0, I_n) and
    a = √(c_B/(N n)) has covariance c_B Σ₁/N, and is computed as one weighted gradient (no n × d matrix). DSignSGD
    uses the per-coordinate mean ḡ and spread c_B diag Σ₁ with a Gaussian (central-limit) law of the minibatch
    coordinate: E sign ≈ erf(ḡ/√(2 c_B diag Σ₁)) (MATH.md §6.3 with Σ = c_B diag Σ₁; an approximation for small B).

    Args:
        batch_size: examples per agent and step, B ≥ 1.
        replace: draw with replacement.
    """

    batch_size: int = 32
    replace: bool = False
    _scale_names = ()

    def __post_init__(self):
        object.__setattr__(self, "batch_size", _checks.positive_int("batch_size", self.batch_size))
        super().__post_init__()

    def check_objective(self, objective) -> None:
        """``ValueError`` unless ``objective`` has training examples to draw (a Network with n ≥ batch_size)."""
        if not hasattr(objective, "minibatch_grad"):
            raise ValueError(f"Minibatch noise needs an objective with training examples (objectives.Network), got "
                             f"{type(objective).__name__}; use injected noise (Gaussian, ...) for analytic ones")
        if not self.replace and self.batch_size > objective.n:
            raise ValueError(f"batch_size={self.batch_size} exceeds the {objective.n} training examples")

    def covariance_factor(self, n: int) -> float:
        """c_B, the factor of Σ₁ in the covariance of one minibatch mean."""
        b = self.batch_size
        return 1.0 / b if self.replace else (n - b) / (b * (n - 1)) if n > 1 else 0.0

    def indices(self, runs: int, n: int, stream: Stream, device) -> torch.Tensor:
        """Example indices ``(runs, batch_size)``: uniform, without replacement unless ``replace``."""
        u = stream.uniform((runs, n), torch.float64).to(device)
        if self.replace:
            return (u[:, : self.batch_size] * n).long().clamp_max(n - 1)
        return u.topk(self.batch_size, dim=-1, sorted=False).indices

    def sample(self, grad, n_agents, stream, *, x=None, objective=None):
        if x is None or objective is None:
            raise ValueError("Minibatch noise draws examples: it needs the points x and the objective")
        r, d = grad.shape
        idx = self.indices(r * n_agents, objective.n, stream, grad.device)
        mg = objective.minibatch_grad(x.repeat_interleave(n_agents, 0), idx).reshape(r, n_agents, d)
        return mg - grad.unsqueeze(-2)

    def variance_terms(self, n_agents, d):
        raise NoSDEError("Minibatch noise has a full, state-dependent covariance: its SDE is built from per-example "
                         "gradients (sdesim.models.MinibatchSDE), not from per-coordinate variances")

    def sign_mean(self, grad, n_agents, *, x=None, objective=None):
        if x is None or objective is None:
            raise ValueError("Minibatch sign expectations need the points x and the objective")
        mean, sq = objective.grad_moments(x)
        var = self.covariance_factor(objective.n) * (sq - mean * mean).clamp_min(0.0)
        return _sign_where(var.sqrt().unsqueeze(-2), grad, lambda z: torch.erf(_SQRT_HALF * z))


def tail_index(samples) -> float:
    r"""Tail index α̂ of symmetric α-stable-like samples by the block-sum estimator of Mohammadi et al. (2015), as used
    by Şimşekli et al. (ICML 2019) on gradient noise.

    With K = K1·K2 samples X (K1 = K2 = ⌊√K⌋) and block sums Y_i = Σ_{j≤K1} X_{(i−1)K1+j},

        1/α̂ = (1/log K1) [ (1/K2) Σ_i log|Y_i| − (1/K) Σ_i log|X_i| ],

    consistent for SαS laws (Y_i has the law of K1^{1/α} X): α̂ ≈ 2 for Gaussian noise, < 2 for heavy tails. Zeros
    are dropped. Returns α̂ (it may exceed 2 by estimation noise).
    """
    x = np.asarray(samples.detach().cpu().numpy() if hasattr(samples, "detach") else samples, dtype=np.float64).ravel()
    x = x[x != 0]
    k1 = int(math.floor(math.sqrt(x.size)))
    if k1 < 2:
        raise ValueError(f"tail_index needs at least 4 non-zero samples, got {x.size}")
    blocks = x[: k1 * k1].reshape(k1, k1)
    inv = (np.log(np.abs(blocks.sum(1))).mean() - np.log(np.abs(blocks)).mean()) / math.log(k1)
    return float(1.0 / inv)


def gradient_noise(objective, x, *, batch_size: int, draws: int, seed: int) -> torch.Tensor:
    """``draws`` samples of minibatch gradient minus full gradient at the point ``x`` (shape ``(draws, d)``), the
    input of :func:`tail_index` on a network."""
    noise = Minibatch(batch_size)
    noise.check_objective(objective)
    from ._rng import streams

    x = torch.as_tensor(x).reshape(1, -1)
    g = objective.grad(x)
    stream = streams(seed, ["gradient_noise"], x.device)["gradient_noise"]
    xs = x.expand(draws, -1)
    return noise.sample(g.expand(draws, -1), 1, stream, x=xs, objective=objective)[:, 0]


NOISES: dict[str, type[AbstractNoise]] = {
    "gaussian": Gaussian,
    "affine": Affine,
    "studentt": StudentT,
    "stable": Stable,
    "minibatch": Minibatch,
}

__all__ = ["AbstractNoise", "Gaussian", "Affine", "StudentT", "Stable", "Minibatch", "tail_index", "gradient_noise",
           "NOISES", "NoSDEError"]
