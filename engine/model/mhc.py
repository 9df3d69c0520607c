"""Manifold-constrained hyper-connections (mHC) and the plain residual they replace.

A plain pre-norm residual is ``x = x + f(norm(x))``. Hyper-connections widen the residual stream to
n parallel streams x_1..x_n (shape (..., n, C)) and, around every sub-layer f, learn

    u      = sum_i pre_i * x_i                      read-in   (pre  = sigmoid(...),   in (0, 1))
    y      = f(norm(u))
    x_i'   = sum_j R_ij * x_j + post_i * y           write-back (post = 2*sigmoid(...), in (0, 2))

with coefficients that have a static part (a learned bias) and a dynamic part computed from the
current token (a projection of the RMS-normalised, flattened streams, scaled by a small learned
alpha). The "manifold constraint" keeps the stream-mixing matrix R doubly stochastic by projecting
its logits with Sinkhorn-Knopp (exp of the logits with the max subtracted, then alternate row and
column normalisation): a convex combination of permutations, so mixing neither amplifies nor
shrinks the residual signal across depth, which is what made unconstrained hyper-connections unstable.

At initialisation R is (close to) the identity, pre = 1/n and post = 1: with the streams started as
copies of x and averaged at the end of a stage, the block computes exactly a plain residual.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sinkhorn_knopp(logits: torch.Tensor, iters: int = 20) -> torch.Tensor:
    """Project (..., n, n) logits to a doubly stochastic matrix (rows and columns sum to 1)."""
    m = torch.exp(logits - logits.amax(dim=(-2, -1), keepdim=True))
    for _ in range(iters):
        m = m / m.sum(dim=-1, keepdim=True)  # rows
        m = m / m.sum(dim=-2, keepdim=True)  # columns
    return m


class PlainResidual(nn.Module):
    """x + f(norm(x)) on (..., C)."""

    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fn(self.norm(x))


class HyperConnection(nn.Module):
    """The mHC form of :class:`PlainResidual` on streams (..., n, C); see the module docstring."""

    def __init__(self, dim: int, fn: nn.Module, streams: int = 4, sinkhorn_iters: int = 20):
        super().__init__()
        n = streams
        self.n, self.iters = n, sinkhorn_iters
        self.norm = nn.LayerNorm(dim)
        self.fn = fn
        self.stream_norm = nn.RMSNorm(n * dim, elementwise_affine=False)
        # One projection for all dynamic coefficients: n (pre) + n (post) + n*n (mixing).
        self.dyn = nn.Linear(n * dim, 2 * n + n * n, bias=False)
        nn.init.zeros_(self.dyn.weight)
        self.alpha = nn.Parameter(torch.full((3,), 0.01))  # scales of the dynamic parts
        logit_pre = math.log(1 / n) - math.log(1 - 1 / n) if n > 1 else 10.0
        self.pre_bias = nn.Parameter(torch.full((n,), logit_pre))  # sigmoid -> 1/n
        self.post_bias = nn.Parameter(torch.zeros(n))  # 2 * sigmoid(0) = 1
        # Strong diagonal: Sinkhorn of these logits is within ~1e-3 of the identity.
        self.res_bias = nn.Parameter(torch.eye(n) * 8.0)

    def coefficients(self, x: torch.Tensor):
        """pre (..., n), post (..., n), R (..., n, n) for streams x (..., n, C)."""
        n = self.n
        d = self.dyn(self.stream_norm(x.flatten(-2)))  # (..., 2n + n*n)
        pre = torch.sigmoid(self.alpha[0] * d[..., :n] + self.pre_bias)
        post = 2 * torch.sigmoid(self.alpha[1] * d[..., n : 2 * n] + self.post_bias)
        res_logits = self.alpha[2] * d[..., 2 * n :].unflatten(-1, (n, n)) + self.res_bias
        return pre, post, sinkhorn_knopp(res_logits.float(), self.iters).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre, post, R = self.coefficients(x)
        u = torch.einsum("...n,...nc->...c", pre, x)  # read-in: (..., C)
        y = self.fn(self.norm(u))  # (..., C)
        mixed = torch.einsum("...ij,...jc->...ic", R, x)  # (..., n, C)
        return mixed + post[..., None] * y[..., None, :]


def make_residual(dim: int, fn: nn.Module, use_mhc: bool, streams: int, iters: int) -> nn.Module:
    return HyperConnection(dim, fn, streams, iters) if use_mhc else PlainResidual(dim, fn)
