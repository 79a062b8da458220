"""Weak order 1 of the SDEs (MATH.md §2.1): max_k |E f(x_k) − E f(X_{kη})| shrinks like η.

The SDE is resolved with 8 Euler substeps per iteration (with one substep and Gaussian noise, Euler on the DSGD SDE
is DSGD itself, MATH.md §10.1, and the error would vanish). The run counts make the weak error at the smallest
learning rate at least ~10 standard errors of the difference of the two means (asserted), so the fitted slope is
set by the O(η) bias, not by noise. Band: |slope − 1| < 0.2 (as diffrax's order tests, a band, not a point).
"""

import numpy as np
import pytest
import torch

import sdesim
from problems import fit_slope
from sdesim import compressors as C, methods as M, noise as Z, objectives as O

F = O.Quadratic(h=[1.0, 2.0])
X0 = torch.tensor([1.0, -1.0], dtype=torch.float64)
LRS = [0.1, 0.05, 0.025, 0.0125]
T_END = 2.0

CASES = {
    "dsgd": (lambda lr: M.DSGD(lr, 2), Z.Gaussian(0.3), 40_000),
    "dcsgd-randk": (lambda lr: M.DCSGD(lr, 2, compressor=C.RandK(1)), Z.Gaussian(0.3), 40_000),
    "dcsgd-qsgd": (lambda lr: M.DCSGD(lr, 2, compressor=C.QSGD(1)), Z.Gaussian(0.3), 40_000),
    "dsignsgd": (lambda lr: M.DSignSGD(lr, 2), Z.Gaussian(1.0), 100_000),
}


@pytest.mark.parametrize("name", CASES)
def test_weak_error_is_first_order_in_lr(name):
    make, z, runs = CASES[name]
    errors = []
    for i, lr in enumerate(LRS):
        steps = round(T_END / lr)
        d = sdesim.run_discrete(make(lr), F, z, X0, steps=steps, runs=runs, seed=10 + i)
        s = sdesim.simulate(make(lr), F, z, X0, steps=steps, paths=runs, seed=20 + i, substeps=8)
        c = sdesim.compare(d, s)
        se = float(np.max(np.hypot(c.halfwidth_a, c.halfwidth_b))) / 1.96
        assert c.weak_error > 7 * se, (lr, c.weak_error, se)
        errors.append(c.weak_error)
    slope = fit_slope(LRS, errors)
    assert abs(slope - 1.0) < 0.2, (errors, slope)
