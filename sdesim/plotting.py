"""Matplotlib plots of recorded runs and comparisons. Only this module imports matplotlib (lazily), so that
``import sdesim`` stays light; no function here changes global rcParams."""

from __future__ import annotations

from ._results import Trajectories


def _axes(ax):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6.0, 4.0), layout="constrained")[1]


def _label(tr: Trajectories) -> str:
    meth = tr.meta.get("method", {}).get("type", "")
    if tr.kind == "sde":
        return f"{meth} SDE ({tr.meta.get('model', '')})"
    return f"{meth} discrete"


def plot_band(tr: Trajectories, metric: str = "loss", *, ax=None, label: str | None = None, color=None,
              level: float = 0.95, linestyle="-"):
    """The mean (or median) of ``metric`` over runs with its confidence band, against t; returns the Axes."""
    ax = _axes(ax)
    c, lo, hi = tr.band(metric, level)
    stat = tr.statistic
    (line,) = ax.plot(tr.t, c, color=color, linestyle=linestyle,
                      label=f"{label or _label(tr)} ({stat}, {tr.n_runs - int(tr.diverged.sum())} runs)")
    ax.fill_between(tr.t, lo, hi, color=line.get_color(), alpha=0.25, linewidth=0)
    ax.set_xlabel("t = k·lr")
    ax.set_ylabel(metric if stat == "mean" else f"median {metric}")
    return ax


def plot_comparison(comparison, *, ax=None, logy: bool = False, title: str | None = None):
    """Both sides of a :class:`~sdesim.Comparison` with 95% bands; returns the Axes."""
    from dataclasses import replace

    ax = _axes(ax)
    for tr, color, style in ((comparison.a, "C0", "-"), (comparison.b, "C3", "--")):
        tr = tr if tr.statistic == comparison.statistic else replace(tr, statistic=comparison.statistic)
        plot_band(tr, comparison.metric, ax=ax, color=color, linestyle=style)
    if logy:
        ax.set_yscale("log")
    ax.set_title(title or f"weak error {comparison.weak_error:.3g}; "
                          f"95% intervals agree at {100 * comparison.ci_overlap:.0f}% of times", fontsize=9)
    ax.legend(fontsize=8)
    return ax
