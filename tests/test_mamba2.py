"""Mamba2: the chunked SSD scan equals the sequential recurrence; names match mamba_ssm."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from engine.model.mamba2 import Mamba2, ssd_chunked, ssd_reference

F64_RTOL = 1e-10  # float64: the two algorithms differ only by summation order
F32_RTOL = 1e-5


def _inputs(b, length, h, p, g, n, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, length, h, p, generator=gen, dtype=dtype)
    dt = torch.rand(b, length, h, generator=gen, dtype=dtype) * 0.5 + 0.01
    A = -(torch.rand(h, generator=gen, dtype=dtype) * 4 + 0.1)
    Bm = torch.randn(b, length, g, n, generator=gen, dtype=dtype)
    Cm = torch.randn(b, length, g, n, generator=gen, dtype=dtype)
    return x, dt, A, Bm, Cm


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("passing", ["matrix", "loop"])
@pytest.mark.parametrize("chunk", [1, 4, 16, 64])
@pytest.mark.parametrize("length", [1, 7, 33, 100])
def test_chunked_scan_equals_recurrence_f64(chunk, length, passing):
    args = _inputs(2, length, 4, 8, 2, 16, torch.float64, seed=length * 7 + chunk)
    y = ssd_chunked(*args, chunk_size=chunk, state_passing=passing)
    assert _rel(y, ssd_reference(*args)) < F64_RTOL


@pytest.mark.parametrize("passing", ["matrix", "loop"])
def test_chunked_scan_f32(passing):
    args = _inputs(1, 200, 2, 16, 1, 32, torch.float32)
    y = ssd_chunked(*args, chunk_size=64, state_passing=passing)
    assert _rel(y, ssd_reference(*args)) < F32_RTOL


def test_loop_passing_has_the_matrix_passings_gradients():
    """Training on the CPU goes through the loop: its gradients are the matrix form's (f64)."""
    grads = {}
    for passing in ("matrix", "loop"):
        args = [a.clone().requires_grad_() for a in _inputs(1, 45, 2, 4, 1, 8, torch.float64)]
        ssd_chunked(*args, chunk_size=8, state_passing=passing).square().sum().backward()
        grads[passing] = [a.grad for a in args]
    for g_loop, g_matrix in zip(grads["loop"], grads["matrix"]):
        assert _rel(g_loop, g_matrix) < F64_RTOL


def test_cpu_eager_scan_loops_and_a_traced_one_keeps_the_matrix_form(monkeypatch):
    """Eager on the CPU: short chunks, states passed in a loop (fast there). Under torch.compile
    the loop would unroll into one node per chunk, so the traced scan keeps the matrix form."""
    from engine.model import mamba2

    seen, real = [], mamba2.ssd_chunked

    def spy(*args, state_passing="matrix"):
        seen.append(state_passing)
        return real(*args, state_passing=state_passing)

    monkeypatch.setattr(mamba2, "ssd_chunked", spy)
    torch.manual_seed(0)
    m = Mamba2(16, d_state=8, headdim=8, chunk_size=8).eval()
    u = torch.randn(1, 40, 16)
    with torch.no_grad():
        eager = m(u)
        assert seen == ["loop"]
        traced = torch.compile(m, backend="eager", fullgraph=True)(u)
        torch._dynamo.reset()
    assert seen[1:] == ["matrix"]
    torch.testing.assert_close(traced, eager, atol=1e-5, rtol=0)


def test_unknown_state_passing_is_refused():
    with pytest.raises(ValueError, match="state_passing"):
        ssd_chunked(*_inputs(1, 8, 2, 4, 1, 8, torch.float32), chunk_size=4, state_passing="scan")


def test_scan_is_causal():
    args = list(_inputs(1, 50, 2, 4, 1, 8, torch.float64))
    y = ssd_chunked(*args, chunk_size=16)
    args[0] = args[0].clone()
    args[0][:, 30:] += 1.0  # change the future
    y2 = ssd_chunked(*args, chunk_size=16)
    torch.testing.assert_close(y[:, :30], y2[:, :30], rtol=0, atol=0)


def test_module_backends_agree_f64():
    torch.manual_seed(0)
    m = Mamba2(24, d_state=8, headdim=8, chunk_size=8).double()
    u = torch.randn(2, 45, 24, dtype=torch.float64)
    y_fast = m(u)
    m.backend = "reference"
    assert _rel(y_fast, m(u)) < F64_RTOL


# Names and shapes of mamba_ssm.modules.mamba2.Mamba2(d_model=32, d_state=16, headdim=8), default
# expand=2, ngroups=1, d_conv=4, bias=False, conv_bias=True, rmsnorm=True.
MAMBA_SSM_SHAPES = {
    "dt_bias": (8,),
    "A_log": (8,),
    "D": (8,),
    "in_proj.weight": (2 * 64 + 2 * 16 + 8, 32),
    "conv1d.weight": (64 + 2 * 16, 1, 4),
    "conv1d.bias": (64 + 2 * 16,),
    "norm.weight": (64,),
    "out_proj.weight": (32, 64),
}


def test_state_dict_names_match_mamba_ssm():
    m = Mamba2(32, d_state=16, headdim=8)
    assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == MAMBA_SSM_SHAPES


@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec("mamba_ssm") is None, reason="mamba-ssm not installed")
def test_state_dict_loads_both_ways_with_mamba_ssm():
    from engine.model.mamba2 import triton_ops

    assert triton_ops() is not None  # registers the selective_scan_cuda placeholder if needed
    from mamba_ssm.modules.mamba2 import Mamba2 as Ref

    ref = Ref(32, d_state=16, headdim=8, use_mem_eff_path=False).cuda()
    ours = Mamba2(32, d_state=16, headdim=8).cuda()
    ours.load_state_dict(ref.state_dict())
    ref.load_state_dict(ours.state_dict())
    u = torch.randn(2, 300, 32, device="cuda")
    with torch.no_grad():
        assert _rel(ours(u), ref(u)) < 1e-4


@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec("mamba_ssm") is None, reason="mamba-ssm not installed")
def test_triton_and_torch_paths_agree_fp32():
    torch.manual_seed(0)
    m = Mamba2(64, d_state=32, headdim=16, chunk_size=64).cuda()
    u = torch.randn(2, 1000, 64, device="cuda", requires_grad=True)
    y_t = m(u)
    (g_t,) = torch.autograd.grad(y_t.square().sum(), u)
    m.backend = "torch"
    y_p = m(u)
    (g_p,) = torch.autograd.grad(y_p.square().sum(), u)
    assert _rel(y_t, y_p) < 1e-3
    assert _rel(g_t, g_p) < 1e-2


def test_causal_conv_equals_conv1d_reference():
    """The (B, L, C)-layout conv equals nn.Conv1d with left padding (mamba_ssm's definition)."""
    torch.manual_seed(0)
    m = Mamba2(16, d_state=8, headdim=8).double()
    x = torch.randn(2, 23, m.conv1d.in_channels, dtype=torch.float64)
    ref = m.conv1d(x.transpose(1, 2))[..., :23].transpose(1, 2)
    torch.testing.assert_close(m.causal_conv(x), ref)


@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec("mamba_ssm") is None, reason="mamba-ssm not installed")
def test_triton_path_under_bf16_autocast_stays_close_to_fp32():
    """x, B, C enter the Triton scan in bf16 (fp32 recurrence): bf16-level error, not worse."""
    torch.manual_seed(0)
    m = Mamba2(96, d_state=32, headdim=32, chunk_size=128).cuda()
    u = torch.randn(2, 4000, 96, device="cuda")
    with torch.no_grad():
        ref = m(u)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            low = m(u).float()
    assert _rel(low, ref) < 2e-2


# ---------------------------------------------------------------------------------------------
# The fused causal-conv1d kernel (optional package) against the PyTorch conv + SiLU

# Relative L2 error of the fused kernel against the PyTorch path, per dtype: both accumulate the
# 4-tap sum in fp32, so fp32 agrees to rounding and the half types to their output rounding.
CONV_RTOL = {torch.float32: 1e-6, torch.bfloat16: 1e-2, torch.float16: 2e-3}
HAS_CONV1D = importlib.util.find_spec("causal_conv1d") is not None


def test_conv_op_selection(monkeypatch):
    """causal_conv1d_fn is used only with CUDA and the package, and VFI_CAUSAL_CONV1D=0 wins."""
    import sys
    import types

    from engine.model import mamba2

    fake = types.ModuleType("causal_conv1d")
    fake.causal_conv1d_fn = object()
    monkeypatch.setitem(sys.modules, "causal_conv1d", fake)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    try:
        mamba2.conv_op.cache_clear()
        assert mamba2.conv_op() is fake.causal_conv1d_fn
        monkeypatch.setenv(mamba2.CONV_ENV, "0")
        mamba2.conv_op.cache_clear()
        assert mamba2.conv_op() is None
        monkeypatch.delenv(mamba2.CONV_ENV)
        monkeypatch.setitem(sys.modules, "causal_conv1d", None)  # not installed
        mamba2.conv_op.cache_clear()
        assert mamba2.conv_op() is None
    finally:
        mamba2.conv_op.cache_clear()


def test_conv_silu_on_cpu_is_the_pytorch_path():
    torch.manual_seed(0)
    m = Mamba2(16, d_state=8, headdim=8)
    x = torch.randn(2, 23, m.conv1d.in_channels)
    torch.testing.assert_close(m.conv_silu(x), torch.nn.functional.silu(m.causal_conv(x)))


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CONV1D, reason="causal-conv1d not installed")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_fused_conv_matches_pytorch_conv(dtype):
    """Forward and gradients (input, weight, bias) of the fused path against the PyTorch path,
    on a slice of a wider tensor as in the layer (xbc is a view into the in_proj output)."""
    from engine.model.mamba2 import conv_op

    assert conv_op() is not None
    torch.manual_seed(0)
    m = Mamba2(64, d_state=32, headdim=16).cuda()  # conv channels 2*128 + 2*32 = 192
    # As in the layer: xbc is a slice of the in_proj output (13 odd extra columns: z/dt-like),
    # which autocast has already made bf16/fp16.
    wide = torch.randn(3, 1000, 192 + 13, device="cuda").to(dtype)
    outs = {}
    for backend in ("auto", "torch"):
        m.backend = backend
        m.zero_grad()
        u = wide.detach().clone().requires_grad_(True)
        with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
            y = m.conv_silu(u[..., :192])
        assert y.dtype == dtype
        y.float().square().sum().backward()
        grads = (u.grad.float(), m.conv1d.weight.grad.clone(), m.conv1d.bias.grad.clone())
        outs[backend] = (y.float(), *grads)
    tol = CONV_RTOL[dtype]
    for fused, ref in zip(outs["auto"], outs["torch"]):
        assert _rel(fused, ref) < tol * (1 if fused is outs["auto"][0] else 4)
