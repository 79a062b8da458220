import math

import numpy as np
import pytest
import torch
from scipy import stats

from sdesim import _rng, noise
from sdesim._checks import NoSDEError


def stream(seed=0):
    return _rng.streams(seed, ["n"])["n"]


def test_shapes_and_heterogeneous_scales():
    g = torch.zeros(7, 3, dtype=torch.float64)
    for sigma in (0.5, [0.1, 0.2, 0.3], [[0.1], [0.2]], [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]):
        z = noise.Gaussian(sigma).sample(g, 2, stream())
        assert z.shape == (7, 2, 3)
    z = noise.Gaussian([[1.0], [0.0]]).sample(g, 2, stream())
    assert bool((z[:, 1] == 0).all()) and bool((z[:, 0] != 0).all())
    with pytest.raises(ValueError, match="sigma has 2 entries but the problem has d=3"):
        noise.Gaussian([0.1, 0.2]).check(2, 3)
    with pytest.raises(ValueError, match=r"sigma has shape \(3, 3\)"):
        noise.Gaussian(np.ones((3, 3))).check(2, 3)
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        noise.Gaussian(-1.0)
    with pytest.raises(ValueError, match="nu must be finite and > 0"):
        noise.StudentT(nu=0.0)
    with pytest.raises(ValueError, match=r"alpha must lie in \(0, 2\]"):
        noise.Stable(alpha=2.5)


def test_gaussian_and_affine_variance_terms_match_samples():
    # Sample variance of n draws has relative standard error sqrt(2/(n−1)) for Gaussian data; 5 standard errors.
    n = 100_000
    g = torch.tensor([[3.0, -4.0]], dtype=torch.float64).expand(n, 2)  # ||∇f|| = 5
    for z in (noise.Gaussian([0.5, 2.0]), noise.Affine(sigma0=[0.5, 1.0], sigma1=0.2)):
        v0, v1 = z.variance_terms(1, 2)
        var = np.broadcast_to(v0 + v1 * 25.0, (1, 2))[0]
        emp = z.sample(g, 1, stream(1))[:, 0].var(0).numpy()
        np.testing.assert_array_less(np.abs(emp / var - 1), 5 * math.sqrt(2 / (n - 1)))


@pytest.mark.parametrize("nu", [1.0, 2.5, 5.0])
def test_student_t_samples_ks(nu):
    z = noise.StudentT(nu=nu, sigma=0.7).sample(torch.zeros(20000, 1, dtype=torch.float64), 1, stream(2))
    assert stats.kstest(z.reshape(-1).numpy(), stats.t(nu, scale=0.7).cdf).pvalue > 1e-3


@pytest.mark.parametrize("alpha", [0.7, 1.0, 1.5, 1.9, 2.0])
def test_stable_samples_ks_against_scipy(alpha):
    # Stable(alpha, sigma) is documented as scipy.stats.levy_stable(alpha, 0, scale=sigma/sqrt(2)).
    z = noise.Stable(alpha=alpha, sigma=1.3).sample(torch.zeros(4000, 1, dtype=torch.float64), 1, stream(3))
    law = stats.levy_stable(alpha, 0.0, scale=1.3 / math.sqrt(2))
    assert stats.kstest(z.reshape(-1).numpy(), law.cdf).pvalue > 1e-3


def test_stable_two_is_gaussian():
    z = noise.Stable(alpha=2.0, sigma=0.8).sample(torch.zeros(20000, 1, dtype=torch.float64), 1, stream(4))
    assert stats.kstest(z.reshape(-1).numpy(), stats.norm(scale=0.8).cdf).pvalue > 1e-3
    assert noise.Stable(2.0, 0.8).finite_variance
    np.testing.assert_allclose(noise.Stable(2.0, 0.8).variance_terms(1, 1)[0], 0.64)


def test_levy_scale_of_the_agent_average():
    # (1/N) Σ_i c_i S_i has scale (1/N)(Σ c_i^α)^{1/α} (MATH.md §6.6): KS test of the simulated average.
    alpha, sig = 1.4, np.array([[0.5], [1.0], [2.0]])
    z = noise.Stable(alpha, sig)
    avg = z.sample(torch.zeros(8000, 1, dtype=torch.float64), 3, stream(5)).mean(1).reshape(-1).numpy()
    scale = float(z.levy_scale(3, 1)[0])
    assert scale == pytest.approx((np.sum((sig[:, 0] / math.sqrt(2)) ** alpha)) ** (1 / alpha) / 3)
    assert stats.kstest(avg, stats.levy_stable(alpha, 0.0, scale=scale).cdf).pvalue > 1e-3


GRID = torch.tensor(np.concatenate([np.linspace(-12, 12, 241), [-1e3, 1e3, 1e8, -1e9]]), dtype=torch.float64)


def test_sign_mean_gaussian_and_student_t_match_scipy():
    g = GRID.reshape(-1, 1)
    got = noise.Gaussian(0.5).sign_mean(g, 1).reshape(-1).numpy()
    np.testing.assert_allclose(got, 2 * stats.norm.cdf(GRID.numpy() / 0.5) - 1, atol=1e-14)
    for nu in (1.0, 2.0, 3.0, 7.5):
        got = noise.StudentT(nu, 0.5).sign_mean(g, 1).reshape(-1).numpy()
        np.testing.assert_allclose(got, 2 * stats.t.cdf(GRID.numpy() / 0.5, nu) - 1, atol=1e-10, err_msg=f"{nu=}")


def test_sign_mean_stable_matches_scipy():
    g = torch.linspace(-20, 20, 81, dtype=torch.float64).reshape(-1, 1)
    for alpha in (1.0, 1.5):
        got = noise.Stable(alpha, 1.0).sign_mean(g, 1).reshape(-1).numpy()
        want = 2 * stats.levy_stable.cdf(g.reshape(-1).numpy(), alpha, 0.0, scale=1 / math.sqrt(2)) - 1
        np.testing.assert_allclose(got, want, atol=1e-9, err_msg=f"{alpha=}")


@pytest.mark.parametrize("z", [noise.Gaussian(0.7), noise.Affine(0.3, 0.4), noise.StudentT(1.0, 0.7),
                               noise.StudentT(3.0, 0.7), noise.Stable(1.5, 0.7)], ids=repr)
def test_sign_mean_matches_sampled_signs(z):
    # E sign(g + Z) from 100k draws has standard error ≤ 1/sqrt(n) per coordinate; 5 standard errors.
    n = 100_000
    g = torch.tensor([[0.2, -0.5, 1.0]], dtype=torch.float64)
    emp = torch.sign(g + z.sample(g.expand(n, 3), 1, stream(6))[:, 0]).mean(0)
    want = z.sign_mean(g, 1)[0, 0]
    assert bool((torch.abs(emp - want) <= 5 / math.sqrt(n)).all())


def test_zero_noise_sign_mean_is_sign():
    g = torch.tensor([[0.3, 0.0, -2.0]], dtype=torch.float64)
    for z in (noise.Gaussian(0.0), noise.StudentT(1.0, 0.0), noise.Affine(0.0, 0.0)):
        assert torch.equal(z.sign_mean(g, 1)[0, 0], torch.sign(g[0]))


def test_infinite_variance_has_no_brownian_sde():
    with pytest.raises(NoSDEError, match="DSignSGD"):
        noise.StudentT(nu=2.0).variance_terms(1, 1)
    with pytest.raises(NoSDEError, match="Lévy-driven"):
        noise.Stable(alpha=1.5).variance_terms(1, 1)
    assert noise.StudentT(nu=4.0, sigma=2.0).variance_terms(1, 1)[0] == pytest.approx(8.0)
