r"""Fixed-grid increment sources that drive torchsde's solvers.

torchsde's own Brownian motions refine a tree of intervals on demand; that is slow, can drift from T/dt steps and
offers no Lévy noise (DESIGN.md). sdesim instead draws the increment of grid step k, [t0 + k dt, t0 + (k+1) dt],
afresh from a seeded stream, in order, so that SDE step k lines up exactly with optimizer iteration k:

- :class:`GaussianIncrements`: ΔW ~ N(0, dt I), with the space-time Lévy area U = ∫ (W_s − W_{t_k}) ds that
  torchsde's ``srk`` needs (U = dt (ΔW/2 + H), H ~ N(0, dt/12 I) independent of ΔW);
- :class:`StableIncrements`: ΔL = dt^{1/α} S with S standard symmetric α-stable, E exp(iuS) = exp(−|u|^α), the
  increments of the Lévy motion of MATH.md §6.6 ([D]). Only Euler is sound with them (no Lévy area, no adaptive
  steps), and :func:`sdesim.solve` refuses other solvers.

The draws depend only on the seed, the step index, the shape, the dtype and the device, never on how the results are
recorded.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass

import torch
import torchsde

from . import _checks, _rng
from ._rng import Stream


class AbstractIncrements(abc.ABC):
    """A law of driving-noise increments on a fixed grid."""

    #: stability index of the driving process (2 for Brownian motion).
    alpha: float = 2.0
    #: torchsde Lévy-area capability of the Brownian objects built from it.
    levy_area_approximation: str = "none"

    @abc.abstractmethod
    def draw(self, shape: tuple[int, ...], dt: float, dtype, main: Stream, extra: Stream, want_u: bool = False):
        """The next increment over a step of size dt, and its space-time Lévy area U when ``want_u`` (else None)."""

@dataclass(frozen=True)
class GaussianIncrements(AbstractIncrements):
    """Brownian increments ΔW ~ N(0, dt I), with space-time Lévy area for ``srk``."""

    alpha = 2.0
    levy_area_approximation = "space-time"

    def draw(self, shape, dt, dtype, main, extra, want_u=False):
        w = main.normal(shape, dtype)
        if dt != 1.0:
            w = w * math.sqrt(dt)
        if not want_u:
            return w, None
        h = extra.normal(shape, dtype) * math.sqrt(dt / 12.0)
        return w, dt * (0.5 * w + h)


@dataclass(frozen=True)
class StableIncrements(AbstractIncrements):
    """Increments dt^{1/α} S of a standard symmetric α-stable Lévy motion (MATH.md §6.6, [D]).

    Args:
        alpha: stability index in (0, 2]; α = 2 gives N(0, 2 dt) increments (scale convention of S).
    """

    alpha: float = 1.5
    levy_area_approximation = "none"

    def __post_init__(self):
        object.__setattr__(self, "alpha", _checks.in_interval("alpha", self.alpha, 0.0, 2.0,
                                                              lo_open=True, hi_open=False))

    def draw(self, shape, dt, dtype, main, extra, want_u=False):
        if want_u:
            raise ValueError("stable increments have no Lévy area; use solver='euler'")
        s = main.stable(self.alpha, shape, dtype)
        return (s if dt == 1.0 else s * dt ** (1.0 / self.alpha)), None


class StepDraws:
    """The increments of each grid step for the whole batch, drawn once per step in order.

    Several :class:`GridBrownian` views (one per chunk of paths) read their rows of the same draw, so the numbers do
    not depend on how the batch is split for the arithmetic.

    With ``prefetch=True`` the increments of step k + 1 are drawn on a background thread while the solver does the
    arithmetic of step k (the draws of one source stay in step order, so the numbers are the same as without
    prefetching). ``steps`` bounds the prefetching to the steps that will be asked for.
    """

    def __init__(self, increments: AbstractIncrements, *, shape, dt, dtype, device, main: Stream, extra: Stream,
                 steps: int | None = None, prefetch: bool = False):
        self.increments = increments
        self.shape = tuple(shape)
        self.dt = float(dt)
        self.dtype = dtype
        self.device = torch.device(device)
        self._main, self._extra = main, extra
        self._steps = steps
        self._prefetch = bool(prefetch)
        self._k = -1
        self._w = self._u = None
        self._next = None  # (want_u, future) of the draw of step _k + 1 in flight

    def _draw(self, want_u: bool):
        w, u = self.increments.draw(self.shape, self.dt, self.dtype, self._main, self._extra, want_u=want_u)
        if w.device != self.device:
            w = w.to(self.device)
            u = None if u is None else u.to(self.device)
        return w, u

    def get(self, k: int, want_u: bool):
        """(ΔW, U or None) of step k; k must be the current step or the next one."""
        if k != self._k:
            if k != self._k + 1:
                raise RuntimeError(f"increments must be consumed in order: asked for step {k} after {self._k}")
            self._k = k
            if self._next is not None:
                fetched_u, future = self._next
                self._next = None
                self._w, self._u = future.result()
                if want_u and not fetched_u:
                    raise RuntimeError("the space-time Lévy area must be asked for at every step or at none")
            else:
                self._w, self._u = self._draw(want_u)
            if self._prefetch and (self._steps is None or k + 1 < self._steps):
                # one thread serves every source, first in first out, so each source's draws stay in step order
                self._next = (want_u, _rng.thread_pool("prefetch", 1).submit(self._draw, want_u))
        elif want_u and self._u is None:
            raise RuntimeError("the space-time Lévy area of a step must be asked for with its first query")
        return self._w, self._u


class GridBrownian(torchsde.BaseBrownian):
    """torchsde-protocol driving noise on the grid t0 + k dt for the rows ``rows`` of a :class:`StepDraws`.

    Only consecutive grid intervals may be asked for (the same interval may be asked for again and gets the same
    answer); anything else raises ``RuntimeError``, so a solver that needs sub-steps cannot silently get noise of the
    wrong law.
    """

    def __init__(self, draws: StepDraws, *, t0: float, rows: slice | None = None):
        self._draws = draws
        self._rows = rows if rows is not None else slice(0, draws.shape[0])
        start, stop, _ = self._rows.indices(draws.shape[0])
        self._shape = (stop - start,) + draws.shape[1:]
        self._t0 = float(t0)
        self._dt = draws.dt

    def __repr__(self):
        return (f"GridBrownian({type(self._draws.increments).__name__}, shape={self._shape}, t0={self._t0}, "
                f"dt={self._dt})")

    @property
    def dtype(self):
        return self._draws.dtype

    @property
    def device(self):
        return self._draws.device

    @property
    def shape(self):
        return self._shape

    @property
    def levy_area_approximation(self):
        return self._draws.increments.levy_area_approximation

    def __call__(self, ta, tb=None, return_U=False, return_A=False):
        if return_A:
            raise ValueError("sdesim's increment sources provide no Lévy area A; use 'euler', 'milstein' or 'srk'")
        if tb is None:
            raise RuntimeError("sdesim's increment source serves intervals (ta, tb), not points")
        ta, tb = float(ta), float(tb)
        k = round((ta - self._t0) / self._dt)
        tol = 1e-9 * max(1.0, abs(ta), abs(tb))
        if abs(ta - (self._t0 + k * self._dt)) > tol or abs((tb - ta) - self._dt) > tol:
            raise RuntimeError(f"the solver asked for the increment over [{ta}, {tb}], which is not one grid step "
                               f"of size {self._dt}; sdesim's fixed-grid noise supports one-step solvers only")
        w, u = self._draws.get(k, return_U)
        w = w[self._rows]
        return (w, u[self._rows]) if return_U else w
