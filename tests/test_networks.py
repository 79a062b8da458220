"""Real networks on real data: the Network objective, the offline datasets and models, minibatch noise and its SDE,
the tail-index estimator, and the SDE-vs-optimizer comparison on digits with an MLP."""

import math

import numpy as np
import pytest
import torch

import sdesim
from sdesim import _rng, compressors as C, data, methods as M, nets, noise as Z, objectives as O
from sdesim.models import MinibatchSDE, SignSDE, build_sde

F64 = torch.float64


@pytest.fixture(scope="module")
def wine_net():
    ds = data.wine(seed=0)
    return O.Network(nets.mlp(13, 3, (8,), seed=0), ds.x_train, ds.y_train, test_inputs=ds.x_test,
                     test_targets=ds.y_test)


@pytest.fixture(scope="module")
def digits_net():
    ds = data.digits(seed=0)
    return O.Network(nets.mlp(64, 10, (16,), seed=0), ds.x_train, ds.y_train, test_inputs=ds.x_test,
                     test_targets=ds.y_test)


def test_network_derivatives_match_autograd(wine_net):
    f = wine_net
    p = f.x0.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f.loss(p), p, create_graph=True)
    v = torch.randn(f.dim, dtype=F64, generator=torch.Generator().manual_seed(0))
    (hv,) = torch.autograd.grad((g * v).sum(), p)
    x = f.x0.expand(2, 3, -1)
    assert f.loss(x).shape == (2, 3)
    torch.testing.assert_close(f.grad(x)[1, 2], g.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(f.hvp(x, v.expand(2, 3, -1))[0, 1], hv, rtol=1e-10, atol=1e-12)
    per = f.per_example_grads(f.x0)
    torch.testing.assert_close(per.mean(0), g.detach(), rtol=1e-10, atol=1e-12)
    w = torch.rand(2, 3, f.n, dtype=F64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(f.weighted_grads(f.x0.expand(2, -1), w)[1], w[1] @ per, rtol=1e-10, atol=1e-12)
    mean, sq = f.grad_moments(f.x0.expand(2, -1), chunk=7)
    torch.testing.assert_close(sq[0], per.square().mean(0), rtol=1e-10, atol=1e-12)
    idx = torch.tensor([[0, 5, 7]])
    torch.testing.assert_close(f.minibatch_grad(f.x0[None], idx)[0], per[idx[0]].mean(0), rtol=1e-10, atol=1e-12)
    m = f.metrics(f.x0[None])
    assert set(m) == {"test_loss", "test_accuracy"} and 0 <= float(m["test_accuracy"]) <= 1
    assert "Network" in repr(f) and f.to_config()["d"] == f.dim


def test_datasets_are_offline_seeded_and_standardized():
    a, b, c = data.digits(seed=1), data.digits(seed=1), data.digits(seed=2)
    assert torch.equal(a.x_train, b.x_train) and not torch.equal(a.x_train, c.x_train)
    assert a.x_train.shape[1] == 64 and a.n_classes == 10 and len(a.x_train) + len(a.x_test) == 1797
    std = a.x_train.std(0)
    assert torch.allclose(a.x_train.mean(0), torch.zeros(64, dtype=F64), atol=1e-12)
    assert torch.all((std - 1).abs() < 1e-3) or torch.all((std[std > 0] - 1).abs() < 1e-2)
    assert data.digits(image=True).x_train.shape[1:] == (1, 8, 8)
    for loader, shape, k in ((data.breast_cancer, 30, 2), (data.wine, 13, 3)):
        ds = loader(seed=0)
        assert ds.x_train.shape[1] == shape and ds.n_classes == k
    t = data.text(context=12, n_train=500, n_test=100, seed=0)
    assert t.x_train.shape == (500, 12) and t.x_train.dtype == torch.int64 and t.n_classes == len(t.vocab)
    assert "Beautiful is better than ugly." in data.corpus()
    with pytest.raises(ValueError, match="test_size"):
        data.wine(test_size=1.5)


def test_models_are_seeded_without_global_state():
    state = torch.get_rng_state()
    a, b = nets.mlp(4, 2, (3,), seed=5), nets.mlp(4, 2, (3,), seed=5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert torch.equal(state, torch.get_rng_state())
    cnn = nets.cnn8x8(seed=0)
    assert cnn(torch.zeros(3, 1, 8, 8, dtype=F64)).shape == (3, 10)
    t = data.text(context=8, n_train=64, n_test=16, seed=0)
    tr = nets.char_transformer(t.n_classes, 8, d_model=16, heads=2, seed=0)
    f = O.Network(tr, t.x_train, t.y_train)
    g = f.grad(f.x0.expand(3, -1))  # vmap over parameter copies through the attention block
    assert g.shape == (3, f.dim) and bool(torch.isfinite(g).all())
    assert f.loss(f.x0[None])[0] == pytest.approx(math.log(t.n_classes), rel=0.2)


def test_minibatch_noise_law(wine_net):
    # Unbiased, with covariance c_B Σ₁ (finite-population factor); 4.5 standard errors per entry of the diagonal.
    f, z, n = wine_net, Z.Minibatch(8), wine_net.n
    x = f.x0.expand(40_000, -1).contiguous()
    g = f.grad(x[:1]).expand(40_000, -1)
    noise = z.sample(g, 1, _rng.streams(0, ["n"])["n"], x=x, objective=f)[:, 0]
    per = f.per_example_grads(f.x0)
    sigma1 = ((per - per.mean(0)) ** 2).mean(0)
    want = z.covariance_factor(n) * sigma1
    se_mean = torch.sqrt(want / noise.shape[0])
    assert bool((noise.mean(0).abs() <= 4.5 * se_mean + 1e-12).all())
    sq = noise.square()
    assert bool(((sq.mean(0) - want).abs() <= 4.5 * sq.std(0) / math.sqrt(sq.shape[0]) + 1e-12).all())
    assert z.covariance_factor(n) == pytest.approx((n - 8) / (8 * (n - 1)))
    assert Z.Minibatch(n).covariance_factor(n) == 0.0
    with pytest.raises(ValueError, match="objectives.Network"):
        sdesim.run_discrete(M.DSGD(0.1), O.Quadratic(h=[1.0]), z, [1.0], steps=1, runs=1, seed=0)


@pytest.mark.parametrize("method", [M.DSGD(0.1, 2), M.DCSGD(0.1, 2, compressor=C.RandK(20)),
                                    M.DCSGD(0.1, 3, compressor=C.Bernoulli(0.5))], ids=repr)
def test_minibatch_sde_has_the_step_moments(wine_net, method):
    # Drift exact; the diffusion's covariance (averaged over its randomized part) equals Cov of the optimizer's
    # direction: compared entrywise on the diagonal within 5 combined standard errors.
    f, z, r = wine_net, Z.Minibatch(8), 30_000
    sde = build_sde(method, f, z, d=f.dim, seed=0)
    assert isinstance(sde, MinibatchSDE)
    x = f.x0.expand(r, -1).contiguous()
    v = _rng.streams(3, ["v"])["v"].normal((r, sde.noise_size), F64)
    drift, inc = sde.f_and_g_prod(torch.tensor(0.0, dtype=F64), x, v)
    g = f.grad(x[:1])
    torch.testing.assert_close(drift[0], -0.1 * g[0], rtol=1e-10, atol=1e-12)
    rng = _rng.streams(1, ["noise", "c0"])
    u = method.direction(g.expand(r, -1).unsqueeze(-2) + z.sample(g.expand(r, -1), method.n_agents, rng["noise"],
                                                                      x=x, objective=f), [rng["c0"]])
    a, b = (inc / 0.1).square(), (u - u.mean(0)).square()
    se = torch.sqrt(a.var(0) / r + b.var(0) / r)
    assert bool(((a.mean(0) - b.mean(0)).abs() <= 5 * se + 1e-12).all())


def test_minibatch_sign_model_uses_the_spread(wine_net):
    f = wine_net
    sde = build_sde(M.DSignSGD(0.01, 2), f, Z.Minibatch(f.n), d=f.dim)  # B = n: no noise left
    assert isinstance(sde, SignSDE)
    x = f.x0[None]
    torch.testing.assert_close(sde.f(torch.tensor(0.0, dtype=F64), x), -0.01 * torch.sign(f.grad(x)))


def test_tail_index_estimator():
    # 8 replicates of 10⁵ SαS draws: the mean estimate is within 4 standard errors (from the replicates' spread).
    for alpha in (1.2, 1.7, 2.0):
        est = [Z.tail_index(_rng.streams(s, ["x"])["x"].stable(alpha, (100_000,), F64)) for s in range(8)]
        assert abs(np.mean(est) - alpha) <= 4 * np.std(est, ddof=1) / math.sqrt(8) + 1e-3
    with pytest.raises(ValueError, match="at least 4"):
        Z.tail_index([1.0, 2.0])


def test_gradient_noise_tail_index_on_a_network(wine_net):
    samples = Z.gradient_noise(wine_net, wine_net.x0, batch_size=4, draws=400, seed=0)
    assert samples.shape == (400, wine_net.dim)
    alpha = Z.tail_index(samples)
    assert 0.5 < alpha < 2.5


NET_METHODS = {  # (method at lr, runs for the weak-error part: compression noise needs more)
    "dsgd": (lambda lr: M.DSGD(lr, 4), 32),
    "dcsgd-randk": (lambda lr: M.DCSGD(lr, 4, compressor=C.RandK(605)), 256),
    "dsignsgd": (lambda lr: M.DSignSGD(lr / 10, 4), 32),
}


@pytest.mark.parametrize("name", NET_METHODS)
def test_digits_mlp_sde_tracks_the_optimizer(digits_net, name):
    # (1) At the optimizer's step (substeps = 1), the SDE's mean loss is consistent with the optimizer's: the largest
    # standardized difference over the recorded times has Bonferroni p ≥ 0.01 (a false alarm has probability ≤ 1%).
    # The SDE uses 8× more paths than the optimizer has runs, so its own Monte Carlo error is small.
    f, z = digits_net, Z.Gaussian(0.05)
    make, runs = NET_METHODS[name]
    c = sdesim.compare_on(make(0.2), f, z, f.x0, steps=30, runs=16, paths=128, seed=0, record_every=3)
    assert c.p_value >= 0.01, c.summary()
    acc = sdesim.compare(c.a, c.b, "test_accuracy")
    assert acc.p_value >= 0.01 and c.a.center("test_accuracy")[-1] > 0.5
    # (2) With little noise the weak error against an accurately resolved SDE (4 substeps) is set by lr, not by
    # Monte Carlo error: halving lr shrinks it (ratio above 1.33, order 1 gives 2) and it stays above 3 SE.
    small, errs = Z.Gaussian(0.01), []
    for lr in (0.4, 0.2):
        steps = round(2 / lr)
        k = sdesim.compare_on(make(lr), f, small, f.x0, steps=steps, runs=runs, seed=1,
                              record_every=max(1, steps // 10), substeps=4)
        se = float(np.max(np.hypot(k.halfwidth_a, k.halfwidth_b))) / 1.96
        assert k.weak_error > 3 * se, (lr, k.weak_error, se)
        errs.append(k.weak_error)
    assert errs[0] / errs[1] > 1.33, errs


def test_network_to_moves_a_copy(wine_net):
    g = wine_net.to(dtype=torch.float32)
    assert g.x0.dtype == torch.float32 and g.inputs.dtype == torch.float32 and g.targets.dtype == torch.int64
    assert wine_net.x0.dtype == torch.float64  # the original is untouched
    # float32 evaluation of the same function: agrees to float32 rounding
    assert abs(g.loss(g.x0).item() - wine_net.loss(wine_net.x0).item()) < 1e-5
