"""Triton inference kernels for the two memory-bound pieces of the vfi-s forward.

1. :func:`conv_silu` — SiLU(causal depthwise conv1d over time) on the (B, L, C) layout of the
   Mamba2 mixer, reading the strided ``xBC`` slice of the in_proj output as it is. The PyTorch path
   (cuDNN's grouped conv) took 3.4 ms of a 19.3 ms 1080p forward on the H100 for 4 calls of
   21-33 M elements each: a few hundred MB of traffic that should take ~0.1 ms.
2. :func:`bilateral_correlation` — the 49 cosine scores of ``engine/model/corr.py`` in one pass over
   the features, instead of 49 products and 49 channel sums, each a full-size tensor round trip
   (~3 ms of the same forward).

Both accumulate in float32 and store in the input's dtype (bf16 under autocast). Neither has a
backward: they run only with autograd off (``torch.inference_mode``, as in ``Interpolator``), so
training keeps the PyTorch paths. Each PyTorch path stays as the readable twin the parity tests
compare with (``tests/test_triton_kernels.py``: on CPU through Triton's interpreter, on CUDA
compiled).

This module imports triton; :func:`engine.model.fastpath.triton_kernels` decides whether it is
used (on by default for CUDA inference; ``VFI_TRITON_KERNELS=0`` = off) and imports it only then.
``TRITON_INTERPRET=1``, set before triton is imported, runs the kernels on CPU tensors (slowly;
for tests).
"""

from __future__ import annotations

import functools
import types

import torch
import triton
import triton.language as tl

CONV_BLOCK_L, CONV_BLOCK_C = 32, 64  # (time, channel) tile of the conv: 64 channels = 128 B rows
# The cost volume's tile: a row segment of 64 pixels, channels 32 at a time, 4 warps. Chosen by
# the whole compiled 1080p forward on an H100 (8.84-8.93 ms), not by benchmarks/corr_speed.py's
# isolated calls, which ranked (64, 16, 4) first but made the forward 0.3 ms slower (9.21-9.25 ms;
# docs/benchmarks.md, version 7).
CORR_BLOCK_X, CORR_BLOCK_C = 64, 32
CORR_NUM_WARPS = 4


def _conv_silu_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr, L, C, stride_xb, stride_xl, stride_yb, stride_yl,
    K: tl.constexpr, HAS_BIAS: tl.constexpr, BLOCK_L: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """y[b, t, c] = SiLU(bias[c] + sum_k w[c, k] * x[b, t - (K-1) + k, c]); x[t < 0] = 0."""
    pid_b, pid_l, pid_c = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    t = pid_l * BLOCK_L + tl.arange(0, BLOCK_L)  # (BL,) time steps
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)  # (BC,) channels, stride 1
    c_ok = c < C
    x_row = x_ptr + pid_b.to(tl.int64) * stride_xb
    acc = tl.zeros((BLOCK_L, BLOCK_C), dtype=tl.float32)
    for k in tl.static_range(K):
        src = t - (K - 1) + k  # causal: only the past and present
        m = ((src >= 0) & (src < L))[:, None] & c_ok[None, :]
        xv = tl.load(x_row + src.to(tl.int64)[:, None] * stride_xl + c[None, :], mask=m, other=0.0)
        wv = tl.load(w_ptr + c * K + k, mask=c_ok, other=0.0)  # (BC,)
        acc += xv.to(tl.float32) * wv.to(tl.float32)[None, :]
    if HAS_BIAS:
        acc += tl.load(b_ptr + c, mask=c_ok, other=0.0).to(tl.float32)[None, :]
    y = acc / (1.0 + tl.exp(-acc))  # SiLU
    y_row = y_ptr + pid_b.to(tl.int64) * stride_yb
    m = (t < L)[:, None] & c_ok[None, :]
    out = y_row + t.to(tl.int64)[:, None] * stride_yl + c[None, :]
    tl.store(out, y.to(y_ptr.dtype.element_ty), mask=m)


def _corr_kernel(
    a_ptr, b_ptr, o_ptr, H, W, sa_b, sa_c, sa_h, sa_w, sb_b, sb_c, sb_h, sb_w,
    C: tl.constexpr, R: tl.constexpr, BLOCK_X: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """o[b, k, y, x] = <a[b, :, y+dy, x+dx], b[b, :, y-dy, x-dx]>, k = (dy+R)*(2R+1) + (dx+R).

    One program: one row y of one image, BLOCK_X pixels, all (2R+1)^2 displacements; features
    outside the map count as zero. The shifted loads of neighbouring displacements hit the cache.
    a and b are read through their strides (NCHW or channels-last, as the model runs); o is NCHW.
    The loops are runtime loops: unrolled (49 displacements x C / BLOCK_C channel blocks), the 54
    compilations of a tile sweep did not finish in 10 minutes; now they take under 40 s. Products
    are summed over channel blocks in a (BLOCK_C, BLOCK_X) accumulator and reduced across
    channels once per displacement (3x faster at 1080p on an H100, docs/benchmarks.md v7).
    """
    D: tl.constexpr = 2 * R + 1
    pid_row, pid_x = tl.program_id(0), tl.program_id(1)
    bi = pid_row // H
    x = pid_x * BLOCK_X + tl.arange(0, BLOCK_X)  # (BX,)
    # The row as a vector too: masks are then vector & vector only (Triton 3.9's interpreter
    # gets a scalar & vector mask wrong).
    y = pid_row % H + tl.zeros((BLOCK_X,), dtype=tl.int32)  # (BX,)
    hw = H * W
    a_img = a_ptr + bi.to(tl.int64) * sa_b
    b_img = b_ptr + bi.to(tl.int64) * sb_b
    o_img = o_ptr + bi.to(tl.int64) * D * D * hw
    cb = tl.arange(0, BLOCK_C)  # (BC,)
    for i in range(D):
        ya, yb = y + (i - R), y - (i - R)  # frame 0 at y + dy, frame 1 at y - dy
        row_ok = (ya >= 0) & (ya < H) & (yb >= 0) & (yb < H)
        for j in range(D):
            xa, xb = x + (j - R), x - (j - R)
            ok = (xa >= 0) & (xa < W) & (xb >= 0) & (xb < W) & row_ok  # (BX,)
            pa = a_img + (ya.to(tl.int64) * sa_h + xa.to(tl.int64) * sa_w)[None, :]  # (1, BX)
            pb = b_img + (yb.to(tl.int64) * sb_h + xb.to(tl.int64) * sb_w)[None, :]
            acc = tl.zeros((BLOCK_C, BLOCK_X), dtype=tl.float32)
            for c0 in range(0, C, BLOCK_C):
                cc = c0 + cb  # (BC,)
                m = (cc < C)[:, None] & ok[None, :]  # (BC, BX)
                cl = cc.to(tl.int64)[:, None]
                av = tl.load(pa + cl * sa_c, mask=m, other=0.0)  # (BC, BX)
                bv = tl.load(pb + cl * sb_c, mask=m, other=0.0)
                acc += av.to(tl.float32) * bv.to(tl.float32)
            out = o_img + (i * D + j) * hw + y * W + x
            tl.store(out, tl.sum(acc, axis=0).to(o_ptr.dtype.element_ty), mask=x < W)


@functools.cache
def _jitted() -> types.SimpleNamespace:
    """The kernels, jitted on first use (compiled per shape class on CUDA; wrapped for the
    interpreter where TRITON_INTERPRET=1 was set before triton was imported)."""
    return types.SimpleNamespace(conv=triton.jit(_conv_silu_kernel), corr=triton.jit(_corr_kernel))


def conv_silu(xbc: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """SiLU(causal depthwise conv1d) of ``xbc`` (B, L, C), channel stride 1; ``weight`` (C, 1, K).

    Returns a contiguous (B, L, C) tensor of ``xbc``'s dtype.
    """
    if torch.compiler.is_compiling():  # one opaque node for Dynamo (see _conv_silu_op)
        return _conv_silu_op(xbc, weight, bias)
    return _launch_conv_silu(xbc, weight, bias)


def bilateral_correlation(n0: torch.Tensor, n1: torch.Tensor, radius: int) -> torch.Tensor:
    """Scores of unit-normalised features n0, n1 (B, C, h, w), any strides -> (B, (2r+1)^2, h, w),
    contiguous, n0's dtype."""
    if torch.compiler.is_compiling():
        return _correlation_op(n0, n1, radius)
    return _launch_correlation(n0, n1, radius)


def _launch_conv_silu(xbc, weight, bias):
    b, length, c = xbc.shape
    if xbc.stride(-1) != 1:
        xbc = xbc.contiguous()
    k = weight.shape[-1]
    w = weight.reshape(c, k).contiguous()  # (C, K)
    y = torch.empty(b, length, c, dtype=xbc.dtype, device=xbc.device)
    grid = (b, triton.cdiv(length, CONV_BLOCK_L), triton.cdiv(c, CONV_BLOCK_C))
    _jitted().conv[grid](
        xbc, w, bias if bias is not None else w, y, length, c,
        xbc.stride(0), xbc.stride(1), y.stride(0), y.stride(1),
        K=k, HAS_BIAS=bias is not None, BLOCK_L=CONV_BLOCK_L, BLOCK_C=CONV_BLOCK_C,
    )  # fmt: skip
    return y


def _launch_correlation(n0, n1, radius, block_x=None, block_c=None, num_warps=None):
    """The tile and warp count are arguments for benchmarks/corr_speed.py; the model uses the
    module's constants, read at call time so that a benchmark can set them."""
    block_x = block_x or CORR_BLOCK_X
    block_c = block_c or CORR_BLOCK_C
    num_warps = num_warps or CORR_NUM_WARPS
    b, c, h, w = n0.shape
    d = 2 * radius + 1
    out = torch.empty(b, d * d, h, w, dtype=n0.dtype, device=n0.device)
    grid = (b * h, triton.cdiv(w, block_x))
    _jitted().corr[grid](
        n0, n1, out, h, w, *n0.stride(), *n1.stride(),
        C=c, R=radius, BLOCK_X=block_x, BLOCK_C=block_c, num_warps=num_warps,
    )  # fmt: skip
    return out


# Under torch.compile the launches go through these custom operators. Traced as plain Python,
# a launch leads Dynamo into Triton's runtime (on CUDA it stops at a C function it cannot trace,
# `libtriton.getenv_bool`; under the CPU interpreter it fails on the interpreter's pointer
# arithmetic) and breaks the graph at every kernel call. As operators they are single nodes with
# a shape-only "fake" twin, so the compiled forward stays one graph. Eager calls skip them (no
# dispatcher hop per launch).
@torch.library.custom_op("vfi::conv_silu", mutates_args=())
def _conv_silu_op(
    xbc: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    return _launch_conv_silu(xbc, weight, bias)


@_conv_silu_op.register_fake
def _(xbc, weight, bias):
    return xbc.new_empty(xbc.shape)  # (B, L, C), contiguous


@torch.library.custom_op("vfi::bilateral_correlation", mutates_args=())
def _correlation_op(n0: torch.Tensor, n1: torch.Tensor, radius: int) -> torch.Tensor:
    return _launch_correlation(n0, n1, radius)


@_correlation_op.register_fake
def _(n0, n1, radius):
    b, _, h, w = n0.shape
    return n0.new_empty(b, (2 * radius + 1) ** 2, h, w)
