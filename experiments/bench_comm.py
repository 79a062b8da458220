"""Benchmark of real distributed runs: bytes each rank sends per step, and time per step, by compressor.

Runs DSGD, DSignSGD and DCSGD with Rand-k, Bernoulli, QSGD and Top-k as real ``--ranks``-process gloo jobs
(:func:`sdesim.run_distributed`) on a ``--dim``-dimensional quadratic in float32, and prints per compressor the
bytes one rank contributes to collectives per step, their ratio to an uncompressed float32 all-reduce of the same
vector (4·d bytes), and the wall time per step of the whole job (process start-up excluded by subtracting a
zero-step run). The same job in one process (:func:`sdesim.run_discrete`) is timed for reference.

Usage: ``python -m experiments.bench_comm [--dim 100000] [--ranks 4] [--steps 50]``.
"""

from __future__ import annotations

import argparse
import time

import torch

import sdesim
from sdesim import compressors, methods, noise, objectives
from sdesim.distributed import run_distributed


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dim", type=int, default=100_000)
    p.add_argument("--ranks", type=int, default=4)
    p.add_argument("--steps", type=int, default=50)
    args = p.parse_args(argv)
    d, n = args.dim, args.ranks
    f = objectives.Quadratic(h=torch.linspace(0.5, 2.0, d).tolist())
    z = noise.Gaussian(sigma=0.1)
    x0 = torch.ones(d, dtype=torch.float32)
    k = max(1, d // 100)
    cases = [("Identity (DSGD)", methods.DSGD(lr=0.1, n_agents=n)),
             ("Sign (DSignSGD)", methods.DSignSGD(lr=0.001, n_agents=n)),
             (f"RandK(k={k})", methods.DCSGD(lr=0.01, n_agents=n, compressor=compressors.RandK(k))),
             ("Bernoulli(p=0.01)", methods.DCSGD(lr=0.01, n_agents=n, compressor=compressors.Bernoulli(0.01))),
             ("QSGD(levels=4)", methods.DCSGD(lr=0.05, n_agents=n, compressor=compressors.QSGD(4))),
             (f"TopK(k={k})", methods.DCSGD(lr=0.1, n_agents=n, compressor=compressors.TopK(k)))]
    ref = 4 * d
    print(f"d = {d}, {n} ranks (gloo), float32; reference: float32 all-reduce = {ref} bytes per rank and step")
    print(f"{'compressor':<22}{'bytes/step/rank':>16}{'/ fp32 all-reduce':>19}{'ms/step (N procs)':>19}"
          f"{'ms/step (1 proc)':>18}")
    for name, m in cases:
        t0 = time.perf_counter()
        run_distributed(m, f, z, x0, steps=0, seed=0)
        t1 = time.perf_counter()
        tr = run_distributed(m, f, z, x0, steps=args.steps, seed=0, record_every=args.steps)
        t2 = time.perf_counter()
        sdesim.run_discrete(m, f, z, x0, steps=args.steps, runs=1, seed=0, record_every=args.steps)
        t3 = time.perf_counter()
        sent = tr.meta["distributed"]["bytes_per_step_per_run"][0]
        per_step = max((t2 - t1) - (t1 - t0), 0.0) / args.steps * 1e3
        print(f"{name:<22}{sent:>16,.0f}{sent / ref:>19.4f}{per_step:>19.2f}{(t3 - t2) / args.steps * 1e3:>18.2f}")


if __name__ == "__main__":
    main()
