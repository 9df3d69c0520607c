"""Non-learned baselines with the model interface (used to check metric code end to end)."""

from __future__ import annotations

import torch
from torch import nn


class BlendModel(nn.Module):
    """Linear blend (1 - t) * img0 + t * img1: the 'linear blend' column of the reference tables."""

    alignment = 1
    config = None

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, t, scale: float = 1.0):
        t = _as_time(t, img0)
        return (1 - t) * img0 + t * img1

    def encode(self, img0, img1, scale: float = 1.0):
        return (img0, img1)

    def decode(self, state, t):
        return self.forward(state[0], state[1], t)


def _as_time(t, ref: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(t, dtype=ref.dtype, device=ref.device)
    return t.reshape(-1, 1, 1, 1) if t.ndim else t.reshape(1, 1, 1, 1)
