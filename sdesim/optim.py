r"""``torch.optim`` optimizers and ``DistributedDataParallel`` communication hooks for DSGD, DCSGD and DSignSGD.

In a single process each optimizer is one agent. Inside a ``torch.distributed`` process group every rank is an
agent: it compresses its own gradient, the compressed payloads are exchanged (:mod:`sdesim.comm`: packed signs,
indices and values of sparsifiers, norms and levels of QSGD), and every rank applies the same aggregate

    x ← x − η η_k (1/N) Σ_i C_i(g_i)                                          (MATH.md §5, [D])

so the replicas stay identical. The gradient of all parameters is compressed as one flat vector, as the methods of
:mod:`sdesim.methods` do. Drop them into an ordinary training loop::

    opt = sdesim.optim.DCSGD(model.parameters(), lr=0.05, compressor=sdesim.compressors.RandK(k=100))
    for x, y in loader:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from . import _checks, _rng
from .comm import Aggregator
from .compressors import AbstractCompressor, Identity, Sign
from .schedules import AbstractSchedule, as_schedule


class _Compressed(torch.optim.Optimizer):
    """Shared machinery: flatten every gradient, aggregate across ranks, unflatten, step."""

    def __init__(self, params, lr: float, compressor, *, schedule: AbstractSchedule | None = None, seed: int = 0,
                 group=None, match_simulation: bool = False):
        lr = _checks.positive("lr", lr)
        super().__init__(params, {"lr": lr})
        comps = (compressor,) if isinstance(compressor, AbstractCompressor) else tuple(compressor)
        if not comps or not all(isinstance(c, AbstractCompressor) for c in comps):
            raise ValueError(f"compressor must be an sdesim compressor or a sequence of them, got {compressor!r}")
        self.schedule = as_schedule(schedule)
        self._agg = Aggregator(comps, seed=_rng.check_seed(seed), group=group, match_simulation=match_simulation)
        self.iteration = 0

    @property
    def rank(self) -> int:
        """This agent's index (the rank in the process group; 0 without one)."""
        return self._agg.rank

    @property
    def n_agents(self) -> int:
        """N, the number of ranks of the process group (1 without one)."""
        return self._agg.world_size

    @property
    def bytes_sent(self) -> int:
        """Bytes this rank has sent in collectives since construction."""
        return self._agg.bytes_sent

    @torch.no_grad()
    def step(self, closure=None):
        """One step of the method from the gradients in ``p.grad`` (missing gradients count as zero)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params = [p for group in self.param_groups for p in group["params"]]
        if not params:
            return loss
        ref = params[0]
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).to(ref.dtype)
                          for p in params])
        u = self._agg(flat.unsqueeze(0))[0]
        mult = self.schedule(self.iteration)
        offset = 0
        for group in self.param_groups:
            for p in group["params"]:
                n = p.numel()
                p.add_(u[offset:offset + n].view_as(p).to(p.dtype), alpha=-group["lr"] * mult)
                offset += n
        self.iteration += 1
        return loss


class DSGD(_Compressed):
    """Distributed SGD: every rank applies the mean of all ranks' gradients (an all-reduce)."""

    def __init__(self, params, lr: float, *, schedule=None, group=None):
        super().__init__(params, lr, Identity(), schedule=schedule, group=group)


class DCSGD(_Compressed):
    """Distributed compressed SGD with any sdesim compressor (one for all ranks, or one per rank).

    Args:
        params: parameters or parameter groups.
        lr: learning rate η (per group ``lr`` allowed).
        compressor: e.g. ``compressors.RandK(k)``; its payload is what crosses the process boundary.
        schedule: multiplier η_k (default constant).
        seed: seed of the compressor randomness.
        group: process group (default: the world when initialized).
        match_simulation: draw compressor randomness exactly as ``sdesim.run_discrete`` does for agent ``rank``.
    """


class DSignSGD(_Compressed):
    """Distributed SignSGD: every rank sends the signs of its gradient, 1 bit per coordinate; the step is the mean of
    the signs (MATH.md §5: the server averages, it does not take a majority vote)."""

    def __init__(self, params, lr: float, *, schedule=None, group=None):
        super().__init__(params, lr, Sign(), schedule=schedule, group=group)


class CompressionState:
    """State of :func:`compression_hook`: the compressor, its seed, and the bytes sent (the pattern of PyTorch's
    PowerSGD hook: ``model.register_comm_hook(state, hook)``).

    Each DDP bucket (a flat slice of the gradient) is compressed with ``compressor`` on every rank, the payloads are
    exchanged as in :mod:`sdesim.comm`, and DDP receives the mean of the decoded vectors; the optimizer then applies
    it as usual (plain ``torch.optim.SGD`` gives DCSGD, with ``Sign()`` DSignSGD). A Rand-k or Top-k compressor
    keeps min(k, bucket size) entries of each bucket.

    Example::

        model = DistributedDataParallel(net)
        state = sdesim.optim.CompressionState(compressors.Sign())
        model.register_comm_hook(state, sdesim.optim.compression_hook)

    Attributes:
        bytes_sent: bytes this rank has sent through the hook.
    """

    def __init__(self, compressor: AbstractCompressor, *, seed: int = 0, group=None):
        if not isinstance(compressor, AbstractCompressor):
            raise ValueError(f"compressor must be an sdesim compressor, got {compressor!r}")
        self.compressor = compressor
        self.seed = _rng.check_seed(seed)
        self.group = group
        self._aggs: dict[int, Aggregator] = {}

    @property
    def bytes_sent(self) -> int:
        return sum(a.bytes_sent for a in self._aggs.values())

    def aggregator(self, index: int, size: int) -> Aggregator:
        """The aggregator of bucket ``index`` (its own random stream)."""
        if index not in self._aggs:
            comp = self.compressor
            k = getattr(comp, "k", None)
            if k is not None and k > size:
                comp = type(comp)(k=size)
            self._aggs[index] = Aggregator([comp], seed=self.seed + index, group=self.group)
        return self._aggs[index]


def compression_hook(state: CompressionState, bucket: torch.distributed.GradBucket
                     ) -> torch.futures.Future[torch.Tensor]:
    """DDP communication hook: the bucket's mean of compressed gradients over the ranks (see
    :class:`CompressionState`)."""
    buf = bucket.buffer()
    out = state.aggregator(bucket.index(), buf.numel())(buf.reshape(1, -1))[0]
    fut: torch.futures.Future = torch.futures.Future()
    fut.set_result(out.to(buf.dtype))
    return fut


# DDP checks the hook's annotations at registration; they must be objects, not the strings of postponed evaluation
compression_hook.__annotations__.update(state=CompressionState, bucket=torch.distributed.GradBucket,
                                        **{"return": torch.futures.Future[torch.Tensor]})


def from_method(method, params: Iterable, **kwargs) -> _Compressed:
    """The ``torch.optim`` optimizer of an :mod:`sdesim.methods` method (lr, schedule and compressor taken from it)."""
    from .methods import AbstractMethod

    if not isinstance(method, AbstractMethod):
        raise ValueError(f"method must be an sdesim method, got {method!r}")
    if method.normalized:
        raise ValueError(f"{type(method).__name__} rescales by the aggregate's norm; sdesim.optim covers DSGD, "
                         "DCSGD and DSignSGD")
    return _Compressed(params, method.lr, method.compressors, schedule=method.schedule, **kwargs)


__all__ = ["DSGD", "DCSGD", "DSignSGD", "CompressionState", "compression_hook", "from_method"]
