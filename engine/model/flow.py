"""Coarse-to-fine motion decoder: bidirectional flow F_t->0, F_t->1 and an occlusion mask.

Level k (1/16, then 1/8, then 1/4 of the flow resolution) sees the two frames' features warped
towards time t by the current flow, the equally warped downsampled frames, the current flow and mask,
and t itself, and predicts a residual update. The first level predicts from the unwarped backbone
features. Output channels: flow (4: F_t->0 x, y, F_t->1 x, y), mask logit (1); the blend weight of
frame 0 is sigmoid(mask).
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

    def forward(self, f0, f1, t, img0, img1, flow=None, mask=None):
        """f0/f1 (B, C, h, w), t (B,), img0/img1 at this level's size; flow/mask from the coarser
        level already resized here (None at the first level). Returns flow, mask, hidden."""
        b, _, h, w = f0.shape
        tmap = t.view(b, 1, 1, 1).to(f0.dtype).expand(b, 1, h, w)
        if self.first:
            x = torch.cat([f0, f1, tmap], 1)
        else:
            w0 = backward_warp(torch.cat([f0, img0], 1), flow[:, :2])
            w1 = backward_warp(torch.cat([f1, img1], 1), flow[:, 2:])
            x = torch.cat([w0, w1, flow, mask, tmap], 1)
        hidden = self.body(x)
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

    def forward(self, feats, t, img0, img1):
        """feats: per level (coarse first) the (2B, C, h, w) features of both frames.

        Returns lists (coarse first) of flows and mask logits per level, and the last hidden state.
        """
        flows, masks = [], []
        flow = mask = hidden = None
        for lvl, f in zip(self.levels, feats):
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
            flow, mask, hidden = lvl(f0, f1, t, i0, i1, flow, mask)
            flows.append(flow)
            masks.append(mask)
        return flows, masks, hidden
