"""Backward warping: sample an image or feature map at positions displaced by a flow field.

``backward_warp(x, flow)[..., i, j] = x[..., i + flow_y[i, j], j + flow_x[i, j]]`` (bilinear,
border padding). Flow is in pixels of ``x``'s resolution, channels (x, y).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.model.shape_cache import shape_cache


@shape_cache(32)
def _base_grid(h: int, w: int, device: str) -> torch.Tensor:
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device, dtype=torch.float32),
        torch.arange(w, device=device, dtype=torch.float32),
        indexing="ij",
    )
    return torch.stack((xs, ys), 0)[None]  # (1, 2, h, w) pixel coordinates


def backward_warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """x (B, C, h, w), flow (B, 2, h, w) -> (B, C, h, w), in x's dtype.

    Coordinates and sampling are float32 whatever the dtypes of x and flow: bf16 holds integers
    exactly only up to 256 and has 8 significant bits, so a bf16 grid puts samples up to 4 px
    (pixel coordinates of a 1920 px row) or w/1024 px (grid_sample's [-1, 1] range) away from
    where the flow points. (Traced by torch.compile under bf16 autocast the grid ended up in bf16
    and Middlebury frames lost 1-3 dB; docs/benchmarks.md, version 6.)
    """
    _, _, h, w = x.shape
    pos = _base_grid(h, w, str(flow.device)) + flow.float()  # (B, 2, h, w) float32
    # grid_sample wants coordinates in [-1, 1] with align_corners=True: -1 and 1 are pixel centres.
    gx = pos[:, 0] * (2 / max(w - 1, 1)) - 1
    gy = pos[:, 1] * (2 / max(h - 1, 1)) - 1
    grid = torch.stack((gx, gy), -1)  # (B, h, w, 2) float32
    out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.to(x.dtype)


def resize_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize flow fields (B, 2k, h, w) (k fields, each x, y) and rescale their values."""
    h, w = flow.shape[-2:]
    out = F.interpolate(flow, size=size, mode="bilinear", align_corners=False)
    # Python-float scaling (no host-to-device tensor): keeps the forward CUDA-graph capturable.
    out[:, 0::2] *= size[1] / w
    out[:, 1::2] *= size[0] / h
    return out
