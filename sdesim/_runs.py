"""``run_discrete`` (the optimizer itself) and ``simulate`` (its SDE), both returning :class:`Trajectories`."""

from __future__ import annotations

import math
import platform

import numpy as np
import torch

from . import _checks, _rng
from ._config import to_plain
from ._progress import Progress
from ._results import Trajectories, from_records
from ._solve import _mark_divergence, solve
from .methods import AbstractMethod
from .models import build_sde, check_parts
from .noise import AbstractNoise
from .objectives import AbstractObjective

_MAX_META_X0 = 10_000


def _initial(x0, n: int, name: str, objective: AbstractObjective, dtype, device) -> torch.Tensor:
    """x0 of shape (d,) or (n, d) as an (n, d) tensor; ``ValueError`` naming x0 on bad shape or values."""
    if isinstance(x0, torch.Tensor):
        x = x0.detach()
        dtype = dtype or (x.dtype if x.is_floating_point() else torch.float64)
    else:
        try:
            x = torch.tensor(np.array(x0, dtype=np.float64))
        except (TypeError, ValueError):
            raise ValueError(f"x0 must be a tensor or array of shape (d,) or ({name}, d), got {x0!r}") from None
        dtype = dtype or torch.float64
    x = x.to(dtype=dtype, device=device if device is not None else x.device)
    if x.ndim == 1:
        x = x.unsqueeze(0).expand(n, -1).clone()
    elif x.ndim != 2 or x.shape[0] != n:
        raise ValueError(f"x0 must have shape (d,) or ({name}={n}, d), got {tuple(x.shape)}")
    if x.shape[1] == 0:
        raise ValueError("x0 must have at least one coordinate")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x0 must be finite (it contains NaN or inf)")
    objective.check_dim(x.shape[1])
    return x.contiguous()


def _statistic(method: AbstractMethod, noise: AbstractNoise) -> str:
    """Means exist when the noise has finite variance or the update is bounded (sign methods, MATH.md §10.8)."""
    return "mean" if (noise.finite_variance or method.sign_based) else "median"


def _meta(kind, method, objective, noise, x, **extra) -> dict:
    from . import __version__

    x0 = x[0].tolist() if bool((x == x[0]).all()) else (x.tolist() if x.numel() <= _MAX_META_X0 else "per-run")
    return {"kind": kind, "method": to_plain(method), "objective": to_plain(objective), "noise": to_plain(noise),
            "x0": x0, "d": int(x.shape[1]), "dtype": str(x.dtype).replace("torch.", ""), "device": str(x.device),
            **{k: to_plain(v) for k, v in extra.items()},
            "versions": {"sdesim": __version__, "torch": torch.__version__, "python": platform.python_version()}}


def _metric_names(objective) -> tuple[str, ...]:
    """Names of the extra metrics an objective reports (e.g. a Network's test loss and accuracy)."""
    return tuple(getattr(objective, "metric_names", ()))


def _record(objective, x, grad=None, keep_states=False, metrics=()) -> torch.Tensor:
    """Columns [loss, ||∇f||, metrics..., states...] for every row of x."""
    grad = objective.grad(x) if grad is None else grad
    parts = [objective.loss(x).unsqueeze(-1), (grad * grad).sum(-1, keepdim=True).sqrt()]
    if metrics:
        values = objective.metrics(x)
        parts += [values[name].unsqueeze(-1) for name in metrics]
    if keep_states:
        parts.append(x)
    return torch.cat(parts, -1)


def _assemble(rec: torch.Tensor, step, lr, *, kind, meta, statistic, keep_states, metrics=()) -> Trajectories:
    arr = rec.detach().cpu().numpy().transpose(1, 0, 2)  # (runs, T, k)
    k = 2 + len(metrics)
    extra = {name: arr[:, :, 2 + i] for i, name in enumerate(metrics)}
    states = arr[:, :, k:] if keep_states else None
    return from_records(step, lr, arr[:, :, 0], arr[:, :, 1], kind=kind, meta=meta, statistic=statistic,
                        states=states, extra=extra)


def _check_dims(method, objective, noise, x) -> int:
    """Check that the method (its compressors) and the noise act on the dimension of ``x``; return it."""
    d = x.shape[1]
    method.check_dim(d)
    noise.check(method.n_agents, d)
    if hasattr(noise, "check_objective"):
        noise.check_objective(objective)
    return d


def _update(method, x: torch.Tensor, u: torch.Tensor, k: int) -> torch.Tensor:
    """x − η η_k u, the step rescaled by the method's normalizer of ||u|| when it is normalized (MATH.md §5)."""
    step = method.step_size(k)
    if method.normalized:
        step = step * method.normalizer(u.square().sum(-1, keepdim=True).sqrt(), x.shape[1])
    return x - step * u


def run_discrete(method: AbstractMethod, objective: AbstractObjective, noise: AbstractNoise, x0, *, steps: int,
                 runs: int, seed: int, record_every: int = 1, divergence_threshold: float = math.inf,
                 keep_states: bool = False, dtype: torch.dtype | None = None, device=None,
                 progress: bool = False) -> Trajectories:
    r"""Run the optimizer itself: ``runs`` independent runs at once, in one ``(runs, d)`` tensor.

    Each iteration (MATH.md §5): every agent i adds its own noise draw to the full gradient, compresses it with its
    own randomness, the server averages, and x ← x − ηη_k · average.

    Args:
        method: the optimizer (:mod:`sdesim.methods`).
        objective: the objective (:mod:`sdesim.objectives`).
        noise: one agent's gradient noise (:mod:`sdesim.noise`).
        x0: initial point, shape ``(d,)``, or ``(runs, d)`` for one per run.
        steps: iterations.
        runs: independent runs.
        seed: the same seed gives bit-identical results, whatever ``record_every``.
        record_every: record iterations 0, r, 2r, ... (and the last one when r divides ``steps``).
        divergence_threshold: a run whose state has a non-finite entry, or max_j |x_j| ≥ this at a recorded step, is
            marked diverged; its later values are NaN and the other runs go on.
        keep_states: also record the states (memory: runs × T × d).
        dtype, device: default to those of ``x0`` (float64 for arrays).
        progress: progress bar on stderr.

    Returns:
        :class:`~sdesim.Trajectories` with ``kind="discrete"`` and t = k·lr.
    """
    check_parts(method, objective, noise)
    steps = _checks.positive_int("steps", steps, minimum=0)
    runs = _checks.positive_int("runs", runs)
    record_every = _checks.positive_int("record_every", record_every)
    seed = _rng.check_seed(seed)
    x = _initial(x0, runs, "runs", objective, dtype, device)
    _check_dims(method, objective, noise, x)
    threshold = float(divergence_threshold)
    meta = _meta("discrete", method, objective, noise, x, steps=steps, runs=runs, seed=seed,
                 record_every=record_every, divergence_threshold=threshold)
    n_comp = len(method.compressors)
    rng = _rng.streams(seed, ["noise"] + [f"compressor{i}" for i in range(n_comp)], x.device)
    comp_streams = [rng[f"compressor{i}"] for i in range(n_comp)]
    n = method.n_agents
    metrics = _metric_names(objective)
    out = []
    bar = Progress(steps, "run_discrete", progress)
    with torch.no_grad():
        for k in range(steps):
            if k % record_every == 0:
                x = _mark_divergence(x, threshold)
            g = objective.grad(x)
            if k % record_every == 0:
                out.append(_record(objective, x, g, keep_states, metrics))
                bar.update(k)
            grads = g.unsqueeze(-2) + noise.sample(g, n, rng["noise"], x=x, objective=objective)
            x = _update(method, x, method.direction(grads, comp_streams), k)
        if steps % record_every == 0:
            x = _mark_divergence(x, threshold)
            out.append(_record(objective, x, None, keep_states, metrics))
    bar.close()
    step = np.arange(0, steps + 1, record_every)
    return _assemble(torch.stack(out), step, method.lr, kind="discrete", meta=meta,
                     statistic=_statistic(method, noise), keep_states=keep_states, metrics=metrics)


def simulate(method: AbstractMethod, objective: AbstractObjective, noise: AbstractNoise, x0, *, steps: int,
             paths: int, seed: int, solver: str = "euler", substeps: int = 1, model: str = "first_order",
             record_every: int = 1, divergence_threshold: float = math.inf, keep_states: bool = False,
             dtype: torch.dtype | None = None, device=None, progress: bool = False) -> Trajectories:
    r"""Integrate the method's SDE (:mod:`sdesim.models`) with :func:`sdesim.solve`, on t = k·lr.

    The SDE runs in iteration units with ``substeps`` solver steps per iteration (dt = lr/substeps in SDE time), so
    recorded step k is iteration k of the optimizer.

    Args:
        method, objective, noise, x0, steps, seed, record_every, divergence_threshold, keep_states, dtype, device,
            progress: as in :func:`run_discrete` (``steps`` counts iterations).
        paths: independent SDE paths.
        solver: torchsde solver (``"euler"``; ``"milstein"``/``"srk"`` for diagonal Brownian noise).
        substeps: solver steps per iteration (MATH.md §10.1: with 1 step and Gaussian noise, Euler on the DSGD SDE
            is DSGD itself).
        model: ``"first_order"``, ``"second_order"`` or ``"stable"`` (MATH.md §2.2, §6.5).

    Returns:
        :class:`~sdesim.Trajectories` with ``kind="sde"``.

    Raises:
        NoSDEError: the combination has no SDE; the message says what to use instead.
    """
    check_parts(method, objective, noise)
    steps = _checks.positive_int("steps", steps, minimum=0)
    paths = _checks.positive_int("paths", paths)
    substeps = _checks.positive_int("substeps", substeps)
    record_every = _checks.positive_int("record_every", record_every)
    seed = _rng.check_seed(seed)
    x = _initial(x0, paths, "paths", objective, dtype, device)
    sde = build_sde(method, objective, noise, d=x.shape[1], model=model, dtype=x.dtype, device=x.device,
                    seed=seed)
    meta = _meta("sde", method, objective, noise, x, steps=steps, paths=paths, seed=seed, record_every=record_every,
                 solver=solver, substeps=substeps, model=model, sde=type(sde).__name__,
                 divergence_threshold=float(divergence_threshold))
    metrics = _metric_names(objective)
    rec = solve(sde, x, dt=1.0 / substeps, steps=steps * substeps, seed=seed, solver=solver,
                record_every=record_every * substeps, divergence_threshold=divergence_threshold,
                save=lambda y: _record(objective, y, None, keep_states, metrics), progress=progress)
    step = np.arange(0, steps + 1, record_every)
    return _assemble(rec, step, method.lr, kind="sde", meta=meta, statistic=_statistic(method, noise),
                     keep_states=keep_states, metrics=metrics)


def compare_on(method: AbstractMethod, objective: AbstractObjective, noise: AbstractNoise, x0, *, steps: int,
               runs: int, seed: int, paths: int | None = None, metric: str = "loss", record_every: int = 1,
               solver: str = "euler", substeps: int = 1, model: str = "first_order",
               divergence_threshold: float = math.inf, progress: bool = False):
    """Run the optimizer and its SDE with matched settings and compare them: ``compare(run_discrete(...),
    simulate(...), metric)``.

    The optimizer uses ``seed`` and the SDE ``seed + 1`` (independent draws); ``paths`` defaults to ``runs``. The
    returned :class:`~sdesim.Comparison` keeps both sides (``.a``, ``.b``), so other metrics, e.g. a network's
    ``"test_accuracy"``, can be compared with ``sdesim.compare(c.a, c.b, "test_accuracy")``.
    """
    from ._compare import compare

    seed = _rng.check_seed(seed)
    common = dict(steps=steps, record_every=record_every, divergence_threshold=divergence_threshold,
                  progress=progress)
    d = run_discrete(method, objective, noise, x0, runs=runs, seed=seed, **common)
    s = simulate(method, objective, noise, x0, paths=paths or runs, seed=seed + 1, solver=solver, substeps=substeps,
                 model=model, **common)
    return compare(d, s, metric)
