"""Tiled inference for frames larger than the memory budget: overlapping tiles, feathered, no seams.

A frame is covered by a grid of ``tile x tile`` windows whose origins are multiples of the model's
alignment (so every tile sees the same pixel grid as the whole frame would: strided features and
attention windows line up) and which overlap by ``overlap`` pixels. Each tile's output is weighted
by a separable ramp that is 0 in the ``margin`` pixels next to an inner tile edge (where the tile
lacks context), rises linearly across the rest of the overlap, and is 1 inside; at the frame border
the weight is 1. Two neighbouring ramps sum to exactly 1, so blending is a partition of unity: a
model whose outputs depend only on pixels within ``margin`` gives bit-for-bit the untiled result
(tests/test_tiling.py checks this against a slow reference), and any model gives a seamless one.

The memory estimate (:func:`estimate_memory`) drives ``--tile auto`` and the plan printed by
``vfi probe`` / ``--dry-run``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

GIB = 1024**3
TILE_SIDES = (2048, 1536, 1024, 768, 512, 384, 256, 192, 128)


@dataclass(frozen=True)
class Tile:
    y0: int
    x0: int
    h: int
    w: int


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def tile_geometry(tile: int, align: int, overlap: int | None = None) -> tuple[int, int, int]:
    """(tile, overlap, margin), all multiples/fractions consistent with ``align``."""
    align = max(1, int(align))
    tile = max(_round_up(int(tile), align), 2 * align)
    if overlap is None:
        overlap = max(_round_up(tile // 4, align), align)
    overlap = _round_up(int(overlap), align)
    if overlap >= tile:
        overlap = tile - align
    margin = overlap // 4
    return tile, overlap, margin


def _origins(n: int, tile: int, stride: int, align: int) -> list[int]:
    """Aligned tile origins along one axis, spread evenly from 0 to the last one.

    The last tile ends at the frame edge, moved back to the lowest aligned origin that still reaches
    it: it is then less than ``align`` short of a full tile, so once padded to the alignment every
    tile has one shape (one CUDA graph and memory pool, not four). The fewest tiles whose gaps stay
    within ``stride`` (overlap at least ``tile - stride``, less than ``align`` of rounding aside).
    """
    if n <= tile:
        return [0]
    last = _round_up(n - tile, align)
    k = 1 + -(-last // stride)
    return [(i * last // (k - 1)) // align * align for i in range(k - 1)] + [last]


def plan_tiles(height: int, width: int, tile: int, align: int = 1, overlap=None) -> list[Tile]:
    """The tiles covering a ``height x width`` frame (row-major).

    Every tile is ``tile`` pixels on a side, or less than ``align`` short of it where the frame is
    larger than one tile along that axis (the frame's own size where it is not).
    """
    tile, overlap, _ = tile_geometry(tile, align, overlap)
    stride = tile - overlap
    return [
        Tile(y, x, min(tile, height - y), min(tile, width - x))
        for y in _origins(height, tile, stride, align)
        for x in _origins(width, tile, stride, align)
    ]


def _ramp(n: int, start_edge: bool, end_edge: bool, overlap: int, margin: int, like):
    """1-D weights of length n: ramps at the ends that touch a neighbouring tile."""
    import torch

    pos = torch.arange(n, dtype=torch.float32, device=like.device) + 0.5
    w = torch.ones(n, dtype=torch.float32, device=like.device)
    width = max(overlap - 2 * margin, 1)
    if start_edge:
        w = torch.minimum(w, ((pos - margin) / width).clamp(0, 1))
    if end_edge:
        w = torch.minimum(w, ((n - pos - margin) / width).clamp(0, 1))
    return w


def tiled_call(
    run: Callable,
    a,
    b,
    t,
    *,
    tile: int,
    align: int = 1,
    overlap: int | None = None,
):
    """``run(a, b, t)`` over overlapping tiles of (B, 3, H, W) frames, blended into one output.

    ``run`` maps (B, 3, h, w) tiles (any h, w: it pads to the alignment itself) to (B, 3, h, w).
    """
    import torch

    bsz, _, height, width = a.shape
    tile, overlap, margin = tile_geometry(tile, align, overlap)
    if tile >= height and tile >= width:
        return run(a, b, t)
    tiles = plan_tiles(height, width, tile, align, overlap)
    out = torch.zeros(bsz, 3, height, width, dtype=torch.float32, device=a.device)
    weight = torch.zeros(1, 1, height, width, dtype=torch.float32, device=a.device)
    for tl in tiles:
        ys, xs = slice(tl.y0, tl.y0 + tl.h), slice(tl.x0, tl.x0 + tl.w)
        pred = run(a[..., ys, xs], b[..., ys, xs], t).float()  # (B, 3, h, w)
        wy = _ramp(tl.h, tl.y0 > 0, tl.y0 + tl.h < height, overlap, margin, a)
        wx = _ramp(tl.w, tl.x0 > 0, tl.x0 + tl.w < width, overlap, margin, a)
        w2 = wy[:, None] * wx[None, :]  # (h, w)
        out[..., ys, xs] += pred * w2
        weight[..., ys, xs] += w2
    return out / weight.clamp_min(1e-8)


# --------------------------------------------------------------------------------------------------
# Memory estimate


# Live float tensors per layer output at the peak of a forward, relative to the sum of layer widths:
# an upper-side guess; benchmarks/pipeline.py prints measured vs estimated peaks for recalibration.
# H100, vfi-s, bf16: 1.38 GiB at 1080p and 5.29 GiB at 4K measured (docs/benchmarks.md) fit 2.45;
# 3 keeps a margin.
ACTIVATION_FACTOR = 3.0


def activation_channels(config) -> float:
    """Sum over the network's feature maps of channels x (fraction of full-res pixels), per pair."""
    if config is None:  # the blend baseline: inputs + output
        return 9.0
    enc = sum(2 * c / 4**i for i, c in enumerate(config.enc_dims))  # both frames, 1/1 .. 1/16
    backbone = sum(
        s.depth * s.dim * (2 + 2 * config.expand) / s.stride**2 for s in config.stages
    )  # per stage: residual + the Mamba2 in/out projections
    flow = sum(c / (16 // 2**j) ** 2 for j, c in enumerate(config.flow_dims))  # 1/16, 1/8, 1/4
    refine = sum(c / (2 * 2**j) ** 2 for j, c in enumerate(config.refine_dims))  # 1/2, 1/4
    full_res = 3 * 6 + getattr(config, "texture_dim", 0) * bool(getattr(config, "texture_path", 0))
    # flow_refine_full: the full-res flow (4), two warps (6) and their space-to-depth copies (6)
    full_res += 16 * bool(getattr(config, "flow_refine_full", 0))
    if getattr(config, "flow_corr", False):  # the scores at 1/8 and 1/4 and their hidden layers
        k = (2 * config.flow_corr_radius + 1) ** 2
        flow += sum((k + 2 * c) / (16 // 2**j) ** 2 for j, c in enumerate(config.flow_dims) if j)
    return enc + backbone + flow + refine + full_res


def estimate_memory(
    height: int,
    width: int,
    *,
    config=None,
    batch: int = 1,
    precision: str = "fp32",
    bytes_per_pixel: float | None = None,
    params: int = 0,
) -> int:
    """Peak bytes of one forward on ``batch`` pairs of ``height x width`` (weights included).

    ``bytes_per_pixel``: a measured value (see ``calibrate`` in engine.pipeline) instead of the
    analytic guess.
    """
    elem = 2 if precision in ("bf16", "fp16") else 4
    if bytes_per_pixel is None:
        bytes_per_pixel = activation_channels(config) * ACTIVATION_FACTOR * elem
        bytes_per_pixel += 3 * 4 * 3  # fp32 inputs and output
    return int(batch * height * width * bytes_per_pixel + params * 4)


def choose_tile(
    height: int,
    width: int,
    budget: int,
    *,
    align: int = 1,
    **estimate_kwargs,
) -> int | None:
    """None when whole frames fit ``budget`` bytes, else the largest tile side that does."""
    if estimate_memory(height, width, **estimate_kwargs) <= budget:
        return None
    for side in TILE_SIDES:
        tile, _, _ = tile_geometry(side, align)
        if tile < max(height, width) and estimate_memory(tile, tile, **estimate_kwargs) <= budget:
            return tile
    return tile_geometry(TILE_SIDES[-1], align)[0]


def fit_to_budget(
    height: int,
    width: int,
    budget: int | None,
    *,
    max_batch: int = 1,
    align: int = 1,
    **estimate_kwargs,
) -> tuple[int | None, int]:
    """(tile, batch) for one forward within ``budget`` bytes.

    Whole frames with the largest batch up to ``max_batch`` that fits; if not even one whole frame
    fits, tiles of one frame (the largest side that fits). Batching several frames only saves
    launch overhead, which matters at small sizes: a large frame alone keeps the GPU busy.
    """
    if budget is None:
        return None, max(1, max_batch)
    for batch in range(max(1, max_batch), 0, -1):
        if estimate_memory(height, width, batch=batch, **estimate_kwargs) <= budget:
            return None, batch
    return choose_tile(height, width, budget, align=align, batch=1, **estimate_kwargs), 1


def smaller_tile(current: int | None, height: int, width: int, align: int = 1) -> int:
    """The next tile size to try after running out of memory with ``current`` (None: whole frame)."""
    side = max(height, width) if current is None else current
    for cand in TILE_SIDES:
        tile, _, _ = tile_geometry(cand, align)
        if tile <= side // 2 or (current is None and tile < side):
            return tile
    return tile_geometry(TILE_SIDES[-1], align)[0]
