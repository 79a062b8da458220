"""SDE vs optimizer on real networks: an MLP and a CNN trained on scikit-learn's 8×8 digits, for DSGD, DCSGD
(Rand-k, ω = 1) and DSignSGD, with injected Gaussian gradient noise and with real minibatch noise (B = 32).

Claim: with injected noise (for which the SDE's noise model is exact) the SDE's mean training loss is consistent with
the optimizer's at every recorded time (largest standardized gap: Bonferroni p ≥ 0.01) for every method and model;
the share of times at which the SDE mean lies inside the optimizer's 95% band, and the agreement under real minibatch
noise (where the SDE uses the minibatch covariance, and a Gaussian law of the minibatch coordinate for DSignSGD),
are reported whichever way they go. DSignSGD runs at lr/20, and on the MLP with injected noise also at lr/160 for 8×
the steps: its SDE needs a smaller lr to be inside the band (see the comment at METHODS). The SDE is integrated at the optimizer's step and, with injected noise, uses 8×
more paths than the optimizer has runs, so the band is the optimizer's (2× under minibatch noise, whose DSignSGD
SDE needs per-example gradient moments at every step).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import sdesim
from experiments._common import Claim, band
from sdesim import compressors as C, data, methods as M, nets, noise as Z, objectives as O

METHODS = {  # name: (method at the base lr, steps relative to the model's)
    "DSGD": (lambda lr, d: M.DSGD(lr, 4), 1),
    "DCSGD Rand-k (ω=1)": (lambda lr, d: M.DCSGD(lr, 4, compressor=C.RandK(d // 2)), 1),
    "DSignSGD": (lambda lr, d: M.DSignSGD(lr / 20, 4), 1),
}
# DSignSGD moves every coordinate by its lr per step, whatever the gradient's size; its first-order SDE has a weak
# error of order lr, and in units of the optimizer's band (whose width shrinks like √lr) of order √lr. At lr/20 the
# SDE runs ahead of the optimizer on the MLP by up to 2.7 standard errors; the MLP panel is repeated at lr/160 with
# 8× the steps (the same horizon in t), where the SDE's weak error is inside the band.
SMALL_SIGN = "DSignSGD lr/160"
SMALL_SIGN_METHOD = (lambda lr, d: M.DSignSGD(lr / 160, 4), 8)


@dataclass(frozen=True)
class Config:
    lr: float = 0.2
    sigma: float = 0.05
    batch: int = 32
    mlp_steps: int = 60
    mlp_runs: int = 64
    cnn_steps: int = 30
    cnn_runs: int = 16
    cnn_images: int = 512
    paths_per_run: int = 8
    minibatch_paths_per_run: int = 2  # the minibatch DSignSGD SDE needs per-example gradient moments: costly
    seed: int = 0


QUICK = Config(mlp_steps=15, mlp_runs=8, cnn_steps=6, cnn_runs=4, cnn_images=256, paths_per_run=4,
               minibatch_paths_per_run=1)


def _models(cfg):
    flat, img = data.digits(seed=0), data.digits(seed=0, image=True)
    mlp = O.Network(nets.mlp(64, 10, (16,), seed=0), flat.x_train, flat.y_train, test_inputs=flat.x_test,
                    test_targets=flat.y_test)
    k = cfg.cnn_images
    cnn = O.Network(nets.cnn8x8(channels=(4, 8), seed=0), img.x_train[:k], img.y_train[:k],
                    test_inputs=img.x_test, test_targets=img.y_test)
    return {"MLP 64-16-10": (mlp, cfg.mlp_steps, cfg.mlp_runs), f"CNN (4, 8), {k} images": (cnn, cfg.cnn_steps,
                                                                                        cfg.cnn_runs)}


def run(cfg: Config) -> dict:
    out = {}
    cases = [(m, n, "Gaussian") for m in _models(cfg) for n in METHODS]
    cases += [("MLP 64-16-10", n, "minibatch") for n in METHODS]
    cases.append(("MLP 64-16-10", SMALL_SIGN, "Gaussian"))  # appended: the cases before keep their seeds
    models = _models(cfg)
    for i, (mname, name, kind) in enumerate(cases):
        f, steps, runs = models[mname]
        make, factor = SMALL_SIGN_METHOD if name == SMALL_SIGN else METHODS[name]
        steps = steps * factor
        z = Z.Gaussian(cfg.sigma) if kind == "Gaussian" else Z.Minibatch(cfg.batch)
        per_run = cfg.paths_per_run if kind == "Gaussian" else cfg.minibatch_paths_per_run
        c = sdesim.compare_on(make(cfg.lr, f.dim), f, z, f.x0, steps=steps, runs=runs,
                              paths=per_run * runs, seed=cfg.seed + 10 * i,
                              record_every=max(1, steps // 15))
        key = f"{mname}|{name}|{kind}"
        out[key + "|t"] = c.t
        for side, tr in (("discrete", c.a), ("sde", c.b)):
            out[f"{key}|{side}"] = np.stack(band(tr))
            out[f"{key}|{side}|acc"] = np.stack(band(tr, "test_accuracy"))
        lo, hi = out[f"{key}|discrete"][1:]
        sde = out[f"{key}|sde"][0]
        out[key + "|inside"] = float(np.mean((sde >= lo - 1e-12) & (sde <= hi + 1e-12)))
        out[key + "|p"] = c.p_value
        out[key + "|weak"] = c.weak_error
    return out


def _keys(res):
    """Cases in the order of the figure: the small-lr DSignSGD panel beside the MLP's DSignSGD at lr/20."""
    keys = [k[:-2] for k in res if k.endswith("|t")]
    small = [k for k in keys if k.split("|")[1] == SMALL_SIGN]
    rest = [k for k in keys if k not in small]
    at = next((i + 1 for i, k in enumerate(rest) if k.startswith("MLP") and k.split("|")[1] == "DSignSGD"), len(rest))
    return rest[:at] + small + rest[at:]


def plot(res: dict, cfg: Config):
    import matplotlib.pyplot as plt

    keys = _keys(res)
    fig, axes = plt.subplots(2, len(keys), figsize=(3.1 * len(keys), 6.2), layout="constrained", squeeze=False)
    for j, key in enumerate(keys):
        mname, name, kind = key.split("|")
        t = res[key + "|t"]
        for row, suffix, label in ((0, "", "training loss"), (1, "|acc", "test accuracy")):
            ax = axes[row, j]
            for side, color, style in (("discrete", "C0", "-"), ("sde", "C3", "--")):
                c, lo, hi = res[f"{key}|{side}{suffix}"]
                ax.plot(t, c, color=color, linestyle=style, label="optimizer" if side == "discrete" else "SDE")
                ax.fill_between(t, lo, hi, color=color, alpha=0.25, linewidth=0)
            ax.tick_params(labelsize=7)
            if j == 0:
                ax.set_ylabel(f"mean {label} (95% band)", fontsize=8)
            if row == 1:
                ax.set_xlabel("t = k·lr", fontsize=8)
        axes[0, j].set_title(f"{mname}\n{name}, {kind} noise\nBonferroni p {res[key + '|p']:.2g}, inside "
                             f"{100 * res[key + '|inside']:.0f}%", fontsize=7)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"digits: optimizer vs first-order SDE (lr = {cfg.lr}, DSignSGD lr/20 or lr/160, N = 4, "
                 f"σ = {cfg.sigma} injected or minibatches of {cfg.batch})", fontsize=9)
    return fig


def check(res: dict, cfg: Config) -> list[Claim]:
    keys = _keys(res)
    injected = [k for k in keys if k.endswith("Gaussian")]
    mini = [k for k in keys if k.endswith("minibatch")]
    mlp = [k for k in injected if k.startswith("MLP")]
    sign, sign_small = (next(k for k in mlp if k.split("|")[1] == n) for n in ("DSignSGD", SMALL_SIGN))
    mlp_small = [k for k in mlp if k != sign]
    short = lambda k: k.split("|")[0].split(" ")[0] + " " + k.split("|")[1]  # noqa: E731
    return [
        Claim("injected noise: SDE and optimizer mean losses consistent at every recorded time (Bonferroni p ≥ 0.01)",
              all(res[k + "|p"] >= 0.01 for k in injected),
              ", ".join(f"{short(k)} p={res[k + '|p']:.2g}" for k in injected)),
        Claim("injected noise: SDE mean inside the optimizer's 95% band at ≥ 90% of recorded times",
              all(res[k + "|inside"] >= 0.9 for k in injected),
              ", ".join(f"{short(k)} {100 * res[k + '|inside']:.0f}%" for k in injected), required=False),
        Claim("MLP, injected noise: DSGD and DCSGD (lr) and DSignSGD (lr/160) inside the band at ≥ 90% of times, and "
              "DSignSGD's weak error smaller at lr/160 than at lr/20",
              all(res[k + "|inside"] >= 0.9 for k in mlp_small) and res[sign_small + "|weak"] < res[sign + "|weak"],
              ", ".join(f"{short(k)} {100 * res[k + '|inside']:.0f}%" for k in mlp_small)
              + f"; DSignSGD weak error {res[sign + '|weak']:.3g} at lr/20, {res[sign_small + '|weak']:.3g} at lr/160",
              required=False),
        Claim("real minibatch noise (MLP): SDE consistent with the optimizer (Bonferroni p ≥ 0.01) for every method",
              all(res[k + "|p"] >= 0.01 for k in mini),
              ", ".join(f"{short(k)} p={res[k + '|p']:.2g}, inside {100 * res[k + '|inside']:.0f}%, weak error "
                        f"{res[k + '|weak']:.3g}" for k in mini), required=False),
    ]
