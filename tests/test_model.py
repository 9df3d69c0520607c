"""The network: every registered variant x backbone mode x mHC, through the Interpolator."""

from __future__ import annotations

import shutil

import pytest
import torch
from conftest import panned_frames

from engine import Interpolator, VfiError, load_model
from engine.config import BACKBONE_MODES, ModelConfig
from engine.interpolator import _cannot_compile
from engine.loading import build_model
from engine.metrics import psnr
from engine.model.pad8 import Pad8Conv2d
from engine.registry import VARIANTS

# What bf16 autocast (or the compiled bf16 forward) may cost against fp32 on a panned texture.
BF16_LOSS_DB = 0.1
CPU_BF16_LOSS_DB = 0.5  # the same on the CPU at 128 x 640 (measured 0.08)
PRECISIONS = ("fp32", "bf16")
MODELS = [name for name, v in VARIANTS.items() if v.kind == "model"]


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("mode", BACKBONE_MODES)
@pytest.mark.parametrize("mhc", [False, True])
def test_variant_forward_backward(name, mode, mhc):
    torch.manual_seed(0)
    model = load_model(name, backbone_mode=mode, use_mhc=mhc, pretrained=False)
    assert model.config.backbone_mode == mode and model.config.use_mhc == mhc
    interp = Interpolator(model, device="cpu", precision="fp32")
    img0, img1 = torch.rand(2, 3, 67, 93), torch.rand(2, 3, 67, 93)
    for t in (0.3, torch.tensor([0.0, 0.9])):
        out = interp(img0, img1, t)
        assert out.shape == (2, 3, 67, 93)
        assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    # Backward through the raw model (the Interpolator is inference-only).
    model.train()
    out = model.forward_train(img0[:1, :, :32, :48], img1[:1, :, :32, :48], 0.5)
    loss = out["pred"].mean() + sum(p.mean() for p in out["preds"])
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_phase_switches_start_from_the_previous_output(tiny_model):
    """feature_warp / texture_path are zero-initialised: a phase-1 model's output is unchanged."""
    torch.manual_seed(1)
    a, b = torch.rand(1, 3, 48, 64), torch.rand(1, 3, 48, 64)
    base = tiny_model(a, b, 0.5)
    bigger = build_model(tiny_model.config.replace(feature_warp=True, texture_path=True)).eval()
    missing = bigger.load_state_dict(tiny_model.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith(("feature_warp.", "texture.")) for k in missing)
    with torch.no_grad():
        torch.testing.assert_close(bigger(a, b, 0.5), base.detach(), rtol=0, atol=1e-6)


def test_untrained_model_starts_near_the_blend(tiny_model):
    a, b = torch.rand(1, 3, 32, 48), torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        out = tiny_model(a, b, 0.5)
    assert (out - (a + b) / 2).abs().mean() < 0.02


def test_scale_and_encode_decode(tiny_model):
    a, b = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        state = tiny_model.encode(a, b)
        torch.testing.assert_close(tiny_model.decode(state, 0.25), tiny_model(a, b, 0.25))
        assert tiny_model(a, b, 0.5, scale=0.5).shape == a.shape
        assert tiny_model(a, b, 0.5, scale=0.25).shape == a.shape


def test_interpolator_pads_tiny_frames(tiny_model):
    interp = Interpolator(tiny_model, device="cpu")
    for h, w in ((1, 1), (3, 5), (17, 16)):
        out = interp(torch.rand(1, 3, h, w), torch.rand(1, 3, h, w), 0.5)
        assert out.shape == (1, 3, h, w)


def test_bf16_autocast_on_cpu(tiny_model):
    interp = Interpolator(tiny_model, device="cpu", precision="bf16")
    out = interp(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), 0.5)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_bf16_on_cpu_scores_like_fp32_on_a_wide_pan():
    """The bundled model under CPU bf16 autocast, on a texture panned 640 px wide: it scored
    32.4 dB against fp32's 50.4 until the fifteenth round (the warp's grid followed the bf16
    dtype there, exact only up to 256 px); now 50.3."""
    model = load_model("vfi-s")
    a, b, gt = panned_frames(128, 640, (-3, 3, 0))
    fp32, bf16 = (Interpolator(model, device="cpu", precision=p)(a, b, 0.5) for p in PRECISIONS)
    assert psnr(bf16, gt).item() >= psnr(fp32, gt).item() - CPU_BF16_LOSS_DB


@pytest.mark.parametrize(
    ("img0", "img1", "t", "match"),
    [
        (torch.rand(3, 32, 32), torch.rand(3, 32, 32), 0.5, r"\(B, 3, H, W\)"),
        (torch.rand(1, 4, 32, 32), torch.rand(1, 4, 32, 32), 0.5, r"\(B, 3, H, W\)"),
        (torch.zeros(1, 3, 32, 32, dtype=torch.uint8),) * 2 + (0.5, "float"),
        (torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 48), 0.5, "differ"),
        (torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), 1.5, r"\[0, 1\]"),
        (torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32), torch.rand(3), "t must"),
    ],
)
def test_bad_input_raises_valueerror(tiny_model, img0, img1, t, match):
    interp = Interpolator(tiny_model, device="cpu")
    with pytest.raises(ValueError, match=match):
        interp(img0, img1, t)


def test_model_rejects_unaligned_size(tiny_model):
    with pytest.raises(ValueError, match="multiple of 16"):
        tiny_model(torch.rand(1, 3, 30, 32), torch.rand(1, 3, 30, 32), 0.5)


def test_unknown_model_lists_known():
    with pytest.raises(VfiError, match="vfi-s"):
        load_model("nope")


def test_untrained_variant_refuses_pretrained():
    with pytest.raises(VfiError, match="no trained weights"):
        load_model("vfi-b")


def test_config_roundtrip_and_validation():
    cfg = ModelConfig(use_mhc=True)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(VfiError, match="backbone_mode"):
        ModelConfig(backbone_mode="transformer")


@pytest.mark.gpu
def test_cuda_bf16_close_to_fp32_and_backends_agree():
    torch.manual_seed(0)
    model = load_model("vfi-s", pretrained=False).cuda().eval()
    a, b = torch.rand(1, 3, 256, 448, device="cuda"), torch.rand(1, 3, 256, 448, device="cuda")
    with torch.no_grad():
        ref = model(a, b, 0.5)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            low = model(a, b, 0.5).float()
        for m in model.modules():
            if hasattr(m, "backend"):
                m.backend = "torch"
        torch_path = model(a, b, 0.5)
    assert ((low - ref).norm() / ref.norm()).item() < 2e-2
    assert ((torch_path - ref).norm() / ref.norm()).item() < 1e-3


@pytest.mark.gpu
@pytest.mark.parametrize("option", [None, "flow_refine_full", "flow_corr"])
def test_cuda_graph_replay_equals_eager_and_does_not_alias(option):
    torch.manual_seed(0)
    model = load_model("vfi-s", pretrained=False)
    if option:  # an optional module, its zero-initialised output made non-zero so that it acts
        model = build_model(model.config.replace(**{option: True})).eval()
        zero_init = ("flow_full.head.weight", "flow_corr.0.proj.weight", "flow_corr.1.proj.weight")
        for name, p in model.named_parameters():
            if name in zero_init:
                torch.nn.init.normal_(p, std=1e-2)
    graphed = Interpolator(model, device="cuda", precision="bf16", cuda_graphs=True)
    eager = Interpolator(model, device="cuda", precision="bf16", cuda_graphs=False)
    frames = [torch.rand(1, 3, 72, 130, device="cuda") for _ in range(4)]
    first = graphed(frames[0], frames[1], 0.5)
    second = graphed(frames[2], frames[3], 0.25)  # same shape: replay
    torch.testing.assert_close(first, eager(frames[0], frames[1], 0.5), rtol=0, atol=2e-3)
    torch.testing.assert_close(second, eager(frames[2], frames[3], 0.25), rtol=0, atol=2e-3)
    other = graphed(frames[0][..., :64, :64], frames[1][..., :64, :64], 0.5)  # a new shape
    assert other.shape == (1, 3, 64, 64)


def test_interpolator_many_equals_single_calls(tiny_model):
    interp = Interpolator(tiny_model, device="cpu")
    a, b = torch.rand(1, 3, 37, 45), torch.rand(1, 3, 37, 45)
    outs = interp.many(a, b, [0.25, 0.5, 0.75])
    for t, out in zip((0.25, 0.5, 0.75), outs):
        torch.testing.assert_close(out, interp(a, b, t))


@pytest.mark.skipif(
    _cannot_compile(torch.device("cpu")) is not None, reason="Inductor on CPU needs a C++ compiler"
)
def test_compiled_interpolator_matches_eager(tiny_model):
    """compile=True runs the same forward through Inductor: same frames, within fp32 rounding."""
    a, b = torch.rand(1, 3, 32, 48), torch.rand(1, 3, 32, 48)
    eager = Interpolator(tiny_model, device="cpu")(a, b, 0.3)
    compiled = Interpolator(tiny_model, device="cpu", compile=True)
    assert compiled._net is not tiny_model
    torch.testing.assert_close(compiled(a, b, 0.3), eager, atol=1e-4, rtol=0)
    # Interpolator.many compiles encode and decode separately: covered through the CLI with the
    # blend model (tests/test_interpolate_cli.py); compiling them for this network too would add
    # another ~2 minutes of Inductor C++ builds on a 2-core machine.


def test_the_model_traces_as_one_graph_without_warnings(tiny_model):
    """torch.compile sees the whole forward as one graph (no graph break), and the per-shape
    caches (pixel grids, attention masks) are traced, not warned about (engine/model/shape_cache).
    The eager backend: Dynamo's tracing only, no compiler needed."""
    import warnings

    a, b = torch.rand(1, 3, 32, 48), torch.rand(1, 3, 32, 48)
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        explained = torch._dynamo.explain(tiny_model)(a, b, 0.3)
        torch._dynamo.reset()
    assert explained.graph_count == 1 and explained.graph_break_count == 0
    assert not [w for w in caught if "lru_cache" in str(w.message)]


@pytest.mark.gpu
def test_compiled_interpolator_on_cuda_matches_eager():
    """The bundled model compiled inside the CUDA graph (and in many()) against eager, bf16, on a
    pan wider than 256 px, scored against the exact frames: the compiled path once sampled its
    warps on a bf16 grid there and lost 1-3 dB, which a comparison on noise (unstable under bf16
    in any path) could not see."""
    model = load_model("vfi-s")
    a, b, mid, quarter, three_quarters = panned_frames(256, 640, (-4, 4, 0, -2, 2), device="cuda")
    eager = Interpolator(model, device="cuda", precision="bf16")
    compiled = Interpolator(model, device="cuda", precision="bf16", compile=True)
    # Compiled on CUDA, the Interpolator runs a copy with channel-padded convolutions.
    padded = [m for m in compiled.model.modules() if isinstance(m, Pad8Conv2d)]
    assert padded and all(
        m.conv.weight.is_contiguous(memory_format=torch.channels_last) for m in padded
    )  # NHWC, as the rest: padded after the layout change, they would run NCHW
    assert not any(isinstance(m, Pad8Conv2d) for m in model.modules())
    fp32 = Interpolator(model, device="cuda", precision="fp32", cuda_graphs=False)
    scores = [psnr(ip(a, b, 0.5), mid).item() for ip in (fp32, eager, compiled)]
    assert scores[0] > psnr((a + b) / 2, mid).item() + 10  # the model does its job here
    assert scores[1] >= scores[0] - BF16_LOSS_DB and scores[2] >= scores[1] - BF16_LOSS_DB
    times, truths = (0.25, 0.75), (quarter, three_quarters)
    ref = [psnr(fp32(a, b, t), gt).item() for t, gt in zip(times, truths)]
    for ip in (eager, compiled):
        for out, gt, score in zip(ip.many(a, b, list(times)), truths, ref):
            assert psnr(out, gt).item() >= score - BF16_LOSS_DB


def test_compile_without_a_compiler_is_a_clear_error(tiny_model, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(VfiError, match=r"--compile needs a C\+\+ compiler"):
        Interpolator(tiny_model, device="cpu", compile=True)
    Interpolator(tiny_model, device="cpu")  # without --compile nothing is needed
