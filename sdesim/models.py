r"""SDE models of the methods, built from each method's per-step mean and covariance (MATH.md §2.1).

For an update x_{k+1} = x_k + ηη_k U_k with E[U | x] = b(x) and Cov[U | x] = V(x), the first-order weak
approximation is (MATH.md §2.1, [D])

    dX_t = η_t b(X_t) dt + η_t √η V(X_t)^{1/2} dW_t,    t = kη.

sdesim integrates in **iteration units** s = t/η (so s = k at iteration k, and the grid is exact in binary); with
λ(s) = η η_{⌊s⌋} the same SDE reads

    dX_s = λ(s) b(X_s) ds + λ(s) V(X_s)^{1/2} dW_s,

i.e. one Euler step of size 1 is the Gaussian step with the optimizer's own mean and covariance. The flavours
(``model=``):

- ``"first_order"``: the drift b (MATH.md §2.1, §6.1–§6.3);
- ``"second_order"``: the classic modified equation, drift b + (λ/2)∇²f b (Li–Tai–E; MATH.md §2.2), D(C)SGD only;
- ``"stable"``: the curvature-corrected drift b − (λ/2)∇²f b of [A] v2, which gets the GD stability threshold and the
  exact discrete stationary second moment on quadratics (MATH.md §6.5, [S]; §7.7 [D ✓num]), D(C)SGD only.

Per method (N agents, agent noise covariance Σ_i(x) = diag(v0_i + v1_i||∇f||²)):

- D(C)SGD with an unbiased compressor whose covariance is α_i diag(x²) − β_i x xᵀ (Identity, Bernoulli, Rand-k):
  b = −∇f and, averaging the compressor covariance over the gradient noise (MATH.md §4, §6.2, [D]),

      V = (1/N²) Σ_i [Σ_i + α_i diag(∇f² + diag Σ_i) − β_i (∇f∇fᵀ + diag Σ_i)]
        = diag(D) − (β̄/N) ∇f∇fᵀ,   D = (1/N²) Σ_i (1 + α_i − β_i) diag Σ_i + (ᾱ/N) ∇f²;

  diagonal noise when β̄ = 0, otherwise an O(d) diag-minus-rank-one factor (:func:`sdesim._linalg.diag_minus_rank_one`).
- DSGD under α-stable noise (α < 2): the Lévy-driven SDE dX_s = λ b ds + λ ς dL_s with ς the scale of the agent
  average (MATH.md §6.6, [D]); only Euler is sound.
- DSignSGD: b = −(1/N) Σ_i E sign(∇f + Z_i), V = (1/N²) Σ_i diag(1 − (E sign(∇f + Z_i))²) (MATH.md §6.3, [R+D
  ✓num]); Gaussian noise gives the Erf form, Student-t the 2Ξ_ν form.

Combinations without an SDE raise :class:`sdesim.noise.NoSDEError` saying why and what to use instead.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from . import _checks
from ._checks import NoSDEError
from ._linalg import diag_minus_rank_one
from .compressors import Sign
from .increments import GaussianIncrements, StableIncrements
from .methods import AbstractMethod
from .noise import AbstractNoise, Minibatch, Stable
from .objectives import AbstractObjective

#: SDE flavours and the coefficient κ of their drift correction κ λ ∇²f b.
MODELS: dict[str, float] = {"first_order": 0.0, "second_order": 0.5, "stable": -0.5}

# Iteration index of the model time s: ⌊s + tol⌋, robust to the rounding of s = k·dt for dt inexact in binary.
_FLOOR_TOL = 1e-7


def _agent_sum(v, n: int, fac=1.0) -> np.ndarray:
    """(1/N²) Σ_i fac_i v_i for per-agent arrays broadcastable to (N, d) (agent axis first), shape (1 or d,)."""
    v = np.atleast_2d(v)
    return np.broadcast_to(fac * v, (n, v.shape[1])).sum(0) / n**2


class AbstractOptimizerSDE(nn.Module):
    """Base of the optimizer SDEs: torchsde protocol (``sde_type``, ``noise_type``, ``f``, ...) in iteration units.

    A subclass gives ``diffusion_prod(lam, y, grad, v)`` (and, for diagonal noise, ``diffusion(lam, y, grad)``, which
    makes ``g`` available); ``drift_term`` defaults to the D(C)SGD drift λ(b + κλ∇²f b), b = −∇f.

    Attributes:
        method, objective, noise: what the SDE was built from.
        model: the flavour (a key of :data:`MODELS`).
        increments: the driving noise law (read by :func:`sdesim.solve`).
    """

    sde_type = "ito"
    noise_type = "diagonal"
    #: paths do not interact, so :func:`sdesim.solve` may split the batch into cache-sized chunks.
    batch_independent = True

    @property
    def chunk_numbers(self) -> int:
        """State entries per chunk of paths in :func:`sdesim.solve` (the objective's preference)."""
        return int(self.objective.chunk_numbers)

    def __init__(self, method: AbstractMethod, objective: AbstractObjective, noise: AbstractNoise, model: str):
        super().__init__()
        self.method, self.objective, self.noise, self.model = method, objective, noise, model
        self.kappa = MODELS[model]
        self.increments = GaussianIncrements()
        self._lr = method.lr
        self._schedule = None if method.schedule.constant else method.schedule
        self._normalized = method.normalized

    def step_factor(self, t) -> float:
        """η η_{⌊s⌋}, the scheduled step size at model time s (iterations)."""
        if self._schedule is None:
            return self._lr
        return self._lr * self._schedule(int(math.floor(float(t) + _FLOOR_TOL)))

    def lam(self, t, grad: torch.Tensor):
        """λ(s, x): the scheduled step, times the method's normalization evaluated at ||∇f(x)|| for normalized
        methods (a per-path tensor of shape ``(batch, 1)``; see :class:`sdesim.methods.NormalizedDCSGD`)."""
        base = self.step_factor(t)
        if not self._normalized:
            return base
        return base * self.method.normalizer(grad.square().sum(-1, keepdim=True).sqrt(), grad.shape[-1])

    def drift_term(self, lam, y: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """λ (b + κ λ ∇²f(y) b) with b = −∇f(y), from the gradient ``grad``."""
        if self.kappa == 0.0:
            return grad * (-lam)  # one pass over memory
        b = -grad
        return lam * (b + (self.kappa * lam) * self.objective.hvp(y, b))

    def f(self, t, y):
        grad = self.objective.grad(y)
        return self.drift_term(self.lam(t, grad), y, grad)

    def g_prod(self, t, y, v):
        grad = self.objective.grad(y)
        return self.diffusion_prod(self.lam(t, grad), y, grad, v)

    def f_and_g_prod(self, t, y, v):
        grad = self.objective.grad(y)
        lam = self.lam(t, grad)
        return self.drift_term(lam, y, grad), self.diffusion_prod(lam, y, grad, v)


class _Diagonal:
    """Mixin for diagonal noise: ``g`` from ``diffusion``, and ``diffusion_prod = diffusion * v``."""

    def g(self, t, y):
        grad = self.objective.grad(y)
        return self.diffusion(self.lam(t, grad), y, grad).expand_as(y)

    def diffusion_prod(self, lam, y, grad, v):
        return self.diffusion(lam, y, grad) * v


class _AbstractUnbiasedSDE(AbstractOptimizerSDE):
    r"""D(C)SGD with unbiased (α, β)-structured compressors: dX = λ b ds + λ V^{1/2} dW (MATH.md §6.1–§6.2, §6.5)."""

    def __init__(self, method, objective, noise, model, d, dtype, device):
        super().__init__(method, objective, noise, model)
        n = method.n_agents
        coeffs = np.array([c.cov_coefficients(d) for c in method.compressors], dtype=np.float64)  # (N', 2)
        alpha, beta = coeffs[:, :1], coeffs[:, 1:]
        v0, v1 = noise.variance_terms(n, d)
        fac = 1.0 + alpha - beta
        self._v0 = torch.tensor(_agent_sum(v0, n, fac), dtype=dtype, device=device)
        v1s = _agent_sum(v1, n, fac)
        self._v1 = None if not np.any(v1s) else torch.tensor(v1s, dtype=dtype, device=device)
        self._abar = float(np.broadcast_to(alpha, (n, 1)).mean()) / n
        self._cbar = float(np.broadcast_to(beta, (n, 1)).mean()) / n
        self._const_sd = self._v0.sqrt() if self._v1 is None and self._abar == 0.0 else None

    def variance_diag(self, grad: torch.Tensor) -> torch.Tensor:
        """D(x) = (1/N²)Σ_i(1 + α_i − β_i)(v0_i + v1_i||∇f||²) + (ᾱ/N)∇f²."""
        var = self._v0
        if self._v1 is not None:
            var = var + self._v1 * (grad * grad).sum(-1, keepdim=True)
        if self._abar:
            var = var + self._abar * grad * grad
        return var.expand_as(grad)


class UnbiasedSDE(_Diagonal, _AbstractUnbiasedSDE):
    r"""D(C)SGD whose diffusion is diagonal (β̄ = 0: Identity, Bernoulli): ``noise_type="diagonal"``, so torchsde's
    ``milstein`` and ``srk`` apply as well as ``euler``."""

    def diffusion(self, lam, y, grad):
        if self._const_sd is not None:
            return lam * self._const_sd
        return lam * self.variance_diag(grad).clamp_min(0.0).sqrt()


class LowRankUnbiasedSDE(_AbstractUnbiasedSDE):
    r"""D(C)SGD whose diffusion is diag(D) − (β̄/N)∇f∇fᵀ (Rand-k): ``noise_type="general"`` with an O(d) ``g_prod``
    (:func:`sdesim._linalg.diag_minus_rank_one`) and no dense ``g``; torchsde integrates it with ``euler``."""

    noise_type = "general"

    def __init__(self, method, objective, noise, model, d, dtype, device):
        super().__init__(method, objective, noise, model, d, dtype, device)
        self.noise_size = d

    def diffusion_prod(self, lam, y, grad, v):
        return lam * diag_minus_rank_one(self.variance_diag(grad), self._cbar, grad, v)


class RandomizedUnbiasedSDE(_Diagonal, AbstractOptimizerSDE):
    r"""D(C)SGD with unbiased compressors whose noise-averaged covariance has no closed form (QSGD).

    The SDE is the one of MATH.md §6.2, dX = λ b ds + λ V^{1/2} dW with
    V = (1/N²) Σ_i [Σ_i + E_{Z_i} Cov_ξ C_i(∇f + Z_i)], but E_Z Cov_ξ C(∇f + Z) cannot be written out for QSGD.
    It is integrated by a weak Euler scheme with a randomized diffusion: at every step and path each agent draws a
    fresh Z'_i and the diagonal diffusion is λ [(1/N²) Σ_i (diag Σ_i + diag Cov_ξ C_i(∇f + Z'_i))]^{1/2}. Given Z',
    the increment is Gaussian; averaged over Z' its covariance is exactly V ds, so the scheme has the SDE's first two
    moments per step and weak order 1 [D]. The diffusion is random, so only ``euler`` is allowed (``randomized``).
    """

    randomized = True

    def __init__(self, method, objective, noise, model, d, dtype, device, stream):
        super().__init__(method, objective, noise, model)
        n = method.n_agents
        v0, v1 = noise.variance_terms(n, d)
        self._v0 = torch.tensor(_agent_sum(v0, n), dtype=dtype, device=device)
        self._v1 = torch.tensor(_agent_sum(v1, n), dtype=dtype, device=device)
        self._n = n
        self._stream = stream

    def variance_diag(self, grad: torch.Tensor) -> torch.Tensor:
        """One draw of (1/N²) Σ_i (diag Σ_i + diag Cov_ξ C_i(∇f + Z'_i)); its mean over Z' is diag V."""
        g = grad.unsqueeze(-2) + self.noise.sample(grad, self._n, self._stream)  # (batch, N, d); injected noise
        comps = self.method.compressors
        if len(comps) == 1:
            comp_var = comps[0].variance_diag(g).sum(-2)
        else:
            comp_var = sum(c.variance_diag(g[:, i]) for i, c in enumerate(comps))
        return self._v0 + self._v1 * (grad * grad).sum(-1, keepdim=True) + comp_var / self._n**2

    def diffusion(self, lam, y, grad):
        return lam * self.variance_diag(grad).clamp_min(0.0).sqrt()


class LevySDE(_Diagonal, AbstractOptimizerSDE):
    r"""DSGD under symmetric α-stable noise: dX = λ b ds + λ ς dL_s, L a standard SαS Lévy motion (MATH.md §6.6).

    ς_j = (1/N)(Σ_i c_{ij}^α)^{1/α} with c = σ/√2 (:meth:`sdesim.noise.Stable.levy_scale`); with equal agents this
    is the σ N^{1/α − 1} of MATH.md §6.6 ([D]). Integrate with Euler only.
    """

    def __init__(self, method, objective, noise: Stable, model, d, dtype, device):
        super().__init__(method, objective, noise, model)
        self.increments = StableIncrements(noise.alpha)
        self._scale = torch.tensor(noise.levy_scale(method.n_agents, d), dtype=dtype, device=device)

    def diffusion(self, lam, y, grad):
        return lam * self._scale


class SignSDE(_Diagonal, AbstractOptimizerSDE):
    r"""DSignSGD: b = −(1/N)Σ_i m_i, V = (1/N²)Σ_i diag(1 − m_i²), m_i = E sign(∇f + Z_i) (MATH.md §6.3, [R+D]).

    Gaussian noise: m_i = Erf(∇f/(√2σ_i)) ([C] Cor. 3.3); Student-t: m_i = 2Ξ_ν(∇f/σ_i); α-stable: 2F_α − 1
    (MATH.md §6.6). The drift is bounded even when the noise has no mean.
    """

    def __init__(self, method, objective, noise, model, d, dtype, device):
        super().__init__(method, objective, noise, model)
        self._n = method.n_agents

    def moments(self, grad: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(b, diag V) at gradient ``grad`` of shape ``(batch, d)`` (and points ``y``, for minibatch noise)."""
        m = self.noise.sign_mean(grad, self._n, x=y, objective=self.objective)  # (batch, 1 or N, d)
        if m.shape[-2] == 1:
            m = m.squeeze(-2)
            return -m, (1.0 - m * m) / self._n
        return -m.mean(-2), (1.0 - m * m).mean(-2) / self._n

    def drift_term(self, lam, y, grad):
        return self.moments(grad, y)[0] * lam

    def diffusion(self, lam, y, grad):
        return self.moments(grad, y)[1].clamp_min(0.0).sqrt() * lam

    def f_and_g_prod(self, t, y, v):  # one evaluation of the sign moments for both coefficients
        grad = self.objective.grad(y)
        lam = self.lam(t, grad)
        b, var = self.moments(grad, y)
        return b * lam, var.clamp_min(0.0).sqrt() * lam * v


class MinibatchSDE(AbstractOptimizerSDE):
    r"""D(C)SGD under real minibatch noise on a network (:class:`sdesim.noise.Minibatch`), MATH.md §6.1–§6.2.

    The minibatch part of the diffusion is exact and low rank: with ζ ~ N(0, I_n) (the first n driving channels),
    λ a Σ_j (ζ_j − ζ̄) ∇ℓ_j has covariance λ² c_B Σ₁/N; it is computed together with the drift's gradient as one
    ``vjp`` with two cotangents (:meth:`sdesim.objectives.Network.weighted_grads`). With compression (ω > 0) each
    agent adds an independent Gaussian with covariance Cov_ξ C_i(g_i), g_i a fresh minibatch gradient (the next
    N·d channels): averaged over g_i this is E_Z Cov_ξ C_i(∇f + Z), so the scheme has the SDE's per-step mean and
    covariance (weak Euler with a randomized diffusion, ``euler`` only) [D].
    """

    noise_type = "general"

    def __init__(self, method, objective, noise, model, d, dtype, device, stream=None):
        super().__init__(method, objective, noise, model)
        n, agents = objective.n, method.n_agents
        self._n, self._agents, self._d = n, agents, d
        self._a = math.sqrt(noise.covariance_factor(n) / (agents * n))
        self._compressed = any(c.omega(d) > 0 for c in method.compressors)
        if self._compressed and stream is None:
            raise ValueError("seed must be given: the compressed minibatch diffusion draws minibatches at every step")
        self.randomized = self._compressed
        self._stream = stream
        self.noise_size = n + (agents * d if self._compressed else 0)

    def _grad_and_noise(self, y, v):
        n = self._n
        vm = v[:, :n]
        w = torch.stack([torch.full_like(vm, 1.0 / n), self._a * (vm - vm.mean(-1, keepdim=True))], 1)
        both = self.objective.weighted_grads(y, w)
        grad, noise = both[:, 0], both[:, 1]
        if self._compressed:
            r, agents, d = y.shape[0], self._agents, self._d
            idx = self.noise.indices(r * agents, n, self._stream, y.device)
            gi = self.objective.minibatch_grad(y.repeat_interleave(agents, 0), idx).reshape(r, agents, d)
            xi = v[:, n:].reshape(r, agents, d)
            comps = self.method.compressors
            if len(comps) == 1:
                extra = comps[0].gaussian(gi, xi).sum(1)
            else:
                extra = sum(c.gaussian(gi[:, i], xi[:, i]) for i, c in enumerate(comps))
            noise = noise + extra / agents
        return grad, noise

    def g_prod(self, t, y, v):
        grad, noise = self._grad_and_noise(y, v)
        return self.lam(t, grad) * noise

    def f_and_g_prod(self, t, y, v):
        grad, noise = self._grad_and_noise(y, v)
        lam = self.lam(t, grad)
        return self.drift_term(lam, y, grad), lam * noise


def check_parts(method, objective, noise) -> None:
    """``ValueError`` naming the argument that is not an sdesim method, objective or noise model."""
    for name, value, cls, module in (("method", method, AbstractMethod, "methods"),
                                     ("objective", objective, AbstractObjective, "objectives"),
                                     ("noise", noise, AbstractNoise, "noise")):
        if not isinstance(value, cls):
            raise ValueError(f"{name} must be an sdesim {name} (sdesim.{module}), got {value!r}")


def build_sde(method: AbstractMethod, objective: AbstractObjective, noise: AbstractNoise, *, d: int,
              model: str = "first_order", dtype: torch.dtype = torch.float64, device="cpu",
              seed: int | None = None) -> AbstractOptimizerSDE:
    """The SDE of ``method`` on ``objective`` under ``noise``, in iteration units (see the module docstring).

    Args:
        method: a :mod:`sdesim.methods` instance.
        objective: a :mod:`sdesim.objectives` instance.
        noise: a :mod:`sdesim.noise` instance.
        d: dimension of the state.
        model: ``"first_order"``, ``"second_order"`` or ``"stable"`` (the last two for D(C)SGD).
        dtype, device: of the coefficient tensors.
        seed: seed of the coefficient draws of :class:`RandomizedUnbiasedSDE` (QSGD); unused otherwise.

    Raises:
        NoSDEError: the combination has no SDE here; the message says why and what to use instead.
        ValueError: bad arguments.
    """
    _checks.lookup(MODELS, model, "model")
    model = model.lower()
    check_parts(method, objective, noise)
    objective.check_dim(d)
    method.check_dim(d)
    noise.check(method.n_agents, d)
    comps = method.compressors
    name = type(method).__name__
    args = (method, objective, noise, model, d, dtype, torch.device(device))
    if isinstance(noise, Minibatch):
        noise.check_objective(objective)
    if all(isinstance(c, Sign) for c in comps):
        if model != "first_order":
            raise NoSDEError(f"model={model!r} is defined for D(C)SGD only; the DSignSGD analogue of the "
                             "curvature correction is not confirmed (MATH.md §6.5). Use model='first_order'.")
        return SignSDE(*args)
    if any(isinstance(c, Sign) for c in comps):
        raise NoSDEError("agents mixing Sign with other compressors have no SDE here")
    biased = [type(c).__name__ for c in comps if not c.unbiased]
    if biased:
        raise NoSDEError(f"{name} with the biased compressor {biased[0]} has no SDE here: the drift E C(∇f + Z) "
                         "has no closed form. Use an unbiased compressor (Identity, Bernoulli, RandK) or Sign.")
    if isinstance(noise, Minibatch):
        from . import _rng

        stream = None if seed is None else _rng.streams(seed, ["coefficients"], device)["coefficients"]
        return MinibatchSDE(*args, stream)
    if isinstance(noise, Stable) and noise.alpha < 2.0:
        if any(c.omega(d) > 0 for c in comps):
            noise.variance_terms(method.n_agents, d)  # raises the explanatory NoSDEError
        return LevySDE(*args)
    if any(c.cov_coefficients(d) is None for c in comps):
        if any(c.cov_coefficients(d) is not None and c.cov_coefficients(d)[1] > 0 for c in comps):
            raise NoSDEError(f"{name} mixing RandK with QSGD agents has no SDE here; give all agents diagonal-"
                             "covariance compressors (QSGD, Bernoulli, Identity) or (α, β)-structured ones.")
        if seed is None:
            raise ValueError("seed must be given: the QSGD diffusion is drawn afresh at every step")
        from . import _rng

        return RandomizedUnbiasedSDE(*args, _rng.streams(seed, ["coefficients"], device)["coefficients"])
    if any(c.cov_coefficients(d)[1] > 0 for c in comps):
        return LowRankUnbiasedSDE(*args)
    return UnbiasedSDE(*args)


__all__ = ["AbstractOptimizerSDE", "UnbiasedSDE", "LowRankUnbiasedSDE", "RandomizedUnbiasedSDE", "MinibatchSDE", "LevySDE", "SignSDE", "build_sde", "MODELS"]
