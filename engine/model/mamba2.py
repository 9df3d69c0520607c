"""Mamba2 mixer: a pure-PyTorch implementation with the parameters of ``mamba_ssm.Mamba2``.

Parameter names and shapes are identical to ``mamba_ssm.modules.mamba2.Mamba2`` (in_proj, conv1d,
dt_bias, A_log, D, norm.weight, out_proj), so state dicts load both ways and CPU and GPU share
checkpoints. The layer is

    in_proj(u) -> [z, xBC, dt];  xBC -> causal depthwise conv1d -> SiLU -> [x, B, C]
    y = SSD(x, dt, A, B, C) + D * x           (per head: h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t)
    out = out_proj(RMSNorm(y * SiLU(z)))      (gated RMSNorm, gate applied before the norm)

Three implementations of the SSD scan, one function each:

- :func:`ssd_reference` — the sequential recurrence, a loop over time. Slow and obviously right.
- :func:`ssd_chunked` — the chunked "state space duality" form (quadratic inside chunks, a linear
  recurrence between chunk states), all in PyTorch: the CPU path (short chunks, states passed in a
  loop), and the GPU path without mamba-ssm (the config's chunks, states passed in one product).
- ``mamba_ssm``'s Triton kernel ``mamba_chunk_scan_combined``, used on CUDA when importable
  (through :mod:`engine.model.ssm_ops`, which keeps it inside one torch.compile graph).

Three implementations of the causal depthwise conv1d + SiLU in front of the scan:

- :meth:`Mamba2.causal_conv` + ``F.silu`` — PyTorch (cuDNN on CUDA): the reference and the fallback.
- ``causal_conv1d``'s fused CUDA kernel (``causal_conv1d_fn(..., activation="silu")``), used on CUDA
  when that package is importable and the shapes suit it (:func:`conv_op`); ``VFI_CAUSAL_CONV1D=0``
  turns it off (e.g. to compare, or around a broken build).
- vfi's own Triton kernel (:func:`engine.model.triton_kernels.conv_silu`), inference only, where
  the fused kernel is absent: on by default on CUDA, ``VFI_TRITON_KERNELS=0`` turns it off
  (:mod:`engine.model.fastpath`).

The recurrence always runs in float32, also under bf16/fp16 autocast: the exponentials of cumulative
decay sums lose too much in 8-bit mantissas (see ``Mamba2.scan`` for what stays in bf16).
"""

from __future__ import annotations

import functools
import math
import os
import sys
import types

import torch
import torch.nn.functional as F
from torch import nn

from engine.model import fastpath, ssm_ops

# ---------------------------------------------------------------------------------------------
# Optional fast path: mamba_ssm's Triton kernels


@functools.lru_cache(maxsize=1)
def triton_ops():
    """Return ``(mamba_chunk_scan_combined, rmsnorm_fn)`` from mamba_ssm, or None if unavailable.

    ``import mamba_ssm`` imports its Mamba-1 CUDA extension ``selective_scan_cuda`` unconditionally
    (state-spaces/mamba#237); builds made with MAMBA_SKIP_CUDA_BUILD lack it although the Mamba2
    Triton ops work. We register an empty placeholder under that name (Mamba-1 is never called
    here) so the Triton ops can be imported.
    """
    if not torch.cuda.is_available():
        return None
    # mamba_ssm's kernels are autotuned over many configs (~18 s per process on an H100 even with
    # compiled kernels cached). Triton keeps the winners on disk when this is set before the
    # kernels are defined, so only a machine's first run pays; a user's own setting wins.
    os.environ.setdefault("TRITON_CACHE_AUTOTUNING", "1")
    for attempt in range(2):
        try:
            from mamba_ssm.ops.triton.layernorm_gated import rmsnorm_fn
            from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined

            return mamba_chunk_scan_combined, rmsnorm_fn
        except ModuleNotFoundError as e:
            if e.name != "selective_scan_cuda" or attempt:
                return None
            sys.modules["selective_scan_cuda"] = types.ModuleType("selective_scan_cuda")
        except ImportError:
            return None
    return None


CONV_ENV = "VFI_CAUSAL_CONV1D"  # "0" turns the fused causal-conv1d kernel off


@functools.lru_cache(maxsize=1)
def conv_op():
    """Return ``causal_conv1d_fn`` from the optional causal-conv1d package, or None.

    None without CUDA, without the package (or its compiled extension), or with
    ``VFI_CAUSAL_CONV1D=0``. Read once per process.
    """
    if os.environ.get(CONV_ENV, "1") == "0" or not torch.cuda.is_available():
        return None
    try:
        from causal_conv1d import causal_conv1d_fn
    except ImportError:  # also a build without its CUDA extension (causal_conv1d_cuda)
        return None
    return causal_conv1d_fn


# Constants for torch.compile: traced as Python, the lookups above (imports, environment reads,
# lru_cache) hold calls Dynamo may not follow, each a potential graph break in every Mamba2 call.
# (With these and engine/model/ssm_ops.py the compiled 1080p forward is one graph on an H100.)
@torch.compiler.assume_constant_result
def has_triton_ops() -> bool:
    return triton_ops() is not None


@torch.compiler.assume_constant_result
def has_conv_op() -> bool:
    return conv_op() is not None


# ---------------------------------------------------------------------------------------------
# SSD scans. Shapes: x (B, L, H, P), dt (B, L, H) already softplus'ed, A (H,) negative,
# Bm/Cm (B, L, G, N) with H divisible by G. Return y (B, L, H, P) without the D skip.


def ssd_reference(x, dt, A, Bm, Cm):
    """Sequential recurrence h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T, y_t = h_t C_t."""
    b, length, h, p = x.shape
    rep = h // Bm.shape[2]
    Bh = Bm.repeat_interleave(rep, dim=2)  # (B, L, H, N)
    Ch = Cm.repeat_interleave(rep, dim=2)
    state = x.new_zeros(b, h, p, Bm.shape[-1])  # (B, H, P, N)
    ys = []
    for i in range(length):
        decay = torch.exp(dt[:, i] * A)  # (B, H)
        inp = (dt[:, i, :, None] * x[:, i])[..., None] * Bh[:, i, :, None, :]  # (B, H, P, N)
        state = decay[..., None, None] * state + inp
        ys.append(torch.einsum("bhpn,bhn->bhp", state, Ch[:, i]))
    return torch.stack(ys, dim=1)


# The PyTorch scan's chunk length on the CPU, with the chunk states passed in a loop. The work
# inside chunks grows with the length, the number of steps between them shrinks: at the bundled
# vfi-s's 480p shapes (2 cores, fp32) 16 and 32 were fastest (3x faster than 128 with the matrix
# passing); 32 halves the loop's steps (docs/benchmarks.md, CPU section).
CPU_CHUNK_SIZE = 32


def _segsum(a: torch.Tensor) -> torch.Tensor:
    """a (..., T) -> (..., T, T) with out[i, j] = a[j+1] + ... + a[i] for i >= j, -inf above.

    Built from masked cumulative sums (not a difference of cumsums) for numerical stability.
    """
    t = a.shape[-1]
    a = a[..., None].expand(*a.shape, t)  # (..., T, T): a[..., i, j] = a_i
    strict = torch.tril(torch.ones(t, t, dtype=torch.bool, device=a.device), diagonal=-1)
    a = a.masked_fill(~strict, 0)
    out = torch.cumsum(a, dim=-2)
    keep = torch.tril(torch.ones(t, t, dtype=torch.bool, device=a.device), diagonal=0)
    return out.masked_fill(~keep, float("-inf"))


def ssd_chunked(x, dt, A, Bm, Cm, chunk_size: int, state_passing: str = "matrix"):
    """The chunked SSD algorithm: exact, O(L * chunk) memory, batched matrix products.

    ``state_passing`` picks how step 3 carries the chunk states along the sequence, with the same
    result: ``"matrix"`` multiplies by the (c+1, c+1) matrix of decays between all chunk pairs
    (a few large products, so few kernel launches: the GPU's choice, but O(c^2) work), ``"loop"``
    runs the recurrence one chunk at a time (O(c) work in c small steps: the CPU's choice, where it
    makes short chunks cheap; see CPU_CHUNK_SIZE).
    """
    if state_passing not in ("matrix", "loop"):
        raise ValueError(f"state_passing must be 'matrix' or 'loop', got {state_passing!r}")
    b, length, h, p = x.shape
    g, n = Bm.shape[2], Bm.shape[3]
    r = h // g  # heads per group: head j * r + i reads group j's B and C
    pad = (-length) % chunk_size
    if pad:  # zero dt and x in the padding: no decay, no input; causal, so earlier y are unchanged
        x = F.pad(x, (0, 0, 0, 0, 0, pad))
        dt = F.pad(dt, (0, 0, 0, pad))
        Bm = F.pad(Bm, (0, 0, 0, 0, 0, pad))
        Cm = F.pad(Cm, (0, 0, 0, 0, 0, pad))
    c, l = x.shape[1] // chunk_size, chunk_size
    Bc = Bm.reshape(b, c, l, g, n)  # (B, c, l, G, N)
    Cc = Cm.reshape(b, c, l, g, n)
    X = (x * dt[..., None]).reshape(b, c, l, g, r, p)  # (B, c, l, G, R, P)
    # The decays stay in the layout of X (time before heads), so that scaling X by them
    # broadcasts over P alone; only the intra-chunk matrix wants heads first.
    Adt = (dt * A).reshape(b, c, l, h)  # (B, c, l, H)
    A_cum = torch.cumsum(Adt, dim=2)  # (B, c, l, H)

    # 1. Within each chunk: a masked, decayed attention-like product. C B^T is the same for the
    #    heads of a group, so it is formed once per group, not once per head.
    Lmat = torch.exp(_segsum(Adt.permute(0, 3, 1, 2))).reshape(b, g, r, c, l, l)  # (B,G,R,c,l,s)
    CB = torch.einsum("bclgn,bcsgn->bgcls", Cc, Bc)  # (B, G, c, l, s)
    y_diag = torch.einsum("bgrcls,bcsgrp->bclgrp", CB[:, :, None] * Lmat, X)  # (B, c, l, G, R, P)

    # 2. The state each chunk leaves behind (inputs decayed to the chunk's end).
    decay_to_end = torch.exp(A_cum[:, :, -1:] - A_cum)  # (B, c, l, H)
    X_end = X * decay_to_end.reshape(b, c, l, g, r, 1)  # (B, c, l, G, R, P)
    states = torch.einsum("bclgn,bclgrp->bcgrpn", Bc, X_end).reshape(b, c, h, p, n)  # (B,c,H,P,N)

    # 3. Pass states between chunks: the same recurrence, one step per chunk.
    if state_passing == "loop":
        chunk_decay = torch.exp(A_cum[:, :, -1])[..., None, None]  # (B, c, H, 1, 1)
        entering, s = [], torch.zeros_like(states[:, 0])  # (B, H, P, N)
        for k in range(c):
            entering.append(s)
            s = chunk_decay[:, k] * s + states[:, k]
        states = torch.stack(entering, dim=1)  # (B, c, H, P, N): the state entering each chunk
    else:  # "matrix"
        states = torch.cat([torch.zeros_like(states[:, :1]), states], dim=1)  # (B, c+1, H, P, N)
        chunk_sums = F.pad(A_cum[:, :, -1].transpose(1, 2), (1, 0))  # (B, H, c+1)
        decay_chunk = torch.exp(_segsum(chunk_sums))  # (B, H, c+1, c+1)
        states = torch.einsum("bhzc,bchpn->bzhpn", decay_chunk, states)[:, :-1]  # (B, c, H, P, N)

    # 4. Each position reads the state entering its chunk, decayed to its offset.
    decay_in = torch.exp(A_cum).reshape(b, c, l, g, r, 1)  # (B, c, l, G, R, 1)
    y_off = torch.einsum("bclgn,bcgrpn->bclgrp", Cc, states.reshape(b, c, g, r, p, n))
    y = y_diag + y_off * decay_in  # (B, c, l, G, R, P)
    return y.reshape(b, c * l, h, p)[:, :length]


def gated_rmsnorm_reference(y, z, weight, eps: float, group_size: int):
    """RMSNorm(y * SiLU(z)) * weight, normalised per group of ``group_size`` channels."""
    work = torch.promote_types(y.dtype, torch.float32)  # float32, or float64 in parity tests
    y = y.to(work) * F.silu(z.to(work))
    shape = y.shape
    y = y.reshape(*shape[:-1], -1, group_size)
    y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + eps)
    return y.reshape(shape) * weight.to(work)


# ---------------------------------------------------------------------------------------------


class RMSNormGated(nn.Module):
    """Holds ``norm.weight`` exactly as mamba_ssm's RMSNormGated (gate before the norm)."""

    def __init__(self, d: int, eps: float = 1e-5, group_size: int | None = None):
        super().__init__()
        self.eps = eps
        self.group_size = group_size or d
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, y, z):
        if y.is_cuda and has_triton_ops():
            # The Triton norm computes its statistics in fp32 whatever the input dtype.
            return ssm_ops.gated_rmsnorm(y, z.to(y.dtype), self.weight, self.eps, self.group_size)
        return gated_rmsnorm_reference(y, z, self.weight, self.eps, self.group_size)


class Mamba2(nn.Module):
    """Mamba2 mixer over sequences (B, L, D) -> (B, L, D); see the module docstring.

    The constructor arguments and their defaults follow ``mamba_ssm.Mamba2`` (those this project
    uses). ``backend`` picks the scan: "auto" (Triton on CUDA when mamba-ssm is importable, else
    PyTorch), "torch" or "reference" (the sequential loop; for tests).
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 128,
        d_conv: int = 4,
        expand: int = 2,
        headdim: int = 64,
        ngroups: int = 1,
        A_init_range: tuple[float, float] = (1, 16),
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        bias: bool = False,
        conv_bias: bool = True,
        chunk_size: int = 256,
        backend: str = "auto",
    ):
        super().__init__()
        self.d_model, self.d_state, self.headdim, self.ngroups = d_model, d_state, headdim, ngroups
        self.d_inner = expand * d_model
        if self.d_inner % headdim:
            raise ValueError(f"expand * d_model ({self.d_inner}) must be a multiple of headdim")
        self.nheads = self.d_inner // headdim
        self.chunk_size = chunk_size
        self.backend = backend
        d_in_proj = 2 * self.d_inner + 2 * ngroups * d_state + self.nheads
        self.in_proj = nn.Linear(d_model, d_in_proj, bias=bias)
        conv_dim = self.d_inner + 2 * ngroups * d_state
        self.conv1d = nn.Conv1d(
            conv_dim, conv_dim, d_conv, groups=conv_dim, padding=d_conv - 1, bias=conv_bias
        )
        # dt initialised log-uniformly in [dt_min, dt_max]; dt_bias = softplus^-1(dt).
        dt = torch.exp(
            torch.rand(self.nheads) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        ).clamp(min=dt_init_floor)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.dt_bias._no_weight_decay = True
        A = torch.empty(self.nheads).uniform_(*A_init_range)
        self.A_log = nn.Parameter(torch.log(A))
        self.A_log._no_weight_decay = True
        self.D = nn.Parameter(torch.ones(self.nheads))
        self.D._no_weight_decay = True
        self.norm = RMSNormGated(self.d_inner, eps=1e-5, group_size=self.d_inner // ngroups)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        b, length, _ = u.shape
        zxbcdt = self.in_proj(u)  # (B, L, 2*Di + 2*G*N + H)
        z, xbc, dt = torch.split(
            zxbcdt, [self.d_inner, self.d_inner + 2 * self.ngroups * self.d_state, self.nheads], -1
        )
        xbc = self.conv_silu(xbc)  # (B, L, Di + 2*G*N)
        x, Bm, Cm = torch.split(
            xbc, [self.d_inner, self.ngroups * self.d_state, self.ngroups * self.d_state], -1
        )
        y = self.scan(
            x.reshape(b, length, self.nheads, self.headdim),
            dt,
            Bm.reshape(b, length, self.ngroups, self.d_state),
            Cm.reshape(b, length, self.ngroups, self.d_state),
        )  # (B, L, H, P) float32
        y = self.norm(y.reshape(b, length, self.d_inner), z)
        # Under autocast the Linear casts for itself; otherwise match the weights' dtype.
        return self.out_proj(y if _autocast_on(u) else y.to(self.out_proj.weight.dtype))

    def conv_silu(self, xbc: torch.Tensor) -> torch.Tensor:
        """SiLU(causal depthwise conv1d over time) on (B, L, C): fused kernel or PyTorch.

        The fused kernel reads (B, C, L) with channel stride 1 (our (B, L, C) memory, transposed)
        but needs the other strides to be multiples of 8: ``xbc`` is a slice of the in_proj output,
        whose row also holds z and dt, so it is made contiguous first (one copy of xbc; the kernel
        then saves the separate conv output, SiLU and their copies). The kernel takes the weights
        in their own dtype (fp32 under autocast, where the PyTorch conv gets them cast to bf16/fp16),
        hence the per-dtype tolerances of its parity test.
        """
        fused = xbc.is_cuda and self.backend == "auto" and has_conv_op()
        k = self.conv1d.kernel_size[0]
        if not fused or xbc.shape[-1] % 8 or not 2 <= k <= 4:
            kernels = fastpath.triton_kernels(xbc) if self.backend == "auto" else None
            if kernels is not None:  # vfi's own kernel, inference only (fastpath.py)
                return kernels.conv_silu(xbc, self.conv1d.weight, self.conv1d.bias)
            return F.silu(self.causal_conv(xbc))
        x = xbc.contiguous().transpose(1, 2)  # (B, C, L), channel-last strides
        y = conv_op()(x, self.conv1d.weight.squeeze(1), self.conv1d.bias, activation="silu")
        return y.transpose(1, 2)  # (B, L, C)

    def causal_conv(self, xbc: torch.Tensor) -> torch.Tensor:
        """Depthwise causal conv1d over time on (B, L, C), without leaving the (B, L, C) layout.

        ``self.conv1d`` holds the weights (C, 1, K) as mamba_ssm does; ``F.conv1d`` on the
        transposed view would copy to (B, C, L) and run a slow generic depthwise kernel. Viewed as
        a (B, C, 1, L) image, the (B, L, C) tensor is already channels-last, which cuDNN's
        depthwise kernels take as it is.
        """
        k = self.conv1d.kernel_size[0]
        x = xbc.transpose(1, 2).unsqueeze(2)  # (B, C, 1, L), channels-last strides
        w = self.conv1d.weight.unsqueeze(2)  # (C, 1, 1, K)
        y = F.conv2d(x, w, self.conv1d.bias, padding=(0, k - 1), groups=w.shape[0])
        return y[..., : xbc.shape[1]].squeeze(2).transpose(1, 2)  # causal: drop the tail

    def scan(self, x, dt, Bm, Cm) -> torch.Tensor:
        """SSD scan + D skip; dt is the raw projection. The recurrence always runs in fp32.

        PyTorch path: every input is cast to fp32 (fp64 in parity tests) with autocast off.
        Triton path: dt, A, D and dt_bias are fp32 and the kernels keep the decays, their
        cumulative sums and the chunk states in fp32; x, B and C enter in their autocast dtype
        (bf16) and are multiplied with fp32 accumulation, as mamba-ssm does under autocast. Casting
        them up first would only add three full-size copies (docs/benchmarks.md).
        """
        work = torch.promote_types(x.dtype, torch.float32)  # float32, or float64 in parity tests
        A = -torch.exp(self.A_log.to(work))  # (H,)
        with torch.autocast(x.device.type, enabled=False):
            if x.is_cuda and self.backend == "auto" and has_triton_ops():
                return ssm_ops.chunk_scan(
                    x, dt.to(work), A, Bm.to(x.dtype), Cm.to(x.dtype), self.chunk_size,
                    self.D.to(work), self.dt_bias.to(work),
                )  # fmt: skip
            x, dt, Bm, Cm = x.to(work), dt.to(work), Bm.to(work), Cm.to(work)
            dt = F.softplus(dt + self.dt_bias.to(work))  # (B, L, H)
            if self.backend == "reference":
                y = ssd_reference(x, dt, A, Bm, Cm)
            elif x.is_cuda or torch.compiler.is_compiling():
                # Traced by torch.compile, the loop would unroll into one graph node per chunk
                # (thousands at 1080p): compiled code keeps the fixed-size matrix form.
                y = ssd_chunked(x, dt, A, Bm, Cm, self.chunk_size)
            else:  # the chunk length is a speed choice only: every length gives the same scan
                y = ssd_chunked(x, dt, A, Bm, Cm, CPU_CHUNK_SIZE, state_passing="loop")
            return y + x * self.D.to(work)[:, None]


def _autocast_on(t: torch.Tensor) -> bool:
    return torch.is_autocast_enabled(t.device.type)
