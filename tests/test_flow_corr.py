"""The optional bilateral cost volume (``flow_corr``): the loop matches its reference per dtype,
switching it on leaves a trained model's output unchanged, it learns, and the phase chain accepts it
as a new module."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import switched_on, tiny_config, trained_like

from engine.config import ModelConfig
from engine.errors import VfiError
from engine.model.corr import bilateral_correlation, bilateral_correlation_reference
from engine.model.network import VFINet
from train import checkpoint

# Cosine scores are in [-1, 1]: these are absolute tolerances on them.
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-12, torch.bfloat16: 3e-2}


@pytest.mark.parametrize("dtype", list(TOLERANCE))
@pytest.mark.parametrize("radius", [1, 3])
def test_the_loop_matches_the_reference(dtype, radius):
    torch.manual_seed(radius)
    f0, f1 = torch.randn(2, 6, 9, 13, dtype=dtype), torch.randn(2, 6, 9, 13, dtype=dtype)
    fast = bilateral_correlation(f0, f1, radius)
    ref = bilateral_correlation_reference(f0.double(), f1.double(), radius)
    assert fast.shape == (2, (2 * radius + 1) ** 2, 9, 13)
    assert (fast.double() - ref).abs().max() <= TOLERANCE[dtype]


def test_a_displaced_pattern_scores_highest_at_its_displacement():
    # frame 1 shows frame 0's content moved by (+2, -1) px: at time 0.5 the symmetric candidate
    # d = (-1, +0.5) is not on the grid, so move by (+2, -2) and expect d = (dx=-1, dy=+1).
    torch.manual_seed(0)
    base = torch.randn(1, 8, 24, 24)
    f0 = base
    f1 = torch.roll(base, shifts=(-2, 2), dims=(2, 3))  # f1[y, x] = base[y + 2, x - 2]
    scores = bilateral_correlation(f0, f1, 2)[0, :, 8:16, 8:16].mean((1, 2))
    # d with f0[x + d] == f1[x - d]: base[y + dy, x + dx] == base[y - dy + 2, x - dx - 2]
    # -> dy = 1, dx = -1 -> k = (dy + r) * 5 + (dx + r) = 3 * 5 + 1
    assert scores.argmax().item() == 16
    assert scores.max() > 0.99


def test_switching_it_on_leaves_the_output_unchanged():
    base = trained_like(tiny_config())
    assert not hasattr(base, "flow_corr")  # off by default: no parameters, no state-dict keys
    on = switched_on(base, "flow_corr.", flow_corr=True)
    assert len(on.flow_corr) == len(on.flow.levels) - 1  # every level but the first
    img0, img1 = torch.rand(2, 3, 64, 96), torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        assert torch.equal(on(img0, img1, 0.5), base(img0, img1, 0.5))


def test_it_learns_and_its_scores_reach_the_flow():
    model = VFINet(tiny_config(flow_corr=True))
    img0, img1, gt = (torch.rand(1, 3, 64, 64) for _ in range(3))
    (model(img0, img1, 0.5) - gt).abs().mean().backward()
    for corr in model.flow_corr:
        assert corr.proj.weight.grad.abs().sum() > 0  # the zero projection gets a gradient
    torch.optim.SGD(model.flow_corr.parameters(), lr=1.0).step()
    model.zero_grad()
    with torch.no_grad():
        before = model.forward_train(img0, img1, 0.5)["flows"][-1]
        for corr in model.flow_corr:
            corr.proj.weight.zero_()
            corr.proj.bias.zero_()
        after = model.forward_train(img0, img1, 0.5)["flows"][-1]
    assert not torch.equal(before, after)  # the cost volume changed the flow


def test_the_phase_chain_switches_it_on_but_never_off():
    src = tiny_config()
    path = Path("src.pkl")
    assert checkpoint.check_phase_chain(src, src.replace(flow_corr=True), path) == ["flow_corr"]
    with pytest.raises(VfiError, match="flow_corr module but this phase turns it off"):
        checkpoint.check_phase_chain(src.replace(flow_corr=True), src, path)
    with pytest.raises(VfiError, match="another architecture"):  # the radius is architecture
        checkpoint.check_phase_chain(
            src.replace(flow_corr=True), src.replace(flow_corr=True, flow_corr_radius=2), path
        )


def test_a_bad_radius_is_refused():
    with pytest.raises(VfiError, match="flow_corr_radius"):
        ModelConfig(flow_corr=True, flow_corr_radius=0)


def test_the_memory_estimate_counts_the_scores():
    from engine.tiling import estimate_memory

    off = estimate_memory(1080, 1920, config=tiny_config())
    on = estimate_memory(1080, 1920, config=tiny_config(flow_corr=True))
    assert on > off
