"""Schedules under heavy tails: DSignSGD under Cauchy noise (Student-t, ν = 1) with a constant learning rate and
with η_k = 1/√(k+1), for several noise scales σ, beside DSGD and DCSGD under the same noise and schedules
(MATH.md §7.3–§7.4, §8.1 E2).

Claim: with the decaying schedule DSignSGD converges (its final mean loss falls below a quarter of its
constant-lr plateau for every σ), while the constant lr leaves a plateau of size O(ησ); DSGD and DCSGD, whose losses
have no mean under Cauchy noise and are summarised by medians and quartiles, do not converge with the same decaying
schedule (final median at least half of the constant-lr one, for every σ).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

import sdesim
from experiments._common import Claim, band
from sdesim import compressors as C, methods as M, noise as Z, objectives as O, schedules as S

FAMILIES = {
    "DSignSGD": lambda lr, sch: M.DSignSGD(lr, 4, schedule=sch),
    "DSGD": lambda lr, sch: M.DSGD(lr, 4, schedule=sch),
    "DCSGD Rand-1": lambda lr, sch: M.DCSGD(lr, 4, compressor=C.RandK(1), schedule=sch),
}
SCHEDULES = {"constant": None, "1/√(k+1)": S.InvSqrt()}


@dataclass(frozen=True)
class Config:
    sigmas: tuple = (0.5, 1.0, 2.0)
    lr: float = 0.1
    steps: int = 20_000
    runs: int = 1000
    seed: int = 0


QUICK = Config(steps=3000, runs=200)


def run(cfg: Config) -> dict:
    f = O.Quadratic(h=[1.0, 2.0])
    x0 = torch.tensor([1.0, -1.0], dtype=torch.float64)
    out = {"sigmas": np.array(cfg.sigmas)}
    every = max(1, cfg.steps // 500)
    for fi, (fam, make) in enumerate(FAMILIES.items()):
        for si, sig in enumerate(cfg.sigmas):
            for ki, (sname, sch) in enumerate(SCHEDULES.items()):
                tr = sdesim.run_discrete(make(cfg.lr, sch), f, Z.StudentT(1.0, sig), x0, steps=cfg.steps,
                                         runs=cfg.runs, seed=cfg.seed + 100 * fi + 10 * si + ki, record_every=every)
                key = f"{fam}|{sig}|{sname}"
                out[key + "|k"] = tr.step
                out[key + "|band"] = np.stack(band(tr))
                out[key + "|quartiles"] = tr.quantiles([0.25, 0.5, 0.75])
                out[key + "|statistic"] = tr.statistic
                out[key + "|diverged"] = tr.diverged_share
    return out


def plot(res: dict, cfg: Config):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(FAMILIES), figsize=(5.2 * len(FAMILIES), 4.4), layout="constrained")
    for ax, fam in zip(axes, FAMILIES):
        for si, sig in enumerate(cfg.sigmas):
            for sname, style in zip(SCHEDULES, ("--", "-")):
                key = f"{fam}|{sig}|{sname}"
                k = np.maximum(res[key + "|k"], 1)
                if res[key + "|statistic"] == "mean":
                    c, lo, hi = res[key + "|band"]
                else:
                    lo, c, hi = res[key + "|quartiles"]
                ax.plot(k, c, color=f"C{si}", linestyle=style, label=f"σ = {sig}, {sname}")
                ax.fill_between(k, lo, hi, color=f"C{si}", alpha=0.15, linewidth=0)
        stat = res[f"{fam}|{cfg.sigmas[0]}|constant|statistic"]
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("iteration k")
        ax.set_ylabel("mean loss (95% band)" if stat == "mean" else "median loss (quartile band; no mean exists)")
        ax.set_title(f"{fam} under Cauchy noise (ν = 1), lr = {cfg.lr}, N = 4", fontsize=9)
        ax.legend(fontsize=7)
    return fig


def check(res: dict, cfg: Config) -> list[Claim]:
    def final(fam, sig, sname):
        key = f"{fam}|{sig}|{sname}"
        return res[key + "|band"][0][-1] if res[key + "|statistic"] == "mean" else res[key + "|quartiles"][1][-1]

    sign = {s: final("DSignSGD", s, "1/√(k+1)") / final("DSignSGD", s, "constant") for s in cfg.sigmas}
    stuck = {(fam, s): final(fam, s, "1/√(k+1)") / final(fam, s, "constant")
             for fam in ("DSGD", "DCSGD Rand-1") for s in cfg.sigmas}
    stats = {fam: str(res[f"{fam}|{cfg.sigmas[0]}|constant|statistic"]) for fam in FAMILIES}
    return [
        Claim("DSignSGD with 1/√(k+1) ends below 1/4 of its constant-lr plateau, for every σ",
              all(r < 0.25 for r in sign.values()), ", ".join(f"σ={s}: ×{r:.3f}" for s, r in sign.items())),
        Claim("DSGD and DCSGD with 1/√(k+1) do not converge (final median ≥ 1/2 of the constant-lr one)",
              all(r >= 0.5 for r in stuck.values()), ", ".join(f"{f} σ={s}: ×{r:.2f}" for (f, s), r in stuck.items())),
        Claim("DSGD/DCSGD are summarised by medians, DSignSGD by means",
              stats == {"DSignSGD": "mean", "DSGD": "median", "DCSGD Rand-1": "median"}, str(stats)),
    ]
