"""Argument checks of the public tensor API, shared by the network, the Interpolator and teachers."""

from __future__ import annotations

import torch

from engine.errors import VfiInputError


def check_frames(img0: torch.Tensor, img1: torch.Tensor) -> None:
    """A frame pair must be two floating (B, 3, H, W) tensors of the same shape."""
    for name, x in (("img0", img0), ("img1", img1)):
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise VfiInputError(f"{name} must be a (B, 3, H, W) tensor, got {shape}")
        if not x.is_floating_point():
            raise VfiInputError(f"{name} must be a float tensor in [0, 1], got {x.dtype}")
    if img0.shape != img1.shape:
        raise VfiInputError(
            f"img0 {tuple(img0.shape)} and img1 {tuple(img1.shape)} differ in shape"
        )
