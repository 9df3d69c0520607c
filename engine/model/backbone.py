"""The hybrid backbone: stages of blocks mixing Mamba2 scans and gated window attention.

Token layout inside a stage: (B, h, w, 2, C) — the two frames' features stacked at each position.
Flattening it row-major gives the interleaved sequence (f0 p0, f1 p0, f0 p1, f1 p1, ...), so every
scan step sees both frames at the same place.

A block has two mixer slots and a feed-forward layer, each a pre-norm residual (or an mHC
hyper-connection, see mhc.py):

    hybrid           slot A = Mamba2 over several scan orders,  slot B = gated window attention
    mamba2_only      slot A = Mamba2 scans,                      slot B = Mamba2 scans
    gated_attn_only  slot A = window attention,                  slot B = shifted window attention

so the three modes have comparable parameter counts (a Mamba2 mixer holds about 7·C², an attention
mixer 5·C²: ``vfi models`` and docs/benchmarks.md report the counts). In ``hybrid`` the attention
windows shift in alternate blocks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.config import ModelConfig, StageConfig
from engine.model.mamba2 import Mamba2
from engine.model.mhc import make_residual
from engine.model.window_attention import GatedWindowAttention


def _scan_views(x: torch.Tensor, order: str) -> torch.Tensor:
    """(B, h, w, 2, C) -> the sequence (B, 2hw, C) visited in ``order``."""
    b, h, w, f, c = x.shape
    seq = x.transpose(1, 2) if order.startswith("col") else x
    seq = seq.reshape(b, h * w * f, c)
    return seq.flip(1) if order.endswith("_rev") else seq


def _unscan(y: torch.Tensor, order: str, shape) -> torch.Tensor:
    """Inverse of :func:`_scan_views`: (B, 2hw, C) back to (B, h, w, 2, C)."""
    b, h, w, f, c = shape
    if order.endswith("_rev"):
        y = y.flip(1)
    if order.startswith("col"):
        return y.reshape(b, w, h, f, c).transpose(1, 2)
    return y.reshape(b, h, w, f, c)


class MultiScanMamba(nn.Module):
    """One Mamba2 mixer (shared weights) run over several scan orders, outputs averaged.

    The orders are stacked along the batch so the scan runs once. Forward and reverse scans give
    every token context from both sides; column-major orders add vertical neighbours.
    """

    def __init__(self, dim: int, cfg: ModelConfig, orders: tuple[str, ...]):
        super().__init__()
        self.orders = orders
        self.mamba = Mamba2(
            dim, d_state=cfg.d_state, d_conv=cfg.d_conv, expand=cfg.expand,
            headdim=cfg.headdim, chunk_size=cfg.chunk_size,
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = len(self.orders)
        seqs = torch.cat([_scan_views(x, o) for o in self.orders], 0)  # (k*B, 2hw, C)
        ys = self.mamba(seqs).chunk(k, 0)
        return sum(_unscan(y, o, x.shape) for y, o in zip(ys, self.orders)) / k


class ConvFFN(nn.Module):
    """Linear -> depthwise 3x3 conv (per frame) -> GELU -> Linear. The conv gives position cues."""

    def __init__(self, dim: int, ratio: float):
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.dw = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, f = x.shape[0], x.shape[3]
        y = self.fc1(x)  # (B, h, w, 2, D)
        y = y.permute(0, 3, 4, 1, 2).flatten(0, 1)  # (2B, D, h, w)
        y = F.gelu(self.dw(y))
        y = y.unflatten(0, (b, f)).permute(0, 3, 4, 1, 2)  # (B, h, w, 2, D)
        return self.fc2(y)


class HybridBlock(nn.Module):
    def __init__(self, st: StageConfig, cfg: ModelConfig, index: int):
        super().__init__()
        shift = index % 2 == 1
        mode = cfg.backbone_mode
        orders = st.scan_orders or cfg.scan_orders
        if mode == "hybrid":
            a = MultiScanMamba(st.dim, cfg, orders)
            b = GatedWindowAttention(st.dim, st.heads, st.window, shift)
        elif mode == "mamba2_only":
            a, b = MultiScanMamba(st.dim, cfg, orders), MultiScanMamba(st.dim, cfg, orders)
        else:  # gated_attn_only
            a = GatedWindowAttention(st.dim, st.heads, st.window, shift=False)
            b = GatedWindowAttention(st.dim, st.heads, st.window, shift=True)
        res = dict(use_mhc=cfg.use_mhc, streams=cfg.mhc_streams, iters=cfg.mhc_sinkhorn_iters)
        self.mix_a = make_residual(st.dim, a, **res)
        self.mix_b = make_residual(st.dim, b, **res)
        self.ffn = make_residual(st.dim, ConvFFN(st.dim, st.ffn_ratio), **res)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn(self.mix_b(self.mix_a(x)))


class Stage(nn.Module):
    """Project encoder features to tokens, add frame + position cues, run the blocks."""

    def __init__(self, st: StageConfig, cfg: ModelConfig, in_dim: int):
        super().__init__()
        self.use_mhc, self.streams = cfg.use_mhc, cfg.mhc_streams
        self.proj = nn.Conv2d(in_dim, st.dim, 1)
        self.pos = nn.Conv2d(st.dim, st.dim, 3, padding=1, groups=st.dim)  # conditional pos. enc.
        self.frame_embed = nn.Parameter(torch.zeros(2, st.dim))
        nn.init.trunc_normal_(self.frame_embed, std=0.02)
        self.blocks = nn.ModuleList(HybridBlock(st, cfg, i) for i in range(st.depth))
        self.norm = nn.LayerNorm(st.dim)

    def forward(self, feats: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """feats: (2B, Cin, h, w) frames stacked [all frame-0 | all frame-1] -> (2B, C, h, w).

        ``extra`` (2B, C, h, w) is added after the projection (features from the coarser stage).
        """
        x = self.proj(feats)
        if extra is not None:
            x = x + extra
        x = x + self.pos(x)
        b2, c = x.shape[:2]
        x = x.unflatten(0, (2, b2 // 2)).permute(1, 3, 4, 0, 2)  # (B, h, w, 2, C)
        x = x + self.frame_embed
        if self.use_mhc:
            x = x.unsqueeze(-2).expand(*x.shape[:-1], self.streams, c).contiguous()
        for blk in self.blocks:
            x = blk(x)
        if self.use_mhc:
            x = x.mean(-2)
        x = self.norm(x)
        return x.permute(3, 0, 4, 1, 2).flatten(0, 1)  # (2B, C, h, w)
