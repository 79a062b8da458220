"""Every compressor gets the same checks (parametrised over instances of the registry, STYLE.md §15)."""

import math

import numpy as np
import pytest
import torch

from sdesim import _rng, compressors

D = 8
INSTANCES = [compressors.Identity(), compressors.RandK(k=1), compressors.RandK(k=3), compressors.Bernoulli(p=0.25),
             compressors.Bernoulli(p=1.0), compressors.QSGD(levels=1), compressors.QSGD(levels=4),
             compressors.TopK(k=3), compressors.Sign()]
UNBIASED = [c for c in INSTANCES if c.unbiased]
X = torch.tensor([3.0, -1.0, 0.5, 0.0, 2.0, -0.25, 1.5, -4.0], dtype=torch.float64)
N_MC = 200_000


def ids(c):
    return repr(c)


def draws(c, n=N_MC, seed=0):
    return c(X.expand(n, D).clone(), generator=_rng.streams(seed, ["c"])["c"])


@pytest.mark.parametrize("c", INSTANCES, ids=ids)
def test_shape_dtype_determinism(c):
    for dtype in (torch.float64, torch.float32):
        x = X.to(dtype).expand(5, 3, D)
        a = c(x, generator=torch.Generator().manual_seed(4))
        b = c(x, generator=torch.Generator().manual_seed(4))
        assert a.shape == x.shape and a.dtype == dtype
        assert torch.equal(a, b)
    assert torch.equal(c(X, generator=11), c(X, generator=11))


@pytest.mark.parametrize("c", UNBIASED, ids=ids)
def test_unbiased_mean(c):
    # Per coordinate, the mean of N_MC draws has standard error sqrt(Cov_jj / N_MC) from the exact covariance;
    # 4.5 standard errors over 8 coordinates leave a false-alarm rate below 1e-4.
    y = draws(c)
    se = torch.sqrt(torch.diagonal(c.covariance(X)) / N_MC)
    assert bool((torch.abs(y.mean(0) - X) <= 4.5 * se + 1e-12).all())


@pytest.mark.parametrize("c", UNBIASED, ids=ids)
def test_variance_constant(c):
    # E||C(x) − x||² = ω||x||² (exact compressors) or ≤ (QSGD); tolerance 4.5 standard errors of the sample mean.
    e = ((draws(c) - X) ** 2).sum(-1)
    mean, se = e.mean().item(), e.std().item() / math.sqrt(N_MC)
    target = c.omega(D) * (X * X).sum().item()
    if c.exact_variance:
        assert abs(mean - target) <= 4.5 * se + 1e-12
        assert abs(torch.trace(c.covariance(X)).item() - target) < 1e-12 * (1 + target)
    else:
        assert mean <= target + 4.5 * se


@pytest.mark.parametrize("c", UNBIASED, ids=ids)
def test_covariance_matches_draws(c):
    # Entrywise, the sample covariance has standard error sqrt(Var((y_i - x_i)(y_j - x_j)) / N_MC), estimated from
    # the same draws; 5 standard errors over the 64 entries.
    y = draws(c, seed=1) - X
    prod = y.unsqueeze(-1) * y.unsqueeze(-2)
    emp, se = prod.mean(0), prod.std(0) / math.sqrt(N_MC)
    assert bool((torch.abs(emp - c.covariance(X)) <= 5 * se + 1e-12).all())


@pytest.mark.parametrize("c", UNBIASED, ids=ids)
def test_gaussian_sampler_has_the_exact_covariance(c):
    # gaussian(x, xi) is linear in xi, so feeding the identity gives its factor L, and L Lᵀ must equal the
    # covariance exactly (up to rounding). Also on a batch with zero coordinates.
    xs = torch.stack([X, torch.zeros(D, dtype=torch.float64), X * (X > 0)])
    for x in xs:
        eye = torch.eye(D, dtype=torch.float64)
        factor = c.gaussian(x.expand(D, D), eye).T  # column j = L e_j
        torch.testing.assert_close(factor @ factor.T, c.covariance(x), rtol=1e-10, atol=1e-12)


def test_randk_and_topk_and_sign():
    y = compressors.RandK(k=3)(X.expand(1000, D), generator=0)
    assert bool(((y != 0).sum(-1) <= 3).all())  # X has one zero coordinate
    assert bool(torch.all((y == 0) | (y == X * D / 3)))
    top = compressors.TopK(k=3)(X)
    torch.testing.assert_close(top, torch.tensor([3.0, 0, 0, 0, 2.0, 0, 0, -4.0], dtype=torch.float64))
    assert torch.equal(compressors.Sign()(X), torch.sign(X))
    assert torch.equal(compressors.Bernoulli(1.0)(X, generator=0), X)
    assert compressors.RandK(k=2).omega(8) == 3.0 and compressors.Bernoulli(0.25).omega(8) == 3.0
    np.testing.assert_allclose(compressors.RandK(k=2).cov_coefficients(8), (3.0 * 8 / 7, 3.0 / 7))


def test_bad_arguments():
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        compressors.RandK(k=0)
    with pytest.raises(ValueError, match=r"k must be <= d: RandK\(k=9\)"):
        compressors.RandK(k=9)(X, generator=0)
    with pytest.raises(ValueError, match=r"p must lie in \(0, 1\]"):
        compressors.Bernoulli(p=0.0)
    with pytest.raises(ValueError, match="p must lie"):
        compressors.Bernoulli(p=1.5)
    with pytest.raises(ValueError, match="levels"):
        compressors.QSGD(levels=0)
    with pytest.raises(ValueError, match="biased"):
        compressors.TopK(k=1).omega(4)
    with pytest.raises(ValueError, match="generator must be given"):
        compressors.RandK(k=1)(X)
