import numpy as np
import pytest
import torch

from sdesim import objectives

ALL = [objectives.Quadratic(h=[0.5, 2.0, 3.0]), objectives.Quartic(), objectives.CoshSum(a=1.5),
       objectives.ExpSum(a=0.7)]


@pytest.mark.parametrize("f", ALL, ids=lambda f: type(f).__name__)
def test_grad_and_hvp_match_autograd(f):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(4, 5, 3, generator=g, dtype=torch.float64)
    loss = f.loss(x)
    assert loss.shape == (4, 5)
    (auto_grad,) = torch.autograd.grad(loss.sum(), x, create_graph=True)
    (auto_hvp,) = torch.autograd.grad((auto_grad * v).sum(), x)
    torch.testing.assert_close(f.grad(x), auto_grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(f.hvp(x, v), auto_hvp, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("f", ALL, ids=lambda f: type(f).__name__)
def test_l0_l1_smoothness_constants(f):
    # The Hessians are diagonal, so ||∇²f||₂ = max_j |∇²f_jj|; check the documented (L0, L1) on wide-ranging points.
    g = torch.Generator().manual_seed(1)
    x = torch.randn(20000, 3, generator=g, dtype=torch.float64) * torch.logspace(-2, 0.8, 20000, dtype=torch.float64)[:, None]
    hess = f.hvp(x, torch.ones_like(x)).abs().amax(-1)
    l0, l1 = f.smoothness
    bound = l0 + l1 * torch.linalg.vector_norm(f.grad(x), dim=-1)
    assert bool((hess <= bound * (1 + 1e-12)).all())


@pytest.mark.parametrize("f", ALL[1:], ids=lambda f: type(f).__name__)
def test_non_quadratic_examples_are_not_l_smooth(f):
    # The Hessian is unbounded along a ray: these are the (L0,L1) objectives on which normalization matters.
    x = torch.tensor([[1.0], [10.0], [30.0]], dtype=torch.float64)
    h = f.hvp(x, torch.ones_like(x)).squeeze(-1)
    assert h[2] > 100 * h[0]


@pytest.mark.parametrize("f", ALL, ids=lambda f: type(f).__name__)
def test_minimum(f):
    x = torch.zeros(2, 3, dtype=torch.float64)
    assert torch.equal(f.loss(x), torch.zeros(2, dtype=torch.float64))
    assert torch.equal(f.grad(x), torch.zeros_like(x))
    assert f.f_star == 0.0
    np.testing.assert_array_equal(f.minimizer(3), np.zeros(3))


def test_quadratic_arguments():
    f = objectives.Quadratic(h=2.0, dim=4)
    assert f.dim == 4 and np.all(f.h == 2.0)
    with pytest.raises(ValueError, match="dim"):
        objectives.Quadratic(h=2.0)
    with pytest.raises(ValueError, match="h must be finite"):
        objectives.Quadratic(h=[1.0, float("nan")])
    with pytest.raises(ValueError, match="x0 must have last dimension 2"):
        objectives.Quadratic(h=[1.0, 2.0]).check_dim(3)
    with pytest.raises(ValueError, match="a must be finite and > 0"):
        objectives.CoshSum(a=-1.0)
