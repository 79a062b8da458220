"""The SDE coefficients are the per-step mean and covariance of the optimizer (MATH.md §2.1, §6)."""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

import sdesim
from sdesim import _rng, compressors as C, methods as M, noise as Z, objectives as O, schedules
from sdesim._checks import NoSDEError
from sdesim.models import LevySDE, LowRankUnbiasedSDE, RandomizedUnbiasedSDE, SignSDE, UnbiasedSDE, build_sde

F64 = torch.float64
QUAD = O.Quadratic(h=[1.0, 2.0, 0.5])
X = torch.tensor([0.5, -1.0, 2.0], dtype=F64)  # ∇f = (0.5, −2, 1)
N_MC = 200_000

CASES = [
    (M.DSGD(0.1, 2), Z.Gaussian([[0.5, 1.0, 0.2], [1.0, 0.3, 0.7]]), UnbiasedSDE),
    (M.DSGD(0.1, 3), Z.Affine(sigma0=0.3, sigma1=[0.1, 0.4, 0.2]), UnbiasedSDE),
    (M.SGD(0.1), Z.StudentT(nu=8.0, sigma=0.6), UnbiasedSDE),
    (M.DCSGD(0.1, 2, compressor=C.Bernoulli(0.4)), Z.Gaussian(0.5), UnbiasedSDE),
    (M.DCSGD(0.1, 4, compressor=C.RandK(1)), Z.Affine(0.4, 0.2), LowRankUnbiasedSDE),
    (M.DCSGD(0.1, 2, compressor=[C.RandK(2), C.Bernoulli(0.5)]), Z.Gaussian([[0.2], [0.9]]), LowRankUnbiasedSDE),
    (M.DSignSGD(0.1, 3), Z.Gaussian([[0.5], [1.0], [2.0]]), SignSDE),
    (M.DSignSGD(0.1, 2), Z.StudentT(nu=1.0, sigma=0.8), SignSDE),
    (M.SignSGD(0.1), Z.Stable(alpha=1.5, sigma=0.8), SignSDE),
    (M.DSignSGD(0.1, 2), Z.Affine(0.5, 0.5), SignSDE),
    (M.DCSGD(0.1, 2, compressor=C.Sign()), Z.Gaussian(0.7), SignSDE),
]


def model_moments(sde, lr):
    """(b, V) from the model at X: drift/λ and (diffusion factor/λ)(…)ᵀ, the factor read off g_prod on e_j."""
    d = X.shape[0]
    y = X.expand(d, d).clone()
    b = sde.f(torch.tensor(0.0, dtype=F64), y)[0] / lr
    cols = sde.g_prod(torch.tensor(0.0, dtype=F64), y, torch.eye(d, dtype=F64)) / lr  # row j = L e_j
    return b, cols.T @ cols


@pytest.mark.parametrize("method,z,cls", CASES, ids=lambda v: repr(v)[:40])
def test_drift_and_diffusion_are_one_step_mean_and_covariance(method, z, cls):
    # The discrete update is x − lr·U with U = (1/N) Σ_i C_i(∇f + Z_i); the SDE must have b = −E U and V = Cov U.
    # Mean: 4.5 standard errors sqrt(V_jj/N_MC) per coordinate. Covariance: 5 standard errors of each entry,
    # estimated from the products themselves.
    sde = build_sde(method, QUAD, z, d=3)
    assert isinstance(sde, cls)
    rng = _rng.streams(0, ["noise", "c0", "c1", "c2", "c3"])
    g = QUAD.grad(X).expand(N_MC, 3)
    comp = [rng[f"c{i}"] for i in range(len(method.compressors))]
    u = method.direction(g.unsqueeze(-2) + z.sample(g, method.n_agents, rng["noise"]), comp)
    b, v = model_moments(sde, method.lr)
    se = torch.sqrt(torch.diagonal(v) / N_MC)
    assert bool((torch.abs(-u.mean(0) - b) <= 4.5 * se + 1e-12).all()), (u.mean(0), b)
    c = u - u.mean(0)
    prod = c.unsqueeze(-1) * c.unsqueeze(-2)
    assert bool((torch.abs(prod.mean(0) - v) <= 5 * prod.std(0) / math.sqrt(N_MC) + 1e-12).all()), (prod.mean(0), v)


@pytest.mark.parametrize("comp", [C.QSGD(2), [C.QSGD(1), C.Bernoulli(0.5)]], ids=repr)
def test_randomized_qsgd_diffusion_has_the_step_covariance_on_average(comp):
    # The QSGD diffusion is drawn afresh (weak Euler with randomized diffusion): its mean over the draws must be the
    # diagonal of Cov U. Both sides are Monte Carlo: 5 combined standard errors per coordinate.
    method, z = M.DCSGD(0.1, 2, compressor=comp), Z.Affine(0.4, 0.3)
    sde = build_sde(method, QUAD, z, d=3, seed=0)
    assert isinstance(sde, RandomizedUnbiasedSDE)
    torch.testing.assert_close(sde.f(torch.tensor(0.0, dtype=F64), X.unsqueeze(0))[0], -0.1 * QUAD.grad(X))
    g = QUAD.grad(X).expand(N_MC, 3)
    v_draws = sde.variance_diag(g)
    rng = _rng.streams(1, ["noise", "c0", "c1"])
    u = method.direction(g.unsqueeze(-2) + z.sample(g, 2, rng["noise"]), [rng["c0"], rng["c1"]])
    c = (u - u.mean(0)) ** 2
    se = torch.sqrt(v_draws.var(0) / N_MC + c.var(0) / N_MC)
    assert bool((torch.abs(v_draws.mean(0) - c.mean(0)) <= 5 * se).all()), (v_draws.mean(0), c.mean(0))
    with pytest.raises(ValueError, match="randomized diffusion"):
        sdesim.simulate(method, QUAD, z, X, steps=2, paths=2, seed=0, solver="milstein")


def test_levy_model_scale():
    method, z = M.DSGD(0.05, 3), Z.Stable(1.2, [[0.5], [1.0], [2.0]])
    sde = build_sde(method, QUAD, z, d=3)
    assert isinstance(sde, LevySDE) and sde.increments.alpha == 1.2
    g = sde.g(torch.tensor(0.0, dtype=F64), X.unsqueeze(0))[0] / 0.05
    np.testing.assert_allclose(g.numpy(), np.broadcast_to(z.levy_scale(3, 3), (3,)))


def test_corrected_drifts_on_a_quadratic():
    # first order −λhx; classic second order −λh(1 + λh/2)x (MATH.md §2.2); stable −λh(1 − λh/2)x (§6.5, §7.1).
    lr, h = 0.3, torch.tensor([1.0, 2.0, 0.5], dtype=F64)
    y = X.unsqueeze(0)
    for model, factor in (("first_order", 1.0), ("second_order", 1 + lr * h / 2), ("stable", 1 - lr * h / 2)):
        sde = build_sde(M.DCSGD(lr, 2, compressor=C.Bernoulli(0.5)), QUAD, Z.Gaussian(0.1), d=3, model=model)
        torch.testing.assert_close(sde.f(torch.tensor(0.0, dtype=F64), y)[0], -lr * h * factor * X)


def test_schedule_scales_drift_and_noise():
    sde = build_sde(M.DSGD(0.2, 1, schedule=schedules.InvSqrt()), QUAD, Z.Gaussian(1.0), d=3)
    assert sde.step_factor(torch.tensor(3.0, dtype=F64)) == pytest.approx(0.1)
    assert sde.step_factor(torch.tensor(3.75, dtype=F64)) == pytest.approx(0.1)  # constant within an iteration
    assert sde.step_factor(2.9999999999999996) == pytest.approx(0.1)  # s = k·dt rounded below an integer


def test_refusals_say_why_and_what_instead():
    with pytest.raises(NoSDEError, match="DSignSGD"):
        build_sde(M.DSGD(0.1), QUAD, Z.StudentT(1.0), d=3)
    with pytest.raises(NoSDEError, match="compressed DCSGD has no SDE"):
        build_sde(M.DCSGD(0.1, compressor=C.RandK(1)), QUAD, Z.Stable(1.5), d=3)
    with pytest.raises(NoSDEError, match="biased compressor TopK"):
        build_sde(M.DCSGD(0.1, compressor=C.TopK(1)), QUAD, Z.Gaussian(1.0), d=3)
    with pytest.raises(NoSDEError, match="mixing RandK with QSGD"):
        build_sde(M.DCSGD(0.1, 2, compressor=[C.QSGD(2), C.RandK(1)]), QUAD, Z.Gaussian(1.0), d=3, seed=0)
    with pytest.raises(NoSDEError, match="model='first_order'"):
        build_sde(M.DSignSGD(0.1), QUAD, Z.Gaussian(1.0), d=3, model="stable")
    with pytest.raises(ValueError, match="did you mean 'stable'"):
        build_sde(M.DSGD(0.1), QUAD, Z.Gaussian(1.0), d=3, model="stabel")


@pytest.mark.parametrize("method", [M.DSGD(0.1, 4), M.DCSGD(0.1, 2, compressor=C.Bernoulli(1.0)),
                                    M.DSGD(0.1, 1, schedule=schedules.InvSqrt())], ids=repr)
def test_zero_noise_is_gradient_flow(method):
    # With σ = 0 (and ω = 0) the SDE is the ODE dx/dt = −η_t ∇f(x). Compare with scipy's solve_ivp (rtol 1e-11),
    # integrated iteration by iteration since η_t is constant on each [kη, (k+1)η). Euler's global error is O(dt):
    # the fitted order over substeps 8..64 must be 1 ± 0.1, and the error must vanish with it.
    f, x0, steps = O.CoshSum(a=1.5), np.array([1.2, -0.7]), 20
    x, ref = x0.copy(), [0.5 * 0]
    ref = [f.loss(torch.tensor(x0)).item()]
    for k in range(steps):
        rate = method.step_size(k)
        sol = solve_ivp(lambda t, y: -rate * f.grad(torch.tensor(y)).numpy(), (0, 1), x, rtol=1e-11, atol=1e-13)
        x = sol.y[:, -1]
        ref.append(f.loss(torch.tensor(x)).item())
    errs = []
    subs = [8, 16, 32, 64]
    for m in subs:
        s = sdesim.simulate(method, f, Z.Gaussian(0.0), torch.tensor(x0), steps=steps, paths=1, seed=0, substeps=m)
        errs.append(np.abs(s.loss[0] - np.array(ref)).max())
    order = -np.polyfit(np.log(subs), np.log(errs), 1)[0]
    assert abs(order - 1.0) < 0.1 and errs[-1] < errs[0] / 6


def test_omega_zero_reduces_dcsgd_to_dsgd_bit_for_bit():
    f, z, x0 = QUAD, Z.Affine(0.3, 0.2), X
    base_d = sdesim.run_discrete(M.DSGD(0.1, 3), f, z, x0, steps=30, runs=50, seed=4)
    base_s = sdesim.simulate(M.DSGD(0.1, 3), f, z, x0, steps=30, paths=50, seed=4)
    for comp in (C.Bernoulli(1.0), C.RandK(3), C.Identity()):
        m = M.DCSGD(0.1, 3, compressor=comp)
        assert np.array_equal(sdesim.run_discrete(m, f, z, x0, steps=30, runs=50, seed=4).loss, base_d.loss)
        assert np.array_equal(sdesim.simulate(m, f, z, x0, steps=30, paths=50, seed=4).loss, base_s.loss)


def test_dcsgd_with_sign_is_dsignsgd():
    f, z, x0 = QUAD, Z.Gaussian(0.5), X
    a = sdesim.run_discrete(M.DSignSGD(0.1, 2), f, z, x0, steps=20, runs=40, seed=1)
    b = sdesim.run_discrete(M.DCSGD(0.1, 2, compressor=C.Sign()), f, z, x0, steps=20, runs=40, seed=1)
    assert np.array_equal(a.loss, b.loss)
    a = sdesim.simulate(M.DSignSGD(0.1, 2), f, z, x0, steps=20, paths=40, seed=1)
    b = sdesim.simulate(M.DCSGD(0.1, 2, compressor=C.Sign()), f, z, x0, steps=20, paths=40, seed=1)
    assert np.array_equal(a.loss, b.loss)


def test_normalized_methods_discrete_step_and_sde_drift():
    f, x0 = O.CoshSum(a=2.0), torch.tensor([1.0, -0.5], dtype=F64)
    g = f.grad(x0)
    plain = M.NormalizedDCSGD(lr=0.1, n_agents=2, beta=0.5)
    adaptive = M.AdaptiveDCSGD(n_agents=8, compressor=C.Bernoulli(0.25), smoothness=f.smoothness, sigma0=0.1,
                               sigma1=0.2, eps=0.5)
    a, b = M.affine_groups(3.0, 0.1, 0.2, 8, 2)  # ω = 3
    assert a == pytest.approx(3.0 + 2 * (0.04 * 3 + 0.04)) and b == pytest.approx(0.01 + 0.03)
    gn = torch.linalg.vector_norm(g)
    steps = {plain: 0.1 / (gn + 0.5), adaptive: 2 * 0.5 / ((1 + 2 * gn) * (1 + a / 8) + 2 * 2 * b / 8)}
    for method, step in steps.items():
        # zero noise and no compression randomness on the discrete side would need Identity; use the SDE drift
        # (exact) and one noiseless discrete step of the uncompressed variant
        sde = build_sde(method, f, Z.Gaussian(0.1), d=2, seed=0)
        torch.testing.assert_close(sde.f(torch.tensor(0.0, dtype=F64), x0.unsqueeze(0))[0], -step * g)
    one = sdesim.run_discrete(plain, f, Z.Gaussian(0.0), x0, steps=1, runs=1, seed=0, keep_states=True)
    np.testing.assert_allclose(one.states[0, 1], (x0 - 0.1 * g / (gn + 0.5)).numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="fixed step"):
        from sdesim import theory
        theory.stationary_loss(plain, O.Quadratic(h=[1.0, 1.0]), Z.Gaussian(0.1))
    with pytest.raises(ValueError, match="sigma0 lists 2 agents"):
        M.AdaptiveDCSGD(n_agents=3, sigma0=[0.1, 0.2], smoothness=(1.0, 1.0))
