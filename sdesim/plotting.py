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


def save_comparison(c, path) -> None:
    """Write the standard two-panel figure of a :class:`~sdesim.Comparison` to ``path``: both sides with their bands
    (log scale when positive), and |difference| against the combined 95% half-width."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    c.plot(ax=ax0, logy=bool(np.all(np.concatenate([c.center_a, c.center_b]) > 0)))
    later = c.t > 0
    ax1.plot(c.t[later], np.abs(c.center_a - c.center_b)[later], color="C2",
             label=f"|{c.statistic}_discrete − {c.statistic}_SDE|")
    ax1.plot(c.t[later], np.hypot(c.halfwidth_a, c.halfwidth_b)[later], color="0.4", linestyle=":",
             label="combined 95% half-width")
    ax1.set_yscale("log")
    ax1.set_xlabel("t = k·lr")
    ax1.set_ylabel(f"{c.metric}")
    ax1.set_title(f"weak error {c.weak_error:.3g} at t = {c.weak_error_t:g}", fontsize=9)
    ax1.legend(fontsize=8)
    fig.savefig(path, dpi=120)
    plt.close(fig)
