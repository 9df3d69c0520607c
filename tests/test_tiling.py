"""Tiled inference: tile plan, partition of unity, exact parity for local models, real-model agreement."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from engine.tiling import (
    choose_tile,
    estimate_memory,
    plan_tiles,
    smaller_tile,
    tile_geometry,
    tiled_call,
)


@pytest.mark.parametrize("h,w,tile,align", [(100, 150, 32, 16), (17, 300, 64, 8), (64, 64, 64, 16)])
def test_plan_covers_with_aligned_origins(h, w, tile, align):
    tiles = plan_tiles(h, w, tile, align)
    cover = torch.zeros(h, w, dtype=torch.int32)
    for t in tiles:
        assert t.y0 % align == 0 and t.x0 % align == 0
        assert 0 < t.h <= tile and 0 < t.w <= tile
        cover[t.y0 : t.y0 + t.h, t.x0 : t.x0 + t.w] += 1
    assert int(cover.min()) >= 1


def test_blending_is_a_partition_of_unity():
    a = torch.rand(2, 3, 70, 130)
    out = tiled_call(lambda x, y, t: x, a, a, None, tile=32, align=8)
    assert torch.allclose(out, a, atol=1e-6)


class LocalNet(nn.Module):
    """Three 3x3 convolutions: each output pixel depends on inputs at most 3 pixels away."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(
            nn.Conv2d(6, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 8, 3, padding=1), nn.Tanh(),
            nn.Conv2d(8, 3, 3, padding=1),
        )  # fmt: skip

    def forward(self, a, b, t):
        return self.body(torch.cat([a, b], 1)) * t.view(-1, 1, 1, 1)


def reference_untiled(run, a, b, t):
    """The slow reference: the whole frame in one call."""
    return run(a, b, t)


@torch.no_grad()
def test_tiled_equals_untiled_for_a_local_model():
    net = LocalNet()
    a, b = torch.rand(2, 3, 90, 140), torch.rand(2, 3, 90, 140)
    t = torch.tensor([0.5, 0.25])
    _, _, margin = tile_geometry(48, 8)
    assert margin >= 3  # the receptive radius of LocalNet
    tiled = tiled_call(net, a, b, t, tile=48, align=8)
    assert torch.allclose(tiled, reference_untiled(net, a, b, t), atol=1e-5)


def test_interpolator_tiling_with_blend_is_exact():
    from engine.interpolator import Interpolator
    from engine.model.baseline import BlendModel

    a, b = torch.rand(1, 3, 75, 99), torch.rand(1, 3, 75, 99)
    whole = Interpolator(BlendModel(), device="cpu")(a, b, 0.3)
    tiled = Interpolator(BlendModel(), device="cpu", tile=32)(a, b, 0.3)
    assert torch.allclose(whole, tiled, atol=1e-6)


@pytest.mark.slow
def test_tiled_agrees_with_untiled_on_the_real_model(tiny_model):
    """Parity against the untiled reference for the real (global-context) network.

    The network sees all of a frame (Mamba scans), so tiles cannot match exactly; on a smooth
    moving pattern they must agree closely and show no seam at tile borders.
    """
    from engine.interpolator import Interpolator
    from tests.clips import pattern

    torch.manual_seed(0)
    frames = [torch.from_numpy(pattern(i, 160, 96)).permute(2, 0, 1)[None] / 255 for i in (0, 2)]
    whole = Interpolator(tiny_model, device="cpu")(*frames, 0.5)
    tiled = Interpolator(tiny_model, device="cpu", tile=64)(*frames, 0.5)
    diff = (whole - tiled).abs()
    assert float(diff.mean()) < 0.02
    # No seam: the error next to tile borders is not much larger than elsewhere.
    inner = [t.x0 for t in plan_tiles(96, 160, 64, 16) if t.x0 > 0]
    cols = torch.tensor(sorted({x + d for x in inner for d in range(-2, 3)}))
    assert float(diff[..., cols].mean()) < 3 * float(diff.mean()) + 0.01


def test_memory_estimate_and_tile_choice():
    from engine.config import ModelConfig

    cfg = ModelConfig()
    small = estimate_memory(540, 960, config=cfg)
    big = estimate_memory(2160, 3840, config=cfg)
    assert 15 < big / small < 17  # linear in pixels
    assert estimate_memory(2160, 3840, config=cfg, precision="bf16") < big
    assert choose_tile(1080, 1920, budget=10 * big, config=cfg) is None
    tile = choose_tile(4320, 7680, budget=big // 4, config=cfg, align=16)
    assert tile is not None and tile % 16 == 0
    assert estimate_memory(tile, tile, config=cfg) <= big // 4
    assert smaller_tile(None, 2160, 3840, 16) < 3840
    assert smaller_tile(1024, 2160, 3840, 16) <= 512


@pytest.mark.parametrize(
    "h,w,tile,align", [(2160, 3840, 2048, 32), (4320, 7680, 2048, 64), (90, 140, 48, 8)]
)
def test_tiles_have_one_padded_shape(h, w, tile, align):
    """Edge tiles end at the frame edge less than ``align`` short of a full tile: one CUDA graph."""
    tiles = plan_tiles(h, w, tile, align)
    padded = {(-(-t.h // align) * align, -(-t.w // align) * align) for t in tiles}
    assert padded == {(tile, tile)}
    _, overlap, _ = tile_geometry(tile, align)
    xs = sorted({t.x0 for t in tiles})
    assert all(b - a <= tile - overlap + align for a, b in itertools.pairwise(xs))  # enough overlap
    assert xs[-1] + tile >= w and xs[-1] + tile - align < w


def test_fit_to_budget_prefers_whole_frames_then_tiles():
    from engine.tiling import fit_to_budget

    bpp = 700.0  # bytes per pixel of one forward
    frame = 1080 * 1920 * bpp
    assert fit_to_budget(1080, 1920, int(4.5 * frame), max_batch=4, bytes_per_pixel=bpp) == (
        None,
        4,
    )
    assert fit_to_budget(1080, 1920, int(2.5 * frame), max_batch=4, bytes_per_pixel=bpp) == (
        None,
        2,
    )
    tile, batch = fit_to_budget(2160, 3840, int(frame), max_batch=4, align=32, bytes_per_pixel=bpp)
    assert batch == 1 and tile is not None and tile * tile * bpp <= frame
    assert fit_to_budget(1080, 1920, None, max_batch=3) == (None, 3)
