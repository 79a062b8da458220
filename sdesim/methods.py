r"""Optimizers as data: learning rate, agents, schedule and compressor.

One method object is read by both the discrete runner (:func:`sdesim.run_discrete`) and the SDE builder
(:mod:`sdesim.models`), so the two sides cannot drift apart. Every method is the same primitive chain
(MATH.md §5, [S]):

    gradient -> each agent adds its own noise -> each agent compresses -> the server averages -> step ηη_k

    x_{k+1} = x_k − (η η_k / N) Σ_{i=1}^N C_i(∇f(x_k) + Z_i)

with C = Identity for (D)SGD and C = sign for (D)SignSGD. Each agent draws its own noise and its own compressor
randomness.

Examples:
    >>> from sdesim import methods, compressors
    >>> opt = methods.DCSGD(lr=0.05, n_agents=4, compressor=compressors.RandK(k=1))
    >>> opt.step_size(10)
    0.05
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from . import _checks
from .compressors import AbstractCompressor, Identity, Sign
from .schedules import AbstractSchedule, as_schedule


@dataclass(frozen=True)
class AbstractMethod(abc.ABC):
    """Interface shared by every method.

    Attributes:
        lr: base learning rate η > 0; the SDE time of iteration k is t = kη.
        n_agents: number of agents N ≥ 1.
        schedule: multiplier η_k of the learning rate (``None`` means constant).
    """

    lr: float
    n_agents: int = 1
    schedule: AbstractSchedule | None = None

    #: whether the step is rescaled by a function of the update's norm (see :meth:`normalizer`).
    normalized = False

    def __post_init__(self):
        object.__setattr__(self, "lr", _checks.positive("lr", self.lr))
        object.__setattr__(self, "n_agents", _checks.positive_int("n_agents", self.n_agents))
        object.__setattr__(self, "schedule", as_schedule(self.schedule))

    @property
    @abc.abstractmethod
    def compressors(self) -> tuple[AbstractCompressor, ...]:
        """One compressor shared by all agents (length 1) or one per agent (length N)."""

    @property
    def sign_based(self) -> bool:
        """True when every agent sends signs: the update is then bounded by η η_k per coordinate."""
        return all(isinstance(c, Sign) for c in self.compressors)

    def step_size(self, k: int) -> float:
        """η η_k, the scheduled step at iteration k (normalized methods multiply it by :meth:`normalizer`)."""
        return self.lr * self.schedule(k)

    def normalizer(self, norm: torch.Tensor, d: int) -> torch.Tensor:
        """Factor of the step for an update of Euclidean norm ``norm`` (shape ``(runs, 1)``); 1 unless normalized."""
        return torch.ones_like(norm)

    def check_dim(self, d: int) -> None:
        for c in self.compressors:
            c.check_dim(d)

    def direction(self, grads: torch.Tensor, streams: Sequence) -> torch.Tensor:
        """(1/N) Σ_i C_i(g_i) from per-agent noisy gradients ``grads`` of shape ``(runs, N, d)``.

        ``streams`` holds one random stream per entry of :attr:`compressors`.
        """
        comps = self.compressors
        if len(comps) == 1:
            return comps[0](grads, generator=streams[0]).mean(-2)
        return torch.stack([c(grads[:, i], generator=s) for i, (c, s) in enumerate(zip(comps, streams))],
                           -2).mean(-2)


class _SingleAgent:
    """Mixin check: SGD and SignSGD are the one-agent methods."""

    def _check_single_agent(self) -> None:
        if self.n_agents != 1:
            raise ValueError(f"n_agents must be 1 for {type(self).__name__}, got {self.n_agents}; use "
                             f"D{type(self).__name__} for several agents")


@dataclass(frozen=True)
class SGD(AbstractMethod, _SingleAgent):
    """SGD: x_{k+1} = x_k − ηη_k ∇f_γ(x_k) (MATH.md §5). ``n_agents`` must be 1."""

    def __post_init__(self):
        super().__post_init__()
        self._check_single_agent()

    @property
    def compressors(self):
        return (Identity(),)


@dataclass(frozen=True)
class SignSGD(AbstractMethod, _SingleAgent):
    """SignSGD: x_{k+1} = x_k − ηη_k sign(∇f_γ(x_k)) ([C], MATH.md §5). ``n_agents`` must be 1."""

    def __post_init__(self):
        super().__post_init__()
        self._check_single_agent()

    @property
    def compressors(self):
        return (Sign(),)


@dataclass(frozen=True)
class DSGD(AbstractMethod):
    """Distributed SGD: x_{k+1} = x_k − (ηη_k/N) Σ_i ∇f_{γ_i}(x_k) (MATH.md §5)."""

    @property
    def compressors(self):
        return (Identity(),)


@dataclass(frozen=True)
class DCSGD(AbstractMethod):
    """Distributed compressed SGD: x_{k+1} = x_k − (ηη_k/N) Σ_i C_{ξ_i}(∇f_{γ_i}(x_k)) (MATH.md §5).

    Args:
        lr: base learning rate η.
        n_agents: number of agents N.
        schedule: learning-rate multiplier (default constant).
        compressor: one compressor for all agents, or a sequence of N (agent i uses the i-th, so ω_i may differ).
            The SDE exists for the unbiased compressors with the covariance structure of MATH.md §4 (Identity,
            Bernoulli, Rand-k) and for Sign (then this is DSignSGD).
    """

    compressor: AbstractCompressor | Sequence[AbstractCompressor] | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.compressor is None:
            raise ValueError("compressor must be given for DCSGD, e.g. compressors.RandK(k=1); "
                             "DCSGD with Identity() is DSGD")
        _compressor_field(self)

    @property
    def compressors(self):
        comp = self.compressor
        return (comp,) if isinstance(comp, AbstractCompressor) else comp


@dataclass(frozen=True)
class DSignSGD(AbstractMethod):
    """Distributed SignSGD: x_{k+1} = x_k − (ηη_k/N) Σ_i sign(∇f_{γ_i}(x_k)).

    The server averages the signs; it does not take a majority vote (MATH.md §4–§5, [S])."""

    @property
    def compressors(self):
        return (Sign(),)


def affine_groups(omegas, sigma0, sigma1, n_agents: int, d: int) -> tuple[float, float]:
    r"""(A, Bσ) of MATH.md §7.2: A = ω̄ + d(\overline{σ1²ω} + \overline{σ1²}), Bσ = \overline{σ0²} + \overline{σ0²ω}.

    ``omegas``, ``sigma0``, ``sigma1`` are scalars or per-agent sequences (averages run over the N agents).
    """
    om = np.broadcast_to(np.asarray(omegas, dtype=np.float64), (n_agents,))
    s0 = np.broadcast_to(np.asarray(sigma0, dtype=np.float64), (n_agents,))
    s1 = np.broadcast_to(np.asarray(sigma1, dtype=np.float64), (n_agents,))
    a = om.mean() + d * ((s1**2 * om).mean() + (s1**2).mean())
    b = (s0**2).mean() + (s0**2 * om).mean()
    return float(a), float(b)


def _compressor_field(method) -> None:
    """Validate ``method.compressor`` (one compressor or one per agent); ``None`` means Identity."""
    comp = method.compressor
    if comp is None:
        object.__setattr__(method, "compressor", Identity())
        return
    if isinstance(comp, AbstractCompressor):
        return
    comp = tuple(comp) if isinstance(comp, (list, tuple)) else comp
    if not (isinstance(comp, tuple) and all(isinstance(c, AbstractCompressor) for c in comp)):
        raise ValueError(f"compressor must be a compressor or a sequence of compressors, got {comp!r}")
    if len(comp) != method.n_agents:
        raise ValueError(f"compressor lists {len(comp)} compressors but n_agents={method.n_agents}")
    object.__setattr__(method, "compressor", comp)


@dataclass(frozen=True)
class NormalizedDCSGD(AbstractMethod):
    r"""Plain normalized (compressed) SGD, the v2 baseline (MATH.md §5, §2.4; [R]):

        x_{k+1} = x_k − ηη_k U_k / (||U_k|| + β),   U_k = (1/N) Σ_i C_i(∇f + Z_i).

    The server normalizes by the norm of the aggregate it holds. The SDE uses the same drift and diffusion as DCSGD
    with the step λ = ηη_k/(||∇f(x)|| + β): the random normalization 1/(||U|| + β) is replaced by its value at the
    mean direction (a plug-in approximation, exact as the noise vanishes; it ignores the correlation between the
    normalization and the noise).

    Args:
        lr, n_agents, schedule: as for DCSGD.
        compressor: default Identity (normalized DSGD).
        beta: β ≥ 0 in the denominator.
    """

    compressor: AbstractCompressor | Sequence[AbstractCompressor] | None = None
    beta: float = 0.0
    normalized = True

    def __post_init__(self):
        super().__post_init__()
        _compressor_field(self)
        object.__setattr__(self, "beta", _checks.positive("beta", self.beta, allow_zero=True))

    @property
    def compressors(self):
        comp = self.compressor
        return (comp,) if isinstance(comp, AbstractCompressor) else comp

    def normalizer(self, norm, d):
        den = norm + self.beta
        return torch.where(den > 0, 1.0 / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(den))


@dataclass(frozen=True)
class AdaptiveDCSGD(AbstractMethod):
    r"""DCSGD with the adaptive normalization of v2 Eq. 15 (MATH.md §7.2, [R]):

        step_k = ηη_k · 2ε / ( (L0 + L1||g_k||)(1 + A/N) + L1 d Bσ/N ),

    with A and Bσ from the agents' ω_i and the noise constants σ0, σ1 (:func:`affine_groups`): the largest step of
    the v2 Thm 4.2 condition at the current gradient, so the normalization strengthens with ω, σ1, d and L1 and
    weakens with N. ``g_k`` is the aggregate U_k the server holds; the SDE evaluates the step at ||∇f(x)|| (the same
    plug-in approximation as :class:`NormalizedDCSGD`). ``lr`` is a multiplier (1 uses the threshold itself).

    Args:
        lr, n_agents, schedule, compressor: as for DCSGD (``lr`` defaults to 1).
        smoothness: the (L0, L1) constants of the objective (e.g. ``objective.smoothness``).
        sigma0, sigma1: the affine noise constants the method assumes (scalars or per agent).
        eps: ε in (0, 1).
    """

    lr: float = 1.0
    compressor: AbstractCompressor | Sequence[AbstractCompressor] | None = None
    smoothness: tuple[float, float] = (1.0, 0.0)
    sigma0: float | Sequence[float] = 0.0
    sigma1: float | Sequence[float] = 0.0
    eps: float = 0.5
    normalized = True

    def __post_init__(self):
        super().__post_init__()
        _compressor_field(self)
        l0, l1 = self.smoothness
        object.__setattr__(self, "smoothness", (_checks.positive("L0", l0), _checks.positive("L1", l1,
                                                                                               allow_zero=True)))
        object.__setattr__(self, "eps", _checks.in_interval("eps", self.eps, 0.0, 1.0, lo_open=True, hi_open=True))
        for name in ("sigma0", "sigma1"):
            arr = _checks.real_array(name, getattr(self, name), min_value=0.0, max_ndim=1)
            if arr.ndim == 1 and arr.shape[0] != self.n_agents:
                raise ValueError(f"{name} lists {arr.shape[0]} agents but n_agents={self.n_agents}")
            object.__setattr__(self, name, float(arr) if arr.ndim == 0 else tuple(arr.tolist()))

    @property
    def compressors(self):
        comp = self.compressor
        return (comp,) if isinstance(comp, AbstractCompressor) else comp

    def normalizer(self, norm, d):
        l0, l1 = self.smoothness
        n = self.n_agents
        omegas = [c.omega(d) for c in self.compressors]
        a, b = affine_groups(omegas, self.sigma0, self.sigma1, n, d)
        return 2.0 * self.eps / ((l0 + l1 * norm) * (1.0 + a / n) + l1 * d * b / n)


METHODS: dict[str, type[AbstractMethod]] = {
    "sgd": SGD,
    "signsgd": SignSGD,
    "dsgd": DSGD,
    "dcsgd": DCSGD,
    "dsignsgd": DSignSGD,
    "normalizeddcsgd": NormalizedDCSGD,
    "adaptivedcsgd": AdaptiveDCSGD,
}

__all__ = ["AbstractMethod", "SGD", "SignSGD", "DSGD", "DCSGD", "DSignSGD", "NormalizedDCSGD", "AdaptiveDCSGD",
           "affine_groups", "METHODS"]
