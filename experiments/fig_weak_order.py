"""Weak order: the weak error max_k |E f(x_k) − E f(X_{k·lr})| against the learning rate, on log-log axes.

Claim: the first-order SDEs are weak approximations of order 1 (MATH.md §2.1): the fitted log-log slope of the weak
error against lr is 1 within ±0.25 for DSGD, DCSGD (Rand-k, Bernoulli, QSGD) and DSignSGD (Gaussian and Student-t
noise). The SDE is resolved with Euler substeps (with one substep and Gaussian noise, Euler on the DSGD SDE is DSGD
itself, MATH.md §10.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

import sdesim
from experiments._common import Claim
from sdesim import compressors as C, methods as M, noise as Z, objectives as O

CASES = {
    "DSGD": (lambda lr: M.DSGD(lr, 2), Z.Gaussian(0.3)),
    "DCSGD Rand-1": (lambda lr: M.DCSGD(lr, 2, compressor=C.RandK(1)), Z.Gaussian(0.3)),
    "DCSGD Bernoulli(0.5)": (lambda lr: M.DCSGD(lr, 2, compressor=C.Bernoulli(0.5)), Z.Gaussian(0.3)),
    "DCSGD QSGD(1)": (lambda lr: M.DCSGD(lr, 2, compressor=C.QSGD(1)), Z.Gaussian(0.3)),
    "DSignSGD Gaussian": (lambda lr: M.DSignSGD(lr, 2), Z.Gaussian(1.0)),
    "DSignSGD t(ν=3)": (lambda lr: M.DSignSGD(lr, 2), Z.StudentT(3.0, 1.0)),
}


@dataclass(frozen=True)
class Config:
    lrs: tuple = (0.1, 0.05, 0.025, 0.0125)
    time: float = 2.0
    runs: int = 100_000
    substeps: int = 8
    seed: int = 0


QUICK = Config(lrs=(0.1, 0.05, 0.025), runs=40_000, substeps=4)


def run(cfg: Config) -> dict:
    f = O.Quadratic(h=[1.0, 2.0])
    x0 = torch.tensor([1.0, -1.0], dtype=torch.float64)
    out = {"lrs": np.array(cfg.lrs)}
    for ci, (name, (make, z)) in enumerate(CASES.items()):
        err, se = [], []
        for i, lr in enumerate(cfg.lrs):
            steps = int(round(cfg.time / lr))
            seed = cfg.seed + 100 * ci + 2 * i
            d = sdesim.run_discrete(make(lr), f, z, x0, steps=steps, runs=cfg.runs, seed=seed)
            s = sdesim.simulate(make(lr), f, z, x0, steps=steps, paths=cfg.runs, seed=seed + 1,
                                substeps=cfg.substeps)
            c = sdesim.compare(d, s)
            err.append(c.weak_error)
            se.append(float(np.max(np.hypot(c.halfwidth_a, c.halfwidth_b))) / 1.96)
        out[name + "|err"], out[name + "|se"] = np.array(err), np.array(se)
        out[name + "|slope"] = float(np.polyfit(np.log(cfg.lrs), np.log(err), 1)[0])
    return out


def plot(res: dict, cfg: Config):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.8), layout="constrained")
    lrs = res["lrs"]
    for i, name in enumerate(CASES):
        err, se = res[name + "|err"], res[name + "|se"]
        ax.errorbar(lrs, err, yerr=2 * se, marker="o", color=f"C{i}", capsize=3,
                    label=f"{name}: slope {res[name + '|slope']:.2f}")
    ref = res["DSGD|err"][0] * (lrs / lrs[0])
    ax.plot(lrs, ref, "k:", label="slope 1")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(lrs, [f"{v:g}" for v in lrs])
    ax.minorticks_off()
    ax.set_xlabel("learning rate")
    ax.set_ylabel("weak error max_t |mean loss: optimizer − SDE|")
    ax.set_title(f"weak order ({cfg.runs} runs per side, {cfg.substeps} SDE substeps, bars ±2 SE)", fontsize=9)
    ax.legend(fontsize=8)
    return fig


def check(res: dict, cfg: Config) -> list[Claim]:
    slopes = {name: res[name + "|slope"] for name in CASES}
    above = {name: float(np.min(res[name + "|err"] / res[name + "|se"])) for name in CASES}
    return [
        Claim("weak-error slope within 1 ± 0.25 for every method", all(abs(s - 1) <= 0.25 for s in slopes.values()),
              ", ".join(f"{n} {s:.3f}" for n, s in slopes.items())),
        Claim("weak errors stand above Monte Carlo error (≥ 4 SE)", all(v >= 4 for v in above.values()),
              ", ".join(f"{n} {v:.0f} SE" for n, v in above.items())),
    ]
