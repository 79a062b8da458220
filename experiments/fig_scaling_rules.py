"""Scaling rules: settings that the rules of MATH.md §7.5 ([B], derived [D]) say are equivalent collapse onto one
curve; settings that change only one knob do not.

Claim: (left) DCSGD with Rand-1 (ω = 3) scaled by any of the three rules η̃(1+ω)/(B̃Ñ) = η/(BN) (lr ÷ (1+ω),
batch × (1+ω), agents × (1+ω)) reaches the DSGD noise floor within 15%, while unscaled DCSGD sits (1+ω)× higher;
(right) DSignSGD scaled by B → κB, η → η/√κ, N → N/κ (κ = 4), started in phase 3 (|∇f| < σ) where the rule is
derived, follows the reference curve against the iteration count within 10% beyond Monte Carlo error, while
changing only N or only η does not (≥ 30% apart).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

import sdesim
from experiments._common import Claim, band
from sdesim import compressors as C, methods as M, noise as Z, objectives as O, theory


@dataclass(frozen=True)
class Config:
    time: float = 30.0  # SDE time of the DCSGD panel
    sign_steps: int = 1500
    runs: int = 2000
    seed: int = 0


QUICK = Config(time=20.0, sign_steps=800, runs=400)


def _dcsgd(cfg):
    f, z, d = O.Quadratic(h=[1.0, 2.0, 1.5, 0.5]), Z.Gaussian(0.5), 4
    dsgd, comp = M.DSGD(0.05, 2), C.RandK(1)
    x0 = torch.ones(d, dtype=torch.float64)
    settings = {"DSGD (reference)": (dsgd, z), "DCSGD unscaled": (M.DCSGD(0.05, 2, compressor=comp), z)}
    for by in ("lr", "batch", "agents"):
        rule = theory.dcsgd_scaling_rule(dsgd, comp, d=d, by=by)
        settings[f"DCSGD, {by} rule"] = (rule.method, rule.noise(z))
    out = {}
    for i, (name, (method, noise)) in enumerate(settings.items()):
        steps = int(round(cfg.time / method.lr))
        tr = sdesim.run_discrete(method, f, noise, x0, steps=steps, runs=cfg.runs, seed=cfg.seed + i,
                                 record_every=max(1, steps // 200))
        out[f"dcsgd|{name}|t"] = tr.t
        out[f"dcsgd|{name}|band"] = np.stack(band(tr))
        out[f"dcsgd|{name}|floor"] = np.array(tr.stationary(burn_in=0.5))
        out[f"dcsgd|{name}|theory"] = theory.stationary_loss(method, f, noise, model="discrete")
    return out


def _dsignsgd(cfg):
    f, z = O.Quadratic(h=[1.0, 2.0]), Z.Gaussian(1.0)
    base = M.DSignSGD(0.02, 4)
    rule = theory.dsignsgd_scaling_rule(base, 4.0)
    settings = {"DSignSGD η=0.02, N=4 (reference)": (base, z),
                "rule κ=4: η=0.01, N=1, batch ×4": (rule.method, rule.noise(z)),
                "N=1 only": (M.DSignSGD(0.02, 1), z),
                "η=0.01 only": (M.DSignSGD(0.01, 4), z)}
    x0 = torch.tensor([0.2, -0.2], dtype=torch.float64)  # |∇f|/σ < 1: phase 3, where the rule is derived
    out = {}
    for i, (name, (method, noise)) in enumerate(settings.items()):
        tr = sdesim.run_discrete(method, f, noise, x0, steps=cfg.sign_steps, runs=cfg.runs, seed=cfg.seed + 10 + i,
                                 record_every=10)
        out[f"sign|{name}|k"] = tr.step
        out[f"sign|{name}|band"] = np.stack(band(tr))
    return out


def run(cfg: Config) -> dict:
    return {**_dcsgd(cfg), **_dsignsgd(cfg)}


def _names(res, prefix):
    return [k.split("|")[1] for k in res if k.startswith(prefix + "|") and k.endswith("|band")]


def plot(res: dict, cfg: Config):
    import matplotlib.pyplot as plt

    fig, (a0, a1) = plt.subplots(1, 2, figsize=(12, 4.6), layout="constrained")
    for i, name in enumerate(_names(res, "dcsgd")):
        c, lo, hi = res[f"dcsgd|{name}|band"]
        t = res[f"dcsgd|{name}|t"]
        a0.plot(t, c, color=f"C{i}", label=name, linestyle="-" if i != 1 else "--")
        a0.fill_between(t, lo, hi, color=f"C{i}", alpha=0.2, linewidth=0)
        a0.axhline(res[f"dcsgd|{name}|theory"], color=f"C{i}", linestyle=":", linewidth=0.8)
    a0.set_yscale("log")
    a0.set_xlabel("t = k·lr")
    a0.set_ylabel("mean loss (95% band); dotted: theory floors")
    a0.set_title("DCSGD (Rand-1, ω = 3) under the three scaling rules vs DSGD", fontsize=9)
    a0.legend(fontsize=8)
    for i, name in enumerate(_names(res, "sign")):
        c, lo, hi = res[f"sign|{name}|band"]
        k = res[f"sign|{name}|k"]
        a1.plot(k, c, color=f"C{i}", label=name, linestyle="-" if i < 2 else "--")
        a1.fill_between(k, lo, hi, color=f"C{i}", alpha=0.2, linewidth=0)
    a1.set_yscale("log")
    a1.set_xlabel("iteration k")
    a1.set_ylabel("mean loss (95% band)")
    a1.set_title("DSignSGD: B → κB, η → η/√κ, N → N/κ keeps the curve", fontsize=9)
    a1.legend(fontsize=8)
    return fig


def check(res: dict, cfg: Config) -> list[Claim]:
    ref = res["dcsgd|DSGD (reference)|floor"][0]
    rules = {n: res[f"dcsgd|{n}|floor"][0] / ref for n in _names(res, "dcsgd") if "rule" in n}
    unscaled = res["dcsgd|DCSGD unscaled|floor"][0] / ref
    base, blo, bhi = res["sign|DSignSGD η=0.02, N=4 (reference)|band"]

    def gap(name):  # largest relative gap beyond 3 combined standard errors
        c, lo, hi = res[f"sign|{name}|band"]
        se = np.hypot(hi - lo, bhi - blo) / 3.92
        return float(np.max(np.maximum(np.abs(c - base) - 3 * se, 0.0) / base))

    others = {n: gap(n) for n in ("N=1 only", "η=0.01 only")}
    rule_gap = gap("rule κ=4: η=0.01, N=1, batch ×4")
    return [
        Claim("each DCSGD rule reaches the DSGD floor within 15%", all(abs(r - 1) <= 0.15 for r in rules.values()),
              ", ".join(f"{n}: ×{r:.3f}" for n, r in rules.items())),
        Claim("unscaled DCSGD floor is about (1+ω)× = 4× higher (≥ 3)", unscaled >= 3, f"×{unscaled:.2f}"),
        Claim("DSignSGD rule curve within 10% (beyond 3 SE) of the reference at every recorded iteration",
              rule_gap <= 0.10,
              f"max relative gap {100 * rule_gap:.1f}%"),
        Claim("changing only N or only η moves the curve by ≥ 30%", all(g >= 0.3 for g in others.values()),
              ", ".join(f"{n}: {100 * g:.0f}%" for n, g in others.items())),
    ]
