"""Learning-rate schedules: iteration k -> multiplier η_k.

The step actually taken at iteration k is ``lr * η_k`` (MATH.md §1, [S]). On the SDE side the schedule enters both the
drift and the noise amplitude through η_t := η_{⌊t/lr⌋} (the Orvieto–Lucchi convention of MATH.md §2.1, [D]).

Every schedule accepts an ``int`` (returns a ``float``) or a numpy integer array (returns an array).

Examples:
    >>> from sdesim import schedules
    >>> schedules.InvSqrt()(3)
    0.5
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass

import numpy as np

from . import _checks


class AbstractSchedule(abc.ABC):
    """Interface: ``schedule(k)`` is the multiplier η_k ≥ 0 of the base learning rate at iteration k ≥ 0."""

    #: True when η_k ≡ 1; lets the integrators skip per-step work.
    constant: bool = False

    @abc.abstractmethod
    def __call__(self, k):
        """η_k for an integer or an integer array k."""


def _as_k(k):
    return np.asarray(k, dtype=np.float64) if not isinstance(k, (int, np.integer)) else float(k)


def _out(value, k):
    return float(value) if isinstance(k, (int, np.integer)) else value


@dataclass(frozen=True)
class Constant(AbstractSchedule):
    """η_k = 1."""

    constant = True

    def __call__(self, k):
        return 1.0 if isinstance(k, (int, np.integer)) else np.ones_like(np.asarray(k, dtype=np.float64))


@dataclass(frozen=True)
class InvSqrt(AbstractSchedule):
    """η_k = 1/√(k+1), the decaying schedule of MATH.md §5 and §7.3 ([S])."""

    def __call__(self, k):
        return _out(1.0 / np.sqrt(_as_k(k) + 1.0), k)


@dataclass(frozen=True)
class Warmup(AbstractSchedule):
    """Linear warm-up: η_k = min(1, (k+1)/steps), then constant.

    Args:
        steps: length of the warm-up, in iterations.
    """

    steps: int

    def __post_init__(self):
        object.__setattr__(self, "steps", _checks.positive_int("steps", self.steps))

    def __call__(self, k):
        return _out(np.minimum(1.0, (_as_k(k) + 1.0) / self.steps), k)


@dataclass(frozen=True)
class Cosine(AbstractSchedule):
    """Cosine decay over ``total`` iterations: η_k = final + (1 − final)·½(1 + cos(π min(k, total)/total)).

    Args:
        total: iterations until the floor is reached.
        final: the floor η_k for k ≥ total.
    """

    total: int
    final: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "total", _checks.positive_int("total", self.total))
        object.__setattr__(self, "final", _checks.in_interval("final", self.final, 0.0, 1.0,
                                                              lo_open=False, hi_open=False))

    def __call__(self, k):
        frac = np.minimum(_as_k(k), self.total) / self.total
        return _out(self.final + (1.0 - self.final) * 0.5 * (1.0 + np.cos(math.pi * frac)), k)


SCHEDULES: dict[str, type[AbstractSchedule]] = {
    "constant": Constant,
    "invsqrt": InvSqrt,
    "warmup": Warmup,
    "cosine": Cosine,
}


def as_schedule(schedule) -> AbstractSchedule:
    """``None`` -> :class:`Constant`; a name -> the registered schedule; an instance passes through."""
    if schedule is None:
        return Constant()
    if isinstance(schedule, AbstractSchedule):
        return schedule
    if isinstance(schedule, str):
        return _checks.lookup(SCHEDULES, schedule, "schedule")()
    raise ValueError(f"schedule must be None, a name or an AbstractSchedule, got {schedule!r}")


__all__ = ["AbstractSchedule", "Constant", "InvSqrt", "Warmup", "Cosine", "SCHEDULES", "as_schedule"]
