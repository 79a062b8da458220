"""Benchmark: ``sdesim.run_discrete`` against a hand-written loop doing the same arithmetic.

Both run DCSGD (Rand-k, 4 agents, Gaussian noise) on a quadratic: every agent adds its own noise draw to the full
gradient, compresses it with its own randomness, the server averages, x ← x − lr·average; loss and gradient norm are
recorded at the same steps. Both draw from sdesim's random streams, so only the runner's overhead is compared. Medians
of interleaved rounds in one process are reported.

Usage: ``python -m experiments.bench_discrete [--runs 1024] [--dim 1000] [--steps 100]``.
Target (DESIGN.md): run_discrete within 1.25x of the hand loop.
"""

from __future__ import annotations

import argparse

import torch

import sdesim
from experiments.bench_simulate import _time_interleaved
from sdesim import _rng, compressors, methods, noise, objectives


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=1024)
    p.add_argument("--dim", type=int, default=1000)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--k", type=int, default=100, help="Rand-k coordinates kept")
    p.add_argument("--record-every", type=int, default=10)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args(argv)
    lr, n_agents, sigma = 0.05, 4, 0.5
    h = torch.linspace(0.5, 4.0, args.dim, dtype=torch.float64)
    f = objectives.Quadratic(h=h)
    comp = compressors.RandK(k=args.k)
    opt = methods.DCSGD(lr=lr, n_agents=n_agents, compressor=comp)
    x0 = torch.ones(args.runs, args.dim, dtype=torch.float64)

    def run_sdesim():
        sdesim.run_discrete(opt, f, noise.Gaussian(sigma), x0, steps=args.steps, runs=args.runs, seed=0,
                            record_every=args.record_every)

    def run_hand():
        s = _rng.streams(0, ["noise", "compressor0"])
        x = x0.clone()
        out = []
        for k in range(args.steps):
            g = h * x
            if k % args.record_every == 0:
                out.append(torch.stack([0.5 * (h * x * x).sum(-1), g.square().sum(-1).sqrt()], -1))
            grads = g.unsqueeze(1) + sigma * s["noise"].normal((args.runs, n_agents, args.dim), torch.float64)
            u = s["compressor0"].uniform(grads.shape, torch.float64)
            idx = u.topk(args.k, dim=-1, sorted=False).indices
            mask = torch.zeros_like(grads).scatter_(-1, idx, args.dim / args.k)
            x = x - lr * (grads * mask).mean(1)
        return torch.stack(out)

    print(f"bench_discrete: DCSGD RandK(k={args.k}) N={n_agents} runs={args.runs} dim={args.dim} "
          f"steps={args.steps} record_every={args.record_every} threads={torch.get_num_threads()}")
    med = _time_interleaved({"sdesim.run_discrete": (run_sdesim, 1.0), "hand loop": (run_hand, 1.0)}, args.repeat)
    for name, t in med.items():
        print(f"  {name:<22} {t:8.3f} s   {1e3 * t / args.steps:7.2f} ms/step")
    print(f"ratio: run_discrete / hand = {med['sdesim.run_discrete'] / med['hand loop']:.2f} (target <= 1.25)")


if __name__ == "__main__":
    main()
