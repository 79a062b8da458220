"""Small ready-made models for the real-data experiments: an MLP, a CNN for 8×8 digits and a character transformer.

Every constructor takes a ``seed`` and initializes the weights from it without touching torch's global random state
(the draw happens inside ``torch.random.fork_rng``). All layers are plain ``torch.nn`` modules that ``torch.func``
can ``vmap`` over, which :class:`sdesim.objectives.Network` relies on.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import _checks

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU}


def _seeded(seed: int, build):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def mlp(in_features: int, out_features: int, hidden=(32,), *, activation: str = "tanh", seed: int = 0,
        dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """Fully connected network in → hidden… → out with the given activation."""
    act = _checks.lookup(_ACTIVATIONS, activation, "activation")

    def build():
        layers, width = [], _checks.positive_int("in_features", in_features)
        for h in hidden:
            layers += [nn.Linear(width, _checks.positive_int("hidden", h)), act()]
            width = h
        layers.append(nn.Linear(width, _checks.positive_int("out_features", out_features)))
        return nn.Sequential(*layers).to(dtype)

    return _seeded(seed, build)


def cnn8x8(n_classes: int = 10, channels=(8, 16), *, seed: int = 0, dtype: torch.dtype = torch.float64) -> nn.Module:
    """conv3×3(1→c1) → tanh → conv3×3(c1→c2) → tanh → 2×2 average pool → linear, for (n, 1, 8, 8) inputs."""
    c1, c2 = channels

    def build():
        return nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.Tanh(),
            nn.Conv2d(c1, c2, 3, padding=1), nn.Tanh(),
            nn.AvgPool2d(2), nn.Flatten(), nn.Linear(c2 * 16, n_classes)).to(dtype)

    return _seeded(seed, build)


class CharTransformer(nn.Module):
    """A one-block causal transformer predicting the next character from a context window.

    Token and position embeddings (width ``d_model``), one pre-norm block of causal multi-head self-attention and an
    MLP, and a linear read-out of the last position. The attention is written with plain matrix products so that
    ``torch.func.vmap`` batches it over parameter copies.
    """

    def __init__(self, vocab: int, context: int, d_model: int = 32, heads: int = 2, mlp_width: int = 64):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model={d_model} must be a multiple of heads={heads}")
        self.heads, self.context = heads, context
        self.tok = nn.Embedding(vocab, d_model)
        self.pos = nn.Parameter(0.02 * torch.randn(context, d_model))
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, mlp_width), nn.GELU(), nn.Linear(mlp_width, d_model))
        self.out = nn.Linear(d_model, vocab)
        self.register_buffer("mask", torch.triu(torch.ones(context, context, dtype=torch.bool), 1), persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.tok(ids) + self.pos
        n, t, w = h.shape
        q, k, v = self.qkv(self.norm1(h)).reshape(n, t, 3, self.heads, w // self.heads).unbind(2)
        att = torch.einsum("nqhc,nkhc->nhqk", q, k) / math.sqrt(w // self.heads)
        att = att.masked_fill(self.mask, float("-inf")).softmax(-1)
        h = h + self.proj(torch.einsum("nhqk,nkhc->nqhc", att, v).reshape(n, t, w))
        h = h + self.mlp(self.norm2(h))
        return self.out(h[:, -1])


def char_transformer(vocab: int, context: int, *, d_model: int = 32, heads: int = 2, mlp_width: int = 64,
                     seed: int = 0, dtype: torch.dtype = torch.float64) -> CharTransformer:
    """A :class:`CharTransformer`, initialized from ``seed``."""
    return _seeded(seed, lambda: CharTransformer(vocab, context, d_model, heads, mlp_width).to(dtype))


__all__ = ["mlp", "cnn8x8", "CharTransformer", "char_transformer"]
