"""Channel-padded convolutions compute the same function (engine/model/pad8.py)."""

from __future__ import annotations

import torch
from conftest import panned_frames

from engine.loading import load_model
from engine.model.pad8 import MULTIPLE, Pad8Conv2d, pad_convolutions, padded_copy


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


def test_padded_copy_leaves_the_model_as_it_was():
    """The compiled CUDA Interpolator runs a padded copy: the caller's model keeps its layers and
    its state dict (it may still be saved, trained or run eagerly)."""
    model = load_model("vfi-s").eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    a, b, _ = panned_frames(32, 64, (1, 0, 0))
    copy = padded_copy(model)
    assert not any(isinstance(m, Pad8Conv2d) for m in model.modules())
    assert sum(isinstance(m, Pad8Conv2d) for m in copy.modules()) == 11
    assert model.state_dict().keys() == before.keys()
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    with torch.inference_mode():
        torch.testing.assert_close(copy(a, b), model(a, b), atol=1e-5, rtol=0)


def test_the_compiled_cuda_layout_is_padded_and_nhwc():
    """What Interpolator(compile=True) runs on CUDA, built on the CPU: a padded copy whose every
    convolution (the new ones too) holds NHWC weights; eager CUDA runs keep the plain layers."""
    from engine.interpolator import cuda_layout

    model = load_model("vfi-s").eval()
    compiled = cuda_layout(model, pad=True)
    padded = [m for m in compiled.modules() if isinstance(m, Pad8Conv2d)]
    assert len(padded) == 11 and compiled is not model
    assert all(
        m.weight.is_contiguous(memory_format=torch.channels_last)
        for m in compiled.modules()
        if type(m) is torch.nn.Conv2d and m.weight.ndim == 4 and m.weight.shape[1] > 1
    )
    eager = cuda_layout(model, pad=False)
    assert eager is model and not any(isinstance(m, Pad8Conv2d) for m in eager.modules())
