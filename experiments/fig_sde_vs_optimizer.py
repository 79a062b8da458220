"""SDE vs optimizer: the mean loss of each method and of its first-order SDE, with 95% bands, over SDE time t = k·lr.

Claim: for DSGD, DCSGD (Rand-k and Bernoulli) and DSignSGD (Gaussian, Student-t ν = 1 and ν = 3), on a quadratic
and on the (L0,L1)-smooth Σ cosh, the SDE tracks the optimizer: the weak error (largest gap between the two mean
losses) is at most 5% of the initial loss, and the two means agree within their combined 95% interval at most
recorded times (lower rows: relative gap with that interval). On the quadratic the moment ODE of MATH.md §7.7 is
drawn too (D(C)SGD).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

import sdesim
from experiments._common import Claim, band
from sdesim import compressors as C, methods as M, noise as Z, objectives as O, theory

METHODS = {
    "DSGD": (lambda lr: M.DSGD(lr, 4), lambda s: Z.Gaussian(s)),
    "DCSGD Rand-1": (lambda lr: M.DCSGD(lr, 4, compressor=C.RandK(1)), lambda s: Z.Gaussian(s)),
    "DCSGD Bernoulli(0.5)": (lambda lr: M.DCSGD(lr, 4, compressor=C.Bernoulli(0.5)), lambda s: Z.Gaussian(s)),
    "DSignSGD Gaussian": (lambda lr: M.DSignSGD(lr, 4), lambda s: Z.Gaussian(s)),
    "DSignSGD t(ν=1)": (lambda lr: M.DSignSGD(lr, 4), lambda s: Z.StudentT(1.0, s)),
    "DSignSGD t(ν=3)": (lambda lr: M.DSignSGD(lr, 4), lambda s: Z.StudentT(3.0, s)),
}
OBJECTIVES = {"quadratic": O.Quadratic(h=[1.0, 2.0, 4.0]), "cosh (L0,L1)": O.CoshSum(a=2.0)}


@dataclass(frozen=True)
class Config:
    lr: float = 0.02
    sigma: float = 0.5
    time: float = 6.0  # SDE time t = k·lr covered
    runs: int = 4000
    record_every: int = 5
    seed: int = 0


QUICK = Config(runs=400, time=3.0, record_every=10)


def run(cfg: Config) -> dict:
    steps = int(round(cfg.time / cfg.lr))
    x0 = torch.tensor([1.0, -1.0, 0.8], dtype=torch.float64)
    out = {}
    for oi, (oname, f) in enumerate(OBJECTIVES.items()):
        for mi, (mname, (make, zf)) in enumerate(METHODS.items()):
            method, z = make(cfg.lr), zf(cfg.sigma)
            seed = cfg.seed + 100 * oi + 10 * mi
            d = sdesim.run_discrete(method, f, z, x0, steps=steps, runs=cfg.runs, seed=seed,
                                    record_every=cfg.record_every)
            s = sdesim.simulate(method, f, z, x0, steps=steps, paths=cfg.runs, seed=seed + 1,
                                record_every=cfg.record_every)
            key = f"{oname}|{mname}"
            out[key + "|t"] = d.t
            for side, tr in (("discrete", d), ("sde", s)):
                c, lo, hi = band(tr)
                out[f"{key}|{side}"] = np.stack([c, lo, hi])
            out[key + "|weak"] = sdesim.compare(d, s).weak_error
            out[key + "|overlap"] = sdesim.compare(d, s).ci_overlap
            if oname == "quadratic" and not method.sign_based:
                out[key + "|theory"] = theory.loss_curve(method, f, z, x0.numpy(), d.t)
    return out


def plot(res: dict, cfg: Config):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2 * len(OBJECTIVES), len(METHODS), figsize=(3.3 * len(METHODS), 10.5),
                             layout="constrained", squeeze=False, height_ratios=[2, 1] * len(OBJECTIVES))
    for i, oname in enumerate(OBJECTIVES):
        for j, mname in enumerate(METHODS):
            ax, gap_ax, key = axes[2 * i, j], axes[2 * i + 1, j], f"{oname}|{mname}"
            t = res[key + "|t"]
            (cd, lod, hid), (cs, los, his) = res[key + "|discrete"], res[key + "|sde"]
            with np.errstate(invalid="ignore", divide="ignore"):
                rel = (cs - cd) / cd
                half = np.hypot(hid - lod, his - los) / 2 / cd
            gap_ax.plot(t, 100 * rel, color="C2")
            gap_ax.fill_between(t, -100 * half, 100 * half, color="0.6", alpha=0.35, linewidth=0,
                                label="combined 95% interval")
            gap_ax.axhline(0.0, color="0.3", linewidth=0.6)
            gap_ax.set_ylabel("(SDE − opt.)/opt. %", fontsize=7)
            gap_ax.tick_params(labelsize=7)
            for side, color, style in (("discrete", "C0", "-"), ("sde", "C3", "--")):
                c, lo, hi = res[f"{key}|{side}"]
                ax.plot(t, c, color=color, linestyle=style, label="optimizer" if side == "discrete" else "SDE")
                ax.fill_between(t, lo, hi, color=color, alpha=0.25, linewidth=0)
            if key + "|theory" in res:
                ax.plot(t, res[key + "|theory"], color="k", linestyle=":", linewidth=1, label="moment ODE")
            ax.set_yscale("log")
            ax.set_title(f"{mname}\n{oname}: weak err {res[key + '|weak']:.2g}", fontsize=8)
            if i == len(OBJECTIVES) - 1:
                gap_ax.set_xlabel("t = k·lr")
            if j == 0:
                ax.set_ylabel("mean loss (95% band)")
            ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7)
    axes[1, 0].legend(fontsize=7)
    fig.suptitle(f"optimizer vs first-order SDE (lr = {cfg.lr}, σ = {cfg.sigma}, N = 4, {cfg.runs} runs each)",
                 fontsize=10)
    return fig


def check(res: dict, cfg: Config) -> list[Claim]:
    claims = []
    for oname in OBJECTIVES:
        rel = []
        for mname in METHODS:
            key = f"{oname}|{mname}"
            rel.append(res[key + "|weak"] / res[key + "|discrete"][0, 0])
        claims.append(Claim(f"{oname}: weak error ≤ 5% of the initial loss for every method",
                            bool(max(rel) <= 0.05),
                            ", ".join(f"{m} {100 * r:.2f}%" for m, r in zip(METHODS, rel))))
        over = [res[f"{oname}|{m}|overlap"] for m in METHODS]
        claims.append(Claim(f"{oname}: the two mean losses agree within their combined 95% interval at ≥ 80% of the "
                            "recorded times (95% if the laws were equal)", bool(min(over) >= 0.8),
                            ", ".join(f"{m} {100 * o:.0f}%" for m, o in zip(METHODS, over))))
    return claims
