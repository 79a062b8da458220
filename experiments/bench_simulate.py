"""Benchmark: ``sdesim.simulate`` against a hand-written Euler–Maruyama loop and against ``torchsde.sdeint``.

All three integrate the same SDE (the first-order SDE of the chosen method on a quadratic with d coordinates and
heterogeneous curvatures, Gaussian noise) for the same number of Euler steps, record loss and gradient norm at the
same steps, and run in this one process, so only ratios are reported:

- ``hand (torch.randn)``: the loop a user would write: x ← x + λ b(x) + λ V(x)^{1/2} ξ with ``torch.randn``;
- ``hand (same RNG)``: the same loop drawing ξ from sdesim's random stream (numpy SFC64 ziggurat for float64 on the
  CPU), which isolates the cost of the integrator from the cost of the random numbers;
- ``torchsde.sdeint``: torchsde's integrator with its default Brownian motion (``BrownianInterval``), Euler, the
  same SDE module, output at the recorded steps;
- ``draws alone``: only the increments of every step (sdesim's stream, and ``torch.randn``), no arithmetic: the
  time of the draws bounds from below what any simulator of this SDE spends per step, so torchsde's time over it is a
  ceiling on the speed-up over torchsde.

Usage: ``python -m experiments.bench_simulate [--paths 1024] [--dim 1000] [--steps 200] [--method dsgd]``.
Targets (DESIGN.md): simulate within 1.25x of the hand loop; at least 8x faster than torchsde.sdeint.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchsde

import sdesim
from sdesim import _rng, compressors, methods, noise, objectives
from sdesim.models import build_sde

METHODS = {
    "dsgd": lambda lr: methods.DSGD(lr=lr, n_agents=4),
    "dcsgd-bernoulli": lambda lr: methods.DCSGD(lr=lr, n_agents=4, compressor=compressors.Bernoulli(0.25)),
    "dsignsgd": lambda lr: methods.DSignSGD(lr=lr, n_agents=4),
}


def _hand_loop(sde, x0, steps, record_every, normal):
    """Euler–Maruyama written out: the drift and diffusion of ``sde`` (same arithmetic), Gaussian ξ from ``normal``."""
    f = sde.objective
    x = x0.clone()
    out = [torch.stack([f.loss(x), f.grad(x).square().sum(-1).sqrt()], -1)]
    for k in range(steps):
        drift, noise_term = sde.f_and_g_prod(k, x, normal(x.shape))
        x = x + drift + noise_term
        if (k + 1) % record_every == 0:
            out.append(torch.stack([f.loss(x), f.grad(x).square().sum(-1).sqrt()], -1))
    return torch.stack(out)


def _time_interleaved(fns: dict, repeat: int) -> dict:
    """Median wall time of each function over ``repeat`` rounds, the functions taking turns within each round so
    that slow drifts of the machine hit all of them alike."""
    times = {name: [] for name in fns}
    for name, (fn, _) in fns.items():  # warm-up: caches, allocator, thread pools
        fn()
    for _ in range(repeat):
        for name, (fn, scale) in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t) * scale)
    return {name: statistics.median(v) for name, v in times.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--paths", type=int, default=1024)
    p.add_argument("--dim", type=int, default=1000)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--record-every", type=int, default=10)
    p.add_argument("--method", choices=sorted(METHODS), default="dsgd")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    p.add_argument("--repeat", type=int, default=5, help="interleaved rounds; medians are reported")
    p.add_argument("--torchsde-steps", type=int, default=None,
                   help="steps for the (slow) torchsde run; its time is scaled to --steps (default: --steps)")
    args = p.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    lr = 0.05
    opt = METHODS[args.method](lr)
    h = torch.linspace(0.5, 4.0, args.dim, dtype=torch.float64)
    f = objectives.Quadratic(h=h)
    z = noise.Gaussian(sigma=0.5)
    x0 = torch.ones(args.paths, args.dim, dtype=dtype)
    sde = build_sde(opt, f, z, d=args.dim, dtype=dtype)

    def run_sdesim():
        sdesim.simulate(opt, f, z, x0, steps=args.steps, paths=args.paths, seed=0, record_every=args.record_every)

    def run_hand_torch():
        g = torch.Generator().manual_seed(0)
        _hand_loop(sde, x0, args.steps, args.record_every,
                   lambda shape: torch.randn(shape, generator=g, dtype=dtype))

    def run_hand_same_rng():
        s = _rng.streams(0, ["increments"])["increments"]
        _hand_loop(sde, x0, args.steps, args.record_every, lambda shape: s.normal(shape, dtype))

    ts_steps = args.torchsde_steps or args.steps

    def run_torchsde():
        ts = torch.arange(0, ts_steps + 1, args.record_every, dtype=dtype)
        with torch.no_grad():
            ys = torchsde.sdeint(sde, x0, ts, method="euler", dt=1.0)
            torch.stack([f.loss(ys), f.grad(ys).square().sum(-1).sqrt()], -1)

    print(f"bench_simulate: method={args.method} paths={args.paths} dim={args.dim} steps={args.steps} "
          f"record_every={args.record_every} dtype={args.dtype} threads={torch.get_num_threads()} "
          f"sdesim={sdesim.__version__} torch={torch.__version__} torchsde={torchsde.__version__}")
    draws = _rng.streams(1, ["increments"])["increments"]
    torch_gen = torch.Generator().manual_seed(1)
    shape = (args.paths, args.dim)

    def rng_sdesim():
        for _ in range(args.steps):
            draws.normal(shape, dtype)

    def rng_torch():
        for _ in range(args.steps):
            torch.randn(shape, generator=torch_gen, dtype=dtype)

    med = _time_interleaved({
        "draws alone (sdesim stream)": (rng_sdesim, 1.0),
        "draws alone (torch.randn)": (rng_torch, 1.0),
        "sdesim.simulate": (run_sdesim, 1.0),
        "hand loop (torch.randn)": (run_hand_torch, 1.0),
        "hand loop (same RNG)": (run_hand_same_rng, 1.0),
        "torchsde.sdeint default BM": (run_torchsde, args.steps / ts_steps),
    }, args.repeat)
    t_sdesim, t_hand = med["sdesim.simulate"], med["hand loop (torch.randn)"]
    t_same, t_ts = med["hand loop (same RNG)"], med["torchsde.sdeint default BM"]
    for name, t in med.items():
        print(f"  {name:<28} {t:8.3f} s   {1e3 * t / args.steps:7.2f} ms/step   "
              f"simulate/this = {t_sdesim / t:5.2f}")
    print(f"ratios: simulate / hand(torch.randn) = {t_sdesim / t_hand:.2f} (target <= 1.25); "
          f"simulate / hand(same RNG) = {t_sdesim / t_same:.2f}; "
          f"torchsde / simulate = {t_ts / t_sdesim:.1f} (target >= 8)")
    t_rng = med["draws alone (sdesim stream)"]
    print(f"ceiling: torchsde / (the step's increments alone) = {t_ts / t_rng:.1f}; torchsde's BrownianInterval "
          f"draws two torch.randn of this size per step ({med['draws alone (torch.randn)'] / t_rng:.1f}x the cost "
          f"of sdesim's draw each)")


if __name__ == "__main__":
    main()
