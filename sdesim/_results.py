"""``Trajectories``: recorded runs of either side (discrete optimizer or SDE), one type for both."""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import _checks

_Z95 = 1.959963984540054  # standard normal 97.5% quantile
_STATISTICS = ("mean", "median")


@dataclass(frozen=True, eq=False)
class Trajectories:
    """Runs recorded at steps 0, r, 2r, ... of a discrete optimizer (``kind="discrete"``) or its SDE (``"sde"``).

    Attributes:
        t: times of the recorded steps, t = k·lr (numpy, shape ``(T,)``).
        step: iteration index k of each recorded time (shape ``(T,)``).
        loss: f(x) per run and recorded time (shape ``(runs, T)``); NaN after a run diverged.
        grad_norm: ||∇f(x)||₂, same shape.
        diverged: whether each run diverged (shape ``(runs,)``).
        diverged_step: the first recorded step at which the run was non-finite or beyond the divergence threshold,
            −1 if never.
        kind: ``"discrete"`` or ``"sde"``.
        meta: the full configuration as plain data.
        statistic: ``"mean"``, or ``"median"`` when the loss has no mean (D(C)SGD under infinite-variance noise);
            summaries and comparisons use it.
        states: the recorded states (shape ``(runs, T, d)``) when asked for with ``keep_states=True``.
        extra: further metrics per run and time that the objective reports, e.g. a network's ``test_loss`` and
            ``test_accuracy`` (each ``(runs, T)``).
    """

    t: np.ndarray
    step: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray
    diverged: np.ndarray
    diverged_step: np.ndarray
    kind: str
    meta: dict = field(default_factory=dict)
    statistic: str = "mean"
    states: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        _checks.one_of("statistic", self.statistic, _STATISTICS)
        _checks.one_of("kind", self.kind, ("discrete", "sde"))

    # -- views -----------------------------------------------------------------------------------------------------
    @property
    def n_runs(self) -> int:
        return int(self.loss.shape[0])

    @property
    def diverged_share(self) -> float:
        return float(np.mean(self.diverged)) if self.n_runs else 0.0

    def values(self, metric: str = "loss") -> np.ndarray:
        """The recorded values of ``metric`` for the runs that did not diverge, shape ``(runs_kept, T)``.

        ``metric`` is ``"loss"``, ``"grad_norm"``, or ``"x0"``, ``"x1"``, ... (a state coordinate; needs
        ``keep_states=True``), or ``"x2_0"``... for its square.
        """
        keep = ~self.diverged
        if metric in ("loss", "grad_norm"):
            return getattr(self, metric)[keep]
        if metric in self.extra:
            return self.extra[metric][keep]
        if metric.startswith("x") and self.states is not None:
            sq = metric.startswith("x2_")
            try:
                j = int(metric[3:] if sq else metric[1:])
                col = self.states[keep][:, :, j]
            except (ValueError, IndexError):
                raise ValueError(f"metric {metric!r} does not name a state coordinate") from None
            return col * col if sq else col
        allowed = ", ".join(repr(m) for m in ("loss", "grad_norm", *self.extra))
        allowed += ", 'x<j>', 'x2_<j>'" if self.states is not None else ""
        raise ValueError(f"unknown metric {metric!r}; allowed: {allowed}")

    def band(self, metric: str = "loss", level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(center, lower, upper): the mean (or median) over runs and its confidence interval at each time.

        For the mean: mean ± z·s/√n (normal approximation). For the median: the distribution-free interval between
        the order statistics n/2 ∓ z√n/2 (binomial normal approximation).
        """
        level = _checks.in_interval("level", level, 0.0, 1.0, lo_open=True, hi_open=True)
        z = _normal_quantile(0.5 + level / 2)
        v = self.values(metric)
        n = v.shape[0]
        if n == 0:
            nan = np.full(self.t.shape, np.nan)
            return nan, nan, nan
        if self.statistic == "mean":
            c = v.mean(0)
            se = v.std(0, ddof=1) / math.sqrt(n) if n > 1 else np.zeros_like(c)
            return c, c - z * se, c + z * se
        s = np.sort(v, axis=0)
        half = z * math.sqrt(n) / 2
        lo = s[max(int(math.floor(n / 2 - half)), 0)]
        hi = s[min(int(math.ceil(n / 2 + half)), n - 1)]
        return np.median(v, axis=0), lo, hi

    def center(self, metric: str = "loss") -> np.ndarray:
        """The mean (or median) over the runs that did not diverge."""
        return self.band(metric)[0]

    def quantiles(self, q, metric: str = "loss") -> np.ndarray:
        """Quantiles over runs at each time, shape ``(len(q), T)``."""
        return np.quantile(self.values(metric), np.asarray(q, dtype=float), axis=0)

    def stationary(self, metric: str = "loss", *, burn_in: float = 0.5) -> tuple[float, float]:
        """(estimate, standard error) of the stationary mean of ``metric``.

        Each run is averaged over the recorded times after the first ``burn_in`` fraction; the runs are independent,
        so the standard error is the spread of these per-run averages over √runs, whatever the autocorrelation
        within a run.
        """
        burn_in = _checks.in_interval("burn_in", burn_in, 0.0, 1.0, lo_open=False, hi_open=True)
        v = self.values(metric)
        start = int(math.floor(burn_in * v.shape[1]))
        per_run = v[:, start:].mean(1)
        n = per_run.shape[0]
        return float(per_run.mean()), float(per_run.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan

    # -- export ----------------------------------------------------------------------------------------------------
    def to_dataframe(self):
        """Long-format ``pandas.DataFrame``: one row per run and recorded step."""
        import pandas as pd

        runs, n_t = self.loss.shape
        data = {
            "run": np.repeat(np.arange(runs), n_t),
            "step": np.tile(self.step, runs),
            "t": np.tile(self.t, runs),
            "loss": self.loss.reshape(-1),
            "grad_norm": self.grad_norm.reshape(-1),
            "diverged": np.repeat(self.diverged, n_t),
            "kind": self.kind,
            **{name: v.reshape(-1) for name, v in self.extra.items()},
        }
        return pd.DataFrame(data)

    def save(self, path) -> Path:
        """Write to ``path`` (``.npz``), atomically: a temporary file in the same folder, then a rename."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"t": self.t, "step": self.step, "loss": self.loss, "grad_norm": self.grad_norm,
                  "diverged": self.diverged, "diverged_step": self.diverged_step}
        if self.states is not None:
            arrays["states"] = self.states
        arrays.update({f"extra/{name}": v for name, v in self.extra.items()})
        header = json.dumps({"kind": self.kind, "statistic": self.statistic, "meta": self.meta})
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, header=np.array(header), **arrays)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return path


def load(path) -> Trajectories:
    """Read a :class:`Trajectories` written by :meth:`Trajectories.save`."""
    with np.load(Path(path), allow_pickle=False) as z:
        header = json.loads(str(z["header"]))
        states = z["states"] if "states" in z.files else None
        extra = {k.split("/", 1)[1]: z[k] for k in z.files if k.startswith("extra/")}
        return Trajectories(t=z["t"], step=z["step"], loss=z["loss"], grad_norm=z["grad_norm"],
                            diverged=z["diverged"], diverged_step=z["diverged_step"], kind=header["kind"],
                            meta=header["meta"], statistic=header["statistic"], states=states, extra=extra)


def _normal_quantile(p: float) -> float:
    if abs(p - 0.975) < 1e-15:
        return _Z95
    from scipy.stats import norm

    return float(norm.ppf(p))


def from_records(step: np.ndarray, lr: float, loss: np.ndarray, grad_norm: np.ndarray, *, kind: str, meta: dict,
                 statistic: str, states: np.ndarray | None = None, extra: dict | None = None) -> Trajectories:
    """Assemble :class:`Trajectories` from recorded ``(runs, T)`` arrays, marking divergence.

    A run diverged at the first recorded step whose loss is not finite (its state was set to NaN by the divergence
    check, or f overflowed); its values from there on are NaN.
    """
    bad = ~np.isfinite(loss)
    if states is not None:
        bad |= ~np.isfinite(states).all(-1)
    diverged = bad.any(1)
    first = np.where(diverged, bad.argmax(1), -1)
    if diverged.any():
        later = np.arange(loss.shape[1])[None, :] >= np.where(diverged, first, loss.shape[1])[:, None]
        loss = np.where(later, np.nan, loss)
        grad_norm = np.where(later, np.nan, grad_norm)
        if states is not None:
            states = np.where(later[:, :, None], np.nan, states)
        extra = {k: np.where(later, np.nan, v) for k, v in (extra or {}).items()}
    diverged_step = np.where(diverged, step[np.maximum(first, 0)], -1)
    return Trajectories(t=step * lr, step=step, loss=loss, grad_norm=grad_norm, diverged=diverged,
                        diverged_step=diverged_step, kind=kind, meta=meta, statistic=statistic, states=states,
                        extra=dict(extra or {}))
