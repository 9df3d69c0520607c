"""Training augmentation of a triplet, applied identically to its three frames.

A sample is ``frames`` (3, 3, H, W) = [img0, gt, img1] as float RGB in [0, 1], plus ``t`` (the time
of gt between img0 and img1). Every transform keeps the triplet consistent: spatial ones move all
frames alike, temporal reversal swaps img0/img1 and maps t to 1 - t.

Randomness comes from torch's generator (``torch.rand``), which the DataLoader seeds per worker
from the run's seed, so a run is reproducible.
"""

from __future__ import annotations

import torch

from engine.errors import VfiError


def _coin(p: float = 0.5) -> bool:
    return bool(torch.rand(()) < p)


def random_crop(frames: torch.Tensor, size: int, where: str = "") -> torch.Tensor:
    """A random size x size window of all frames (same position): (N, C, size, size)."""
    h, w = frames.shape[-2:]
    if h < size or w < size:
        raise VfiError(
            f"frames of {w}x{h}{' in ' + where if where else ''} are smaller than the crop "
            f"{size}x{size}; use a smaller --crop"
        )
    y = int(torch.randint(0, h - size + 1, ()))
    x = int(torch.randint(0, w - size + 1, ()))
    return frames[..., y : y + size, x : x + size]


def random_flips(frames: torch.Tensor) -> torch.Tensor:
    if _coin():
        frames = frames.flip(-1)
    if _coin():
        frames = frames.flip(-2)
    return frames


def random_rot90(frames: torch.Tensor) -> torch.Tensor:
    """Rotate by 0/90/180/270 degrees (square crops keep their shape)."""
    k = int(torch.randint(0, 4, ()))
    return torch.rot90(frames, k, dims=(-2, -1)) if k else frames


def random_time_reverse(frames: torch.Tensor, t: float) -> tuple[torch.Tensor, float]:
    """Play the triplet backwards: img0 <-> img1, gt stays, t -> 1 - t."""
    if _coin():
        return frames.flip(0), 1.0 - t
    return frames, t


def random_channel_reverse(frames: torch.Tensor) -> torch.Tensor:
    """RGB -> BGR: colour statistics vary, motion does not."""
    return frames.flip(-3) if _coin() else frames


def augment(
    frames: torch.Tensor, t: float, crop: int, where: str = "", enabled: bool = True
) -> tuple[torch.Tensor, float]:
    """The full training augmentation: crop, flips, rot90, temporal and channel reversal.

    ``enabled=False`` keeps only the crop (an overfitting / debugging run).
    """
    frames = random_crop(frames, crop, where)
    if not enabled:
        return frames.contiguous(), t
    frames = random_flips(frames)
    frames = random_rot90(frames)
    frames, t = random_time_reverse(frames, t)
    frames = random_channel_reverse(frames)
    return frames.contiguous(), t
