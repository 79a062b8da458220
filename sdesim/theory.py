r"""Theory: closed forms, moment equations, stability thresholds, bounds and scaling rules (MATH.md §7).

Everything here is deterministic (no random numbers, no torchsde) and returns numpy values, so that a study can put
the prediction next to :func:`sdesim.run_discrete` and :func:`sdesim.simulate`.

**Quadratics** f = ½ xᵀHx, H = diag(h), with agent noise Σ_i(x) = diag(v0_i + v1_i ||∇f||²) (Gaussian, Affine,
Student-t with ν > 2) and unbiased compressors with Cov_ξ C(x) = α diag(x²) − β x xᵀ (Identity, Bernoulli, Rand-k).
With M = E[X Xᵀ], every moment the D(C)SGD dynamics needs is linear in M (MATH.md §7.7, [D]):

    E V(X) = diag(V0 + V1 Tr(HMH) + ā diag(HMH)) − c̄ HMH,
    V0 = (1/N²)Σ_i (1 + α_i − β_i) v0_i,  V1 = (1/N²)Σ_i (1 + α_i − β_i) v1_i,  ā = ᾱ/N,  c̄ = β̄/N.

- the optimizer (``model="discrete"``): M_{k+1} = (I − λ_k H) M_k (I − λ_k H) + λ_k² E V(M_k), exact;
- the SDEs (t = kη, λ = η η_t): dM/dt = −η_t (A M + M A) + η η_t² E V(M) with A = H (``"first_order"``),
  H(I + λH/2) (``"second_order"``) or H(I − λH/2) (``"stable"``);
- with ``substeps=m`` the functions return the expectation of what :func:`sdesim.simulate` computes: Euler with m
  steps per iteration, M ← (I − (λ/m) A) M (I − (λ/m) A) + (λ²/m) E V(M), exactly.

E f = ½ Σ_j h_j M_jj; the diagonal of M obeys a closed system (the off-diagonals do not feed back), which is what
:func:`loss_curve` integrates; ``full=True`` integrates the full Lyapunov equation (needed for Rand-k's covariance).

**DSignSGD** uses the phase-3 linearization E sign(g + σZ) ≈ c g/σ (MATH.md §6.4, §7.6–§7.7, [R+D]), c = √(2/π)
(Gaussian) or c_ν = 2p_ν(0) (Student-t): valid once |∇f| ≲ σ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from . import _checks
from .compressors import Sign
from .methods import DCSGD, DSGD, AbstractMethod, DSignSGD, affine_groups
from .models import _agent_sum
from .noise import AbstractNoise, Affine, Gaussian, Stable, StudentT, agent_array
from .objectives import AbstractObjective, Quadratic

MODELS = ("first_order", "second_order", "stable", "discrete")


# ---------------------------------------------------------------------------------------------------------------------
# ingredients


@dataclass(frozen=True)
class _Linear:
    """The quadratic D(C)SGD problem as the constants of E V(M) (see the module docstring)."""

    h: np.ndarray  # curvatures (d,)
    v0: np.ndarray  # (d,)
    v1: np.ndarray  # (d,)
    abar: float
    cbar: float
    n: int


def _quadratic(objective: AbstractObjective) -> np.ndarray:
    if not isinstance(objective, Quadratic):
        raise ValueError(f"objective must be a Quadratic for sdesim.theory, got {type(objective).__name__}")
    return np.asarray(objective.h, dtype=np.float64)


def _linear(method: AbstractMethod, objective: AbstractObjective, noise: AbstractNoise) -> _Linear:
    h = _quadratic(objective)
    d, n = h.shape[0], method.n_agents
    comps = method.compressors
    coeffs = [c.cov_coefficients(d) if c.unbiased else None for c in comps]
    if any(cf is None for cf in coeffs):
        raise ValueError(f"{type(method).__name__}: the closed forms need unbiased compressors with covariance "
                         "α diag(x²) − β x xᵀ (Identity, Bernoulli, RandK)")
    coeffs = np.array(coeffs, dtype=np.float64)
    alpha, beta = coeffs[:, :1], coeffs[:, 1:]
    v0, v1 = noise.variance_terms(n, d)
    fac = 1.0 + alpha - beta

    def per_coordinate(v):
        return np.broadcast_to(_agent_sum(v, n, fac), (d,)).copy()

    return _Linear(h=h, v0=per_coordinate(v0), v1=per_coordinate(v1),
                   abar=float(np.broadcast_to(alpha, (n, 1)).mean()) / n,
                   cbar=float(np.broadcast_to(beta, (n, 1)).mean()) / n, n=n)


def _sign_constant(noise: AbstractNoise) -> float:
    """Slope at 0 of E sign(g + Z)/ (g/σ): √(2/π) (Gaussian), c_ν = 2p_ν(0) (Student-t), 2 p_α(0) for α-stable."""
    if isinstance(noise, (Gaussian, Affine)):
        return math.sqrt(2.0 / math.pi)
    if isinstance(noise, StudentT):
        nu = noise.nu
        return 2.0 * math.exp(math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2)) / math.sqrt(math.pi * nu)
    if isinstance(noise, Stable):
        # density of the standard SαS at 0 is Γ(1 + 1/α)/π; Z = (σ/√2) S, so the slope in g/σ is √2 · 2 p(0)
        return math.sqrt(2.0) * 2.0 * math.gamma(1.0 + 1.0 / noise.alpha) / math.pi
    raise ValueError(f"no sign constant for {type(noise).__name__}")


def sign_constant(noise: AbstractNoise) -> float:
    r"""c with E sign(g + Z) ≈ c g/σ near g = 0 (MATH.md §1, §6.4, [D]).

    Gaussian √(2/π) ≈ 0.798; Student-t c_ν = 2Γ((ν+1)/2)/(√(πν)Γ(ν/2)) (c_1 = 2/π); α-stable 2√2 Γ(1 + 1/α)/π in
    sdesim's scale convention (:class:`sdesim.noise.Stable`).
    """
    return _sign_constant(noise)


def _sign_scales(method: AbstractMethod, noise: AbstractNoise, d: int) -> tuple[np.ndarray, np.ndarray]:
    """(σ_H, mean_i 1/σ_i²) per coordinate: the harmonic mean of the agents' scales and the mean inverse square."""
    n = method.n_agents
    if isinstance(noise, Affine):
        if np.any(noise.sigma1 != 0):
            raise ValueError("the DSignSGD closed forms need state-independent noise (Affine with sigma1 = 0)")
        sig = noise.sigma0
    else:
        sig = noise.sigma
    s = np.broadcast_to(agent_array("sigma", np.asarray(sig, dtype=np.float64), n, d), (n, d))
    if np.any(s <= 0):
        raise ValueError("the DSignSGD phase-3 closed forms need sigma > 0")
    inv = 1.0 / s
    return 1.0 / inv.mean(0), (inv**2).mean(0)


def _is_sign(method: AbstractMethod) -> bool:
    """True for sign methods; refuses normalized methods, whose step depends on the state (no closed forms)."""
    if method.normalized:
        raise ValueError(f"{type(method).__name__} rescales its step by the update norm; the closed forms of "
                         "sdesim.theory assume a fixed step")
    return all(isinstance(c, Sign) for c in method.compressors)


def _check_model(model: str, allowed: Sequence[str] = MODELS) -> str:
    return _checks.one_of("model", model, tuple(allowed))


def _a_factor(model: str, lam: float, h: np.ndarray) -> np.ndarray:
    if model == "first_order":
        return h
    if model == "second_order":
        return h * (1.0 + lam * h / 2.0)
    return h * (1.0 - lam * h / 2.0)  # stable


# ---------------------------------------------------------------------------------------------------------------------
# one-iteration maps of the diagonal second moments (D(C)SGD) and their stationary points


def _diag_map(lin: _Linear, lam: float, model: str, substeps: int | None):
    """(B, c): one iteration maps m ↦ B m + c (diagonal second moments), for the optimizer or the Euler scheme."""
    h = lin.h
    d = h.shape[0]
    coupling = np.outer(lin.v1, h**2)  # row j: V1_j h_l²
    own = (lin.abar - lin.cbar) * h**2

    def step(delta_lam, noise_lam2, a):
        b = np.diag((1.0 - delta_lam * a) ** 2 + noise_lam2 * own) + noise_lam2 * coupling
        return b, noise_lam2 * lin.v0

    if model == "discrete":
        return step(lam, lam**2, h)
    m = substeps
    b1, c1 = step(lam / m, lam**2 / m, _a_factor(model, lam, h))
    b, c = np.eye(d), np.zeros(d)
    for _ in range(m):  # m Euler substeps make one iteration
        b, c = b1 @ b, b1 @ c + c1
    return b, c


def _diag_generator(lin: _Linear, lam: float, eta: float, model: str):
    """(K, c) with dm/dt = K m + c for the SDEs in SDE time t, at step λ = η η_t (so η_t = λ/η)."""
    h = lin.h
    a = _a_factor(model, lam, h)
    eta_t = lam / eta
    k = np.diag(-2.0 * eta_t * a + eta * eta_t**2 * (lin.abar - lin.cbar) * h**2)
    k += eta * eta_t**2 * np.outer(lin.v1, h**2)
    return k, eta * eta_t**2 * lin.v0


def _stationary_diag(lin: _Linear, lam: float, eta: float, model: str, substeps: int | None) -> np.ndarray:
    d = lin.h.shape[0]
    if model == "discrete" or substeps is not None:
        b, c = _diag_map(lin, lam, model, substeps)
        if np.max(np.abs(np.linalg.eigvals(b))) >= 1.0:
            return np.full(d, np.inf)
        return np.linalg.solve(np.eye(d) - b, c)
    k, c = _diag_generator(lin, lam, eta, model)
    if np.max(np.linalg.eigvals(k).real) >= 0.0:
        return np.full(d, np.inf)
    return np.linalg.solve(-k, c)


# ---------------------------------------------------------------------------------------------------------------------
# stationary laws


def stationary_covariance(method: AbstractMethod, objective: AbstractObjective, noise: AbstractNoise, *,
                          model: str = "first_order", substeps: int | None = None) -> np.ndarray:
    r"""Stationary E[X Xᵀ] (= covariance, the mean being 0) on a quadratic, shape ``(d, d)``, diagonal.

    D(C)SGD (MATH.md §7.6–§7.7, [D ✓num]): the fixed point of the moment map or ODE of the module docstring; with
    Gaussian noise and no compression, first order gives Cov = (η/2N) H⁻¹ Σ̄ and ``"stable"`` gives the exact
    discrete value ησ²/(N(2h − ηh²)) per coordinate. DSignSGD (phase 3, [R+D]): Cov_jj = η σ_{H,j}/(2 c N h_j) for
    the first-order SDE; ``model="discrete"`` gives the linearized optimizer's value
    η / (N h (2c/σ_H − η c² h (1 − 1/N)/σ²)) (the 1/σ² is the agents' mean of 1/σ_i²).

    Args:
        method, objective, noise: a constant-schedule method, a :class:`~sdesim.objectives.Quadratic`, a noise model.
        model: ``"first_order"``, ``"second_order"``, ``"stable"`` or ``"discrete"``.
        substeps: the expectation of :func:`sdesim.simulate` with this many Euler substeps (D(C)SGD only).

    Returns:
        The stationary second-moment matrix; ``inf`` entries when the moments diverge (beyond the stability threshold).
    """
    model = _check_model(model)
    if not method.schedule.constant:
        raise ValueError("stationary laws need a constant schedule")
    h = _quadratic(objective)
    eta = method.lr
    if _is_sign(method):
        if model not in ("first_order", "discrete"):
            raise ValueError("for DSignSGD the stationary law is defined for model='first_order' or 'discrete'")
        c = _sign_constant(noise)
        sig_h, inv2 = _sign_scales(method, noise, h.shape[0])
        n = method.n_agents
        if model == "first_order":
            m = eta * sig_h / (2.0 * c * n * h)
        else:
            m = eta / (n * h * (2.0 * c / sig_h - eta * c**2 * h * inv2 * (1.0 - 1.0 / n)))
        return np.diag(m)
    lin = _linear(method, objective, noise)
    return np.diag(_stationary_diag(lin, eta, eta, model, substeps))


def stationary_loss(method: AbstractMethod, objective: AbstractObjective, noise: AbstractNoise, *,
                    model: str = "first_order", substeps: int | None = None) -> float:
    r"""Stationary E f(X) − f* on a quadratic, ½ Σ_j h_j Cov_jj (MATH.md §7.6, §7.7).

    DSGD, first order: (η/4N) Tr Σ̄; ``"stable"`` and ``"discrete"``: (η/4N) Σ_j σ_j²/(1 − ηh_j/2). DCSGD with
    Bernoulli, 1-D: h m/2 with m = (η/N)(1+ω)σ²/(2h − ηh² − (η/N)ωh²) (``"stable"``/``"discrete"``; drop −ηh² for
    first order). DSignSGD (phase 3): η Tr Σ_H^{1/2}/(4cN). See :func:`stationary_covariance` for the arguments.
    """
    h = _quadratic(objective)
    return float(0.5 * np.sum(h * np.diag(stationary_covariance(method, objective, noise, model=model,
                                                                  substeps=substeps))))


# ---------------------------------------------------------------------------------------------------------------------
# moment curves


def _initial_m(x0, d: int) -> np.ndarray:
    x0 = np.asarray(x0, dtype=np.float64)
    if x0.shape == (d,):
        return np.outer(x0, x0)
    if x0.ndim == 2 and x0.shape[1] == d:  # one x0 per run: the second moment averages over runs
        return x0.T @ x0 / x0.shape[0]
    raise ValueError(f"x0 must have shape (d,) or (runs, d) with d={d}, got {x0.shape}")


def second_moment_curve(method: AbstractMethod, objective: AbstractObjective, noise: AbstractNoise, x0, t, *,
                        model: str = "first_order", substeps: int | None = None, full: bool = False,
                        rtol: float = 1e-10, atol: float = 1e-14) -> np.ndarray:
    r"""E[X_t X_tᵀ] from the moment equations of MATH.md §7.7 ([D]), with the method's schedule.

    D(C)SGD only. The SDE models are integrated with ``scipy.integrate.solve_ivp`` iteration by iteration (η_t is
    constant on each [kη, (k+1)η)); ``model="discrete"`` and ``substeps=m`` iterate the exact moment maps.

    Args:
        x0: initial point ``(d,)`` (or ``(runs, d)``: the second moment averages over them).
        t: SDE times, non-decreasing, in [0, ∞); for ``"discrete"`` and ``substeps`` they are rounded to iterations.
        full: return the full ``(len(t), d, d)`` matrices (the Lyapunov equation of §7.7, which Rand-k couples);
            otherwise the diagonals ``(len(t), d)``.
    """
    from scipy.integrate import solve_ivp

    model = _check_model(model)
    if _is_sign(method):
        raise ValueError("second_moment_curve covers D(C)SGD; use loss_curve for DSignSGD (phase 3)")
    lin = _linear(method, objective, noise)
    eta, h = method.lr, lin.h
    d = h.shape[0]
    t = np.atleast_1d(np.asarray(t, dtype=np.float64))
    if np.any(np.diff(t) < 0) or np.any(t < 0):
        raise ValueError("t must be non-decreasing and >= 0")
    m0 = _initial_m(x0, d)
    k_end = int(math.ceil(t[-1] / eta - 1e-9)) if t.size else 0
    lams = [eta * method.schedule(k) for k in range(k_end)]

    def ev(mm):  # E V(X) as a matrix, from the full second moment
        hmh = h[:, None] * mm * h[None, :]
        return np.diag(lin.v0 + lin.v1 * np.trace(hmh) + lin.abar * np.diag(hmh)) - lin.cbar * hmh

    def map_full(mm, lam, a, frac, noise_w):
        q = np.diag(1.0 - frac * a)
        return q @ mm @ q + noise_w * ev(mm)

    if model == "discrete" or substeps is not None:
        states = [m0]
        mm = m0
        for lam in lams:
            if model == "discrete":
                mm = map_full(mm, lam, h, lam, lam**2)
            else:
                a = _a_factor(model, lam, h)
                for _ in range(substeps):
                    mm = map_full(mm, lam, a, lam / substeps, lam**2 / substeps)
            states.append(mm)
        ks = np.rint(t / eta).astype(int)
        out = np.stack([states[k] for k in ks])
        return out if full else np.diagonal(out, axis1=1, axis2=2).copy()

    def rhs(_, y, lam):
        mm = y.reshape(d, d)
        a = _a_factor(model, lam, h)
        eta_t = lam / eta
        return (-eta_t * (a[:, None] * mm + mm * a[None, :]) + eta * eta_t**2 * ev(mm)).reshape(-1)

    def solve(y, lo, hi, pts, lam):
        sol = solve_ivp(rhs, (lo, hi), y, t_eval=pts, args=(lam,), rtol=rtol, atol=atol, method="LSODA")
        if not sol.success:
            raise RuntimeError(f"moment ODE failed: {sol.message}")
        return sol.y

    out = np.empty((t.size, d, d))
    if method.schedule.constant or k_end == 0:  # one smooth solve
        ys = solve(m0.reshape(-1), 0.0, max(t[-1], 0.0), t, eta) if t[-1] > 0 else np.repeat(
            m0.reshape(-1, 1), t.size, 1)
        out[:] = ys.T.reshape(t.size, d, d)
    else:  # η_t is constant on each [kη, (k+1)η): integrate iteration by iteration
        which = np.minimum(np.floor(t / eta + 1e-12).astype(int), k_end - 1)
        y = m0.reshape(-1)
        for k, lam in enumerate(lams):
            lo, hi = k * eta, (k + 1) * eta
            sel = np.nonzero(which == k)[0]
            pts = np.unique(np.concatenate([t[sel], [hi]]))
            ys = solve(y, lo, hi, pts, lam)
            out[sel] = ys[:, np.searchsorted(pts, t[sel])].T.reshape(-1, d, d)
            y = ys[:, -1]
    return out if full else np.diagonal(out, axis1=1, axis2=2).copy()


def loss_curve(method: AbstractMethod, objective: AbstractObjective, noise: AbstractNoise, x0, t, *,
               model: str = "first_order", substeps: int | None = None) -> np.ndarray:
    r"""E f(X_t) − f* on a quadratic from the moment equations (MATH.md §7.7, [D]), at SDE times ``t``.

    D(C)SGD: ½ Σ_j h_j M_jj(t) from :func:`second_moment_curve` (exact for the optimizer with
    ``model="discrete"`` and for the simulated Euler scheme with ``substeps``). DSignSGD: the phase-3 linear ODEs
    dμ_j/dt = −η_t (c h_j/σ_{H,j}) μ_j, dm_j/dt = −2η_t (c h_j/σ_{H,j}) m_j + η η_t²/N, solved in closed form on each
    iteration ([R+D]; valid once |∇f| ≲ σ, not in the sign-descent phase far from the optimum).
    """
    h = _quadratic(objective)
    t = np.atleast_1d(np.asarray(t, dtype=np.float64))
    if _is_sign(method):
        model = _check_model(model, ("first_order",))
        return _sign_loss_curve(method, noise, h, x0, t)
    m = second_moment_curve(method, objective, noise, x0, t, model=model, substeps=substeps)
    return 0.5 * m @ h


def _sign_loss_curve(method, noise, h, x0, t):
    eta, n = method.lr, method.n_agents
    c = _sign_constant(noise)
    sig_h, _ = _sign_scales(method, noise, h.shape[0])
    rate = c * h / sig_h
    m = _initial_m(x0, h.shape[0]).diagonal().copy()
    k_end = int(math.ceil(t[-1] / eta - 1e-9)) if t.size else 0
    which = np.minimum(np.floor(t / eta + 1e-12).astype(int), max(k_end - 1, 0))
    out = np.empty((t.size, h.shape[0]))
    for k in range(max(k_end, 1)):
        et = method.schedule(k)
        for j in np.nonzero(which == k)[0]:
            out[j] = _sign_segment(m, rate, et, eta, n, t[j] - k * eta)
        m = _sign_segment(m, rate, et, eta, n, eta)
    return 0.5 * out @ h


def _sign_segment(m, rate, eta_t, eta, n, dt):
    r = 2.0 * eta_t * rate
    inf = eta * eta_t**2 / (n * r)
    return inf + (m - inf) * np.exp(-r * dt)


# ---------------------------------------------------------------------------------------------------------------------
# deterministic flows of §7.1


def gradient_flow_loss(objective: AbstractObjective, x0, t, *, lr: float, model: str = "first_order") -> np.ndarray:
    r"""f(x(t)) along the noiseless drift of each SDE flavour (MATH.md §7.1, [S; re-derived D]).

    ``"first_order"``: dx/dt = −∇f; ``"second_order"``: −∇f − (η/2)∇²f∇f; ``"stable"``: −∇f + (η/2)∇²f∇f. On the
    parabola λx²/2 these give f(x₀)e^{−2λt}, f(x₀)e^{−2λ(1+λη/2)t} and f(x₀)e^{−2λ(1−λη/2)t}; on the quartic the
    ``"stable"`` flow is dx/dt = −(x³ − (3η/2)x⁵), repulsive for x² > 2/(3η). A flow that blows up gives ``inf``.
    """
    import torch
    from scipy.integrate import solve_ivp

    model = _check_model(model, ("first_order", "second_order", "stable"))
    kappa = {"first_order": 0.0, "second_order": 0.5, "stable": -0.5}[model]
    eta = _checks.positive("lr", lr)
    x0 = np.atleast_1d(np.asarray(x0, dtype=np.float64))
    t = np.atleast_1d(np.asarray(t, dtype=np.float64))

    def rhs(_, x):
        xt = torch.from_numpy(x)
        b = -objective.grad(xt)
        return (b + kappa * eta * objective.hvp(xt, b)).numpy()

    def blow_up(_, x):
        return 1e150 - np.max(np.abs(x))

    blow_up.terminal = True
    sol = solve_ivp(rhs, (0.0, float(t[-1])), x0, t_eval=t, rtol=1e-10, atol=1e-12, events=blow_up)
    out = np.full(t.size, np.inf)
    ys = np.asarray(sol.y, dtype=np.float64).reshape(x0.size, -1)
    if ys.shape[1]:
        out[: ys.shape[1]] = objective.loss(torch.from_numpy(ys.T.copy())).numpy()
    return out


# ---------------------------------------------------------------------------------------------------------------------
# stability thresholds


def max_stable_lr(method: AbstractMethod, objective: AbstractObjective, noise: AbstractNoise, *,
                  model: str = "discrete", substeps: int | None = None) -> float:
    r"""Largest constant lr for which the second moments stay bounded on a quadratic (MATH.md §7.1, §7.7).

    GD/DSGD: 2/h_max for the optimizer and the ``"stable"`` SDE, ∞ for the first-order and classic second-order SDEs
    (§7.1). DCSGD with Bernoulli compression, 1-D: 2/(h(1 + ω/N)) for the optimizer and ``"stable"``, 2N/(ωh) for
    first order (§7.7). In general the threshold where the spectral radius of the moment map reaches 1 (or the
    largest real part of the ODE generator reaches 0), found by bisection. DSignSGD: ∞ (its update is bounded).
    """
    model = _check_model(model)
    if _is_sign(method):
        return math.inf
    if not method.schedule.constant:
        raise ValueError("stability thresholds need a constant schedule")

    def unstable(lr):
        trial = replace(method, lr=lr)
        lin = _linear(trial, objective, noise)
        if model == "discrete" or substeps is not None:
            b, _ = _diag_map(lin, lr, model, substeps)
            return np.max(np.abs(np.linalg.eigvals(b))) >= 1.0
        k, _ = _diag_generator(lin, lr, lr, model)
        return np.max(np.linalg.eigvals(k).real) >= 0.0

    hmax = float(np.max(_quadratic(objective)))
    lo, hi = 0.0, 4.0 / hmax
    while not unstable(hi):
        if hi > 1e8 / hmax:
            return math.inf
        lo, hi = hi, 2.0 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if unstable(mid):
            hi = mid
        else:
            lo = mid
        if hi - lo <= 1e-14 * hi:
            break
    return lo


# ---------------------------------------------------------------------------------------------------------------------
# convergence bounds (MATH.md §7.2, §7.3, §7.5)


def dcsgd_step_threshold(*, grad_norm: float, L0: float, L1: float, omega, sigma0, sigma1, d: int, n_agents: int,
                         eps: float = 0.5, model: str = "stable") -> float:
    r"""The step-size condition of v2 Thm 4.2 (MATH.md §7.2, [S]; grouping re-derived [D]):

        η η_t < 2ε / ( G (1 + A/N) + L1 d Bσ/N ),   G = L0 + L1 ||∇f||,
        A = ω̄ + d(\overline{σ1²ω} + \overline{σ1²}),   Bσ = \overline{σ0²} + \overline{σ0²ω};

    ``model="first_order"`` (the classic SDE) drops the "1 +". ``omega``, ``sigma0``, ``sigma1`` may be scalars or
    per-agent sequences. This is also the step of the adaptive normalization (v2 Eq. 15, [R]).
    """
    _check_model(model, ("first_order", "stable"))
    a, b = affine_groups(omega, sigma0, sigma1, n_agents, d)
    g = L0 + L1 * grad_norm
    one = 1.0 if model == "stable" else 0.0
    denom = g * (one + a / n_agents) + L1 * d * b / n_agents
    return math.inf if denom == 0 else 2.0 * eps / denom


def dcsgd_gradient_bound(*, f0_minus_fstar: float, L0: float, L1: float, sigma0, omega, d: int, n_agents: int,
                         int_eta: float, int_eta2: float, lr: float, eps: float = 0.5) -> float:
    r"""Reconstructed bound of MATH.md §7.2 ([D], under the step condition of :func:`dcsgd_step_threshold`):

        E||∇f(X_t̂)||² ≤ [ f(X₀) − f* + (η (L0 + L1) d Bσ/(2N)) ∫₀ᵗ η_s² ds ] / ((1 − ε) ∫₀ᵗ η_s ds).

    ``int_eta`` = ∫₀ᵗ η_s ds and ``int_eta2`` = ∫₀ᵗ η_s² ds (in SDE time).
    """
    _, b = affine_groups(omega, sigma0, 0.0, n_agents, d)
    return (f0_minus_fstar + lr * (L0 + L1) * d * b / (2 * n_agents) * int_eta2) / ((1 - eps) * int_eta)


def dsignsgd_step_threshold(*, nu: float, L0: float, L1: float, d: int, n_agents: int, sigma_h1: float,
                            model: str = "stable") -> float:
    r"""Step condition of v2 Thm 4.3 under Student-t_ν noise (MATH.md §7.3, [S] form, [R/D] constants):

        η η_t < ℓ_ν / K,  K = L1 d σ_{H,1}/(2N) + √d (L0 + L1) M_ν   (``"stable"``),  K = L1 d σ_{H,1}/(2N) (classic),

    with the reconstructed ℓ_ν = 2F_ν(1) − 1 and M_ν = c_ν (the slope bound of 2Ξ_ν). Unconfirmed constants: use for
    the shape of the condition (a restriction even without noise), not for exact values.
    """
    from scipy import stats

    _check_model(model, ("first_order", "stable"))
    ell = 2.0 * stats.t.cdf(1.0, nu) - 1.0
    m_nu = _sign_constant(StudentT(nu=nu))
    k = L1 * d * sigma_h1 / (2 * n_agents)
    if model == "stable":
        k += math.sqrt(d) * (L0 + L1) * m_nu
    return math.inf if k == 0 else ell / k


def pl_bound(method: AbstractMethod, noise: AbstractNoise, t, *, s0: float, mu: float, L: float,
             L_tau: float | None = None, d: int | None = None) -> np.ndarray:
    r"""The AISTATS bounds on S_t = E f(X_t) − f* for L-smooth, μ-PL f and constant η (MATH.md §7.5, [R]/[D]):

    - DSGD: S₀e^{−2μt} + (1 − e^{−2μt}) ηL \overline{TrΣ}/(4μN);
    - DCSGD: S₀e^{−2μκt} + (1 − e^{−2μκt}) ηL\overline{(1+ω)TrΣ}/(4μκN), κ = 1 − ηLω̄/(2N) (∞ if κ ≤ 0);
    - DSignSGD (phase 3): S₀e^{−2μct/σ_H} + (1 − e^{−2μct/σ_H}) ηL_τσ_H/(4μNc), 1/σ_H = mean_i 1/σ_max,i.

    ``d`` is needed for Tr Σ of scalar or per-agent noise scales; ``L_tau`` ≥ Tr ∇²f for DSignSGD.
    """
    t = np.asarray(t, dtype=np.float64)
    eta, n = method.lr, method.n_agents
    if _is_sign(method):
        if L_tau is None:
            raise ValueError("L_tau (an upper bound on Tr ∇²f) is needed for the DSignSGD bound")
        c = _sign_constant(noise)
        sig = noise.sigma0 if isinstance(noise, Affine) else noise.sigma
        s = np.asarray(sig, dtype=np.float64)
        smax = s.max(axis=-1) if s.ndim == 2 else np.full(n, s.max())
        sig_h = 1.0 / np.mean(1.0 / np.broadcast_to(smax, (n,)))
        rate = 2 * mu * c / sig_h
        return s0 * np.exp(-rate * t) + (1 - np.exp(-rate * t)) * eta * L_tau * sig_h / (4 * mu * n * c)
    if d is None:
        raise ValueError("d must be given (Tr Σ of the noise)")
    v0, v1 = noise.variance_terms(n, d)
    if np.any(v1):
        raise ValueError("the PL bounds assume state-independent noise")
    traces = np.broadcast_to(np.atleast_2d(v0), (n, d)).sum(1)  # Tr Σ_i
    omegas = np.broadcast_to(np.array([c.omega(d) for c in method.compressors]), (n,))
    kappa = 1.0 - eta * L * omegas.mean() / (2 * n)
    if kappa <= 0:
        return np.full(t.shape, np.inf)
    floor = eta * L * np.mean((1 + omegas) * traces) / (4 * mu * kappa * n)
    return s0 * np.exp(-2 * mu * kappa * t) + (1 - np.exp(-2 * mu * kappa * t)) * floor


# ---------------------------------------------------------------------------------------------------------------------
# scaling rules (MATH.md §7.5)


@dataclass(frozen=True)
class Scaled:
    """A scaled setting: the method, and the factor by which each agent's batch grows (noise std shrinks by √)."""

    method: AbstractMethod
    batch_factor: float = 1.0

    def noise(self, noise: AbstractNoise) -> AbstractNoise:
        """``noise`` with the batch growth applied: scales divided by √batch_factor (exact for Gaussian noise; for
        Student-t only approximate, MATH.md §1)."""
        return scale_noise(noise, 1.0 / math.sqrt(self.batch_factor))


def scale_noise(noise: AbstractNoise, factor: float) -> AbstractNoise:
    """A copy of ``noise`` whose scales (σ, σ0, σ1) are multiplied by ``factor``."""
    names = [n for n in ("sigma", "sigma0", "sigma1") if hasattr(noise, n)]
    return replace(noise, **{n: np.asarray(getattr(noise, n)) * factor for n in names})


def dcsgd_scaling_rule(dsgd: AbstractMethod, compressor, *, d: int, by: str = "lr") -> Scaled:
    r"""A DCSGD setting with the noise floor of a DSGD one (MATH.md §7.5, [D]): η̃(1+ω)/(B̃Ñ) = η/(BN).

    ``by="lr"``: η̃ = η/(1+ω) (then (1+ω)× more iterations cover the same time); ``"batch"``: B̃ = (1+ω)B;
    ``"agents"``: Ñ = (1+ω)N (rounded up). κ = 1 − η̃Lω/(2Ñ) must stay near 1 for the floors to match exactly.
    """
    by = _checks.one_of("by", by, ("lr", "batch", "agents"))
    if not isinstance(dsgd, DSGD):
        raise ValueError(f"dsgd must be a DSGD method, got {type(dsgd).__name__}")
    w = compressor.omega(d)
    if by == "lr":
        return Scaled(DCSGD(dsgd.lr / (1 + w), dsgd.n_agents, dsgd.schedule, compressor))
    if by == "batch":
        return Scaled(DCSGD(dsgd.lr, dsgd.n_agents, dsgd.schedule, compressor), batch_factor=1 + w)
    return Scaled(DCSGD(dsgd.lr, int(math.ceil((1 + w) * dsgd.n_agents - 1e-9)), dsgd.schedule, compressor))


def dsignsgd_scaling_rule(method: AbstractMethod, kappa: float) -> Scaled:
    r"""DSignSGD rule of MATH.md §7.5 ([D]): B → κB, η → η/√κ, N → N/κ keeps the per-iteration speed (∝ η√B/σ) and
    the noise floor (∝ ησ/(N√B)). N/κ must be a positive integer."""
    if not isinstance(method, DSignSGD):
        raise ValueError(f"method must be DSignSGD, got {type(method).__name__}")
    kappa = _checks.positive("kappa", kappa)
    n = method.n_agents / kappa
    if abs(n - round(n)) > 1e-9 or round(n) < 1:
        raise ValueError(f"n_agents/kappa = {n:g} must be a positive integer")
    return Scaled(DSignSGD(method.lr / math.sqrt(kappa), int(round(n)), method.schedule), batch_factor=kappa)


__all__ = ["stationary_loss", "stationary_covariance", "second_moment_curve", "loss_curve", "gradient_flow_loss",
           "max_stable_lr", "dcsgd_step_threshold", "dcsgd_gradient_bound", "dsignsgd_step_threshold", "pl_bound",
           "dcsgd_scaling_rule", "dsignsgd_scaling_rule", "scale_noise", "sign_constant", "Scaled", "MODELS"]
