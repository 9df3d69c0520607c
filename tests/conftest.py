"""Shared fixtures: a tiny random model (fast on CPU) and GPU skipping."""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

# Triton picks its CPU interpreter when it is imported (its tl builtins are decorated then), so
# the choice is made here, before any test module imports it. Without CUDA the interpreter is
# the only way to run vfi's Triton kernels (tests/test_triton_kernels.py); with CUDA they compile.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# PyAV is a core dependency, but the GPU machine's kit carries no wheel of it. There the two
# modules that import it are left out of collection (the report header says so), so that
# `pytest -m gpu` collects everything else instead of stopping at two import errors.
_HAVE_AV = importlib.util.find_spec("av") is not None
collect_ignore = [] if _HAVE_AV else ["test_video_io.py", "test_interpolate_cli.py"]


def pytest_report_header(config):
    if not _HAVE_AV:
        return f"PyAV is not installed: {', '.join(collect_ignore)} not collected"
    return None


def tiny_config(**changes):
    """A very small ModelConfig of the real architecture, for fast CPU tests."""
    from engine.config import ModelConfig, StageConfig

    cfg = ModelConfig(
        enc_dims=(8, 16, 16, 16),
        stages=(
            StageConfig(stride=16, dim=16, depth=1, heads=2, window=4),
            StageConfig(stride=8, dim=16, depth=1, heads=2, window=4),
        ),
        d_state=8,
        headdim=8,
        chunk_size=16,
        flow_dims=(16, 16, 16),
        refine_dims=(8, 16),
        texture_dim=8,
    )
    return cfg.replace(**changes)


def trained_like(cfg):
    """A model of ``cfg`` whose zero-initialised heads are not zero any more (as after training),
    to check that switching an optional module on leaves its output unchanged."""
    import torch

    from engine.model.network import VFINet

    torch.manual_seed(0)
    model = VFINet(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("head.weight") or name.startswith("refine.out"):
                p.normal_(0, 0.05)
    return model.eval()


def switched_on(base, prefix: str, **change):
    """``base`` rebuilt with ``change`` (an optional module's switch) and its weights loaded: only
    the new module's ``prefix.*`` keys may be missing, none unexpected."""
    from engine.model.network import VFINet

    on = VFINet(base.config.replace(**change)).eval()
    result = on.load_state_dict(base.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert result.missing_keys and all(k.startswith(prefix) for k in result.missing_keys)
    return on


def panned_frames(h: int, w: int, offsets, seed: int = 0, device="cpu") -> list[torch.Tensor]:
    """Crops (1, 3, h, w) in [0, 1] of one smooth texture (three octaves of upsampled noise) at
    the given integer x offsets: a camera pan with exact frames at any time in between. Unlike
    noise, its motion is well defined, so the bundled model's frame is stable under bf16 and a
    path that samples in the wrong place shows as a loss of PSNR. ``offsets=(-3, 3, 0)`` is a
    triplet (img0, img1, gt at t = 0.5)."""
    g = torch.Generator().manual_seed(seed)
    pad = max(abs(o) for o in offsets)
    size = (h, w + 2 * pad)
    canvas = sum(
        torch.nn.functional.interpolate(
            torch.rand(1, 3, size[0] // s + 1, size[1] // s + 1, generator=g),
            size=size, mode="bicubic", align_corners=False,
        ) / k
        for s, k in ((32, 1), (8, 2), (2, 4))
    )  # fmt: skip
    canvas = (canvas - canvas.amin()) / (canvas.amax() - canvas.amin())
    return [canvas[..., pad + o : pad + o + w].contiguous().to(device) for o in offsets]


@pytest.fixture
def tiny_model():
    import torch

    from engine.loading import build_model

    torch.manual_seed(0)
    return build_model(tiny_config()).eval()


@pytest.fixture
def one_thread():
    """One intra-op torch thread: on a shared 2-core machine, oversubscription makes small
    convolutions 10-100x slower. Test modules opt in with pytestmark usefixtures("one_thread")."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def pytest_collection_modifyitems(config, items):
    import importlib.util

    has_cuda = False
    if importlib.util.find_spec("torch") is not None:
        import torch

        has_cuda = torch.cuda.is_available()
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
