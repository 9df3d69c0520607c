"""Synthesis refinement: a small U-Net that predicts a residual on top of the warped-frame blend.

Inputs: at full resolution both frames, both warped frames, their blend, the blend mask, the flow
and t (folded to 1/2 by space-to-depth); the encoder's 1/2 and 1/4 features of both frames warped
towards t; the motion decoder's last hidden state at 1/4. Output: a residual in (-1, 1) per pixel.

:class:`TexturePath` (phase 3) adds a full-resolution branch for fine texture in 4K frames; its last
convolution starts at zero, so enabling it leaves a trained model's output unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.model.encoder import conv

FLOW_NORM = 1 / 32  # flows enter the U-Net divided by this many pixels: keeps inputs O(1)


class Refine(nn.Module):
    def __init__(self, enc_dims: tuple[int, ...], dims: tuple[int, int], flow_hidden: int):
        super().__init__()
        c1, c2 = enc_dims[:2]
        r0, r1 = dims
        n_in = 3 * 5 + 1 + 4 + 1  # img0, img1, warp0, warp1, blend; mask; flow; t
        # Full-resolution inputs enter by space-to-depth (2x2 pixels -> 4x channels at 1/2): the
        # U-Net never convolves at full resolution, and pixel-shuffle brings the residual back.
        self.stem = conv(4 * n_in + 2 * c1, r0)
        self.down = conv(r0, r1, stride=2)
        self.fuse = nn.Sequential(conv(r1 + 2 * c2 + flow_hidden, r1), conv(r1, r1))
        self.up = nn.Sequential(nn.ConvTranspose2d(r1, r0, 4, 2, 1), nn.PReLU(r0))
        self.merge = conv(2 * r0, r0)
        self.out = nn.Conv2d(r0, 3 * 4, 3, padding=1)
        self.out_dim = r0
        # Start with a near-zero residual: an untrained model outputs the warped-frame blend.
        nn.init.normal_(self.out.weight, std=1e-3)
        nn.init.zeros_(self.out.bias)

    def forward(self, base: torch.Tensor, warped_feats: list[torch.Tensor], flow_hidden):
        """base (B, 21, H, W); warped_feats: [1/2, 1/4], each (B, 2C, h, w); flow_hidden at 1/4.

        Returns the residual (B, 3, H, W) and the decoder features at 1/2 (for TexturePath).
        """
        x1 = self.stem(torch.cat([F.pixel_unshuffle(base, 2), warped_feats[0]], 1))  # 1/2
        hid = F.interpolate(
            flow_hidden, size=warped_feats[1].shape[-2:], mode="bilinear", align_corners=False
        )
        x2 = self.fuse(torch.cat([self.down(x1), warped_feats[1], hid], 1))  # 1/4
        y1 = self.merge(torch.cat([self.up(x2), x1], 1))  # 1/2
        return torch.tanh(F.pixel_shuffle(self.out(y1), 2)), y1


class TexturePath(nn.Module):
    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.body = nn.Sequential(conv(in_dim, dim), conv(dim, dim))
        self.out = nn.Conv2d(dim, 3, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))
