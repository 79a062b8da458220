"""sdesim.theory against the closed forms of MATH.md §7 and against simulation (Monte Carlo tolerances: 4 standard
errors of a mean at each of ≤ 11 recorded times, so a false alarm has probability < 1e-3 per check)."""

import math

import numpy as np
import pytest
import torch

import sdesim
from sdesim import compressors as C, methods as M, noise as Z, objectives as O, schedules as S, theory as T

F3 = O.Quadratic(h=[1.0, 3.0, 0.5])
X3 = np.array([1.0, -1.0, 2.0])
K = 4.0


def z_scores(tr, theory):
    c, lo, hi = tr.band()
    se = (hi - lo) / (2 * 1.959963984540054)
    ok = se > 0
    return np.where(ok, (c - theory) / np.where(ok, se, 1.0), 0.0)


def test_stationary_closed_forms():
    # MATH.md §7.7 ✓num: h = 2, σ = 1, N = 4, Bernoulli p = 0.25, η = 0.2.
    f, z, opt = O.Quadratic(h=[2.0]), Z.Gaussian(1.0), M.DCSGD(0.2, 4, compressor=C.Bernoulli(0.25))
    values = {m: T.stationary_loss(opt, f, z, model=m) for m in ("discrete", "stable", "first_order", "second_order")}
    # with h = 2, E f = E x²: 0.0769 (optimizer and v2 SDE), 0.0588 (first order), 0.0476 (classic)
    assert values["discrete"] == pytest.approx(0.2 / 2.6) and values["stable"] == pytest.approx(0.2 / 2.6)
    assert values["first_order"] == pytest.approx(0.2 / 3.4) and values["second_order"] == pytest.approx(0.2 / 4.2)
    # DSGD: (η/4N) Tr Σ for the first-order SDE, Σ σ²/(1 − ηh/2) (η/4N) for the optimizer (§7.6–§7.7)
    f, z = O.Quadratic(h=[1.0, 3.0]), Z.Gaussian([1.0, 0.5])
    assert T.stationary_loss(M.DSGD(0.1, 2), f, z) == pytest.approx(0.1 / 8 * 1.25)
    assert T.stationary_loss(M.DSGD(0.1, 2), f, z, model="discrete") == pytest.approx(
        0.1 / 8 * (1 / (1 - 0.05) + 0.25 / (1 - 0.15)))
    # DSignSGD (§7.6): η Tr Σ^{1/2}/(4cN); heterogeneous agents use the harmonic mean of their scales
    assert T.stationary_loss(M.DSignSGD(0.01, 4), O.Quadratic(h=[1.0]), Z.Gaussian(1.0)) == pytest.approx(0.000783, abs=5e-7)
    assert T.stationary_loss(M.SignSGD(0.01), O.Quadratic(h=[1.0]), Z.StudentT(1.0, 1.0)) == pytest.approx(0.00393, abs=5e-6)
    het = T.stationary_loss(M.DSignSGD(0.01, 2), O.Quadratic(h=[1.0]), Z.Gaussian([[1.0], [3.0]]))
    assert het == pytest.approx(0.01 * 1.5 / (4 * math.sqrt(2 / math.pi) * 2))
    # RandK: stationary E x x^T is diagonal; optimizer = stable SDE (§7.7)
    opt = M.DCSGD(0.1, 2, compressor=C.RandK(1))
    cov = T.stationary_covariance(opt, F3, Z.Gaussian(0.5), model="discrete")
    assert np.count_nonzero(cov - np.diag(np.diag(cov))) == 0
    assert T.stationary_loss(opt, F3, Z.Gaussian(0.5), model="discrete") == pytest.approx(
        T.stationary_loss(opt, F3, Z.Gaussian(0.5), model="stable"), rel=1e-12)


def test_stability_thresholds():
    f, z = O.Quadratic(h=[2.0]), Z.Gaussian(1.0)
    opt = M.DCSGD(0.2, 4, compressor=C.Bernoulli(0.25))
    assert T.max_stable_lr(opt, f, z) == pytest.approx(2 / (2 * (1 + 3 / 4)), rel=1e-10)  # 2/(h(1 + ω/N))
    assert T.max_stable_lr(opt, f, z, model="stable") == pytest.approx(2 / (2 * (1 + 3 / 4)), rel=1e-10)
    assert T.max_stable_lr(opt, f, z, model="first_order") == pytest.approx(2 * 4 / (3 * 2), rel=1e-10)  # 2N/(ωh)
    g = O.Quadratic(h=[1.0, 4.0])
    assert T.max_stable_lr(M.DSGD(0.1), g, Z.Gaussian(1.0)) == pytest.approx(0.5, rel=1e-10)  # 2/h_max
    assert T.max_stable_lr(M.DSGD(0.1), g, Z.Gaussian(1.0), model="first_order") == math.inf
    assert T.max_stable_lr(M.DSignSGD(0.1), g, Z.Gaussian(1.0)) == math.inf
    # below the threshold the exact second-moment recursion of the optimizer settles, above it it grows without
    # bound (mean-square stability; single runs can still look tame, the second moment is heavy-tailed)
    lr = T.max_stable_lr(opt, f, z)
    t = np.array([0.0, 2000.0])
    below = T.loss_curve(replace_lr(opt, 0.99 * lr), f, z, [1.0], t * 0.99 * lr, model="discrete")
    above = T.loss_curve(replace_lr(opt, 1.01 * lr), f, z, [1.0], t * 1.01 * lr, model="discrete")
    assert below[-1] == pytest.approx(T.stationary_loss(replace_lr(opt, 0.99 * lr), f, z, model="discrete"),
                                      rel=1e-6)
    assert above[-1] > 1e6 and T.stationary_loss(replace_lr(opt, 1.01 * lr), f, z, model="discrete") == math.inf


def replace_lr(method, lr):
    from dataclasses import replace

    return replace(method, lr=lr)


CURVES = [
    (M.DCSGD(0.1, 2, compressor=C.RandK(1)), Z.Affine(0.5, 0.2)),
    (M.DSGD(0.1, 3, schedule=S.InvSqrt()), Z.Affine(0.5, 0.2)),
    (M.DCSGD(0.05, 2, compressor=C.Bernoulli(0.5), schedule=S.Warmup(20)), Z.Gaussian([0.3, 0.6, 0.9])),
]


@pytest.mark.parametrize("method,z", CURVES, ids=lambda v: repr(v)[:30])
def test_loss_curves_match_the_optimizer_and_the_simulated_scheme(method, z):
    steps = 100
    t = np.arange(0, steps + 1, 10) * method.lr
    d = sdesim.run_discrete(method, F3, z, torch.tensor(X3), steps=steps, runs=20000, seed=0, record_every=10)
    assert np.max(np.abs(z_scores(d, T.loss_curve(method, F3, z, X3, t, model="discrete")))) < K
    s = sdesim.simulate(method, F3, z, torch.tensor(X3), steps=steps, paths=20000, seed=1, record_every=10,
                        substeps=4)
    assert np.max(np.abs(z_scores(s, T.loss_curve(method, F3, z, X3, t, substeps=4)))) < K
    # the substep expectation converges to the ODE solution at order 1 in dt
    cont = T.loss_curve(method, F3, z, X3, t)
    e4, e16 = (np.max(np.abs(T.loss_curve(method, F3, z, X3, t, substeps=m) - cont)) for m in (4, 16))
    assert 3.0 < e4 / e16 < 5.0


def test_full_lyapunov_for_randk():
    method, z = M.DCSGD(0.1, 2, compressor=C.RandK(1)), Z.Gaussian(0.4)
    t = np.array([0.0, 0.5, 2.0, 5.0])
    full = T.second_moment_curve(method, F3, z, X3, t, full=True)
    diag = T.second_moment_curve(method, F3, z, X3, t)
    np.testing.assert_allclose(np.diagonal(full, axis1=1, axis2=2), diag, rtol=1e-7, atol=1e-12)
    # with diagonal noise E[x0 x1] would be the product of the means; Rand-k's −c̄ HMH term adds a covariance
    h = np.asarray(F3.h)
    means = X3 * np.exp(-h * t[1])
    assert abs(full[1, 0, 1] - means[0] * means[1]) > 1e-3
    # off-diagonal moments against the simulated scheme (4 standard errors per entry)
    s = sdesim.simulate(method, F3, z, torch.tensor(X3), steps=50, paths=40000, seed=2, substeps=2, record_every=5,
                        keep_states=True)
    want = T.second_moment_curve(method, F3, z, X3, s.t, substeps=2, full=True)
    prod = s.states[:, :, :, None] * s.states[:, :, None, :]
    se = prod.std(0) / math.sqrt(prod.shape[0])
    assert np.all(np.abs(prod.mean(0) - want) <= K * se + 1e-12)


def test_sign_phase3_curve():
    # Phase-3 linearization (MATH.md §7.7): allowed error 4 standard errors plus the neglected O(η h/σ) relative terms.
    f, x0 = O.Quadratic(h=[1.0]), np.array([0.05])
    for z in (Z.Gaussian(1.0), Z.StudentT(1.0, 1.0)):
        method = M.DSignSGD(0.01, 4, schedule=S.InvSqrt())
        t = np.arange(0, 3001, 300) * 0.01
        th = T.loss_curve(method, f, z, x0, t)
        s = sdesim.simulate(method, f, z, torch.tensor(x0), steps=3000, paths=4000, seed=1, record_every=300)
        c, lo, hi = s.band()
        assert np.all(np.abs(c - th) <= K * (hi - lo) / 3.92 + 0.01 * th)


def test_gradient_flows_of_section_7_1():
    lam, eta, t = 2.0, 0.3, np.linspace(0, 2, 9)
    f = O.Quadratic(h=[lam])
    for model, rate in (("first_order", 1.0), ("second_order", 1 + lam * eta / 2), ("stable", 1 - lam * eta / 2)):
        np.testing.assert_allclose(T.gradient_flow_loss(f, [1.0], t, lr=eta, model=model),
                                   lam / 2 * np.exp(-2 * lam * rate * t), rtol=1e-7)
    # quartic: the stable flow is repulsive beyond x² = 2/(3η)
    q = O.Quartic()
    assert T.gradient_flow_loss(q, [0.9 * math.sqrt(2 / (3 * eta))], [5.0], lr=eta, model="stable")[-1] < 0.05
    assert T.gradient_flow_loss(q, [1.1 * math.sqrt(2 / (3 * eta))], [5.0], lr=eta, model="stable")[-1] == math.inf


@pytest.mark.parametrize("method,z", [(M.DSGD(0.1, 2), Z.Gaussian([1.0, 0.5, 0.2])),
                                      (M.DCSGD(0.1, 2, compressor=C.RandK(1)), Z.Gaussian(0.5)),
                                      (M.DSignSGD(0.02, 2), Z.Gaussian(0.5))], ids=repr)
def test_pl_bounds_hold_in_simulation(method, z):
    # §7.5 bounds with μ = h_min, L = h_max, L_τ = Tr H: the SDE's mean loss stays below them (4 SE slack).
    h = np.asarray(F3.h)
    steps = 300
    s = sdesim.simulate(method, F3, z, torch.tensor(X3), steps=steps, paths=4000, seed=3, record_every=10)
    bound = T.pl_bound(method, z, s.t, s0=float(0.5 * h @ X3**2), mu=h.min(), L=h.max(), L_tau=h.sum(), d=3)
    c, lo, hi = s.band()
    assert np.all(c <= bound + K * (hi - lo) / 3.92)


def test_dcsgd_bounds():
    # noiseless, uncompressed, L-smooth: the v2 condition is the GD one, 2ε/L0; the classic one is vacuous
    kw = dict(grad_norm=3.0, L0=4.0, L1=0.0, omega=0.0, sigma0=0.0, sigma1=0.0, d=5, n_agents=2)
    assert T.dcsgd_step_threshold(eps=1.0, **kw) == pytest.approx(0.5)
    assert T.dcsgd_step_threshold(eps=1.0, model="first_order", **kw) == math.inf
    # the adaptive step shrinks with ω, σ1, d and L1 and grows with N (MATH.md §7.2)
    base = dict(grad_norm=2.0, L0=1.0, L1=1.0, omega=3.0, sigma0=0.1, sigma1=0.1, d=4, n_agents=2)
    s0 = T.dcsgd_step_threshold(**base)
    assert T.dcsgd_step_threshold(**{**base, "omega": 6.0}) < s0 < T.dcsgd_step_threshold(**{**base, "n_agents": 8})
    # the reconstructed gradient bound holds for a simulated DCSGD run inside the step condition
    f, z = O.Quadratic(h=[1.0, 2.0]), Z.Gaussian(0.3)
    w, n, eps = 1.0, 2, 0.5
    lr = 0.9 * T.dcsgd_step_threshold(grad_norm=0.0, L0=2.0, L1=0.0, omega=w, sigma0=0.3, sigma1=0.0, d=2,
                                      n_agents=n, eps=eps)
    method = M.DCSGD(lr, n, compressor=C.Bernoulli(1 / (1 + w)))
    steps = 400
    s = sdesim.simulate(method, f, z, [1.0, 1.0], steps=steps, paths=4000, seed=4)
    g2 = s.grad_norm**2
    avg = g2[:, :-1].mean()  # t̂ uniform on [0, t] for a constant schedule
    se = g2[:, :-1].mean(1).std() / math.sqrt(g2.shape[0])
    t_end = steps * lr
    bound = T.dcsgd_gradient_bound(f0_minus_fstar=1.5, L0=2.0, L1=0.0, sigma0=0.3, omega=w, d=2, n_agents=n,
                                   int_eta=t_end, int_eta2=t_end, lr=lr, eps=eps)
    assert avg <= bound + K * se


def test_dsignsgd_threshold_shape():
    a = T.dsignsgd_step_threshold(nu=1.0, L0=1.0, L1=1.0, d=4, n_agents=2, sigma_h1=0.0)
    assert 0 < a < math.inf  # a restriction even without noise (v2)
    assert T.dsignsgd_step_threshold(nu=1.0, L0=1.0, L1=1.0, d=4, n_agents=2, sigma_h1=0.0, model="first_order") == math.inf


def test_dcsgd_scaling_rules_recover_the_dsgd_floor():
    # §7.5: DCSGD with η(1+ω)/(BN) matched to DSGD has its noise floor up to κ and the ω||∇f||² term, which the exact
    # stationary laws quantify; simulation must agree with them (4 SE) and the unscaled floor must be (1+ω)× off.
    f, z, d = O.Quadratic(h=[1.0, 2.0, 1.5, 0.5]), Z.Gaussian(0.5), 4
    dsgd, comp = M.DSGD(0.05, 2), C.RandK(1)  # ω = 3
    base = T.stationary_loss(dsgd, f, z, model="discrete")
    plain = T.stationary_loss(M.DCSGD(0.05, 2, compressor=comp), f, z, model="discrete")
    assert plain / base > 3.5
    x0 = torch.zeros(4, dtype=torch.float64)
    for by in ("lr", "batch", "agents"):
        rule = T.dcsgd_scaling_rule(dsgd, comp, d=d, by=by)
        zz = rule.noise(z)
        exact = T.stationary_loss(rule.method, f, zz, model="discrete")
        assert abs(exact / base - 1) < 0.15, by
        steps = int(40 / rule.method.lr)
        tr = sdesim.run_discrete(rule.method, f, zz, x0, steps=steps, runs=2000, seed=5, record_every=10)
        est, se = tr.stationary(burn_in=0.3)
        assert abs(est - exact) <= K * se, (by, est, exact, se)


def test_dsignsgd_scaling_rule_collapses_curves():
    # B → κB (noise / √κ), η → η/√κ, N → N/κ: same per-iteration speed and floor, so curves against the iteration
    # count coincide (phase-3 prediction; checked by simulation within 4 SE + 1% model error).
    f, z = O.Quadratic(h=[1.0, 2.0]), Z.Gaussian(1.0)
    base = M.DSignSGD(0.02, 4)
    rule = T.dsignsgd_scaling_rule(base, 4.0)
    assert rule.method.n_agents == 1 and rule.method.lr == pytest.approx(0.01)
    x0 = torch.tensor([0.2, -0.2], dtype=torch.float64)
    a = sdesim.run_discrete(base, f, z, x0, steps=1500, runs=4000, seed=6, record_every=50)
    b = sdesim.run_discrete(rule.method, f, rule.noise(z), x0, steps=1500, runs=4000, seed=7, record_every=50)
    ca, la, ha = a.band()
    cb, lb, hb = b.band()
    assert np.all(np.abs(ca - cb) <= K * np.hypot(ha - la, hb - lb) / 3.92 + 0.02 * ca)


@pytest.mark.parametrize("method,z,model,slack", [
    (M.DSGD(0.1, 2), Z.Affine([[0.3], [0.6]], 0.2), "discrete", 0.0),
    (M.DCSGD(0.1, 2, compressor=C.RandK(1)), Z.Gaussian([0.5, 0.3, 0.8]), "discrete", 0.0),
    (M.DCSGD(0.05, 3, compressor=[C.Bernoulli(0.5), C.RandK(2), C.Identity()]), Z.StudentT(5.0, 0.4), "discrete", 0.0),
    # phase-3 linearization: allow its first neglected order, η h/σ relative (MATH.md §7.6)
    (M.DSignSGD(0.01, 2), Z.StudentT(3.0, [[1.0], [2.0]]), "discrete", 0.01 * 3.0 / 1.0),
], ids=lambda v: repr(v)[:28])
def test_stationary_loss_matches_the_optimizer(method, z, model, slack):
    x0 = torch.zeros(3, dtype=torch.float64)
    want = T.stationary_loss(method, F3, z, model=model)
    steps = int(8 / (method.lr * min(np.asarray(F3.h)))) if not method.sign_based else 6000
    tr = sdesim.run_discrete(method, F3, z, x0, steps=steps, runs=2000, seed=8, record_every=5)
    est, se = tr.stationary(burn_in=0.3)
    assert abs(est - want) <= K * se + slack * want, (est, want, se)
