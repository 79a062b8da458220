"""``compare``: does one side's metric agree with the other's, within Monte Carlo error, over time?"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _checks
from ._results import Trajectories


@dataclass(frozen=True, eq=False)
class Comparison:
    """Agreement of two :class:`~sdesim.Trajectories` on one metric, at their common recorded steps.

    Attributes:
        a, b: the compared runs (typically discrete and SDE).
        metric: ``"loss"``, ``"grad_norm"``, ...
        statistic: ``"mean"``, or ``"median"`` when either side's loss has no mean (heavy tails).
        t: common recorded times.
        center_a, center_b: mean (or median) at each time.
        halfwidth_a, halfwidth_b: half-widths of their 95% confidence intervals.
        weak_error: max over t of |center_a − center_b| (the weak error of MATH.md §2.1 for test function
            ``metric``).
        weak_error_t: the time where it is reached.
        ci_overlap: share of times where |center_a − center_b| ≤ √(halfwidth_a² + halfwidth_b²), i.e. the two agree
            within their combined 95% interval.
    """

    a: Trajectories
    b: Trajectories
    metric: str
    statistic: str
    t: np.ndarray
    center_a: np.ndarray
    center_b: np.ndarray
    halfwidth_a: np.ndarray
    halfwidth_b: np.ndarray
    weak_error: float
    weak_error_t: float
    ci_overlap: float

    @property
    def agree(self) -> np.ndarray:
        """Per time: whether the two centers agree within the combined 95% interval."""
        return np.abs(self.center_a - self.center_b) <= np.hypot(self.halfwidth_a, self.halfwidth_b)

    def summary(self) -> str:
        """A short text report: sizes, divergence, weak error, interval agreement and a verdict."""
        stat = self.statistic
        lines = [f"sdesim comparison of {self.metric} ({stat} over runs"
                 + ("; the loss has no mean under this noise, so medians are compared)" if stat == "median" else ")")]
        for name, tr in (("a", self.a), ("b", self.b)):
            meth = tr.meta.get("method", {}).get("type", "?")
            extra = f", model={tr.meta.get('model')}, solver={tr.meta.get('solver')}" if tr.kind == "sde" else ""
            lines.append(f"  {name}: {tr.kind:<8} {meth}{extra}: {tr.n_runs} runs, "
                         f"{100 * tr.diverged_share:.1f}% diverged")
        lines.append(f"  recorded times: {len(self.t)} in [{self.t[0]:g}, {self.t[-1]:g}]")
        lines.append(f"  weak error max_t |{stat}_a − {stat}_b| = {self.weak_error:.4g} at t = {self.weak_error_t:g}")
        width = float(np.nanmax(np.hypot(self.halfwidth_a, self.halfwidth_b))) if len(self.t) else math.nan
        lines.append(f"  largest combined 95% half-width = {width:.4g}")
        lines.append(f"  agreement within the 95% intervals at {100 * self.ci_overlap:.1f}% of recorded times")
        verdict = ("consistent: the centers agree within their combined 95% interval at >= 90% of times "
                   "(95% is expected when the two laws are equal)"
                   if self.ci_overlap >= 0.9 else
                   "distinguishable: the difference exceeds Monte Carlo error at "
                   f"{100 * (1 - self.ci_overlap):.1f}% of times")
        lines.append(f"  verdict: {verdict}")
        return "\n".join(lines)

    def plot(self, ax=None, **kwargs):
        """Both centers with their 95% bands against t; returns the matplotlib Axes."""
        from .plotting import plot_comparison

        return plot_comparison(self, ax=ax, **kwargs)


def compare(a: Trajectories, b: Trajectories, metric: str = "loss") -> Comparison:
    """Compare two recorded sides on ``metric`` at their common recorded steps.

    Means are compared when both sides have them; if either side's loss has no mean (D(C)SGD under
    infinite-variance noise), medians and their distribution-free intervals are used, and the summary says so.
    Runs that diverged are left out (their share is reported).

    Raises:
        ValueError: the two sides share no recorded step, or their time axes disagree (different lr).
    """
    for name, tr in (("a", a), ("b", b)):
        if not isinstance(tr, Trajectories):
            raise ValueError(f"{name} must be Trajectories, got {type(tr).__name__}")
    common, ia, ib = np.intersect1d(a.step, b.step, return_indices=True)
    if common.size == 0:
        raise ValueError("a and b share no recorded step")
    if not np.allclose(a.t[ia], b.t[ib], rtol=1e-12, atol=0.0):
        raise ValueError("a and b record the same steps at different times t = k·lr: their learning rates differ")
    stat = "median" if "median" in (a.statistic, b.statistic) else "mean"
    bands = []
    for tr, idx in ((a, ia), (b, ib)):
        tr2 = tr if tr.statistic == stat else _with_statistic(tr, stat)
        c, lo, hi = tr2.band(metric)
        bands.append((c[idx], (hi - lo)[idx] / 2))
    (ca, ha), (cb, hb) = bands
    diff = np.abs(ca - cb)
    finite = np.isfinite(diff)
    if finite.any():
        j = int(np.nanargmax(np.where(finite, diff, -np.inf)))
        weak, weak_t = float(diff[j]), float(a.t[ia][j])
    else:
        weak, weak_t = math.nan, math.nan
    agree = diff <= np.hypot(ha, hb)
    return Comparison(a=a, b=b, metric=metric, statistic=stat, t=a.t[ia], center_a=ca, center_b=cb,
                      halfwidth_a=ha, halfwidth_b=hb, weak_error=weak, weak_error_t=weak_t,
                      ci_overlap=float(np.mean(agree)))


def _with_statistic(tr: Trajectories, stat: str) -> Trajectories:
    from dataclasses import replace

    return replace(tr, statistic=_checks.one_of("statistic", stat, ("mean", "median")))
