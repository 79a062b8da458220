from dataclasses import replace

import numpy as np
import pytest
import torch

import sdesim
from sdesim import compressors as C, methods as M, noise as Z, objectives as O

F = O.Quadratic(h=[1.0, 4.0])
X0 = torch.tensor([1.0, 1.0], dtype=torch.float64)


def run(seed, lr=0.05, z=Z.Gaussian(0.5), method=None, steps=100, n=2000):
    return sdesim.run_discrete(method or M.DSGD(lr, 2), F, z, X0, steps=steps, runs=n, seed=seed, record_every=5)


def test_identical_and_independent_copies():
    a, b = run(0), run(1)
    c = sdesim.compare(a, a)
    assert c.weak_error == 0.0 and c.ci_overlap == 1.0 and c.p_value == 1.0
    c = sdesim.compare(a, b)  # two independent samples of one law: agreement near the nominal 95%
    assert c.ci_overlap >= 0.8 and c.statistic == "mean" and "consistent" in c.summary()


def test_detects_a_real_difference():
    a = run(0)
    b = replace(a, loss=a.loss + 0.05)
    c = sdesim.compare(a, b)
    assert c.weak_error == pytest.approx(0.05) and c.ci_overlap == 0.0 and "distinguishable" in c.summary()
    assert c.p_value < 1e-6


def test_weak_error_definition():
    a, b = run(0), run(1)
    c = sdesim.compare(a, b, metric="grad_norm")
    diff = np.abs(a.grad_norm.mean(0) - b.grad_norm.mean(0))
    assert c.weak_error == pytest.approx(diff.max()) and c.weak_error_t == pytest.approx(a.t[diff.argmax()])
    half = 1.959963984540054 * np.hypot(a.grad_norm.std(0, ddof=1), b.grad_norm.std(0, ddof=1)) / np.sqrt(2000)
    assert c.ci_overlap == pytest.approx(np.mean(diff <= half))
    later = half > 0  # at t = 0 every run starts at x0: no spread, no difference
    assert c.max_z == pytest.approx(np.max(diff[later] / (half[later] / 1.959963984540054)))


def test_common_steps_and_lr_mismatch():
    a = run(0)
    b = sdesim.run_discrete(M.DSGD(0.05, 2), F, Z.Gaussian(0.5), X0, steps=100, runs=500, seed=1, record_every=10)
    assert len(sdesim.compare(a, b).t) == 11
    with pytest.raises(ValueError, match="learning rates differ"):
        sdesim.compare(a, run(1, lr=0.1))


def test_heavy_tails_compare_medians_and_say_so():
    a = run(0, z=Z.StudentT(1.0, 0.5))
    b = sdesim.simulate(M.DSGD(0.05, 2), F, Z.Stable(1.0, 0.5 * np.sqrt(2)), X0, steps=100, paths=2000, seed=3,
                        record_every=5)
    c = sdesim.compare(a, b)
    assert c.statistic == "median" and "medians are compared" in c.summary()
    # Cauchy noise (StudentT ν=1, scale 0.5) is Stable(α=1) with σ/√2 = 0.5: the Lévy SDE tracks the median
    assert c.ci_overlap >= 0.8


def test_plot_returns_axes():
    import matplotlib.pyplot as plt

    c = sdesim.compare(run(0), sdesim.simulate(M.DCSGD(0.05, 2, compressor=C.RandK(1)), F, Z.Gaussian(0.5), X0,
                                               steps=100, paths=500, seed=0, record_every=5))
    with pytest.raises(ValueError, match="learning rates"):
        sdesim.compare(c.a, run(0, lr=0.07))
    ax = c.plot(logy=True)
    assert len(ax.get_lines()) == 2 and ax.get_xlabel() == "t = k·lr"
    plt.close("all")


def test_p_value_is_bonferroni_over_welch_tests():
    # few runs: the per-time p-values are Welch's t-tests (scipy's ttest_ind with equal_var=False), not the normal
    # approximation, which would be anti-conservative here
    from scipy import stats

    a, b = run(0, n=12), run(1, n=20)
    b = replace(b, loss=b.loss + np.where(b.t > 0, 0.01, 0.0))  # both start at x0: shift only later times
    c = sdesim.compare(a, b)
    later = a.t > 0
    p = stats.ttest_ind(a.loss[:, later], b.loss[:, later], axis=0, equal_var=False).pvalue
    assert c.p_value == pytest.approx(min(1.0, len(a.t) * p.min()), rel=1e-9)
    normal = min(1.0, 2 * len(a.t) * stats.norm.sf(c.max_z))
    assert c.p_value > normal  # heavier tails of t with ~20 degrees of freedom
