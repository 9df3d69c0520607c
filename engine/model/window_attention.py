"""Gated window attention over the tokens of both frames.

Layout: tokens arrive as (B, h, w, 2, C): the feature maps of frame 0 and frame 1 stacked at each
position. A window is a ws x ws patch of positions and holds 2 * ws * ws tokens (both frames), so
attention can match a patch of frame 0 against the same patch of frame 1. Alternate blocks shift the
windows by ws // 2 (Swin), with a mask so that tokens wrapped around the border by the cyclic shift
do not attend across it. Maps whose sides are not multiples of ws are padded; padded tokens are
masked out as keys.

The output gate (as in "Gated Attention for LLMs", Qiu et al. 2025): a sigmoid gate computed from the
block input multiplies the attention output per channel before the output projection; it lets each
head switch itself off (no attention sink) and adds a cheap non-linearity.

:func:`window_attention_reference` is the slow twin: per-query loops over explicit coordinates,
used by the parity tests.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.model.shape_cache import shape_cache

_PAD_ID = 1_000  # region id of padding positions: never equal to a real region id (0..3)


@shape_cache(64)
def _window_mask(h: int, w: int, ws: int, shift: int, device: str) -> torch.Tensor | None:
    """Boolean (nW, N, N) mask (True = may attend) for an h x w map, or None if nothing is masked.

    Region ids in original coordinates: with a cyclic shift s, rows [0, s) (and columns [0, s))
    wrap to the far border, so they get their own id; padding gets ``_PAD_ID``. Tokens attend only
    to tokens of the same id within their window.
    """
    hp, wp = h + (-h) % ws, w + (-w) % ws
    if shift == 0 and (hp, wp) == (h, w):
        return None
    rows = torch.arange(hp)
    cols = torch.arange(wp)
    rid = (rows < shift).long()[:, None] * 2 + (cols < shift).long()[None, :]  # (hp, wp)
    rid = torch.where((rows >= h)[:, None] | (cols >= w)[None, :], _PAD_ID, rid)
    rid = torch.roll(rid, shifts=(-shift, -shift), dims=(0, 1))
    win = rid.reshape(hp // ws, ws, wp // ws, ws).permute(0, 2, 1, 3).reshape(-1, ws * ws)
    win = win.repeat_interleave(2, dim=1)  # both frames' tokens at each position: (nW, N)
    return (win[:, :, None] == win[:, None, :]).to(device)  # (nW, N, N)


def window_partition(x: torch.Tensor, ws: int, shift: int) -> tuple[torch.Tensor, tuple]:
    """(B, h, w, 2, C) -> (B * nW, 2 * ws * ws, C), padding and cyclically shifting first."""
    b, h, w, f, c = x.shape
    ph, pw = (-h) % ws, (-w) % ws
    if ph or pw:
        x = F.pad(x, (0, 0, 0, 0, 0, pw, 0, ph))
    if shift:
        x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
    hp, wp = h + ph, w + pw
    x = x.reshape(b, hp // ws, ws, wp // ws, ws, f, c).permute(0, 1, 3, 2, 4, 5, 6)
    return x.reshape(-1, ws * ws * f, c), (b, h, w, hp, wp)


def window_merge(x: torch.Tensor, ws: int, shift: int, geom: tuple) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B * nW, N, C) -> (B, h, w, 2, C)."""
    b, h, w, hp, wp = geom
    c = x.shape[-1]
    x = x.reshape(b, hp // ws, wp // ws, ws, ws, 2, c).permute(0, 1, 3, 2, 4, 5, 6)
    x = x.reshape(b, hp, wp, 2, c)
    if shift:
        x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
    return x[:, :h, :w]


class GatedWindowAttention(nn.Module):
    """Multi-head attention in (shifted) windows with a sigmoid output gate."""

    def __init__(self, dim: int, heads: int, window: int, shift: bool):
        super().__init__()
        self.heads, self.window = heads, window
        self.shift = window // 2 if shift else 0
        self.qkv = nn.Linear(dim, 3 * dim)
        self.gate = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, h, w, 2, C), already normalised -> (B, h, w, 2, C)."""
        b, h, w, _, c = x.shape
        ws = self.window
        # Small maps: the window never needs to exceed the map (fewer padded tokens).
        ws = min(ws, max(h, w))
        shift = self.shift if ws < max(h, w) and ws == self.window else 0
        tokens, geom = window_partition(x, ws, shift)  # (B*nW, N, C)
        n = tokens.shape[1]
        qkv = self.qkv(tokens).reshape(-1, n, 3, self.heads, c // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B*nW, heads, N, d)
        mask = _window_mask(h, w, ws, shift, str(x.device))
        if mask is not None:
            nw = mask.shape[0]
            mask = mask[None].expand(b, -1, -1, -1).reshape(b * nw, 1, n, n)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B*nW, heads, N, d)
        att = att.transpose(1, 2).reshape(-1, n, c)  # (B*nW, N, C)
        att = window_merge(att, ws, shift, geom)  # (B, h, w, 2, C)
        return self.proj(att * torch.sigmoid(self.gate(x)))


def window_attention_reference(module: GatedWindowAttention, x: torch.Tensor) -> torch.Tensor:
    """Slow twin of ``module(x)``: for each query token, find its keys from coordinates directly.

    Two positions attend to each other iff, after the cyclic shift, they fall in the same window and
    neither was moved across the border by the shift differently from the other.
    """
    b, h, w, f, c = x.shape
    ws = min(module.window, max(h, w))
    shift = module.shift if ws < max(h, w) and ws == module.window else 0
    hp, wp = h + (-h) % ws, w + (-w) % ws
    nh, d = module.heads, c // module.heads
    q, k, v = module.qkv(x).reshape(b, h, w, f, 3, nh, d).unbind(4)  # each (B, h, w, 2, nh, d)

    def window_of(i, j):  # window index of position (i, j) after the shift, and its wrap flags
        si, sj = (i - shift) % hp, (j - shift) % wp
        return (si // ws, sj // ws), (i < shift, j < shift)

    out = torch.zeros(b, h, w, f, nh, d, dtype=x.dtype)
    positions = [(i, j) for i in range(h) for j in range(w)]
    for i, j in positions:
        win, wrap = window_of(i, j)
        keys = [(a, bb) for a, bb in positions if window_of(a, bb) == (win, wrap)]
        kk = torch.stack([k[:, a, bb] for a, bb in keys], 1).flatten(1, 2)  # (B, K*2, nh, d)
        vv = torch.stack([v[:, a, bb] for a, bb in keys], 1).flatten(1, 2)
        for fr in range(f):
            logits = torch.einsum("bhd,bkhd->bhk", q[:, i, j, fr], kk) / d**0.5
            out[:, i, j, fr] = torch.einsum("bhk,bkhd->bhd", logits.softmax(-1), vv)
    out = out.reshape(b, h, w, f, c)
    return module.proj(out * torch.sigmoid(module.gate(x)))
