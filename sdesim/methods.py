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
        """η η_k, the step taken at iteration k."""
        return self.lr * self.schedule(k)

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
        comp = self.compressor
        if comp is None:
            raise ValueError("compressor must be given for DCSGD, e.g. compressors.RandK(k=1); "
                             "DCSGD with Identity() is DSGD")
        if isinstance(comp, AbstractCompressor):
            return
        comp = tuple(comp) if isinstance(comp, (list, tuple)) else comp
        if not (isinstance(comp, tuple) and all(isinstance(c, AbstractCompressor) for c in comp)):
            raise ValueError(f"compressor must be a compressor or a sequence of compressors, got {comp!r}")
        if len(comp) != self.n_agents:
            raise ValueError(f"compressor lists {len(comp)} compressors but n_agents={self.n_agents}")
        object.__setattr__(self, "compressor", comp)

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


METHODS: dict[str, type[AbstractMethod]] = {
    "sgd": SGD,
    "signsgd": SignSGD,
    "dsgd": DSGD,
    "dcsgd": DCSGD,
    "dsignsgd": DSignSGD,
}

__all__ = ["AbstractMethod", "SGD", "SignSGD", "DSGD", "DCSGD", "DSignSGD", "METHODS"]
