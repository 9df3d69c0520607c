"""backward_warp and resize_flow (engine/model/warp.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.model.warp import backward_warp, resize_flow

WIDE = 1000  # > 256: where a bf16 coordinate grid can no longer hold every pixel position


def _ramp(dtype):
    """Each pixel holds (its column index + 1) / WIDE: a warp's error reads off in pixels."""
    cols = (torch.arange(WIDE, dtype=torch.float32) + 1) / WIDE
    return cols.expand(1, 1, 3, WIDE).to(dtype).contiguous()  # (1, 1, 3, WIDE)


@pytest.mark.parametrize("x_dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("flow_dtype", [torch.float32, torch.bfloat16])
def test_a_wide_warp_samples_where_the_flow_points_in_any_dtype(x_dtype, flow_dtype):
    """Half a pixel to the right on a 1,000-pixel-wide map lands half a pixel to the right, with
    the image or the flow in bf16 (as under autocast): coordinates are float32. A bf16 grid put
    samples up to 4 px off (the compiled forward lost 1-3 dB on Middlebury frames)."""
    x = _ramp(x_dtype)
    flow = torch.zeros(1, 2, 3, WIDE)
    flow[:, 0] = 0.5
    out = backward_warp(x, flow.to(flow_dtype))
    assert out.dtype == x_dtype
    v = x[0, 0].float()  # the values as stored
    want = (v + torch.cat([v[:, 1:], v[:, -1:]], 1)) / 2  # midway to the right neighbour (border)
    # What is left is the rounding of the result to x's dtype, not an error of position: one
    # pixel off would be a relative error of 1/j, at least 1e-3 here.
    tol = 1e-6 if x_dtype == torch.float32 else 2**-8
    assert ((out[0, 0].float() - want).abs() / want).max() <= tol


def test_zero_flow_is_the_identity():
    x = torch.rand(2, 5, 7, 300)
    torch.testing.assert_close(backward_warp(x, torch.zeros(2, 2, 7, 300)), x, atol=1e-4, rtol=0)


def test_resize_flow_scales_the_vectors_with_the_grid():
    flow = torch.stack([torch.full((4, 6), 1.0), torch.full((4, 6), 2.0)])[None]  # (1, 2, 4, 6)
    out = resize_flow(flow, (8, 18))
    torch.testing.assert_close(out[0, 0], torch.full((8, 18), 3.0))  # x: width x3
    torch.testing.assert_close(out[0, 1], torch.full((8, 18), 4.0))  # y: height x2
    assert F.interpolate(flow, size=(8, 18)).shape == out.shape
