"""Noise floors: the stationary loss of each optimizer against the gradient-noise scale σ (AISTATS message, [B]).

Claim (MATH.md §7.5–§7.7): DSGD and DCSGD floors grow like σ² (log-log slope 2 ± 0.1) and compression multiplies
them by about (1 + ω); the DSignSGD floor grows like σ (slope 1 ± 0.15). Each measured floor agrees with the theory
line (exact moment recursion for D(C)SGD; phase-3 linearization for DSignSGD) within 3 standard errors plus 3%.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

import sdesim
from experiments._common import Claim
from sdesim import compressors as C, methods as M, noise as Z, objectives as O, theory

CASES = {
    "DSGD": lambda lr: M.DSGD(lr, 4),
    "DCSGD Bernoulli(0.5), ω=1": lambda lr: M.DCSGD(lr, 4, compressor=C.Bernoulli(0.5)),
    "DCSGD Bernoulli(0.25), ω=3": lambda lr: M.DCSGD(lr, 4, compressor=C.Bernoulli(0.25)),
    "DSignSGD": lambda lr: M.DSignSGD(lr, 4),
}


@dataclass(frozen=True)
class Config:
    sigmas: tuple = (0.3, 0.5, 0.8, 1.25, 2.0, 3.2)
    lr: float = 0.01
    steps: int = 8000
    runs: int = 2000
    burn_in: float = 0.5
    seed: int = 0


QUICK = Config(sigmas=(0.5, 1.0, 2.0), steps=3000, runs=500)


def run(cfg: Config) -> dict:
    f = O.Quadratic(h=[1.0, 2.0])
    x0 = torch.zeros(2, dtype=torch.float64)
    out = {"sigmas": np.array(cfg.sigmas)}
    for ci, (name, make) in enumerate(CASES.items()):
        est, se, th = [], [], []
        for si, sig in enumerate(cfg.sigmas):
            method, z = make(cfg.lr), Z.Gaussian(sig)
            tr = sdesim.run_discrete(method, f, z, x0, steps=cfg.steps, runs=cfg.runs, seed=cfg.seed + 10 * ci + si,
                                     record_every=10)
            e, s = tr.stationary(burn_in=cfg.burn_in)
            est.append(e)
            se.append(s)
            th.append(theory.stationary_loss(method, f, z, model="discrete"))
        out[name + "|floor"], out[name + "|se"], out[name + "|theory"] = map(np.array, (est, se, th))
        out[name + "|slope"] = float(np.polyfit(np.log(cfg.sigmas), np.log(est), 1)[0])
    return out


def plot(res: dict, cfg: Config):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.8), layout="constrained")
    sig = res["sigmas"]
    for i, name in enumerate(CASES):
        ax.errorbar(sig, res[name + "|floor"], yerr=2 * res[name + "|se"], fmt="o", color=f"C{i}", capsize=3,
                    label=f"{name}: slope {res[name + '|slope']:.2f}")
        ax.plot(sig, res[name + "|theory"], color=f"C{i}", linestyle="--", linewidth=1)
    ax.plot([], [], "k--", linewidth=1, label="theory (MATH.md §7.6–§7.7)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("noise scale σ")
    ax.set_ylabel("stationary loss E f − f*")
    ax.set_title(f"noise floors on a quadratic (lr = {cfg.lr}, N = 4): σ² for D(C)SGD, σ for DSignSGD", fontsize=9)
    ax.legend(fontsize=8)
    return fig


def check(res: dict, cfg: Config) -> list[Claim]:
    slopes = {n: res[n + "|slope"] for n in CASES}
    dev = {n: float(np.max((np.abs(res[n + "|floor"] - res[n + "|theory"]) - 3 * res[n + "|se"])
                           / res[n + "|theory"])) for n in CASES}
    ratio = res["DCSGD Bernoulli(0.25), ω=3|floor"] / res["DSGD|floor"]
    return [
        Claim("D(C)SGD floors grow like σ² (slope 2 ± 0.1)",
              all(abs(slopes[n] - 2) <= 0.1 for n in CASES if n != "DSignSGD"),
              ", ".join(f"{n} {slopes[n]:.3f}" for n in CASES if n != "DSignSGD")),
        Claim("DSignSGD floor grows like σ (slope 1 ± 0.15)", abs(slopes["DSignSGD"] - 1) <= 0.15,
              f"slope {slopes['DSignSGD']:.3f}"),
        Claim("compression with ω = 3 multiplies the DSGD floor by about 1 + ω = 4 (between 3.5 and 5)",
              bool(np.all((ratio > 3.5) & (ratio < 5))), ", ".join(f"{r:.2f}" for r in ratio)),
        Claim("floors agree with theory within 3 SE + 3%", all(v <= 0.03 for v in dev.values()),
              ", ".join(f"{n} {100 * max(v, 0):.1f}%" for n, v in dev.items())),
    ]
