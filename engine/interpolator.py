"""Interpolator: the one inference wrapper every command uses.

It owns what callers should not have to think about: moving frames to the model's device, padding
any H x W up to the model's alignment (replicate padding, cropped back after), precision (autocast
in bf16/fp16 with the SSM scan kept in fp32 inside the model), and tiling of frames too large for the
memory budget. Inputs and outputs follow the engine conventions: float RGB in [0, 1], (B, 3, H, W).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os

import torch
import torch.nn.functional as F

from engine.checks import check_frames
from engine.errors import VfiError, VfiInputError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise VfiError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise VfiError("CUDA was asked for but no CUDA GPU is available; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise VfiError(f"no GPU {dev}; this machine has {torch.cuda.device_count()}")
    return dev


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise VfiError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "fp16" and device.type == "cpu":
        raise VfiError("fp16 is not supported on the CPU; use fp32 or bf16")
    return precision


def time_tensor(t, batch: int, device, dtype=torch.float32) -> torch.Tensor:
    """t as a (B,) tensor; accepts a float or a (B,) / (1,) tensor, all in [0, 1].

    Floats are checked in Python and tensors where they live, so a float t never waits on the GPU.
    """
    if isinstance(t, (int, float)):
        if not 0 <= t <= 1:
            raise VfiInputError(f"t must lie in [0, 1], got {t}")
        return torch.full((batch,), float(t), dtype=dtype, device=device)
    t = torch.as_tensor(t, dtype=dtype)
    if t.ndim == 0:
        t = t.reshape(1)
    if t.ndim != 1 or t.shape[0] not in (1, batch):
        raise VfiInputError(f"t must be a float or a ({batch},) tensor, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all() or (t < 0).any() or (t > 1).any():
        raise VfiInputError("t must lie in [0, 1]")
    return t.to(device).expand(batch)


def pad_to(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Replicate-pad H and W up to a multiple; returns the padded tensor and the original (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        # Replicate padding needs at least one pixel; reflect would fail on tiny frames.
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, (h, w)


class Interpolator:
    """Run ``model`` on frame pairs of any size.

    Args:
        model: a module from :func:`engine.load_model`.
        device: "auto" | "cpu" | "cuda" | "cuda:N".
        precision: "auto" (bf16 on CUDA, fp32 on CPU) | "fp32" | "bf16" | "fp16".
        scale: flow estimated at this fraction of the resolution (1, 0.5, 0.25) for large motion
            and large frames.
        tile: None (whole frames) or a tile side in pixels (see :mod:`engine.tiling`).
        cuda_graphs: on CUDA, capture the forward once per input shape and replay it. The model
            launches a few hundred small kernels; at 1080p on an H100 launching them costs more
            than running them (docs/benchmarks.md), and video frames all have one shape.
        compile: run the forward through ``torch.compile`` (Inductor fuses the elementwise work
            around the convolutions; on CUDA still inside the graph). It compiles once per input
            shape, which takes a minute or two: worth it for long videos only (bundled vfi-s,
            1080p bf16 on an H100: 13.5 -> about 8.6 ms per forward, one graph). On CUDA it
            compiles a copy whose convolutions are padded to multiples of 8 channels
            (engine/model/pad8.py; 8.99 ms on that H100 without it). :meth:`many` compiles the
            model's encode and decode separately (no CUDA graph there).
    """

    def __init__(
        self,
        model,
        device="auto",
        precision="auto",
        scale: float = 1.0,
        tile=None,
        cuda_graphs: bool = True,
        compile: bool = False,
    ):
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        if compile and (why := _cannot_compile(self.device)):
            raise VfiError(why)
        if scale not in (1, 1.0, 0.5, 0.25):
            raise VfiError(f"scale must be 1, 0.5 or 0.25, got {scale}")
        self.scale = float(scale)
        self.tile = tile
        self.model = model.to(self.device).eval()
        if self.device.type == "cuda":
            self.model = cuda_layout(self.model, pad=compile)
        self._graphs = _GraphCache() if cuda_graphs and self.device.type == "cuda" else None
        # Static shapes: frames (or tiles) of a run share one shape, and each new one recompiles.
        # t always arrives as a tensor (time_tensor), so new t values do not recompile.
        wrap = functools.partial(torch.compile, dynamic=False) if compile else (lambda fn: fn)
        self._net = wrap(self.model)
        if hasattr(self.model, "encode"):  # many(): encode once, decode per t
            self._encode, self._decode = wrap(self.model.encode), wrap(self.model.decode)

    @property
    def alignment(self) -> int:
        return math.ceil(getattr(self.model, "alignment", 1) / self.scale)

    def autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=_DTYPES[self.precision])

    @torch.inference_mode()
    def __call__(self, img0: torch.Tensor, img1: torch.Tensor, t=0.5) -> torch.Tensor:
        check_frames(img0, img1)
        out_device = img0.device
        tt = time_tensor(t, img0.shape[0], self.device)
        a = img0.to(self.device, torch.float32, non_blocking=True)
        b = img1.to(self.device, torch.float32, non_blocking=True)
        if self.tile:
            from engine.tiling import tiled_call

            out = tiled_call(self._run, a, b, tt, tile=self.tile, align=self.alignment)
        else:
            out = self._run(a, b, tt)
        return out.to(out_device)

    @torch.inference_mode()
    def many(self, img0: torch.Tensor, img1: torch.Tensor, ts) -> list[torch.Tensor]:
        """Frames at several times between one pair: the backbone runs once, the decoder per t.

        Falls back to one full call per t when tiling (tiles are decoded independently) or when
        the model has no encode/decode split.
        """
        check_frames(img0, img1)
        if self.tile or not hasattr(self.model, "encode"):
            return [self(img0, img1, t) for t in ts]
        times = [time_tensor(t, img0.shape[0], self.device) for t in ts]
        a, (h, w) = self._prepare(img0)
        b, _ = self._prepare(img1)
        with self.autocast():
            state = self._encode(a, b, self.scale)
            outs = [self._decode(state, t) for t in times]
        return [o[..., :h, :w].float().clamp(0, 1).to(img0.device) for o in outs]

    def _prepare(self, x: torch.Tensor):
        x = x.to(self.device, torch.float32, non_blocking=True)
        x, hw = pad_to(x, self.alignment)
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        return x, hw

    def _run(self, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """One forward on whole (possibly unaligned) frames: pad, autocast, crop, clamp."""
        a, (h, w) = self._prepare(a)
        b, _ = self._prepare(b)
        if self._graphs is not None:
            out = self._graphs.run(self._forward, a, b, t)
        else:
            out = self._forward(a, b, t)
        # Out of place: with CUDA graphs `out` is a static buffer that the next replay overwrites.
        return out[..., :h, :w].float().clamp(0, 1)

    def _forward(self, a, b, t):
        with self.autocast():
            return self._net(a, b, t, scale=self.scale) if self.scale != 1 else self._net(a, b, t)


def cuda_layout(model: torch.nn.Module, pad: bool) -> torch.nn.Module:
    """The model as CUDA runs it: NHWC weights and, with ``pad`` (the Interpolator's compiled
    path), convolutions padded to multiples of 8 channels (a copy; ``model`` itself is only
    converted to NHWC). benchmarks/profile_model.py builds its model through this too."""
    if pad:
        # Compiled, the zero channels of the padded convolutions fuse into the kernels that feed
        # them and cuDNN's own padding pass goes (engine/model/pad8.py; H200: -0.37 ms, 1080p).
        # Padded before the layout change below, which must reach the new layers too.
        from engine.model.pad8 import padded_copy

        model = padded_copy(model)
    # cuDNN's bf16/fp16 convolutions run in NHWC; NCHW would add a transpose around each.
    return model.to(memory_format=torch.channels_last)


def _cannot_compile(device: torch.device) -> str | None:
    """Why torch.compile cannot build its kernels on ``device`` here, or None if it can."""
    import shutil

    from engine.model import fastpath

    if device.type == "cuda":  # Inductor's kernels are Triton's: a C compiler for their launchers
        found = fastpath.c_compiler()
        what = "a C compiler (gcc or clang, or $CC)"
    else:  # Inductor writes C++ on CPU
        found = os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++")
        what = "a C++ compiler (g++ or clang++, or $CXX)"
    if found:
        return None
    return f"--compile needs {what} on this machine: install one, or run without --compile"


class _GraphCache:
    """CUDA graphs of one forward, keyed by input shape (a few: frames and tiles), LRU-evicted."""

    MAX_GRAPHS = 4

    def __init__(self):
        self.graphs: dict[tuple, tuple] = {}

    def run(self, fn, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        key = (tuple(a.shape), a.dtype, tuple(t.shape), a.device)
        if key not in self.graphs:
            if len(self.graphs) >= self.MAX_GRAPHS:
                self.graphs.pop(next(iter(self.graphs)))
            self.graphs[key] = self._capture(fn, a, b, t)
        graph, inputs, out = self.graphs.pop(key)
        self.graphs[key] = (graph, inputs, out)  # most recently used last
        for buf, x in zip(inputs, (a, b, t)):
            buf.copy_(x)
        graph.replay()
        return out

    @staticmethod
    def _capture(fn, a, b, t):
        inputs = (a.clone(), b.clone(), t.clone())
        graph, out = capture_graph(fn, *inputs)
        return graph, inputs, out


def capture_graph(fn, *inputs, warmup: int = 2):
    """Capture ``fn(*inputs)`` in a CUDA graph; returns ``(graph, output)``.

    ``inputs`` become the graph's static buffers: copy new data into them, then ``graph.replay()``.
    The warm-up runs outside the graph on a side stream (autotuning, cuDNN plans, caches).
    """
    device = inputs[0].device
    stream = torch.cuda.Stream(device=device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            fn(*inputs)
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn(*inputs)
    return graph, out
