"""The optional full-resolution flow update (``flow_refine_full``): off by default, switching it on
leaves a trained model's output unchanged, it learns, and the phase chain accepts it as a new module."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import switched_on, tiny_config, trained_like

from engine.errors import VfiError
from engine.model.network import VFINet
from train import checkpoint


def test_switching_it_on_leaves_the_output_unchanged():
    base = trained_like(tiny_config())
    assert not hasattr(base, "flow_full")  # off by default: no parameters, no state-dict keys
    on = switched_on(base, "flow_full.", flow_refine_full=True)

    img0, img1 = torch.rand(2, 3, 64, 96), torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        assert torch.equal(on(img0, img1, 0.5), base(img0, img1, 0.5))
        a, b = on.forward_train(img0, img1, 0.5), base.forward_train(img0, img1, 0.5)
    assert len(a["flows"]) == len(b["flows"]) + 1  # one more level, on the 1/4 grid
    assert a["flows"][-1].shape == b["flows"][-1].shape == (2, 4, 16, 24)
    assert len(a["preds"]) == len(b["preds"]) + 1  # the old last level is now an intermediate


def test_it_learns_from_the_full_resolution_frames():
    model = VFINet(tiny_config(flow_refine_full=True))
    img0, img1, gt = (torch.rand(1, 3, 64, 64) for _ in range(3))
    loss = (model(img0, img1, 0.5) - gt).abs().mean()
    loss.backward()
    assert model.flow_full.head.weight.grad.abs().sum() > 0  # the zero head gets a gradient
    torch.optim.SGD(model.flow_full.parameters(), lr=1.0).step()
    model.zero_grad()
    # after one step the body gets gradients too, and they depend on the full-resolution frames
    img0.requires_grad_(True)
    model(img0, img1, 0.5).abs().mean().backward()
    assert model.flow_full.body[0][0].weight.grad.abs().sum() > 0
    assert img0.grad is not None and img0.grad.abs().sum() > 0


def test_the_phase_chain_switches_it_on_but_never_off():
    src = tiny_config()
    path = Path("src.pkl")
    assert checkpoint.check_phase_chain(src, src.replace(flow_refine_full=True), path) == [
        "flow_full"
    ]
    with pytest.raises(VfiError, match="flow_full module but this phase turns it off"):
        checkpoint.check_phase_chain(src.replace(flow_refine_full=True), src, path)
    with pytest.raises(VfiError, match="another architecture"):  # other changes still refused
        checkpoint.check_phase_chain(src, src.replace(flow_refine_full=True, d_state=16), path)


def test_the_memory_estimate_counts_the_full_resolution_warps():
    from engine.tiling import estimate_memory

    off = estimate_memory(1080, 1920, config=tiny_config())
    on = estimate_memory(1080, 1920, config=tiny_config(flow_refine_full=True))
    assert on > off
