"""``compare``: does one side's metric agree with the other's, within Monte Carlo error, over time?"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _checks
from ._results import _Z95, Trajectories


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
        max_z: the largest standardized difference |center_a − center_b| / standard error over the times.
        p_value: Bonferroni-adjusted two-sided p-value over the T recorded times, min(1, T · min_t p_t), with p_t
            Welch's t-test of the two means at time t (Welch–Satterthwaite degrees of freedom; the normal
            approximation for medians): small when the two sides differ by more than Monte Carlo error somewhere.
            It is conservative (the times are correlated), so "consistent" errs on the side of agreement only as much
            as Bonferroni does.
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
    max_z: float = math.nan
    p_value: float = math.nan

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
        lines.append(f"  largest standardized difference {self.max_z:.2f} (Bonferroni p = {self.p_value:.3g})")
        verdict = ("consistent at level 0.05: no recorded time where the difference exceeds Monte Carlo error"
                   if self.p_value >= 0.05 else
                   f"distinguishable at level 0.05: the difference exceeds Monte Carlo error (p = {self.p_value:.2g})")
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
    bands, counts = [], []
    for tr, idx in ((a, ia), (b, ib)):
        tr2 = tr if tr.statistic == stat else _with_statistic(tr, stat)
        c, lo, hi = tr2.band(metric)
        bands.append((c[idx], (hi - lo)[idx] / 2))
        counts.append(np.isfinite(tr2.values(metric)[:, idx]).sum(0))
    (ca, ha), (cb, hb) = bands
    diff = np.abs(ca - cb)
    finite = np.isfinite(diff)
    if finite.any():
        j = int(np.nanargmax(np.where(finite, diff, -np.inf)))
        weak, weak_t = float(diff[j]), float(a.t[ia][j])
    else:
        weak, weak_t = math.nan, math.nan
    width = np.hypot(ha, hb)
    agree = diff <= width
    se = width / _Z95
    # differences at the level of floating-point rounding (e.g. at t = 0, where every run sits at x0) are not
    # differences of law
    excess = np.maximum(diff - 1e-12 * np.maximum(np.maximum(np.abs(ca), np.abs(cb)), 1.0), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 1e-300, excess / np.where(se > 1e-300, se, 1.0), np.where(excess > 0, np.inf, 0.0))
    max_z = float(np.nanmax(z)) if np.isfinite(diff).any() else math.nan
    if not np.isfinite(diff).any():
        p_value = math.nan
    elif max_z == math.inf:
        p_value = 0.0
    else:
        p_value = min(1.0, len(diff) * float(np.nanmin(_two_sided_p(z, ha, hb, *counts, stat))))
    return Comparison(a=a, b=b, metric=metric, statistic=stat, t=a.t[ia], center_a=ca, center_b=cb,
                      halfwidth_a=ha, halfwidth_b=hb, weak_error=weak, weak_error_t=weak_t,
                      ci_overlap=float(np.mean(agree)), max_z=max_z, p_value=p_value)


def _two_sided_p(z, ha, hb, na, nb, stat) -> np.ndarray:
    """Per-time two-sided p-values of the standardized differences ``z``.

    Means: Welch's t-test, t = z with the Welch–Satterthwaite degrees of freedom from the two standard errors and run
    counts (the normal approximation is anti-conservative for a few dozen runs). Medians: the normal approximation
    of their distribution-free intervals.
    """
    z = np.asarray(z, dtype=float)
    if stat != "mean":
        return np.array([math.erfc(v / math.sqrt(2.0)) for v in z])
    from scipy.stats import t as student_t

    va, vb = (ha / _Z95) ** 2, (hb / _Z95) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (va + vb) ** 2 / (np.where(na > 1, va**2 / (na - 1), 0.0) + np.where(nb > 1, vb**2 / (nb - 1), 0.0))
    df = np.where(np.isfinite(df) & (df > 0), df, np.inf)  # no spread on a side (e.g. at t = 0): normal limit
    return 2.0 * student_t.sf(z, df)


def _with_statistic(tr: Trajectories, stat: str) -> Trajectories:
    from dataclasses import replace

    return replace(tr, statistic=_checks.one_of("statistic", stat, ("mean", "median")))
