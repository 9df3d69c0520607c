"""benchmarks/flow_by_level.py: the per-level flow injection that the analysis relies on."""

from __future__ import annotations

import copy

import torch
from conftest import tiny_config, trained_like

from benchmarks.flow_by_level import predict


def _pair():
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, 40, 56, generator=g), torch.rand(1, 3, 40, 56, generator=g)


@torch.no_grad()
def test_bypassing_a_level_equals_zeroing_its_flow_update():
    model = trained_like(tiny_config(flow_corr=True))
    a, b = _pair()
    plain = predict(model, a, b)
    bypassed = predict(model, a, b, (2, None))
    assert not torch.equal(plain, bypassed)
    # The same model with the last level's flow outputs zeroed: its flow passes through unchanged.
    zeroed = copy.deepcopy(model)
    zeroed.flow.levels[2].head.weight[:4] = 0
    zeroed.flow.levels[2].head.bias[:4] = 0
    torch.testing.assert_close(bypassed, predict(zeroed, a, b), atol=1e-6, rtol=0)
    # The hooks are gone afterwards: the model predicts as before.
    torch.testing.assert_close(predict(model, a, b), plain, atol=0, rtol=0)
    assert all("forward" not in vars(level) for level in model.flow.levels)


@torch.no_grad()
def test_an_injected_flow_decides_the_warp():
    """A flow injected at the last level reaches the frame (zero vs a large shift differ), and one
    injected at the first level is refined by the others (its effect is not the same)."""
    model = trained_like(tiny_config())
    a, b = _pair()
    still = torch.zeros(1, 4, 40, 56)
    shift = torch.full((1, 4, 40, 56), 6.0)
    last = [predict(model, a, b, (2, f)) for f in (still, shift)]
    assert (last[0] - last[1]).abs().mean() > 1e-3
    first = predict(model, a, b, (0, shift))
    assert not torch.allclose(first, last[1])
