import json
import math
import os

import numpy as np
import pytest
import torch

import sdesim
from sdesim import compressors as C, methods as M, noise as Z, objectives as O

F64 = torch.float64
QUAD = O.Quadratic(h=[1.0, 4.0])
X0 = torch.tensor([1.0, 1.0], dtype=F64)
SIDES = {
    "discrete": lambda m, f, z, x0, **kw: sdesim.run_discrete(m, f, z, x0, runs=kw.pop("n"), **kw),
    "sde": lambda m, f, z, x0, **kw: sdesim.simulate(m, f, z, x0, paths=kw.pop("n"), **kw),
}
METHODS = [M.DCSGD(0.05, 4, compressor=C.RandK(1)), M.DSignSGD(0.05, 2), M.DSGD(0.05, 2)]


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("method", METHODS, ids=repr)
def test_seed_determinism_and_record_every(side, method):
    run = SIDES[side]
    a = run(method, QUAD, Z.Gaussian(0.5), X0, steps=60, n=64, seed=3, record_every=1, keep_states=True)
    b = run(method, QUAD, Z.Gaussian(0.5), X0, steps=60, n=64, seed=3, record_every=6, keep_states=True)
    c = run(method, QUAD, Z.Gaussian(0.5), X0, steps=60, n=64, seed=4, record_every=6)
    assert a.kind == side and a.loss.shape == (64, 61) and b.loss.shape == (64, 11)
    np.testing.assert_array_equal(a.loss[:, ::6], b.loss)
    np.testing.assert_array_equal(a.states[:, ::6], b.states)
    np.testing.assert_array_equal(a.t, np.arange(61) * 0.05)
    assert not np.array_equal(b.loss, c.loss)


@pytest.mark.parametrize("side", SIDES)
def test_divergence_is_marked_not_raised(side):
    # GD on x⁴/4 is stable only while lr·x² < 2 (MATH.md §7.1): runs started beyond that blow up, the others not.
    x0 = torch.tensor([[0.5], [1.0], [4.6], [6.0]], dtype=F64)
    tr = SIDES[side](M.DSGD(0.1), O.Quartic(), Z.Gaussian(0.01), x0, steps=200, n=4, seed=0, record_every=5,
                     divergence_threshold=1e20)
    np.testing.assert_array_equal(tr.diverged, [False, False, True, True])
    assert tr.diverged_step[0] == -1 and 0 < tr.diverged_step[3] <= tr.diverged_step[2] < 200
    k = np.searchsorted(tr.step, tr.diverged_step[2])
    assert np.all(np.isnan(tr.loss[2, k:])) and np.all(np.isfinite(tr.loss[2, :k]))
    assert tr.diverged_share == 0.5 and np.all(np.isfinite(tr.center()))


def test_bad_inputs_name_the_parameter():
    ok = dict(steps=5, runs=4, seed=0)
    cases = [
        (lambda: M.DSGD(lr=-0.1), "lr must be finite and > 0"),
        (lambda: M.DSGD(lr=0.1, n_agents=0), "n_agents must be an integer >= 1"),
        (lambda: M.SGD(lr=0.1, n_agents=2), "n_agents must be 1 for SGD"),
        (lambda: M.DCSGD(lr=0.1), "compressor must be given"),
        (lambda: M.DCSGD(lr=0.1, n_agents=3, compressor=[C.RandK(1)] * 2), "n_agents=3"),
        (lambda: sdesim.run_discrete(M.DSGD(0.1), QUAD, Z.Gaussian(1.0), [1.0, 2.0, 3.0], **ok), "x0 must have last"),
        (lambda: sdesim.run_discrete(M.DSGD(0.1), QUAD, Z.Gaussian(1.0), [1.0, math.nan], **ok), "x0 must be finite"),
        (lambda: sdesim.run_discrete(M.DSGD(0.1), QUAD, Z.Gaussian(1.0), np.ones((3, 2)), **ok), r"x0 must have shape"),
        (lambda: sdesim.run_discrete(M.DSGD(0.1), QUAD, Z.Gaussian(1.0), X0, steps=5, runs=0, seed=0), "runs"),
        (lambda: sdesim.run_discrete(M.DSGD(0.1), QUAD, Z.Gaussian(1.0), X0, steps=-1, runs=2, seed=0), "steps"),
        (lambda: sdesim.run_discrete(M.DSGD(0.1, 3), QUAD, Z.Gaussian(np.ones((2, 2))), X0, **ok), "sigma has shape"),
        (lambda: sdesim.run_discrete(M.DCSGD(0.1, compressor=C.RandK(3)), QUAD, Z.Gaussian(1.0), X0, **ok), "k must be <= d"),
        (lambda: sdesim.simulate(M.DSGD(0.1), QUAD, Z.Gaussian(1.0), X0, steps=5, paths=2, seed=0, substeps=0), "substeps"),
        (lambda: sdesim.simulate(M.DSGD(0.1), QUAD, Z.Gaussian(1.0), X0, steps=5, paths=2, seed=0, solver="eulr"),
         "did you mean 'euler'"),
        (lambda: sdesim.run_discrete("sgd", QUAD, Z.Gaussian(1.0), X0, **ok), "method must be an sdesim method"),
    ]
    for fn, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            fn()


def test_heavy_tails_are_summarised_by_medians():
    d = sdesim.run_discrete(M.DSGD(0.05), QUAD, Z.StudentT(1.0, 0.5), X0, steps=20, runs=200, seed=0)
    s = sdesim.run_discrete(M.DSignSGD(0.05), QUAD, Z.StudentT(1.0, 0.5), X0, steps=20, runs=200, seed=0)
    assert d.statistic == "median" and s.statistic == "mean"
    c, lo, hi = d.band()
    np.testing.assert_array_equal(c, np.median(d.loss, axis=0))
    assert np.all(lo <= c) and np.all(c <= hi)


def test_trajectories_save_load_and_dataframe(tmp_path):
    tr = sdesim.simulate(M.DCSGD(0.05, 2, compressor=C.Bernoulli(0.5)), QUAD, Z.Gaussian(0.5), X0, steps=10,
                         paths=8, seed=0, keep_states=True)
    path = tr.save(tmp_path / "run.npz")
    assert os.listdir(tmp_path) == ["run.npz"]  # written atomically, no temporary left behind
    back = sdesim.load(path)
    for name in ("t", "step", "loss", "grad_norm", "diverged", "diverged_step", "states"):
        np.testing.assert_array_equal(getattr(back, name), getattr(tr, name))
    assert back.meta == tr.meta and back.kind == "sde" and back.statistic == "mean"
    json.dumps(tr.meta)  # plain data
    assert tr.meta["method"]["compressor"] == {"type": "Bernoulli", "p": 0.5}
    df = tr.to_dataframe()
    assert len(df) == 8 * 11 and {"run", "step", "t", "loss", "grad_norm", "diverged"} <= set(df.columns)


def test_stationary_estimate_and_standard_error():
    tr = sdesim.run_discrete(M.DSGD(0.1), O.Quadratic(h=[1.0]), Z.Gaussian(1.0), [0.0], steps=400, runs=500,
                             seed=1)
    est, se = tr.stationary(burn_in=0.25)
    per_run = tr.loss[:, 100:].mean(1)
    assert est == pytest.approx(per_run.mean()) and se == pytest.approx(per_run.std(ddof=1) / math.sqrt(500))
