"""Stability: gradient descent against the first-order, classic second-order and stable ([A] v2) SDEs as the learning
rate grows (MATH.md §7.1).

Claim: on the parabola x²/2 (λ = 1), GD and the `stable` SDE lose stability at the same learning rate 2/λ
(theory.max_stable_lr): the growth rate of f per unit time crosses 0 there, for GD (log|1 − λη|/η) and for the
stable flow (−λ(1 − λη/2)), and in noisy simulations (DSGD with σ = 0.1 and its SDEs, a fixed number of iterations)
more than half of the runs diverge just above 2/λ and none below, while the first-order and classic second-order SDEs
(rates −λ and −λ(1 + λη/2)) never diverge. On the quartic x⁴/4 at lr = 0.1, GD diverges from x0² > 2/η and the stable flow from x0² > 2/(3η): the
behaviour matches only qualitatively (MATH.md §7.1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import sdesim
from experiments._common import Claim
from sdesim import methods as M, noise as Z, objectives as O, theory

MODELS = ("first_order", "second_order", "stable")


@dataclass(frozen=True)
class Config:
    lrs: tuple = tuple(np.round(np.linspace(0.25, 2.65, 25), 3))  # steps of 0.1 that straddle 2/λ
    iterations: int = 500  # parabola: iterations per learning rate (t = iterations·lr)
    time: float = 20.0  # quartic: SDE time
    runs: int = 400
    substeps: int = 16
    quartic_lr: float = 0.1
    quartic_x0: tuple = tuple(np.round(np.linspace(0.5, 6.0, 23), 3))
    seed: int = 0


QUICK = Config(lrs=(1.0, 1.8, 1.95, 2.05, 2.2), iterations=300, runs=100, substeps=8,
               quartic_x0=(1.0, 2.0, 3.0, 4.0, 5.0))


def run(cfg: Config) -> dict:
    f = O.Quadratic(h=[1.0])
    lrs = np.array(cfg.lrs)
    out = {"lrs": lrs, "threshold": theory.max_stable_lr(M.DSGD(1.0), f, Z.Gaussian(0.1))}
    gd = []
    flows = {m: [] for m in MODELS}
    share = {k: [] for k in ("discrete",) + MODELS}
    steps = cfg.iterations
    for i, lr in enumerate(lrs):
        # growth rate of f per unit SDE time, (1/2t) log(f_t/f_0): GD exactly, the flows numerically at t = 2
        gd.append(math.log(abs(1 - lr)) / lr if lr != 1 else -math.inf)
        for m in MODELS:
            ft = theory.gradient_flow_loss(f, [1.0], [2.0], lr=lr, model=m)[-1]
            flows[m].append(math.log(ft / 0.5) / 4.0)
        method, z = M.DSGD(lr), Z.Gaussian(0.1)
        kw = dict(steps=steps, seed=cfg.seed + i, record_every=steps, divergence_threshold=1e6)
        share["discrete"].append(sdesim.run_discrete(method, f, z, [1.0], runs=cfg.runs, **kw).diverged_share)
        for m in MODELS:
            tr = sdesim.simulate(method, f, z, [1.0], paths=cfg.runs, model=m, substeps=cfg.substeps, **kw)
            share[m].append(tr.diverged_share)
    out["gd"] = np.array(gd)
    for m in MODELS:
        out["flow|" + m] = np.array(flows[m])
    for k, v in share.items():
        out["share|" + k] = np.array(v)
    q, eta = O.Quartic(), cfg.quartic_lr
    x0s = np.array(cfg.quartic_x0)
    out["x0s"] = x0s
    steps = int(round(cfg.time / eta))
    gd_q = []
    for x0 in x0s:
        x = x0
        for _ in range(steps):
            x = x - eta * x**3
            if not abs(x) < 1e100:
                x = math.inf
                break
        gd_q.append(x**4 / 4)
    out["quartic|gd"] = np.array(gd_q)
    for m in MODELS:
        out["quartic|" + m] = np.array([theory.gradient_flow_loss(q, [x0], [cfg.time], lr=eta, model=m)[-1]
                                        for x0 in x0s])
    return out


def _clip(v):
    return np.where(np.isfinite(v), np.minimum(v, 1e12), 1e12)


def plot(res: dict, cfg: Config):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), layout="constrained")
    lrs = res["lrs"]
    ax = axes[0]
    ax.plot(lrs, np.maximum(res["gd"], -4.0), "k-o", markersize=3, label="GD: log|1 − η|/η")
    for i, m in enumerate(MODELS):
        ax.plot(lrs, res["flow|" + m], color=f"C{i}", linestyle="--", label=f"{m} SDE flow")
    ax.axvline(res["threshold"], color="0.5", linestyle=":", label="2/λ (theory.max_stable_lr)")
    ax.axhline(0.0, color="0.7", linewidth=0.8)
    ax.set_ylim(-4.0, 1.0)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("growth rate of f per unit t  (> 0: diverges)")
    ax.set_title("parabola x²/2, noiseless: rates −λ, −λ(1 ± λη/2), log|1−λη|/η", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[1]
    ax.plot(lrs, res["share|discrete"], "k-o", markersize=3, label="DSGD (optimizer)")
    for i, m in enumerate(MODELS):
        ax.plot(lrs, res["share|" + m], color=f"C{i}", linestyle="--", marker="x", label=f"{m} SDE")
    ax.axvline(res["threshold"], color="0.5", linestyle=":")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("share of runs diverged")
    ax.set_title(f"parabola, σ = 0.1, {cfg.runs} runs, {cfg.substeps} SDE substeps", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[2]
    x0s = res["x0s"]
    ax.plot(x0s, _clip(res["quartic|gd"]), "k-o", markersize=3, label="GD")
    for i, m in enumerate(MODELS):
        ax.plot(x0s, _clip(res["quartic|" + m]), color=f"C{i}", linestyle="--", label=f"{m} SDE flow")
    eta = cfg.quartic_lr
    ax.axvline(math.sqrt(2 / eta), color="k", linestyle=":", label="GD: x0² = 2/η")
    ax.axvline(math.sqrt(2 / (3 * eta)), color="C2", linestyle=":", label="stable flow: x0² = 2/(3η)")
    ax.set_yscale("log")
    ax.set_xlabel("x0")
    ax.set_ylabel(f"f at t = {cfg.time:g}")
    ax.set_title(f"quartic x⁴/4, lr = {eta}", fontsize=9)
    ax.legend(fontsize=7)
    return fig


def check(res: dict, cfg: Config) -> list[Claim]:
    lrs, thr = res["lrs"], res["threshold"]
    below, above = lrs < thr * (1 - 1e-6), lrs > thr * (1 + 1e-6)  # a grid point on the threshold is marginal

    def onset_ok(v):  # decays below the threshold, grows above it
        return bool(np.all(v[below] < 0) and np.all(v[above] > 0))

    first_above = lrs[above][0] if above.any() else math.nan
    near_above = lrs == first_above
    noisy_ok = all(np.all(res["share|" + k][below] == 0) and np.all(res["share|" + k][near_above] > 0.5)
                   for k in ("discrete", "stable"))
    never = all(np.all(res["share|" + m] == 0) for m in ("first_order", "second_order"))
    eta = cfg.quartic_lr
    x0s = res["x0s"]
    gd_q = ~np.isfinite(res["quartic|gd"]) | (res["quartic|gd"] > 1e6)
    st_q = ~np.isfinite(res["quartic|stable"])
    quartic_ok = (np.array_equal(gd_q, x0s**2 > 2 / eta) and np.array_equal(st_q, x0s**2 > 2 / (3 * eta))
                  and np.all(np.isfinite(res["quartic|first_order"])) and np.all(np.isfinite(res["quartic|second_order"])))
    return [
        Claim("noiseless parabola: GD and the stable flow decay below 2/λ and grow above",
              onset_ok(res["gd"]) and onset_ok(res["flow|stable"]),
              f"2/λ = {thr:.4f}; rates at lr {lrs[below][-1]:g}: GD {res['gd'][below][-1]:.3f}, stable "
              f"{res['flow|stable'][below][-1]:.3f}; at {first_above:g}: GD {res['gd'][near_above][0]:.3f}, stable "
              f"{res['flow|stable'][near_above][0]:.3f}"),
        Claim("the flows have the closed-form rates −λ, −λ(1 + λη/2), −λ(1 − λη/2) (to 1e-6)",
              bool(np.allclose(res["flow|first_order"], -1.0, atol=1e-6)
                   and np.allclose(res["flow|second_order"], -(1 + lrs / 2), atol=1e-6)
                   and np.allclose(res["flow|stable"], -(1 - lrs / 2), atol=1e-6)),
              f"max deviation {max(np.max(np.abs(res['flow|first_order'] + 1)), np.max(np.abs(res['flow|stable'] + 1 - lrs / 2))):.1e}"),
        Claim("noisy parabola: optimizer and stable SDE diverge in > 50% of runs just above 2/λ, never below",
              noisy_ok, f"at lr {first_above:g}: optimizer {res['share|discrete'][near_above][0]:.2f}, stable SDE "
                        f"{res['share|stable'][near_above][0]:.2f}"),
        Claim("first-order and classic second-order SDEs never diverge", never,
              f"max shares {res['share|first_order'].max():.2f}, {res['share|second_order'].max():.2f}"),
        Claim("quartic: GD diverges iff x0² > 2/η, the stable flow iff x0² > 2/(3η), the others never", quartic_ok,
              f"GD from x0 = {x0s[gd_q].min() if gd_q.any() else math.nan:g} (√(2/η) = {math.sqrt(2 / eta):.3f}), "
              f"stable from {x0s[st_q].min() if st_q.any() else math.nan:g} (√(2/(3η)) = "
              f"{math.sqrt(2 / (3 * eta)):.3f})"),
    ]
