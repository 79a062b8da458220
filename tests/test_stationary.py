"""Stationary laws on quadratics: MATH.md §7.6–§7.7 against the optimizer and its SDE.

Estimates average each run over the recorded steps after a burn-in and report the spread of these per-run averages
over √runs as the standard error (runs are independent, so this holds whatever the autocorrelation within a run).
Where the SDE is integrated with Euler substeps, its exact O(dt) bias is computed from the Euler moment recursion
(problems.euler_ou_stationary_m) and added to the tolerance; nothing else is.
"""

import math

import numpy as np
import pytest
import torch

import sdesim
from problems import euler_ou_stationary_m
from sdesim import compressors as C, methods as M, noise as Z, objectives as O

K_SE = 3.5  # standard errors allowed: a false alarm has probability < 5e-4 per check


def test_dsgd_stationary_loss():
    h, sig, lr, n = np.array([1.0, 3.0]), np.array([1.0, 0.5]), 0.1, 2
    f, z, opt = O.Quadratic(h=h), Z.Gaussian(sig), M.DSGD(lr, n)
    x0 = torch.zeros(2, dtype=torch.float64)
    first_order = lr / (4 * n) * np.sum(sig**2)  # (η/4N) Tr Σ, MATH.md §7.6
    exact_discrete = np.sum(h / 2 * lr * sig**2 / (n * (2 * h - lr * h**2)))  # §7.7, also the `stable` SDE's value
    d = sdesim.run_discrete(opt, f, z, x0, steps=550, runs=4000, seed=0, record_every=5)
    est, se = d.stationary(burn_in=0.1)
    assert abs(est - exact_discrete) <= K_SE * se
    m = 16
    for model, a, target in (("first_order", h, first_order), ("stable", h * (1 - lr * h / 2), exact_discrete)):
        s = sdesim.simulate(opt, f, z, x0, steps=550, paths=4000, seed=1, substeps=m, model=model, record_every=5)
        est, se = s.stationary(burn_in=0.1)
        euler = np.sum(h / 2 * [euler_ou_stationary_m(hj, lr, sj**2 / n, lr / m, a=aj)
                                for hj, sj, aj in zip(h, sig, a)])
        assert abs(est - target) <= K_SE * se + abs(euler - target), (model, est, target, se)
    # the two flavours differ by far more than the Monte Carlo error: the test can tell them apart
    assert (exact_discrete - first_order) > 10 * se


def test_dcsgd_bernoulli_stationary_second_moment():
    # MATH.md §7.7: h = 2, σ = 1, N = 4, p = 0.25 (ω = 3), η = 0.2: E x² = 0.0769 for the optimizer and the
    # `stable` SDE; the first-order SDE gives 0.0588. With h = 2, f = x².
    h, sig, n, p, lr = 2.0, 1.0, 4, 0.25, 0.2
    w = 1 / p - 1
    exact = (lr / n) * (1 + w) * sig**2 / (2 * h - lr * h**2 - (lr / n) * w * h**2)
    assert exact == pytest.approx(0.0769, abs=5e-5)
    f, z, opt = O.Quadratic(h=[h]), Z.Gaussian(sig), M.DCSGD(lr, n, compressor=C.Bernoulli(p))
    x0 = torch.zeros(1, dtype=torch.float64)
    d = sdesim.run_discrete(opt, f, z, x0, steps=400, runs=4000, seed=2, record_every=2)
    est, se = d.stationary(burn_in=0.1)
    assert abs(est - exact) <= K_SE * se
    m = 32
    s = sdesim.simulate(opt, f, z, x0, steps=400, paths=4000, seed=3, substeps=m, model="stable", record_every=2)
    est_s, se_s = s.stationary(burn_in=0.1)
    euler = euler_ou_stationary_m(h, lr, (1 + w) * sig**2 / n, lr / m, a=h * (1 - lr * h / 2), mult=w * h**2 / n)
    assert abs(est_s - exact) <= K_SE * se_s + abs(euler - exact)
    first = sdesim.simulate(opt, f, z, x0, steps=400, paths=4000, seed=4, substeps=m, record_every=2)
    assert first.stationary(burn_in=0.1)[0] == pytest.approx(0.0588, rel=0.03)


@pytest.mark.parametrize("noise_name", ["gaussian", "cauchy"])
@pytest.mark.parametrize("n", [1, 4])
def test_dsignsgd_stationary_loss(noise_name, n):
    # MATH.md §7.6 (phase 3): E f = η Tr Σ^{1/2} / (4 c N) with c = √(2/π) (Gaussian) or 2/π (Cauchy). The formula
    # linearizes E sign(∇f + Z) ≈ c ∇f/σ; its first neglected terms (the cubic term of the sign mean, relative size
    # ~E x²/σ² = O(η h/σ), and the O(η) difference between the optimizer and the SDE) are allowed on top of the
    # Monte Carlo error: a relative η h/σ = 1% here. A wrong constant (c, N or a factor 2) is off by 25% or more.
    lr, sig = 0.01, 1.0
    z, c = (Z.Gaussian(sig), math.sqrt(2 / math.pi)) if noise_name == "gaussian" else (Z.StudentT(1.0, sig), 2 / math.pi)
    formula = lr * sig / (4 * c * n)
    f, opt, x0 = O.Quadratic(h=[1.0]), M.DSignSGD(lr, n), torch.zeros(1, dtype=torch.float64)
    for side in ("discrete", "sde"):
        kw = dict(steps=5000, seed=5, record_every=5)
        tr = (sdesim.run_discrete(opt, f, z, x0, runs=4000, **kw) if side == "discrete"
              else sdesim.simulate(opt, f, z, x0, paths=4000, **kw))
        est, se = tr.stationary(burn_in=0.2)
        assert abs(est - formula) <= K_SE * se + lr * 1.0 / sig * formula, (side, est, formula, se)
