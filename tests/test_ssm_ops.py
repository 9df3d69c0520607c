"""mamba-ssm's scan and norm as custom operators under torch.compile (engine/model/ssm_ops.py).

On the CPU, mamba-ssm's two functions are replaced by PyTorch twins with their signatures, so the
routing and the operators' fake shapes are tested without CUDA; the GPU test of the whole model
(tests/test_triton_kernels.py) runs the real ones.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.model import mamba2, ssm_ops
from engine.model.mamba2 import gated_rmsnorm_reference, ssd_chunked

CHUNK = 8


@pytest.fixture
def twins(monkeypatch):
    """mamba_chunk_scan_combined and rmsnorm_fn as PyTorch functions taking the same arguments."""

    def scan(x, dt, A, B, C, chunk_size, D=None, dt_bias=None, dt_softplus=False):
        assert dt_softplus and D is not None and dt_bias is not None  # what Mamba2 passes
        y = ssd_chunked(x.float(), F.softplus(dt + dt_bias), A, B.float(), C.float(), chunk_size)
        return (y + x.float() * D[:, None]).to(x.dtype)

    def norm(y, weight, bias, z=None, eps=1e-6, group_size=None, norm_before_gate=True):
        assert bias is None and z is not None and not norm_before_gate
        return gated_rmsnorm_reference(y, z, weight, eps, group_size).to(y.dtype)

    monkeypatch.setattr(mamba2, "triton_ops", lambda: (scan, norm))


def _scan_args(dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    b, length, h, p, groups, n = 2, 19, 4, 8, 1, 16
    x = torch.randn(b, length, h, p, generator=g).to(dtype)  # (B, L, H, P)
    dt = torch.randn(b, length, h, generator=g)  # (B, L, H), raw
    A = -torch.rand(h, generator=g) - 0.1  # (H,)
    B = torch.randn(b, length, groups, n, generator=g).to(dtype)  # (B, L, G, N)
    C = torch.randn(b, length, groups, n, generator=g).to(dtype)
    return x, dt, A, B, C, CHUNK, torch.rand(h, generator=g), torch.rand(h, generator=g)


def _norm_args(dtype=torch.float32):
    g = torch.Generator().manual_seed(1)
    y, z = (torch.randn(2, 19, 32, generator=g).to(dtype) for _ in range(2))  # (B, L, D)
    return y, z, torch.rand(32, generator=g) + 0.5, 1e-5, 16


def _both(scan_args, norm_args):
    return ssm_ops.chunk_scan(*scan_args), ssm_ops.gated_rmsnorm(*norm_args)


def _traced_ops(grad: bool) -> tuple[set, tuple]:
    """Compile ``_both`` with a backend that records the graph's call targets."""
    seen = set()

    def backend(gm, example_inputs):
        seen.update(str(node.target) for node in gm.graph.nodes if node.op == "call_function")
        return gm.forward

    args = _scan_args(), _norm_args()
    with torch.set_grad_enabled(grad):
        out = torch.compile(_both, backend=backend, fullgraph=True)(*args)
    torch._dynamo.reset()
    return seen, out


def test_the_operators_fake_shapes_match_their_results(twins):
    for dtype in (torch.float32, torch.bfloat16):
        torch.library.opcheck(
            torch.ops.vfi.ssd_chunk_scan,
            _scan_args(dtype),
            test_utils=("test_schema", "test_faketensor"),
        )
        torch.library.opcheck(
            torch.ops.vfi.gated_rmsnorm,
            _norm_args(dtype),
            test_utils=("test_schema", "test_faketensor"),
        )


def test_compiled_inference_calls_them_as_single_operators(twins):
    """fullgraph=True: any break would raise. The operators' results equal the direct calls."""
    seen, (y, n) = _traced_ops(grad=False)
    assert {"vfi.ssd_chunk_scan.default", "vfi.gated_rmsnorm.default"} <= seen
    ref_y, ref_n = _both(_scan_args(), _norm_args())
    torch.testing.assert_close(y, ref_y, rtol=0, atol=0)
    torch.testing.assert_close(n, ref_n, rtol=0, atol=0)


def test_with_autograd_on_mamba_ssm_is_called_directly(twins):
    """The operators have no backward: compiled training traces mamba-ssm's functions (here the
    twins) as before, and eager calls never touch the operators."""
    seen, _ = _traced_ops(grad=True)
    assert not any(name.startswith("vfi.") for name in seen)


def test_without_mamba_ssm_the_operators_say_so(monkeypatch):
    monkeypatch.setattr(mamba2, "triton_ops", lambda: None)
    with pytest.raises(RuntimeError, match="mamba-ssm"):
        torch.ops.vfi.gated_rmsnorm(*_norm_args())
