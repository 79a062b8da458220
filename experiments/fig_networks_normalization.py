"""Normalization on a network (MATH.md §8.1 E1): an MLP on digits trained by DCSGD with N = 8 agents, Bernoulli
compression of growing ω and multiplicative noise N(0, σ²||∇f||² I), with a constant learning rate, with the
adaptive normalization of [A] v2 Eq. 15 (L0 from power iteration on Hessian-vector products at x0, L1 = 1), and with
plain normalized SGD.

Claim: the adaptive normalization never diverges and lowers the training loss for every ω. Whether the constant rate
diverges as ω grows (the E1 message) is reported whichever way it goes: this MLP's curvature is small and shrinks as
the multiplicative noise fades with ||∇f||, so the second-moment instability of the quadratic picture need not show.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

import sdesim
from experiments._common import Claim
from sdesim import compressors as C, data, methods as M, nets, noise as Z, objectives as O


@dataclass(frozen=True)
class Config:
    ps: tuple = (1.0, 0.1, 0.02)
    sigma: float = 0.05
    lr: float = 1.6
    normalized_lr: float = 0.2
    steps: int = 200
    runs: int = 16
    seed: int = 0


QUICK = Config(steps=40, runs=6)


def _lambda_max(f, iters=30):
    v = torch.randn(f.dim, dtype=f.x0.dtype, generator=torch.Generator().manual_seed(0))
    lam = 0.0
    for _ in range(iters):
        v = f.hvp(f.x0[None], v[None])[0]
        lam = float(v.norm())
        v = v / lam
    return lam


def run(cfg: Config) -> dict:
    ds = data.digits(seed=0)
    f = O.Network(nets.mlp(64, 10, (16,), seed=0), ds.x_train, ds.y_train)
    l0 = _lambda_max(f)
    z = Z.Affine(0.0, cfg.sigma)
    out = {"omegas": np.array([1 / p - 1 for p in cfg.ps]), "f0": f.loss(f.x0[None]).item(), "L0": l0}
    for i, p in enumerate(cfg.ps):
        comp = C.Bernoulli(p)
        methods = {"constant lr": M.DCSGD(cfg.lr, 8, compressor=comp),
                   "adaptive normalization": M.AdaptiveDCSGD(1.0, 8, compressor=comp, smoothness=(l0, 1.0),
                                                             sigma1=cfg.sigma),
                   "plain normalized": M.NormalizedDCSGD(cfg.normalized_lr, 8, compressor=comp)}
        for j, (name, method) in enumerate(methods.items()):
            tr = sdesim.run_discrete(method, f, z, f.x0, steps=cfg.steps, runs=cfg.runs, seed=cfg.seed + 10 * i + j,
                                     record_every=max(1, cfg.steps // 40), divergence_threshold=1e4)
            key = f"{name}|{p}"
            out[key + "|k"] = tr.step
            out[key + "|diverged"] = tr.diverged_share
            vals = tr.values()
            out[key + "|median"] = np.median(vals, 0) if len(vals) else np.full(len(tr.step), np.nan)
    return out


def plot(res: dict, cfg: Config):
    import matplotlib.pyplot as plt

    names = ("constant lr", "adaptive normalization", "plain normalized")
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), layout="constrained", sharey=True)
    for ax, name in zip(axes, names):
        for i, (p, w) in enumerate(zip(cfg.ps, res["omegas"])):
            key = f"{name}|{p}"
            ax.plot(res[key + "|k"], res[key + "|median"], color=f"C{i}",
                    label=f"ω = {w:g} ({100 * res[key + '|diverged']:.0f}% diverged)")
        ax.axhline(res["f0"], color="0.5", linestyle=":", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("iteration k")
        ax.set_title(f"DCSGD, {name}", fontsize=9)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("median training loss (runs that did not diverge)")
    fig.suptitle(f"MLP on digits, N = 8, noise N(0, σ²||∇f||² I), σ = {cfg.sigma}; constant lr {cfg.lr}, plain "
                 f"normalized lr {cfg.normalized_lr}, adaptive with L0 = {res['L0']:.3g}, L1 = 1", fontsize=9)
    return fig


def check(res: dict, cfg: Config) -> list[Claim]:
    def final(name):
        return [float(res[f"{name}|{p}|median"][-1]) for p in cfg.ps]

    shares = [res[f"constant lr|{p}|diverged"] for p in cfg.ps]
    adaptive = final("adaptive normalization")
    return [
        Claim("adaptive normalization: no run diverges and the loss ends below its initial value, for every ω",
              all(res[f"adaptive normalization|{p}|diverged"] == 0 for p in cfg.ps)
              and all(v < res["f0"] for v in adaptive),
              "final median loss " + ", ".join(f"ω={w:g}: {v:.3g}" for w, v in zip(res["omegas"], adaptive))),
        Claim("constant lr: the diverged share grows with ω and is ≥ 1/2 at the largest ω",
              bool(shares[-1] >= 0.5 and np.all(np.diff(shares) >= 0)),
              "diverged " + ", ".join(f"ω={w:g}: {s:.2f}" for w, s in zip(res["omegas"], shares)) + "; final median "
              + ", ".join(f"{v:.3g}" for v in final("constant lr")), required=False),
    ]
