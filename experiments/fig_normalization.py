"""Normalization (MATH.md §7.2, §7.4, §8.1 E1): DCSGD with a constant learning rate against the adaptive
normalization of v2 Eq. 15 and plain normalized SGD, as the compression ω grows, on the (L0,L1)-smooth Σ cosh(2x)
with multiplicative noise N(0, σ²||∇f||² I) and N = 8 agents (Bernoulli compression, ω = 1/p − 1).

Claim: with a constant lr the share of diverging runs grows with ω (none without compression, at least half at the
largest ω), in the optimizer and in its SDE (plug-in normalization, first order); the adaptive normalization never
diverges and converges for every ω (final median loss ≤ 1e-6 of the initial one); plain normalized SGD does not
diverge here but stalls on a plateau set by its fixed step, which rises with ω.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

import sdesim
from experiments._common import Claim
from sdesim import compressors as C, methods as M, noise as Z, objectives as O

F = O.CoshSum(a=2.0)
_FLOOR = 1e-16  # display floor: with multiplicative noise the converging runs reach exactly 0


def methods(cfg, p):
    comp = C.Bernoulli(p)
    return {
        "constant lr": M.DCSGD(cfg.lr, 8, compressor=comp),
        "adaptive normalization": M.AdaptiveDCSGD(1.0, 8, compressor=comp, smoothness=F.smoothness, sigma0=0.0,
                                                  sigma1=cfg.sigma, eps=0.5),
        "plain normalized": M.NormalizedDCSGD(cfg.normalized_lr, 8, compressor=comp),
    }


@dataclass(frozen=True)
class Config:
    ps: tuple = (1.0, 0.5, 0.2, 0.1, 0.05)
    d: int = 10
    x0: float = 1.0
    sigma: float = 0.3
    lr: float = 0.3
    normalized_lr: float = 0.05
    steps: int = 300
    runs: int = 1000
    seed: int = 0


QUICK = Config(steps=250, runs=150)


def run(cfg: Config) -> dict:
    z = Z.Affine(0.0, cfg.sigma)
    x0 = torch.full((cfg.d,), cfg.x0, dtype=torch.float64)
    out = {"omegas": np.array([1 / p - 1 for p in cfg.ps]), "f0": F.loss(x0).item()}
    for pi, p in enumerate(cfg.ps):
        for mi, (name, method) in enumerate(methods(cfg, p).items()):
            kw = dict(steps=cfg.steps, seed=cfg.seed + 10 * pi + 2 * mi, record_every=10, divergence_threshold=1e6)
            for side, tr in (("discrete", sdesim.run_discrete(method, F, z, x0, runs=cfg.runs, **kw)),
                             ("sde", sdesim.simulate(method, F, z, x0, paths=cfg.runs, **kw))):
                key = f"{name}|{p}|{side}"
                out[key + "|k"] = tr.step
                out[key + "|diverged"] = tr.diverged_share
                vals = tr.values("loss")
                out[key + "|quartiles"] = (np.quantile(vals, [0.25, 0.5, 0.75], axis=0) if len(vals)
                                           else np.full((3, len(tr.step)), np.nan))
    return out


def plot(res: dict, cfg: Config):
    import matplotlib.pyplot as plt

    names = list(methods(cfg, 1.0))
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.6), layout="constrained")
    for ax, name in zip(axes[:3], names):
        for i, (p, w) in enumerate(zip(cfg.ps, res["omegas"])):
            key = f"{name}|{p}"
            k = res[key + "|discrete|k"]
            lo, med, hi = np.maximum(res[key + "|discrete|quartiles"] / res["f0"], _FLOOR)
            dv = res[key + "|discrete|diverged"]
            ax.plot(k, med, color=f"C{i}", label=f"ω = {w:g} ({100 * dv:.0f}% diverged)")
            ax.fill_between(k, lo, hi, color=f"C{i}", alpha=0.15, linewidth=0)
            ax.plot(k, np.maximum(res[key + "|sde|quartiles"][1] / res["f0"], _FLOOR), color=f"C{i}",
                    linestyle="--", linewidth=1)
        ax.set_yscale("log")
        ax.set_ylim(_FLOOR / 3, 3.0)
        ax.set_xlabel("iteration k")
        ax.set_title(f"DCSGD, {name}" + (f" (lr = {cfg.lr})" if name == "constant lr" else
                                         f" (lr = {cfg.normalized_lr})" if name == "plain normalized" else ""),
                     fontsize=9)
        ax.legend(fontsize=7, title="optimizer; dashed: SDE", title_fontsize=7)
    axes[0].set_ylabel(f"median loss / initial (quartiles; survivors; ≥ {_FLOOR:g})")
    ax = axes[3]
    w = res["omegas"]
    for i, name in enumerate(names):
        for side, style in (("discrete", "-o"), ("sde", "--x")):
            share = [res[f"{name}|{p}|{side}|diverged"] for p in cfg.ps]
            ax.plot(w, share, style, color=f"C{i}", label=f"{name} ({'optimizer' if side == 'discrete' else 'SDE'})")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel("ω (Bernoulli compression, ω = 1/p − 1)")
    ax.set_ylabel("share of runs diverged")
    ax.set_title("divergence against compression", fontsize=9)
    ax.legend(fontsize=7)
    fig.suptitle(f"Σ cosh(2x), d = {cfg.d}, noise N(0, σ²||∇f||² I) with σ = {cfg.sigma}, N = 8 agents, "
                 f"{cfg.runs} runs", fontsize=10)
    return fig


def check(res: dict, cfg: Config) -> list[Claim]:
    def share(name, side):
        return np.array([res[f"{name}|{p}|{side}|diverged"] for p in cfg.ps])

    def final(name):
        return np.array([res[f"{name}|{p}|discrete|quartiles"][1][-1] for p in cfg.ps]) / res["f0"]

    const = {side: share("constant lr", side) for side in ("discrete", "sde")}
    const_ok = all(v[0] == 0 and v[-1] >= 0.5 and np.all(np.diff(v) >= -0.05) for v in const.values())
    adaptive_final = final("adaptive normalization")
    plain_final = final("plain normalized")
    return [
        Claim("constant lr: diverged share grows with ω, 0 at ω = 0 and ≥ 1/2 at the largest ω (optimizer and SDE)",
              bool(const_ok), "; ".join(f"{side}: " + ", ".join(f"{v:.2f}" for v in vals)
                                        for side, vals in const.items())),
        Claim("adaptive normalization: no divergence and final median loss ≤ 1e-6 × initial, for every ω",
              bool(np.all(share("adaptive normalization", "discrete") == 0) and np.all(adaptive_final <= 1e-6)),
              "final/initial: " + ", ".join(f"{v:.1e}" for v in adaptive_final)),
        Claim("plain normalized: no divergence, a plateau ≥ 1e-5 × initial that rises with ω",
              bool(np.all(share("plain normalized", "discrete") == 0) and np.all(plain_final >= 1e-5)
                   and np.all(np.diff(plain_final) > 0)),
              "final/initial: " + ", ".join(f"{v:.1e}" for v in plain_final)),
    ]
