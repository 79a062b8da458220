"""Benchmark on a real network: batched runs against sequential ones, and the cost of an SDE path-step.

1. R runs of DSGD on a dataset (digits by default) with an MLP, batched with ``torch.func.vmap`` in one ``run_discrete`` call, against the
   same R runs made one after another (R calls with ``runs=1``).
2. One Euler step of the SDE for a batch of paths (``simulate`` per step, increments and arithmetic included)
   against one full-batch gradient for the same batch, with injected Gaussian noise and with real minibatch noise
   (whose low-rank diffusion costs a second backward pass).

Usage: ``python -m experiments.bench_networks [--runs 32] [--steps 50] [--hidden 32] [--dataset digits]
[--dtype float64]``. Targets (issue): batched at
least 4x faster than sequential; one SDE path-step at most 2x one full-batch gradient. Medians of interleaved rounds.
"""

from __future__ import annotations

import argparse

import torch

import sdesim
from experiments.bench_simulate import _time_interleaved
from sdesim import data, methods, nets, noise, objectives


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=32)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    p.add_argument("--dataset", choices=["digits", "breast_cancer", "wine"], default="digits")
    args = p.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    ds = data.DATASETS[args.dataset](seed=0, dtype=dtype)
    f = objectives.Network(nets.mlp(ds.x_train.shape[1], ds.n_classes, (args.hidden,), seed=0, dtype=dtype),
                           ds.x_train, ds.y_train)
    opt, z = methods.DSGD(0.1, 4), noise.Gaussian(0.05)
    r, steps = args.runs, args.steps

    def batched():
        sdesim.run_discrete(opt, f, z, f.x0, steps=steps, runs=r, seed=0, record_every=steps)

    def sequential():
        for i in range(r):
            sdesim.run_discrete(opt, f, z, f.x0, steps=steps, runs=1, seed=i, record_every=steps)

    x = f.x0.expand(r, -1).contiguous()

    def full_gradient():
        for _ in range(steps):
            f.grad(x)

    def sde_steps(zz):
        return lambda: sdesim.simulate(opt, f, zz, f.x0, steps=steps, paths=r, seed=0, record_every=steps)

    print(f"bench_networks: {args.dataset} MLP {ds.x_train.shape[1]}-{args.hidden}-{ds.n_classes} (d = {f.dim}, "
          f"n = {f.n}), {args.dtype}, runs/paths = {r}, steps = {steps}, threads = {torch.get_num_threads()}")
    med = _time_interleaved({
        f"{r} runs batched (vmap)": (batched, 1.0),
        f"{r} runs one after another": (sequential, 1.0),
        f"full-batch gradient of {r} points": (full_gradient, 1.0),
        "SDE steps, Gaussian noise": (sde_steps(z), 1.0),
        "SDE steps, minibatch noise (B=32)": (sde_steps(noise.Minibatch(32)), 1.0),
    }, args.repeat)
    for name, t in med.items():
        print(f"  {name:<36} {1e3 * t / steps:8.2f} ms/step")
    g = med[f"full-batch gradient of {r} points"]
    print(f"ratios: sequential / batched = {med[f'{r} runs one after another'] / med[f'{r} runs batched (vmap)']:.1f} "
          f"(target >= 4); SDE step / gradient: Gaussian {med['SDE steps, Gaussian noise'] / g:.2f}, "
          f"minibatch {med['SDE steps, minibatch noise (B=32)'] / g:.2f} (target <= 2)")


if __name__ == "__main__":
    main()
