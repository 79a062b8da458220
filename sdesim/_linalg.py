"""Gaussian draws with structured covariances in O(d)."""

from __future__ import annotations

import torch


def diag_minus_rank_one(diag: torch.Tensor, c, g: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
    r"""A draw with covariance diag(D) − c g gᵀ (assumed positive semi-definite), from standard normals ``xi``.

    With u = D^{-1/2} g / ||D^{-1/2} g|| and κ = c ||D^{-1/2} g||² ≤ 1,

        diag(D) − c g gᵀ = D^{1/2} (I − κ u uᵀ) D^{1/2} = [D^{1/2}(I − γ u uᵀ)] [D^{1/2}(I − γ u uᵀ)]ᵀ,

    with γ = 1 − √(1 − κ). The Rand-k sampler of MATH.md §4 ([D] ✓num) is the case D = ω d/(d−1) x², c = ω/(d−1),
    g = x, where κ = 1 and γ = 1; written this way it also holds when some x_j = 0, where the §4 formula with
    s = sign(x) does not (its sᵀs < d). Coordinates with D_j = 0 must have g_j = 0 (else the matrix is not PSD).

    Args:
        diag: D, shape ``(..., d)``, ≥ 0.
        c: scalar or tensor broadcastable to ``(..., 1)``, ≥ 0.
        g: shape ``(..., d)``.
        xi: standard normal draws, shape ``(..., d)``.
    """
    sd = diag.clamp_min(0.0).sqrt()
    pos = sd > 0
    w = torch.where(pos, g / torch.where(pos, sd, torch.ones_like(sd)), torch.zeros_like(g))  # D^{-1/2} g
    q = (w * w).sum(-1, keepdim=True)
    kappa = (c * q).clamp(0.0, 1.0)
    gamma = 1.0 - torch.sqrt(1.0 - kappa)
    qsafe = torch.where(q > 0, q, torch.ones_like(q))
    proj = torch.where(q > 0, (w * xi).sum(-1, keepdim=True) / qsafe, torch.zeros_like(q))
    return sd * xi - (gamma * proj) * g
