r"""``sdesim.solve``: integrate a torchsde-protocol SDE on a fixed grid with sdesim's increment source.

sdesim steps torchsde's own solver classes (``euler``, ``milstein``, ``srk``, and the Stratonovich ones) itself,
rather than calling ``torchsde.sdeint``, for three reasons:

1. ``sdeint`` advances time by repeated ``t + dt``, which adds a sliver step whenever dt is not exact in binary, so
   step k would no longer be iteration k; here time k is ``t0 + k dt`` and exactly ``steps`` steps are taken.
2. ``sdeint`` keeps every requested state until the end; sdesim records a reduced view of each recorded state
   (``save``), so 10⁵ steps of 10⁶-dimensional batches fit in memory.
3. The driving noise comes from :mod:`sdesim.increments` (Gaussian or α-stable), never from ``BrownianPath``.

When the SDE declares ``batch_independent = True`` (its paths do not interact, as for every sdesim model), the
arithmetic of each step runs on chunks of paths holding about ``sde.chunk_numbers`` numbers (2¹⁸ when it has none;
sdesim's elementwise objectives ask for 2¹⁵, which stays in cache and at torch's parallel grain, so each chunk runs
on the calling thread). On the CPU, when a step draws at least ``_PREFETCH_MIN`` numbers, the increments of step k + 1
are drawn on a background thread (itself filling blocks on sdesim's random-number threads) while step k's arithmetic
runs. The increments are drawn for the whole batch at once and in step order, so the results depend neither on the
chunking nor on the prefetching.

torchsde still validates the SDE (its ``check_contract``, on a one-path probe) and does the arithmetic of every step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction

import torch
from torch import nn
from torchsde._core import methods as _ts_methods
from torchsde._core.sdeint import check_contract as _ts_check_contract

from . import _checks, _rng
from ._progress import Progress
from .increments import AbstractIncrements, GaussianIncrements, GridBrownian, StepDraws

_CHUNK_NUMBERS = 1 << 18
#: draws of at least this many numbers per step are made one step ahead on a background thread.
_PREFETCH_MIN = 1 << 16

#: solver names accepted by :func:`solve` (torchsde's one-step methods that need no Lévy area A).
SOLVERS: dict[str, str] = {name: name for name in
                           ("euler", "milstein", "srk", "heun", "midpoint", "euler_heun", "reversible_heun")}


def exact_grid(t0: float, dt: float, steps: int) -> bool:
    """True when every t0 + k dt (0 ≤ k ≤ steps) and every difference of neighbours is exact in float64."""
    a, b = Fraction(t0), Fraction(dt)
    denom = max(a.denominator, b.denominator)  # both powers of two, so this is their lcm
    top = max(abs(a), abs(a + steps * b)) * denom
    return top < 2**53


class _StepUnits(nn.Module):
    """The SDE in step units s = (t − t0)/dt: drift dt·f, diffusion dt^{1/α}·g, so each step has size exactly 1."""

    def __init__(self, sde, t0: float, dt: float, alpha: float):
        super().__init__()
        self.base = sde
        self.sde_type = sde.sde_type
        self.noise_type = sde.noise_type
        self._t0, self._dt = t0, dt
        cf, cg = dt, dt ** (1.0 / alpha)
        for attr in ("noise_size", "batch_independent"):
            if hasattr(sde, attr):
                setattr(self, attr, getattr(sde, attr))
        t = self._time
        wrappers = {
            "f": lambda s, y: cf * sde.f(t(s), y),
            "g": lambda s, y: cg * sde.g(t(s), y),
            "g_prod": lambda s, y, v: cg * sde.g_prod(t(s), y, v),
            "f_and_g": lambda s, y: _scale2(sde.f_and_g(t(s), y), cf, cg),
            "f_and_g_prod": lambda s, y, v: _scale2(sde.f_and_g_prod(t(s), y, v), cf, cg),
        }
        for name, fn in wrappers.items():
            if hasattr(sde, name):
                setattr(self, name, fn)

    def _time(self, s):
        return self._t0 + s * self._dt


def _scale2(pair, a, b):
    return pair[0] * a, pair[1] * b


def _noise_size(sde, y0: torch.Tensor, t0: float) -> int:
    if sde.noise_type == "diagonal":
        return y0.shape[1]
    if sde.noise_type == "scalar":
        return 1
    if hasattr(sde, "noise_size"):
        return int(sde.noise_size)
    if hasattr(sde, "g"):
        return int(sde.g(torch.tensor(t0, dtype=torch.float64), y0).shape[-1])
    raise ValueError("sde has noise_type 'general' or 'additive' and no g; give it an attribute noise_size "
                     "(the number of driving noise channels)")


def _mark_divergence(y: torch.Tensor, threshold: float) -> torch.Tensor:
    """Set to NaN the rows of ``y`` with a non-finite entry or max_j |y_j| >= threshold."""
    if bool(y.abs().amax() < threshold):  # one global reduction in the common case; NaN compares False
        return y
    bad = ~(y.abs().amax(-1) < threshold)
    return torch.where(bad.unsqueeze(-1), torch.full_like(y, math.nan), y)


def solve(sde, y0: torch.Tensor, *, dt: float, steps: int, seed: int, solver: str = "euler",
          record_every: int = 1, t0: float = 0.0, increments: AbstractIncrements | None = None,
          save: Callable[[torch.Tensor], torch.Tensor] | None = None,
          divergence_threshold: float = math.inf, options: dict | None = None,
          progress: bool = False) -> torch.Tensor:
    r"""Integrate a torchsde-protocol SDE on the fixed grid t_k = t0 + k dt, k = 0..steps.

    ``sde`` is any object torchsde accepts (``sde_type``, ``noise_type``, ``f(t, y)``, ``g(t, y)`` and/or the fused
    ``f_and_g_prod``/``g_prod``). Each step calls torchsde's solver once, driven by the increment of that grid step,
    so step k of the SDE lines up with iteration k of an optimizer.

    Args:
        sde: the SDE. It may carry an attribute ``increments`` (used when ``increments`` is None) and, for
            ``general`` noise without ``g``, ``noise_size``.
        y0: initial states, shape ``(batch, d)``.
        dt: step size > 0.
        steps: number of steps taken, exactly.
        seed: seed of the driving noise; the same seed gives bit-identical results whatever ``record_every``.
        solver: ``"euler"``, ``"milstein"``, ``"srk"`` (Itô), or a Stratonovich method of torchsde (``"heun"``,
            ``"midpoint"``, ``"euler_heun"``, ``"reversible_heun"``); torchsde refuses combinations it does not
            support. Lévy-driven SDEs allow ``"euler"`` only.
        record_every: record the states at steps 0, r, 2r, ... (r = ``record_every``).
        t0: initial time.
        increments: :class:`~sdesim.increments.GaussianIncrements` (default) or
            :class:`~sdesim.increments.StableIncrements`.
        save: map from a state of shape ``(batch, d)`` to what is recorded (default: the state itself).
        divergence_threshold: at each recorded step, paths with a non-finite entry or max |y_j| ≥ this are set to
            NaN (and stay NaN). Marking happens at recorded steps only.
        options: options passed to the torchsde solver (e.g. ``{"grad_free": True}`` for ``milstein``).
        progress: print a progress bar on stderr.

    Returns:
        Tensor of shape ``(steps // record_every + 1, batch, ...)``: ``save`` of the states at the recorded steps.

    Raises:
        ValueError: bad arguments (named), or a solver that cannot use the increments.
    """
    if not isinstance(y0, torch.Tensor) or y0.ndim != 2:
        raise ValueError(f"y0 must be a tensor of shape (batch, d), got {getattr(y0, 'shape', type(y0))}")
    if not bool(torch.isfinite(y0).all()):
        raise ValueError("y0 must be finite (it contains NaN or inf)")
    dt = _checks.positive("dt", dt)
    steps = _checks.positive_int("steps", steps, minimum=0)
    record_every = _checks.positive_int("record_every", record_every)
    t0 = float(t0)
    seed = _rng.check_seed(seed)
    method = _checks.lookup(SOLVERS, solver, "solver")
    threshold = float(divergence_threshold)
    if not threshold > 0:
        raise ValueError(f"divergence_threshold must be > 0, got {divergence_threshold!r}")
    inc = increments if increments is not None else getattr(sde, "increments", None) or GaussianIncrements()
    if not isinstance(inc, AbstractIncrements):
        raise ValueError(f"increments must be an AbstractIncrements, got {inc!r}")
    if inc.alpha < 2.0 and method != "euler":
        raise ValueError(f"solver={solver!r} cannot integrate a Lévy-driven SDE (alpha={inc.alpha:g}): only "
                         "'euler' is sound with stable increments (no Lévy area, MATH.md §6.6)")
    if getattr(sde, "randomized", False) and method != "euler":
        raise ValueError(f"solver={solver!r} cannot integrate an SDE with a randomized diffusion "
                         f"({type(sde).__name__}): use solver='euler'")
    save = save if save is not None else (lambda y: y)

    if not exact_grid(t0, dt, steps):
        sde = _StepUnits(sde, t0, dt, inc.alpha)
        t_start, h = 0.0, 1.0
    else:
        t_start, h = t0, dt

    batch, d = y0.shape
    noise = _rng.streams(seed, ("increments", "levy_area"), y0.device)
    m = _noise_size(sde, y0, t_start)
    draws = StepDraws(inc, shape=(batch, m), dt=h, dtype=y0.dtype, device=y0.device, main=noise["increments"],
                      extra=noise["levy_area"], steps=steps,
                      prefetch=y0.device.type == "cpu" and batch * m >= _PREFETCH_MIN)
    rows = batch
    if getattr(sde, "batch_independent", False) and y0.device.type == "cpu":
        rows = max(1, int(getattr(sde, "chunk_numbers", _CHUNK_NUMBERS)) // max(d, m))
    chunks = [slice(a, min(a + rows, batch)) for a in range(0, batch, rows)]
    fsde, method, options = _check_contract(sde, y0, m, t_start, h, method, options)
    solvers = [_ts_methods.select(method=method, sde_type=fsde.sde_type)(
        sde=fsde, bm=GridBrownian(draws, t0=t_start, rows=c), dt=h, adaptive=False, rtol=1e-5, atol=1e-4,
        dt_min=1e-5, options=options) for c in chunks]

    times = t_start + h * torch.arange(steps + 1, dtype=torch.float64)
    bar = Progress(steps, "solve", progress)
    with torch.no_grad():
        ys = [y0[c] for c in chunks]
        extras = [slv.init_extra_solver_state(times[0], y) for slv, y in zip(solvers, ys)]
        out = [save(y0)]
        for k in range(steps):
            ta, tb = times[k], times[k + 1]
            for i, slv in enumerate(solvers):
                ys[i], extras[i] = slv.step(ta, tb, ys[i], extras[i])
            if (k + 1) % record_every == 0:
                ys = [_mark_divergence(y, threshold) for y in ys]
                out.append(torch.cat([save(y) for y in ys]) if len(ys) > 1 else save(ys[0]))
                bar.update(k + 1)
    bar.close()
    return torch.stack(out)


class _ProbeNoise:
    """Stands in for the driving noise in torchsde's contract check, which reads only its shape."""

    levy_area_approximation = "none"

    def __init__(self, shape):
        self.shape = shape


def _check_contract(sde, y0, m, t_start, h, method, options):
    """torchsde's own contract checks on a one-path probe (shapes, noise type, method), returning its wrapped SDE,
    method and options. The probe costs one evaluation of the coefficients for one path, not for the batch."""
    ts_check = torch.tensor([t_start, t_start + h], dtype=torch.float64)
    probe = y0[:1]
    devices = [] if y0.device.type == "cpu" else [y0.device]
    with torch.random.fork_rng(devices=devices):  # check_contract draws a probe vector from global state
        fsde, _, _, _, method, options = _ts_check_contract(sde, probe, ts_check, _ProbeNoise((1, m)), method, False,
                                                            dict(options or {}), None, False)
    return fsde, method, options


__all__ = ["solve", "SOLVERS", "exact_grid"]
