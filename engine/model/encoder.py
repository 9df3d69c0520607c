"""Shared convolutional encoder: a feature pyramid at 1/2, 1/4, 1/8, 1/16 (finest first).

Both frames go through the same weights, stacked along the batch: (2B, 3, H, W), frame 0 first.
Inputs are images in [0, 1]; they are centred to [-0.5, 0.5] here.
"""

from __future__ import annotations

import torch
from torch import nn


def conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.PReLU(cout))


class Encoder(nn.Module):
    def __init__(self, dims: tuple[int, ...]):
        super().__init__()
        chans = (3, *dims)
        self.levels = nn.ModuleList(
            nn.Sequential(conv(chans[i], chans[i + 1], 2), conv(chans[i + 1], chans[i + 1]))
            for i in range(len(dims))
        )

    def forward(self, x: torch.Tensor, levels: int | None = None) -> list[torch.Tensor]:
        """x (N, 3, H, W) -> [f_1/2, f_1/4, ...], the first ``levels`` levels (all by default)."""
        x = x - 0.5
        feats = []
        for lvl in self.levels[: levels or len(self.levels)]:
            x = lvl(x)
            feats.append(x)
        return feats
