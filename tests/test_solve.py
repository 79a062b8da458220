import math

import numpy as np
import pytest
import torch
from scipy import stats

import sdesim
from problems import GBM, Brownian, Clock, fit_slope

F64 = torch.float64


def test_exact_number_of_steps_and_record_layout():
    y0 = torch.zeros(3, 2, dtype=F64)
    for dt, steps in ((0.1, 1000), (0.25, 64), (1.0 / 3.0, 9)):
        ys = sdesim.solve(Clock(), y0, dt=dt, steps=steps, seed=0, record_every=4)
        assert ys.shape == (steps // 4 + 1, 3, 2)
        end = sdesim.solve(Clock(), y0, dt=dt, steps=steps, seed=0, record_every=steps)[-1, 0]
        # Euler on dX = (1, t) dt: exactly n·h and h²n(n−1)/2 after n steps, whatever h is in binary.
        assert float(end[0]) == pytest.approx(steps * dt, rel=1e-12)
        assert float(end[1]) == pytest.approx(dt * dt * steps * (steps - 1) / 2, rel=1e-12)


def test_hundred_thousand_steps():
    ys = sdesim.solve(GBM(-0.5, 0.1), torch.ones(4, 1, dtype=F64), dt=1e-3, steps=100_000, seed=0,
                      record_every=10_000)
    assert ys.shape == (11, 4, 1) and bool(torch.isfinite(ys).all())


def test_same_seed_bit_identical_whatever_record_every():
    y0 = torch.ones(5, 3, dtype=F64)
    a = sdesim.solve(GBM(0.3, 0.6), y0, dt=0.01, steps=100, seed=7, record_every=1)
    b = sdesim.solve(GBM(0.3, 0.6), y0, dt=0.01, steps=100, seed=7, record_every=20)
    c = sdesim.solve(GBM(0.3, 0.6), y0, dt=0.01, steps=100, seed=8, record_every=20)
    assert torch.equal(a[::20], b)
    assert not torch.equal(b, c)


def test_prefetch_and_chunking_do_not_change_the_numbers(monkeypatch):
    # The increments of step k + 1 are drawn on a background thread during step k, and the batch is split into
    # chunks for the arithmetic; neither may change a single number.
    from sdesim import _solve

    opt, f = sdesim.methods.DSGD(0.05, 4), sdesim.objectives.Quadratic(h=torch.linspace(0.5, 2.0, 300, dtype=F64))
    z, x0 = sdesim.noise.Gaussian(0.5), torch.ones(300, dtype=F64)

    def run():
        return sdesim.simulate(opt, f, z, x0, steps=30, paths=700, seed=3, record_every=5).loss

    assert 700 * 300 >= _solve._PREFETCH_MIN and 700 * 300 > f.chunk_numbers  # both mechanisms are exercised
    ref = run()
    monkeypatch.setattr(_solve, "_PREFETCH_MIN", math.inf)
    assert np.array_equal(run(), ref)
    monkeypatch.setattr(type(f), "chunk_numbers", 1 << 40)
    assert np.array_equal(run(), ref)
    # srk asks for the space-time Lévy area as well, drawn ahead with the increment.
    y0 = torch.ones(1 << 16, 1, dtype=F64)
    srk = [sdesim.solve(GBM(0.3, 0.6), y0, dt=0.01, steps=20, seed=4, solver="srk", record_every=20)]
    monkeypatch.setattr(_solve, "_PREFETCH_MIN", 1)
    srk.append(sdesim.solve(GBM(0.3, 0.6), y0, dt=0.01, steps=20, seed=4, solver="srk", record_every=20))
    assert torch.equal(*srk)


def test_global_random_state_untouched():
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    sdesim.solve(GBM(0.1, 0.2), torch.ones(4, 2, dtype=F64), dt=0.1, steps=10, seed=1)
    assert torch.equal(torch_state, torch.get_rng_state())
    assert np.array_equal(np_state, np.random.get_state()[1])


def test_euler_weak_order_on_gbm():
    # Weak error in the mean, estimated with the exact solution driven by the same Brownian path (same seed and
    # shape => same increments), so the estimate's standard error is O(sqrt(h/R)), far below the O(h) bias. The
    # closed form X0 (e^{μT} − (1 + μh)^{T/h}) is the ground truth; the fitted order must be 1 within ±0.15.
    sde, x0, t_end, paths = GBM(1.0, 0.5), 1.0, 1.0, 40_000
    hs = [1 / 8, 1 / 16, 1 / 32, 1 / 64]
    errors = []
    for h in hs:
        n = round(t_end / h)
        y0 = torch.full((paths, 1), x0, dtype=F64)
        x_h = sdesim.solve(sde, y0, dt=h, steps=n, seed=3, record_every=n)[-1]
        w_t = sdesim.solve(Brownian(), torch.zeros_like(y0), dt=h, steps=n, seed=3, record_every=n)[-1]
        diff = (sde.exact(x0, w_t, t_end) - x_h).numpy().ravel()
        err, se = diff.mean(), diff.std(ddof=1) / math.sqrt(paths)
        closed = x0 * (math.exp(t_end) - (1 + h) ** n)
        assert abs(err - closed) <= 4 * se
        errors.append(err)
    assert abs(fit_slope(hs, errors) - 1.0) < 0.15


@pytest.mark.parametrize("solver,order", [("euler", 0.5), ("milstein", 1.0), ("srk", 1.5)])
def test_strong_order_on_gbm(solver, order):
    # Solver correctness pathwise (STYLE.md §17): E|X^h_T − X_T| against the exact solution on the same path; the
    # space-time Lévy area that srk needs is checked by its order 1.5. Band ±0.25 around the theoretical order.
    sde, t_end, paths = GBM(0.5, 0.8), 1.0, 4000
    hs = [1 / 4, 1 / 8, 1 / 16, 1 / 32]
    errs = []
    for h in hs:
        n = round(t_end / h)
        y0 = torch.ones(paths, 1, dtype=F64)
        x_h = sdesim.solve(sde, y0, dt=h, steps=n, seed=5, solver=solver, record_every=n)[-1]
        w_t = sdesim.solve(Brownian(), torch.zeros_like(y0), dt=h, steps=n, seed=5, record_every=n)[-1]
        errs.append(float((x_h - sde.exact(1.0, w_t, t_end)).abs().mean()))
    assert abs(fit_slope(hs, errs) - order) < 0.25


def test_stable_increments_have_the_stable_law():
    alpha, h = 1.3, 0.04
    inc = sdesim.solve(Brownian(), torch.zeros(5000, 1, dtype=F64), dt=h, steps=1, seed=2,
                       increments=sdesim.StableIncrements(alpha))[-1].reshape(-1).numpy()
    law = stats.levy_stable(alpha, 0.0, scale=h ** (1 / alpha))
    assert stats.kstest(inc, law.cdf).pvalue > 1e-3


def test_refusals():
    y0 = torch.ones(2, 1, dtype=F64)
    with pytest.raises(ValueError, match="only 'euler' is sound"):
        sdesim.solve(GBM(0, 1), y0, dt=0.1, steps=2, seed=0, solver="srk", increments=sdesim.StableIncrements(1.5))
    with pytest.raises(ValueError, match="did you mean 'milstein'"):
        sdesim.solve(GBM(0, 1), y0, dt=0.1, steps=2, seed=0, solver="milstien")
    with pytest.raises(ValueError, match=r"y0 must be a tensor of shape \(batch, d\)"):
        sdesim.solve(GBM(0, 1), torch.ones(3, dtype=F64), dt=0.1, steps=2, seed=0)
    with pytest.raises(ValueError, match="y0 must be finite"):
        sdesim.solve(GBM(0, 1), torch.full((2, 1), math.nan, dtype=F64), dt=0.1, steps=2, seed=0)
    with pytest.raises(ValueError, match="dt must be finite and > 0"):
        sdesim.solve(GBM(0, 1), y0, dt=0.0, steps=2, seed=0)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        sdesim.solve(GBM(0, 1), y0, dt=0.1, steps=2, seed=-1)


def test_divergence_marks_paths_not_raises():
    y0 = torch.tensor([[1.0], [0.0]], dtype=F64)
    ys = sdesim.solve(GBM(50.0, 0.0), y0, dt=1.0, steps=300, seed=0, record_every=10, divergence_threshold=1e100)
    assert bool(torch.isnan(ys[-1, 0]).all()) and bool(torch.isfinite(ys[:, 1]).all())
