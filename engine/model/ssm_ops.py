"""mamba-ssm's Triton scan and gated RMSNorm, callable inside one torch.compile graph.

:class:`engine.model.mamba2.Mamba2` calls mamba-ssm's ``mamba_chunk_scan_combined`` and
``rmsnorm_fn`` on CUDA (see :func:`engine.model.mamba2.triton_ops`). Both are autograd Functions
that launch autotuned Triton kernels; traced as Python, they lead Dynamo into Triton's autotuner
and runtime, where it may stop and split the graph at every call (4 scans and 4 norms per vfi-s
forward, the scan orders stacked as a batch), and Inductor cannot fuse across a split.

Under torch.compile with autograd off (inference: ``Interpolator(compile=True)``) the two calls go
through custom operators instead: single opaque nodes with a shape-only "fake" twin, so the
compiled forward stays one graph. They register no backward, so with autograd on (training,
compiled or not) and in eager mode mamba-ssm is called directly, as before; eager calls skip the
dispatcher hop.

Shapes: x (B, L, H, P), dt (B, L, H) raw (softplus applied inside, after + dt_bias), A (H,),
B/C (B, L, G, N); the scan returns y + D x (B, L, H, P) in x's dtype. The norm takes y, z (..., D)
and returns RMSNorm(y * SiLU(z)) * weight per group of ``group_size`` channels, in y's dtype.
"""

from __future__ import annotations

import torch


def _opaque() -> bool:
    """True while Dynamo traces an inference forward: route through the custom operators."""
    return torch.compiler.is_compiling() and not torch.is_grad_enabled()


def _mamba():
    from engine.model import mamba2  # not at import time: mamba2 imports this module

    ops = mamba2.triton_ops()
    if ops is None:
        raise RuntimeError("mamba-ssm's Triton ops are not importable here")
    return ops


def chunk_scan(x, dt, A, B, C, chunk_size: int, D, dt_bias) -> torch.Tensor:
    """mamba-ssm's SSD scan with the D skip and softplus(dt + dt_bias) (see the module docstring)."""
    if _opaque():
        return _scan_op(x, dt, A, B, C, chunk_size, D, dt_bias)
    return _launch_scan(x, dt, A, B, C, chunk_size, D, dt_bias)


def gated_rmsnorm(y, z, weight, eps: float, group_size: int) -> torch.Tensor:
    """mamba-ssm's RMSNorm(y * SiLU(z)) * weight (gate before the norm), statistics in fp32."""
    if _opaque():
        return _norm_op(y, z, weight, eps, group_size)
    return _launch_norm(y, z, weight, eps, group_size)


def _launch_scan(x, dt, A, B, C, chunk_size, D, dt_bias):
    return _mamba()[0](
        x, dt, A, B, C, chunk_size=chunk_size, D=D, dt_bias=dt_bias, dt_softplus=True
    )


def _launch_norm(y, z, weight, eps, group_size):
    return _mamba()[1](y, weight, None, z=z, eps=eps, group_size=group_size, norm_before_gate=False)


@torch.library.custom_op("vfi::ssd_chunk_scan", mutates_args=())
def _scan_op(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    chunk_size: int,
    D: torch.Tensor,
    dt_bias: torch.Tensor,
) -> torch.Tensor:
    return _launch_scan(x, dt, A, B, C, chunk_size, D, dt_bias)


@_scan_op.register_fake
def _(x, dt, A, B, C, chunk_size, D, dt_bias):
    return x.new_empty(x.shape)  # (B, L, H, P), contiguous, x's dtype


@torch.library.custom_op("vfi::gated_rmsnorm", mutates_args=())
def _norm_op(
    y: torch.Tensor, z: torch.Tensor, weight: torch.Tensor, eps: float, group_size: int
) -> torch.Tensor:
    return _launch_norm(y, z, weight, eps, group_size)


@_norm_op.register_fake
def _(y, z, weight, eps, group_size):
    return y.new_empty(y.shape)  # (..., D), contiguous, y's dtype
