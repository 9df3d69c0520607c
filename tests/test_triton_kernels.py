"""vfi's Triton inference kernels against their PyTorch twins, per dtype.

On CPU the kernels run in Triton's interpreter (``TRITON_INTERPRET=1``), which executes the same
kernel source with NumPy: index arithmetic, masks and accumulation are checked here, compiled code
on the GPU (``-m gpu``). Skipped where triton is not installed (CPU-only torch wheels lack it).
"""

from __future__ import annotations

import types

import pytest
import torch
import torch.nn.functional as F
from conftest import panned_frames, tiny_config, trained_like

from engine.model import fastpath
from engine.model.corr import bilateral_correlation, bilateral_correlation_reference
from engine.model.mamba2 import Mamba2

triton = pytest.importorskip("triton")
# Set by tests/conftest.py on machines without CUDA, before triton was imported.
INTERPRETER = fastpath.interpreting()

# Tolerances. Conv: relative L2 error against the fp64 reference; both accumulate the K-tap sum in
# fp32, so fp32 agrees to rounding and the half types to their output rounding (as the fused
# causal-conv1d test). Correlation: absolute error on cosine scores in [-1, 1].
CONV_RTOL = {torch.float32: 1e-6, torch.bfloat16: 1e-2, torch.float16: 2e-3}
CORR_ATOL = {torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float16: 2e-3}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


@pytest.fixture
def interpreted(monkeypatch):
    """Kernels switched on and run by Triton's CPU interpreter."""
    if not INTERPRETER:
        pytest.skip("Triton was imported without its interpreter (a CUDA machine compiles instead)")
    monkeypatch.setenv(fastpath.ENV, "1")


def _conv_case(device: str, dtype: torch.dtype, k: int, bias: bool):
    """A Mamba2 layer and an xBC-like input: a slice of a wider tensor, as in the layer."""
    torch.manual_seed(k)
    m = Mamba2(32, d_state=8, headdim=8, d_conv=k, conv_bias=bias).to(device)  # conv channels 80
    # 75 steps: 3 time tiles, the last partial; 80 channels: 2 channel tiles, the last partial.
    wide = torch.randn(2, 75, 80 + 7, device=device).to(dtype)
    return m, wide[..., 3:83]


@pytest.mark.parametrize("k, bias", [(4, True), (2, False), (3, True)])
@pytest.mark.parametrize("dtype", list(CONV_RTOL))
def test_conv_silu_kernel_matches_the_pytorch_conv(interpreted, dtype, k, bias):
    m, x = _conv_case("cpu", dtype, k, bias)
    with torch.inference_mode():
        y = m.conv_silu(x)
        ref = F.silu(m.double().causal_conv(x.double()))
    assert y.dtype == dtype and y.shape == x.shape and y.is_contiguous()
    assert _rel(y, ref) < CONV_RTOL[dtype]


# The default radius (3) in fp32, every dtype at radius 1 (the interpreter is slow).
@pytest.mark.parametrize(
    "dtype, radius", [(torch.float32, 3)] + [(dtype, 1) for dtype in CORR_ATOL]
)
def test_correlation_kernel_matches_the_reference(interpreted, dtype, radius):
    # 70 columns: two 64-pixel segments, the last partial; 40 channels: two channel blocks;
    # 2 images of 4 rows: the rows outside the map at radius 3 are all of them.
    torch.manual_seed(radius)
    f0, f1 = torch.randn(2, 40, 4, 70), torch.randn(2, 40, 4, 70)
    with torch.inference_mode():
        fast = bilateral_correlation(f0.to(dtype), f1.to(dtype), radius)
    ref = bilateral_correlation_reference(f0.to(dtype).double(), f1.to(dtype).double(), radius)
    assert fast.dtype == dtype and fast.shape == ref.shape
    assert (fast.double() - ref).abs().max() <= CORR_ATOL[dtype]


def test_correlation_kernel_reads_channels_last_features(interpreted):
    """The model runs channels-last (Interpolator): the kernel reads those strides as they are."""
    torch.manual_seed(0)
    f0, f1 = torch.randn(1, 40, 4, 70), torch.randn(1, 40, 4, 70)
    cl = [f.contiguous(memory_format=torch.channels_last) for f in (f0, f1)]
    with torch.inference_mode():
        fast = bilateral_correlation(*cl, 1)
    ref = bilateral_correlation_reference(f0.double(), f1.double(), 1)
    assert (fast.double() - ref).abs().max() <= CORR_ATOL[torch.float32]


@pytest.mark.parametrize("block_x, block_c", [(32, 16), (128, 64)])
def test_the_correlation_tile_is_a_speed_choice_only(interpreted, block_x, block_c):
    """Other tiles (benchmarks/corr_speed.py times them) give the same scores, partial tiles
    included: 70 columns and 40 channels fill none of them exactly."""
    from engine.model import triton_kernels as K

    torch.manual_seed(1)
    n0, n1 = (F.normalize(torch.randn(1, 40, 3, 70), dim=1) for _ in range(2))
    with torch.inference_mode():
        default = K._launch_correlation(n0, n1, 1)
        other = K._launch_correlation(n0, n1, 1, block_x, block_c, num_warps=2)
    assert (other - default).abs().max() <= CORR_ATOL[torch.float32]


def test_the_whole_model_is_unchanged_by_the_kernels(interpreted, monkeypatch):
    """A tiny flow_corr model's frame with the kernels equals the frame without them (fp32)."""
    model = trained_like(tiny_config(flow_corr=True)).eval()
    with torch.no_grad():  # the cost volume's zero-initialised projections, as after training
        for name, p in model.named_parameters():
            if name.startswith("flow_corr.") and name.endswith("proj.weight"):
                p.normal_(0, 0.1)
    torch.manual_seed(0)
    a, b = torch.rand(1, 3, 64, 96), torch.rand(1, 3, 64, 96)
    with torch.inference_mode():
        fast = model(a, b)
        monkeypatch.setenv(fastpath.ENV, "0")
        ref = model(a, b)
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=0)


def test_the_kernels_are_used_only_switched_on_without_autograd(monkeypatch):
    cpu = torch.zeros(1)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setenv(fastpath.ENV, "1")
    with torch.inference_mode():
        assert fastpath.triton_kernels(cpu) is None  # a CPU tensor, no interpreter
        monkeypatch.setenv("TRITON_INTERPRET", "1")
        assert fastpath.triton_kernels(cpu) is not None
        monkeypatch.setenv(fastpath.ENV, "0")
        assert fastpath.triton_kernels(cpu) is None  # switched off
        monkeypatch.delenv(fastpath.ENV)
        assert fastpath.triton_kernels(cpu) is None  # default: the interpreter only when asked for
        monkeypatch.setenv(fastpath.ENV, "1")
    assert fastpath.triton_kernels(cpu) is None  # autograd on: training keeps the PyTorch paths


def test_the_kernels_are_on_by_default_for_cuda_tensors(monkeypatch):
    """Default on for CUDA inference (measured on an H100), off with VFI_TRITON_KERNELS=0."""
    if fastpath._module() is None:
        pytest.skip("triton is not installed")
    cuda_like = types.SimpleNamespace(is_cuda=True)  # the switch reads only .is_cuda
    monkeypatch.delenv(fastpath.ENV, raising=False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with torch.inference_mode():
        assert fastpath.triton_kernels(cuda_like) is not None
        monkeypatch.setenv(fastpath.ENV, "0")
        assert fastpath.triton_kernels(cuda_like) is None
    monkeypatch.delenv(fastpath.ENV)
    assert fastpath.triton_kernels(cuda_like) is None  # autograd on


def test_training_mode_keeps_the_pytorch_conv(interpreted):
    """With autograd on the layer takes the differentiable PyTorch path even when switched on."""
    m, x = _conv_case("cpu", torch.float32, 4, True)
    x = x.detach().clone().requires_grad_(True)
    y = m.conv_silu(x)
    y.sum().backward()  # the Triton kernel has no backward: this would fail had it been used
    assert x.grad is not None and m.conv1d.weight.grad is not None


def _explain_kernels_model(model, a, b):
    """Dynamo's view of one inference forward: (graph count, graph breaks, eager frame, traced
    frame). The eager backend: tracing only, no C++ compiler needed."""
    with torch.inference_mode():
        ref = model(a, b)
        explained = torch._dynamo.explain(model)(a, b)
        traced = torch.compile(model, backend="eager", fullgraph=True)(a, b)
    torch._dynamo.reset()
    return explained.graph_count, explained.graph_break_count, ref, traced


def test_the_model_with_the_kernels_traces_as_one_graph(interpreted):
    """Under torch.compile each kernel launch is one custom-operator node: traced as Python, a
    launch led Dynamo into Triton's runtime and broke the graph at every kernel call."""
    model = trained_like(tiny_config(flow_corr=True)).eval()  # both kernels in the forward
    a, b = torch.rand(1, 3, 32, 48), torch.rand(1, 3, 32, 48)
    graphs, breaks, ref, traced = _explain_kernels_model(model, a, b)
    assert (graphs, breaks) == (1, 0)
    # Eager on the CPU the Mamba2 scan passes its chunk states in a loop, traced in one product
    # (engine/model/mamba2.py): the same sums in another order, so fp32 rounding apart.
    torch.testing.assert_close(traced, ref, atol=1e-5, rtol=0)


def test_the_kernel_operators_fake_shapes_match_their_results(interpreted):
    """The shape-only twins torch.compile traces with describe the real outputs."""
    m, x = _conv_case("cpu", torch.float32, 4, True)
    f0, f1 = torch.randn(1, 8, 3, 5), torch.randn(1, 8, 3, 5)
    ops = torch.ops.vfi
    for op, args in [
        (ops.conv_silu, (x, m.conv1d.weight.detach(), m.conv1d.bias.detach())),
        (ops.conv_silu, (x, m.conv1d.weight.detach(), None)),
        (ops.bilateral_correlation, (f0, f1, 1)),
    ]:
        torch.library.opcheck(op, args, test_utils=("test_schema", "test_faketensor"))


# ---------------------------------------------------------------------------------------------
# Compiled, on the GPU


@pytest.fixture
def compiled(monkeypatch):
    monkeypatch.setenv(fastpath.ENV, "1")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", list(CONV_RTOL))
def test_conv_silu_kernel_on_cuda(compiled, dtype):
    m, x = _conv_case("cuda", dtype, 4, True)
    with torch.inference_mode():
        y = m.conv_silu(x)
        ref = F.silu(m.double().causal_conv(x.double()))
    assert y.dtype == dtype and y.is_cuda
    assert _rel(y, ref) < CONV_RTOL[dtype]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", list(CORR_ATOL))
def test_correlation_kernel_on_cuda(compiled, dtype):
    torch.manual_seed(0)
    f0, f1 = torch.randn(2, 96, 33, 130), torch.randn(2, 96, 33, 130)
    with torch.inference_mode():
        fast = bilateral_correlation(f0.cuda().to(dtype), f1.cuda().to(dtype), 3)
    ref = bilateral_correlation_reference(f0.to(dtype).double(), f1.to(dtype).double(), 3)
    assert (fast.cpu().double() - ref).abs().max() <= CORR_ATOL[dtype]


@pytest.mark.gpu
def test_the_default_model_under_bf16_is_unchanged_by_the_kernels(compiled, monkeypatch):
    """The bundled vfi-s's frame under bf16 autocast with the kernels is as close to fp32 as
    without them (trained weights: the cost volume's projection is not zero any more)."""
    from engine.loading import load_model

    torch.manual_seed(0)
    model = load_model("vfi-s").cuda().to(memory_format=torch.channels_last)  # as Interpolator
    a, b = (
        torch.rand(1, 3, 256, 448, device="cuda").contiguous(memory_format=torch.channels_last)
        for _ in range(2)
    )
    with torch.inference_mode():
        monkeypatch.setenv(fastpath.ENV, "0")
        ref = model(a, b)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            slow = model(a, b).float()
        monkeypatch.setenv(fastpath.ENV, "1")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            fast = model(a, b).float()
    assert (fast - ref).abs().max() <= 2 * (slow - ref).abs().max() + 1e-3


@pytest.mark.gpu
def test_the_default_model_traces_as_one_graph_on_cuda(compiled):
    """The bundled vfi-s on CUDA under bf16 autocast, with vfi's kernels and mamba-ssm's scan and
    norm where installed: one graph for torch.compile (what `--compile` relies on to fuse), and
    the traced forward computes what the eager one does (on a pan wider than 256 px, where a
    bf16 sampling grid once cost the traced forward 6-9 dB)."""
    from engine.loading import load_model
    from engine.metrics import psnr

    model = load_model("vfi-s").cuda().to(memory_format=torch.channels_last)
    a, b, gt = panned_frames(256, 640, (-3, 3, 0), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        graphs, breaks, ref, traced = _explain_kernels_model(model, a, b)
    assert (graphs, breaks) == (1, 0)
    assert abs(psnr(traced.float(), gt).item() - psnr(ref.float(), gt).item()) <= 0.01
    assert (traced.float() - ref.float()).abs().mean() <= 1e-3


def test_no_c_compiler_means_no_compiled_kernels(monkeypatch):
    """Triton builds its launchers with a C compiler: without one the PyTorch paths stay."""
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    fastpath._module.cache_clear()
    try:
        assert fastpath.c_compiler() is None
        assert fastpath._module() is None
    finally:
        fastpath._module.cache_clear()
