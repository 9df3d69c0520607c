"""Coarse-to-fine motion decoder: bidirectional flow F_t->0, F_t->1 and an occlusion mask.

Level k (1/16, then 1/8, then 1/4 of the flow resolution) sees the two frames' features warped
towards time t by the current flow, the equally warped downsampled frames, the current flow and mask,
and t itself, and predicts a residual update; with ``flow_corr`` it also sees a bilateral cost
volume of the warped features (engine/model/corr.py). The first level predicts from the unwarped
backbone features. Output channels: flow (4: F_t->0 x, y, F_t->1 x, y), mask logit (1); the blend
weight of frame 0 is sigmoid(mask). Flows are in pixels of the grid they live on.

:class:`FullResFlow` (``flow_refine_full``) is an optional last update on the 1/4 grid that sees the
full-resolution frames warped by the current flow, folded in by space-to-depth.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.model.encoder import conv
from engine.model.warp import backward_warp, resize_flow


class FlowLevel(nn.Module):
    def __init__(self, feat_dim: int, hidden: int, first: bool):
        super().__init__()
        self.first = first
        cin = 2 * feat_dim + 1 + (0 if first else 4 + 1 + 6)
        self.body = nn.Sequential(conv(cin, hidden), conv(hidden, hidden), conv(hidden, hidden))
        self.head = nn.Conv2d(hidden, 5, 3, padding=1)
        # Start from (almost) zero motion and an even blend: training begins at the linear blend.
        nn.init.normal_(self.head.weight, std=1e-3)
        nn.init.zeros_(self.head.bias)

    def forward(self, f0, f1, t, img0, img1, flow=None, mask=None, corr=None):
        """f0/f1 (B, C, h, w), t (B,), img0/img1 at this level's size; flow/mask from the coarser
        level already resized here (None at the first level); corr: this level's
        :class:`~engine.model.corr.CorrelationInput` (``flow_corr``) or None. Returns flow, mask,
        hidden."""
        b, _, h, w = f0.shape
        tmap = t.view(b, 1, 1, 1).to(f0.dtype).expand(b, 1, h, w)
        if self.first:
            x = torch.cat([f0, f1, tmap], 1)
        else:
            w0 = backward_warp(torch.cat([f0, img0], 1), flow[:, :2])
            w1 = backward_warp(torch.cat([f1, img1], 1), flow[:, 2:])
            x = torch.cat([w0, w1, flow, mask, tmap], 1)
        if corr is None:
            hidden = self.body(x)
        else:  # the matching cost of the warped features joins after the first layer
            c = f0.shape[1]
            hidden = self.body[1:](self.body[0](x) + corr(w0[:, :c], w1[:, :c]))
        out = self.head(hidden)
        if self.first:
            return out[:, :4], out[:, 4:5], hidden
        return flow + out[:, :4], mask + out[:, 4:5], hidden


class FlowDecoder(nn.Module):
    def __init__(self, feat_dims: tuple[int, ...], hidden_dims: tuple[int, ...]):
        super().__init__()
        self.levels = nn.ModuleList(
            FlowLevel(fd, hd, first=i == 0)
            for i, (fd, hd) in enumerate(zip(feat_dims, hidden_dims))
        )

    def forward(self, feats, t, img0, img1, corr=None):
        """feats: per level (coarse first) the (2B, C, h, w) features of both frames; corr: None or
        one CorrelationInput per level after the first (``flow_corr``).

        Returns lists (coarse first) of flows and mask logits per level, and the last hidden state.
        """
        flows, masks = [], []
        flow = mask = hidden = None
        for i, (lvl, f) in enumerate(zip(self.levels, feats)):
            f0, f1 = f.chunk(2, 0)
            size = f.shape[-2:]
            i0 = F.interpolate(
                img0, size=size, mode="bilinear", align_corners=False, antialias=True
            )
            i1 = F.interpolate(
                img1, size=size, mode="bilinear", align_corners=False, antialias=True
            )
            if flow is not None:
                flow = resize_flow(flow, size)
                mask = F.interpolate(mask, size=size, mode="bilinear", align_corners=False)
            c = corr[i - 1] if corr is not None and i else None
            flow, mask, hidden = lvl(f0, f1, t, i0, i1, flow, mask, c)
            flows.append(flow)
            masks.append(mask)
        return flows, masks, hidden


class FullResFlow(nn.Module):
    """A last flow/mask update on the 1/4 grid from the full-resolution frames, warped.

    The 1/4 level sees frames downsampled with a blur (antialiasing), which removes the sub-pixel
    detail that decides near-static content: a 0.2 px flow error costs several dB there (on
    ucf101-dev21 most of our gap to RIFE HDv3 came from triplets moving < 4 px). Here both frames
    are warped at full resolution by the upsampled flow and enter the 1/4 grid by space-to-depth
    (4x4 pixels -> 48 channels: nothing is lost), as RIFE's last block sees full-resolution warps.
    The head starts at zero, so switching the module on leaves a trained model's output unchanged.
    """

    def __init__(self, hidden_in: int, dim: int):
        super().__init__()
        cin = 2 * 3 * 16 + hidden_in + 4 + 1 + 1  # two folded warps, hidden, flow, mask, t
        self.body = nn.Sequential(conv(cin, dim), conv(dim, dim), conv(dim, dim))
        self.head = nn.Conv2d(dim, 5, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, img0, img1, flow, mask, hidden, t):
        """img0/img1 (B, 3, H, W); flow (B, 4, H/4, W/4), mask logit and hidden on that grid;
        t (B,). Returns the updated flow and mask logit (same shapes)."""
        b, _, h, w = flow.shape
        full = resize_flow(flow, img0.shape[-2:])  # (B, 4, H, W) in full-resolution pixels
        w0 = F.pixel_unshuffle(backward_warp(img0, full[:, :2]), 4)  # (B, 48, H/4, W/4)
        w1 = F.pixel_unshuffle(backward_warp(img1, full[:, 2:]), 4)
        tmap = t.view(b, 1, 1, 1).to(flow.dtype).expand(b, 1, h, w)
        out = self.head(self.body(torch.cat([w0, w1, hidden.to(w0.dtype), flow, mask, tmap], 1)))
        return flow + out[:, :4], mask + out[:, 4:5]
