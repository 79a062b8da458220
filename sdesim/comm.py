r"""Compressed communication between real processes: each rank compresses its own gradient, the *compressed payloads*
cross the process boundary through ``torch.distributed`` collectives, and every rank decodes them and applies the
same aggregate

    u = (1/N) Σ_i C_i(g_i)                                                    (MATH.md §5, [D])

What a rank sends per step (``Aggregator.bytes_sent``), for d coordinates in dtype of b bytes:

=====================  ==========================================================  ==================
compressor             payload                                                      bytes per row
=====================  ==========================================================  ==================
Identity               all-reduce of the gradient                                   b·d
Sign                   one flag byte, then the signs packed 8 per byte              1 + ⌈d/8⌉
                       (all-gather); when some coordinate is exactly 0 on some      (1 + ⌈d/5⌉)
                       rank, {−1, 0, 1} packed 5 per byte
RandK, TopK,           number of kept entries (8 bytes), then their int32 indices   8 + m(4 + b)
Bernoulli              and values, padded to the largest m over ranks
QSGD(s)                ||x|| (b bytes), packed signs, the levels ξ_j as uint8        b + ⌈d/8⌉ + d
                       (s < 256; int32 otherwise)
anything else          the dense compressed vector (all-gather)                     b·d
=====================  ==========================================================  ==================

Decoding rebuilds exactly the vector the compressor produced, so the aggregate equals the one of
:func:`sdesim.run_discrete` up to the order of floating-point summation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist

from . import _rng
from .compressors import QSGD, AbstractCompressor, Bernoulli, Identity, RandK, Sign, TopK

_BIT_WEIGHTS = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)
_SHIFTS = torch.arange(7, -1, -1, dtype=torch.uint8)


def pack_bits(bits: torch.Tensor) -> torch.Tensor:
    """Pack a boolean tensor ``(..., d)`` into ``(..., ⌈d/8⌉)`` uint8, most significant bit first."""
    d = bits.shape[-1]
    pad = (-d) % 8
    b = torch.nn.functional.pad(bits.to(torch.uint8), (0, pad)).reshape(*bits.shape[:-1], -1, 8)
    return (b * _BIT_WEIGHTS.to(b.device)).sum(-1, dtype=torch.int32).to(torch.uint8)


def unpack_bits(packed: torch.Tensor, d: int) -> torch.Tensor:
    """Inverse of :func:`pack_bits`: a boolean tensor ``(..., d)``."""
    bits = (packed.unsqueeze(-1) >> _SHIFTS.to(packed.device)) & 1
    return bits.reshape(*packed.shape[:-1], -1)[..., :d].bool()


_TRIT_WEIGHTS = torch.tensor([81, 27, 9, 3, 1], dtype=torch.int32)


def pack_trits(trits: torch.Tensor) -> torch.Tensor:
    """Pack digits in {0, 1, 2} ``(..., d)`` into ``(..., ⌈d/5⌉)`` uint8, five per byte (base 3)."""
    d = trits.shape[-1]
    t = torch.nn.functional.pad(trits.to(torch.int32), (0, (-d) % 5)).reshape(*trits.shape[:-1], -1, 5)
    return (t * _TRIT_WEIGHTS.to(t.device)).sum(-1).to(torch.uint8)


def unpack_trits(packed: torch.Tensor, d: int) -> torch.Tensor:
    """Inverse of :func:`pack_trits`: digits in {0, 1, 2}, ``(..., d)`` uint8."""
    t = (packed.to(torch.int32).unsqueeze(-1) // _TRIT_WEIGHTS.to(packed.device)) % 3
    return t.reshape(*packed.shape[:-1], -1)[..., :d].to(torch.uint8)


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


class _Channel:
    """The collectives of one group, counting the bytes this rank contributes."""

    def __init__(self, group=None):
        self.group = group
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank(group) if self.distributed else 0
        self.size = dist.get_world_size(group) if self.distributed else 1
        self.bytes_sent = 0  # counted only when there is somebody to send to

    def all_gather(self, t: torch.Tensor) -> list[torch.Tensor]:
        t = t.contiguous()
        if self.size == 1:
            return [t]
        self.bytes_sent += _nbytes(t)
        out = [torch.empty_like(t) for _ in range(self.size)]
        dist.all_gather(out, t, group=self.group)
        return out

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        t = t.contiguous().clone()
        if self.size > 1:
            self.bytes_sent += _nbytes(t)
            dist.all_reduce(t, op=dist.ReduceOp.SUM, group=self.group)
        return t


# -- codecs: encode this rank's compressed rows, exchange, decode everybody's ------------------------------------
class _Codec:
    def exchange(self, c: torch.Tensor, ch: _Channel, g: torch.Tensor) -> torch.Tensor:
        """All ranks' compressed vectors, stacked ``(rows, N, d)`` in rank order, from this rank's ``c`` = C(g)."""
        return torch.stack(ch.all_gather(c), -2)

    def mean(self, c: torch.Tensor, ch: _Channel, g: torch.Tensor) -> torch.Tensor:
        return self.exchange(c, ch, g).mean(-2)


class _SumCodec(_Codec):
    """Identity: an all-reduce of the gradients themselves."""

    def mean(self, c, ch, g):
        return ch.all_reduce_sum(c) / ch.size


class _SignCodec(_Codec):
    """Signs packed 8 per byte; when some rank has an exact zero (sign 0), {−1, 0, 1} packed 5 per byte (3⁵ ≤ 256).

    A one-byte flag per rank is exchanged first so that every rank picks the same format."""

    def exchange(self, c, ch, g):
        d = c.shape[-1]
        flags = ch.all_gather((c == 0).any().to(torch.uint8).reshape(1))
        if any(bool(f) for f in flags):
            parts = ch.all_gather(pack_trits((c.sign() + 1).to(torch.uint8)))
            signs = [unpack_trits(p, d).to(c.dtype) - 1 for p in parts]
        else:
            parts = ch.all_gather(pack_bits(c > 0))
            signs = [torch.where(unpack_bits(p, d), 1.0, -1.0).to(c.dtype) for p in parts]
        return torch.stack(signs, -2)


class _SparseCodec(_Codec):
    """Indices (int32) and values of the nonzero entries; the counts are exchanged first to pad to a common size."""

    def exchange(self, c, ch, g):
        flat = c.reshape(-1)
        idx = flat.nonzero().squeeze(-1)
        if flat.numel() >= 2**31:
            raise ValueError("sparse payloads use int32 indices: at most 2**31 − 1 entries per message")
        counts = ch.all_gather(torch.tensor([idx.numel()], dtype=torch.int64, device=c.device))
        m = max(int(n) for n in counts)
        pad_idx = torch.zeros(m, dtype=torch.int32, device=c.device)
        pad_idx[: idx.numel()] = idx.to(torch.int32)
        pad_val = torch.zeros(m, dtype=c.dtype, device=c.device)
        pad_val[: idx.numel()] = flat[idx]
        all_idx = ch.all_gather(pad_idx)
        all_val = ch.all_gather(pad_val)
        out = []
        for n, i, v in zip(counts, all_idx, all_val):
            dense = torch.zeros_like(flat)
            n = int(n)
            dense[i[:n].long()] = v[:n]
            out.append(dense.reshape(c.shape))
        return torch.stack(out, -2)


class _QSGDCodec(_Codec):
    """||x||, packed signs and the integer levels ξ_j; decoding recomputes ||x|| sign(x_j) ξ_j / s as QSGD does."""

    def __init__(self, levels: Sequence[int]):
        self.levels = list(levels)

    def exchange(self, c, ch, g):
        d = c.shape[-1]
        s_own = self.levels[ch.rank if len(self.levels) > 1 else 0]
        level_dtype = torch.uint8 if max(self.levels) < 256 else torch.int32
        norm = torch.linalg.vector_norm(g, dim=-1, keepdim=True)  # C(x)_j = ||x|| sign(x_j) ξ_j / s
        safe = torch.where(norm > 0, norm, torch.ones_like(norm))
        xi = torch.round(c.abs() * s_own / safe).to(level_dtype)
        norms = ch.all_gather(norm)
        signs = ch.all_gather(pack_bits(c > 0))
        xis = ch.all_gather(xi)
        out = []
        for j, (n, sg, x) in enumerate(zip(norms, signs, xis)):
            s = self.levels[j if len(self.levels) > 1 else 0]
            sign = torch.where(unpack_bits(sg, d), 1.0, -1.0).to(c.dtype)
            out.append(n * sign * x.to(c.dtype) / s)
        return torch.stack(out, -2)


def codec_for(compressors: Sequence[AbstractCompressor]) -> _Codec:
    """The payload format of a method's compressors (one shared, or one per agent of a common type)."""
    kinds = {type(c) for c in compressors}
    if len(kinds) > 1:
        return _Codec()
    kind = kinds.pop()
    if kind is Identity:
        return _SumCodec()
    if kind is Sign:
        return _SignCodec()
    if kind in (RandK, TopK, Bernoulli):
        return _SparseCodec()
    if kind is QSGD:
        return _QSGDCodec([c.levels for c in compressors])
    return _Codec()


class Aggregator:
    r"""One rank's side of a distributed compressed step: u = (1/N) Σ_i C_i(g_i) over the ranks of ``group``.

    Args:
        compressors: one compressor for every rank, or one per rank (rank i uses the i-th).
        seed: seed of the compressor randomness.
        group: ``torch.distributed`` process group (default: the world; without one, a single agent).
        match_simulation: draw the compressor randomness exactly as :func:`sdesim.run_discrete` draws it for agent
            ``rank`` (the shared stream of all N agents, of which this rank uses its own row), so that a real
            N-process run reproduces the in-process simulation with the same seed. Otherwise each rank draws from
            its own stream (cheaper: no N-row draws).
    """

    def __init__(self, compressors: Sequence[AbstractCompressor], *, seed: int = 0, group=None,
                 match_simulation: bool = False, device="cpu"):
        self.channel = _Channel(group)
        n = self.channel.size
        comps = tuple(compressors)
        if len(comps) not in (1, n):
            raise ValueError(f"compressors: give one, or one per rank ({n}), got {len(comps)}")
        self.compressors = comps
        self.compressor = comps[0] if len(comps) == 1 else comps[self.channel.rank]
        self.codec = codec_for(comps)
        self.match_simulation = bool(match_simulation)
        if match_simulation:
            names = [f"compressor{i}" for i in range(len(comps))]
            streams = _rng.streams(seed, names, device)
            self.stream = streams[names[0] if len(comps) == 1 else names[self.channel.rank]]
        else:
            name = f"compressor/rank{self.channel.rank}"
            self.stream = _rng.streams(seed, [name], device)[name]

    @property
    def rank(self) -> int:
        return self.channel.rank

    @property
    def world_size(self) -> int:
        return self.channel.size

    @property
    def bytes_sent(self) -> int:
        """Bytes this rank has contributed to collectives so far."""
        return self.channel.bytes_sent

    def compress(self, g: torch.Tensor) -> torch.Tensor:
        """C_rank(g) for rows ``g`` of shape ``(rows, d)``."""
        if self.match_simulation and len(self.compressors) == 1 and not isinstance(self.compressor, (Identity, Sign)):
            rows, d = g.shape
            full = g.new_zeros(rows, self.world_size, d)
            full[:, self.rank] = g
            return self.compressor(full, generator=self.stream)[:, self.rank]
        return self.compressor(g, generator=self.stream)

    def __call__(self, g: torch.Tensor) -> torch.Tensor:
        """The aggregate (1/N) Σ_i C_i(g_i), identical on every rank, from this rank's ``g`` of shape ``(rows, d)``."""
        if g.ndim != 2:
            raise ValueError(f"g must have shape (rows, d), got {tuple(g.shape)}")
        return self.codec.mean(self.compress(g), self.channel, g)


def fp32_allreduce_bytes(d: int) -> int:
    """Bytes one rank contributes to an uncompressed float32 all-reduce of d numbers (the reference)."""
    return 4 * int(d)


__all__ = ["Aggregator", "codec_for", "pack_bits", "unpack_bits", "pack_trits", "unpack_trits", "fp32_allreduce_bytes"]
