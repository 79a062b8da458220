"""Heavy tails on a network (MATH.md §8.1 E2): an MLP on digits trained by DSignSGD and by DCSGD (Rand-k, ω = 1)
under injected Cauchy noise (Student-t, ν = 1) of scales σ, with a constant learning rate and with 1/√(k+1).

Claim: DSignSGD trains under Cauchy noise with both schedules (its mean training loss ends below the initial loss for
every σ: the sign bounds each update), while DCSGD under the same noise is thrown off (its median loss ends above the
initial loss for every σ and schedule). Over this horizon the constant rate is ahead of 1/√(k+1) for DSignSGD (the
decaying schedule's advantage, a lower plateau, needs far longer runs on a network than on the quadratic of the
heavy_tails figure).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import sdesim
from experiments._common import Claim
from sdesim import compressors as C, data, methods as M, nets, noise as Z, objectives as O, schedules as S

SCHEDULES = {"constant": None, "1/√(k+1)": S.InvSqrt()}


@dataclass(frozen=True)
class Config:
    sigmas: tuple = (0.3, 1.0)
    sign_lr: float = 0.01
    dcsgd_lr: float = 0.2
    steps: int = 1000
    runs: int = 16
    seed: int = 0


QUICK = Config(steps=150, runs=6)


def run(cfg: Config) -> dict:
    ds = data.digits(seed=0)
    f = O.Network(nets.mlp(64, 10, (16,), seed=0), ds.x_train, ds.y_train)
    fams = {"DSignSGD": lambda s: M.DSignSGD(cfg.sign_lr, 4, schedule=s),
            "DCSGD Rand-k": lambda s: M.DCSGD(cfg.dcsgd_lr, 4, compressor=C.RandK(f.dim // 2), schedule=s)}
    out = {"f0": f.loss(f.x0[None]).item()}
    i = 0
    for fam, make in fams.items():
        for sig in cfg.sigmas:
            for sname, sch in SCHEDULES.items():
                tr = sdesim.run_discrete(make(sch), f, Z.StudentT(1.0, sig), f.x0, steps=cfg.steps, runs=cfg.runs,
                                         seed=cfg.seed + i, record_every=max(1, cfg.steps // 50))
                i += 1
                key = f"{fam}|{sig}|{sname}"
                out[key + "|k"] = tr.step
                out[key + "|stat"] = tr.statistic
                out[key + "|q"] = (tr.quantiles([0.25, 0.5, 0.75]) if tr.statistic == "median"
                                   else np.stack(tr.band()))[[0, 1, 2] if tr.statistic == "median" else [1, 0, 2]]
    return out


def plot(res: dict, cfg: Config):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for ax, fam in zip(axes, ("DSignSGD", "DCSGD Rand-k")):
        for i, sig in enumerate(cfg.sigmas):
            for sname, style in zip(SCHEDULES, ("--", "-")):
                key = f"{fam}|{sig}|{sname}"
                lo, c, hi = res[key + "|q"]
                ax.plot(res[key + "|k"], c, color=f"C{i}", linestyle=style, label=f"σ = {sig}, {sname}")
                ax.fill_between(res[key + "|k"], lo, hi, color=f"C{i}", alpha=0.15, linewidth=0)
        stat = res[f"{fam}|{cfg.sigmas[0]}|constant|stat"]
        ax.axhline(res["f0"], color="0.5", linewidth=0.8, linestyle=":", label="initial loss")
        ax.set_yscale("log")
        ax.set_xlabel("iteration k")
        ax.set_ylabel("mean training loss (95% band)" if stat == "mean" else "median training loss (quartiles)")
        ax.set_title(f"{fam} under Cauchy noise, MLP on digits, N = 4", fontsize=9)
        ax.legend(fontsize=7)
    return fig


def check(res: dict, cfg: Config) -> list[Claim]:
    def final(fam, sig, sname):
        return float(res[f"{fam}|{sig}|{sname}|q"][1][-1])

    f0 = res["f0"]
    sign = {(s, k): final("DSignSGD", s, k) for s in cfg.sigmas for k in SCHEDULES}
    dcsgd = {(s, k): final("DCSGD Rand-k", s, k) for s in cfg.sigmas for k in SCHEDULES}
    fmt = lambda d: ", ".join(f"σ={s} {k}: {v:.3g}" for (s, k), v in d.items())  # noqa: E731
    return [
        Claim(f"DSignSGD ends below the initial loss {f0:.3g} for every σ and schedule",
              all(v < f0 for v in sign.values()), fmt(sign)),
        Claim("DCSGD's median loss ends above the initial loss for every σ and schedule",
              all(v > f0 for v in dcsgd.values()), fmt(dcsgd)),
    ]
