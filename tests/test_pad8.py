"""Channel-padded convolutions compute the same function (engine/model/pad8.py)."""

from __future__ import annotations

import torch
from conftest import panned_frames

from engine.loading import load_model
from engine.model.pad8 import MULTIPLE, pad_convolutions


def test_the_padded_model_gives_the_same_frame():
    model = load_model("vfi-s").eval()
    a, b, _ = panned_frames(64, 96, (-2, 2, 0))
    with torch.inference_mode():
        ref = model(a, b)
        names = pad_convolutions(model)
        out = model(a, b)
    assert len(names) == 11  # vfi-s: the layers docs/benchmarks.md (version 6) counts
    assert "flow_corr.0.body.0" in names and "encoder.levels.0.0.0" in names
    for m in model.modules():
        if type(m) is torch.nn.Conv2d and m.groups == 1:
            assert m.in_channels % MULTIPLE == 0 and m.out_channels % MULTIPLE == 0
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
