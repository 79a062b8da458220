"""Objectives: loss, gradient and Hessian-vector products for a batch of points.

Every objective acts on ``x`` of shape ``(..., d)``: ``loss(x)`` has shape ``(...)``, ``grad(x)`` and ``hvp(x, v)``
have shape ``(..., d)``. The analytic objectives here document their (L0, L1)-smoothness constants (MATH.md §2.4,
[D]): ``||∇²f(x)||₂ ≤ L0 + L1 ||∇f(x)||₂`` for all x. Only :class:`Quadratic` is also L-smooth; the others are the
(L0, L1) examples on which normalization matters.

Examples:
    >>> import torch
    >>> from sdesim import objectives
    >>> f = objectives.Quadratic(h=[1.0, 4.0])
    >>> f.loss(torch.tensor([[1.0, 1.0]], dtype=torch.float64))
    tensor([2.5000], dtype=torch.float64)
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np
import torch

from . import _checks
from ._config import TensorCache


class AbstractObjective(abc.ABC):
    """Interface of an objective f: R^d -> R, evaluated on a batch of points.

    Attributes:
        dim: the dimension d the objective requires, or ``None`` when it accepts any d.
        L0, L1: constants with ``||∇²f(x)|| ≤ L0 + L1 ||∇f(x)||`` (MATH.md §2.4).
        f_star: the minimum value.
        chunk_numbers: state entries per chunk of paths when :func:`sdesim.solve` splits a batch (elementwise
            objectives: 2¹⁵, which stays in cache and, at torch's parallel grain, on the calling thread, so that the
            other cores draw the next step's increments).
    """

    dim: int | None = None
    f_star: float = 0.0
    chunk_numbers: int = 1 << 15

    @property
    @abc.abstractmethod
    def smoothness(self) -> tuple[float, float]:
        """The (L0, L1) constants."""

    @abc.abstractmethod
    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """f(x), shape ``x.shape[:-1]``."""

    @abc.abstractmethod
    def grad(self, x: torch.Tensor) -> torch.Tensor:
        """∇f(x), shape ``x.shape``."""

    @abc.abstractmethod
    def hvp(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """∇²f(x) v, shape ``x.shape``."""

    def minimizer(self, d: int) -> np.ndarray:
        """A point where f attains ``f_star`` (the origin for every objective in this module)."""
        return np.zeros(self.check_dim(d))

    def check_dim(self, d: int) -> int:
        """Raise ``ValueError`` (naming ``x0``) unless the objective accepts dimension ``d``."""
        if self.dim is not None and d != self.dim:
            raise ValueError(f"x0 must have last dimension {self.dim} for {type(self).__name__}, got {d}")
        return d


@dataclass(frozen=True, eq=False)
class Quadratic(AbstractObjective):
    r"""Separable quadratic f(x) = ½ Σ_j h_j x_j².

    (L0, L1) = (max_j |h_j|, 0): L-smooth (MATH.md §2.4, [D]). Minimum 0 at x = 0 when every h_j > 0; the closed
    forms of MATH.md §7.6–§7.7 hold for this objective.

    Args:
        h: curvatures, shape ``(d,)`` (a list, array or tensor); a scalar with ``dim`` gives an isotropic quadratic.
        dim: dimension when ``h`` is a scalar.
    """

    h: np.ndarray
    dim: int | None = None
    _h: TensorCache = field(init=False, repr=False)

    def __post_init__(self):
        h = _checks.real_array("h", self.h, max_ndim=1)
        if h.ndim == 0:
            if self.dim is None:
                raise ValueError("h is a scalar, so dim must be given (e.g. Quadratic(h=1.0, dim=10))")
            h = np.full(_checks.positive_int("dim", self.dim), float(h))
            h.setflags(write=False)
        elif self.dim is not None and self.dim != h.shape[0]:
            raise ValueError(f"dim={self.dim} does not match len(h)={h.shape[0]}")
        object.__setattr__(self, "h", h)
        object.__setattr__(self, "dim", int(h.shape[0]))
        object.__setattr__(self, "_h", TensorCache(h))

    @property
    def smoothness(self) -> tuple[float, float]:
        return float(np.max(np.abs(self.h))), 0.0

    @property
    def f_star(self) -> float:  # type: ignore[override]
        return 0.0 if np.all(self.h >= 0) else -np.inf

    def _ht(self, x: torch.Tensor) -> torch.Tensor:
        return self._h.get(x.dtype, x.device)

    def loss(self, x):
        return 0.5 * (self._ht(x) * x * x).sum(-1)

    def grad(self, x):
        return self._ht(x) * x

    def hvp(self, x, v):
        return self._ht(x) * v


@dataclass(frozen=True)
class Quartic(AbstractObjective):
    r"""f(x) = Σ_j x_j⁴ / 4, any dimension.

    ∇²f = diag(3x²) and |∇_j f| = |x_j|³; since 3u² ≤ 4 + u³ for u ≥ 0 ((u−2)²(u+1) ≥ 0), f is (4, 1)-smooth and not
    L-smooth (MATH.md §2.4, [D] ✓num). Minimum 0 at x = 0. Gradient descent on it is stable only while
    η x² < 2 (MATH.md §7.1).
    """

    @property
    def smoothness(self) -> tuple[float, float]:
        return 4.0, 1.0

    def loss(self, x):
        return 0.25 * (x * x).square().sum(-1)

    def grad(self, x):
        return x * x * x

    def hvp(self, x, v):
        return 3.0 * x * x * v


@dataclass(frozen=True)
class _Sharp(AbstractObjective):
    """Base of the separable exponential-type objectives: a sharpness a > 0 and (L0, L1) = (1, a)."""

    a: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "a", _checks.positive("a", self.a))

    @property
    def smoothness(self) -> tuple[float, float]:
        return 1.0, self.a


@dataclass(frozen=True)
class CoshSum(_Sharp):
    r"""f(x) = Σ_j (cosh(a x_j) − 1) / a², any dimension.

    ∇f = sinh(a x)/a and ∇²f = diag(cosh(a x)); cosh(u) ≤ 1 + |sinh(u)| gives ||∇²f|| ≤ 1 + a ||∇f||, so f is
    (1, a)-smooth and not L-smooth ([D], MATH.md §2.4 style). Minimum 0 at x = 0.

    Args:
        a: sharpness; the curvature at the minimum is 1 and grows like e^{a|x|}.
    """

    def loss(self, x):
        return ((torch.cosh(self.a * x) - 1.0) / self.a**2).sum(-1)

    def grad(self, x):
        return torch.sinh(self.a * x) / self.a

    def hvp(self, x, v):
        return torch.cosh(self.a * x) * v


@dataclass(frozen=True)
class ExpSum(_Sharp):
    r"""f(x) = Σ_j (e^{a x_j} − a x_j − 1) / a², any dimension; asymmetric around its minimum.

    ∇f = (e^{a x} − 1)/a and ∇²f = diag(e^{a x}) = I + a diag(∇f), so ||∇²f|| ≤ 1 + a ||∇f||: (1, a)-smooth, not
    L-smooth (the example e^x of MATH.md §2.4 made to have a minimum, [D]). Minimum 0 at x = 0.

    Args:
        a: sharpness of the exponential wall (on the side x > 0).
    """

    def loss(self, x):
        ax = self.a * x
        return (torch.expm1(ax) - ax).sum(-1) / self.a**2

    def grad(self, x):
        return torch.expm1(self.a * x) / self.a

    def hvp(self, x, v):
        return torch.exp(self.a * x) * v




class Network(AbstractObjective):
    r"""A ``torch.nn.Module`` with its data, as a function of the flat parameter vector x ∈ R^d.

    f(x) = (1/n) Σ_j ℓ(module_x(inputs_j), targets_j) with ℓ the cross-entropy or the squared error, evaluated with
    ``torch.func.functional_call``. Every method is batched over leading dimensions of x with ``torch.func.vmap``, so
    R runs or paths advance in one call: ``loss(x)`` for x of shape ``(..., d)``, ``grad`` by ``torch.func.grad``,
    ``hvp`` by forward-over-reverse (``jvp`` of ``grad``), per-example gradients by ``vmap`` over examples, minibatch
    gradients per run, and weighted sums Σ_j w_j ∇ℓ_j by one ``vjp`` (the low-rank minibatch diffusion of
    :class:`sdesim.noise.Minibatch` uses them without forming the n × d matrix of per-example gradients).

    (L0, L1) constants are unknown for a network: :attr:`smoothness` is (nan, nan) and ``f_star`` is nan.

    Args:
        module: the model; its current parameters are :attr:`x0`.
        inputs, targets: training data (targets ``int64`` class labels for cross-entropy).
        loss: ``"cross_entropy"`` or ``"mse"`` (mean over examples of ½||output − target||²).
        test_inputs, test_targets: optional test split, reported by :meth:`metrics` (test loss, and accuracy for
            classification).
    """

    f_star = float("nan")
    #: a path's gradient is a whole forward and backward pass, parallel in itself: larger chunks (fewer calls).
    chunk_numbers = 1 << 18

    def __init__(self, module: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                 loss: str = "cross_entropy", *, test_inputs: torch.Tensor | None = None,
                 test_targets: torch.Tensor | None = None):
        from . import _checks as checks

        if not isinstance(module, torch.nn.Module):
            raise ValueError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        self.module = module
        self.loss_name = checks.one_of("loss", loss, ("cross_entropy", "mse"))
        params = {k: v.detach() for k, v in module.named_parameters()}
        if not params:
            raise ValueError("module has no parameters")
        self._names = list(params)
        self._shapes = [p.shape for p in params.values()]
        self._sizes = [p.numel() for p in params.values()]
        self._buffers = {k: v.detach() for k, v in module.named_buffers()}
        self.dim = int(sum(self._sizes))
        self._x0 = torch.cat([p.reshape(-1) for p in params.values()]).clone()
        for name, a, b in (("targets", inputs, targets), ("test_targets", test_inputs, test_targets)):
            if (a is None) != (b is None):
                raise ValueError(f"{name} and its inputs must be given together")
            if a is not None and a.shape[0] != b.shape[0]:
                raise ValueError(f"{name} has {b.shape[0]} rows but the inputs have {a.shape[0]}")
        self.inputs, self.targets = inputs, targets
        self.test_inputs, self.test_targets = test_inputs, test_targets
        self.n = int(inputs.shape[0])

    def __repr__(self):
        return (f"Network({type(self.module).__name__}, d={self.dim}, n={self.n}, loss={self.loss_name!r}"
                f"{', with test split' if self.test_inputs is not None else ''})")

    def to_config(self) -> dict:
        return {"type": "Network", "module": repr(self.module), "d": self.dim, "n": self.n, "loss": self.loss_name,
                "test": None if self.test_inputs is None else int(self.test_inputs.shape[0])}

    @property
    def smoothness(self) -> tuple[float, float]:
        return float("nan"), float("nan")

    def to(self, device=None, dtype: torch.dtype | None = None) -> "Network":
        """A copy with the module and the data on ``device`` (and floating tensors in ``dtype``)."""
        import copy

        def move(t):
            if t is None:
                return None
            return t.to(device=device, dtype=dtype if dtype is not None and t.is_floating_point() else None)

        module = copy.deepcopy(self.module).to(device=device, dtype=dtype)
        return Network(module, move(self.inputs), move(self.targets), self.loss_name,
                       test_inputs=move(self.test_inputs), test_targets=move(self.test_targets))

    @property
    def x0(self) -> torch.Tensor:
        """The module's parameters at construction, flattened (shape ``(d,)``)."""
        return self._x0.clone()

    # -- functional core -----------------------------------------------------------------------------------------
    def _params(self, flat):
        return {n: p.view(s) for n, p, s in zip(self._names, torch.split(flat, self._sizes), self._shapes)}

    def _criterion(self, out, y):
        """Per-example losses from the outputs; the cross-entropy is written with logsumexp, which is faster on the
        CPU than ``F.cross_entropy``'s log-softmax kernel when there are few classes."""
        if self.loss_name == "cross_entropy":
            return torch.logsumexp(out, -1) - out.gather(-1, y.unsqueeze(-1)).squeeze(-1)
        diff = out - y.reshape(out.shape)
        return 0.5 * diff.reshape(diff.shape[0], -1).square().sum(-1)

    def _per_example(self, flat, x, y):
        out = torch.func.functional_call(self.module, (self._params(flat), self._buffers), (x,))
        return self._criterion(out, y)

    def _mean(self, flat, x, y):
        return self._per_example(flat, x, y).mean()

    def _batched(self, fn, x, *more):
        lead = x.shape[:-1]
        flat = x.reshape(-1, x.shape[-1])
        out = torch.func.vmap(fn)(flat, *(m.reshape(-1, m.shape[-1]) for m in more))
        return out.reshape(tuple(lead) + tuple(out.shape[1:]))

    def loss(self, x):
        return self._batched(lambda p: self._mean(p, self.inputs, self.targets), x)

    def grad(self, x):
        g = torch.func.grad(self._mean)
        return self._batched(lambda p: g(p, self.inputs, self.targets), x)

    def hvp(self, x, v):
        g = torch.func.grad(self._mean)

        def one(p, t):
            return torch.func.jvp(lambda q: g(q, self.inputs, self.targets), (p,), (t,))[1]

        return self._batched(one, x, v)

    # -- minibatches and per-example gradients -------------------------------------------------------------------
    def per_example_grads(self, x: torch.Tensor) -> torch.Tensor:
        """∇ℓ_j(x) for every training example, shape ``(n, d)`` for x of shape ``(d,)``."""
        g = torch.func.grad(lambda p, a, b: self._per_example(p, a[None], b[None])[0])
        return torch.func.vmap(g, in_dims=(None, 0, 0))(x, self.inputs, self.targets)

    def minibatch_grad(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Gradient of the mean loss over the examples ``index[r]`` at ``x[r]``: x ``(R, d)``, index ``(R, B)``."""
        g = torch.func.grad(self._mean)
        return torch.func.vmap(g)(x, self.inputs[index], self.targets[index])

    def weighted_grads(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Σ_j w_kj ∇ℓ_j(x_r) for each run r and weight vector k from one forward pass (one ``vjp``, whose pull-back
        runs once per weight vector): x ``(R, d)``, weights ``(R, K, n)``, result ``(R, K, d)``.

        The K pull-backs run one after another rather than under a ``vmap`` over K: for the K = 2 of the minibatch
        diffusion on the breast-cancer MLP 30-16-2 (R = 32) that costs 1.34 full-batch gradients against 1.75 for the
        batched pull-back (medians of 15 interleaved rounds)."""
        def one(p, w):
            _, pull = torch.func.vjp(lambda q: self._per_example(q, self.inputs, self.targets), p)
            return torch.stack([pull(w[k])[0] for k in range(w.shape[0])])

        return torch.func.vmap(one)(x, weights)

    def grad_moments(self, x: torch.Tensor, chunk: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, mean of squares) over examples of the per-example gradients at each x[r], each ``(R, d)``.

        Computed in chunks of ``chunk`` examples, so memory stays O(R · chunk · d).
        """
        g = torch.func.grad(lambda p, a, b: self._per_example(p, a[None], b[None])[0])
        per = torch.func.vmap(torch.func.vmap(g, in_dims=(None, 0, 0)), in_dims=(0, None, None))
        s1 = torch.zeros_like(x)
        s2 = torch.zeros_like(x)
        for a in range(0, self.n, chunk):
            gj = per(x, self.inputs[a:a + chunk], self.targets[a:a + chunk])  # (R, c, d)
            s1 += gj.sum(1)
            s2 += gj.square().sum(1)
        return s1 / self.n, s2 / self.n

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The names :meth:`metrics` returns (recorded in ``Trajectories.extra``)."""
        if self.test_inputs is None:
            return ()
        return ("test_loss", "test_accuracy") if self.loss_name == "cross_entropy" else ("test_loss",)

    def metrics(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Test loss (and test accuracy for classification) at each parameter vector, or ``{}`` without a test
        split; x of shape ``(R, d)``."""
        if self.test_inputs is None:
            return {}

        def one(p):
            out = torch.func.functional_call(self.module, (self._params(p), self._buffers), (self.test_inputs,))
            loss = self._criterion(out, self.test_targets).mean()
            if self.loss_name == "cross_entropy":
                return torch.stack([loss, (out.argmax(-1) == self.test_targets).to(out.dtype).mean()])
            return loss.reshape(1)

        vals = torch.func.vmap(one)(x)
        return {name: vals[:, i] for i, name in enumerate(self.metric_names)}


OBJECTIVES: dict[str, type[AbstractObjective]] = {
    "quadratic": Quadratic,
    "quartic": Quartic,
    "coshsum": CoshSum,
    "expsum": ExpSum,
}

__all__ = ["AbstractObjective", "Quadratic", "Quartic", "CoshSum", "ExpSum", "Network", "OBJECTIVES"]
