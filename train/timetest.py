"""The TimeTest: how fast a model interpolates, measured the same way on every machine.

Random frames at a named resolution (or WxH), already on the device; warm-up runs; then the
median of many timed runs (CUDA events around each run on a GPU, the host clock on the CPU), with
the parameter count and the peak memory. It follows EMA-VFI / VFIMamba ``benchmark/TimeTest.py``
(which reports the mean of 100 runs after 50 warm-ups; we report the median, robust to stalls, and
the mean too). Inference goes through the same :class:`train.bench.Predictor` as the scores.
"""

from __future__ import annotations

import math
import statistics
import time

import torch

from engine.errors import VfiError
from engine.interpolator import Interpolator
from train.bench import BenchResult, Predictor

RESOLUTIONS = {"720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160)}


def parse_resolution(text: str) -> tuple[int, int]:
    """'720p' | '1080p' | '4k' | 'WxH' -> (W, H)."""
    key = text.strip().lower()
    if key in RESOLUTIONS:
        return RESOLUTIONS[key]
    w, sep, h = key.partition("x")
    if sep and w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0:
        return int(w), int(h)
    raise VfiError(f"bad resolution {text!r}; use 720p, 1080p, 4k or WxH like 640x360")


def time_calls(once, runs: int, cuda: bool, progress=None) -> list[float]:
    """Milliseconds of each of ``runs`` calls: CUDA events on the GPU, the host clock on the CPU."""
    times = []
    for i in range(runs):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            once()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            once()
            times.append((time.perf_counter() - t0) * 1000)
        if progress:
            progress(i + 1, runs)
    return times


def time_model(
    model,
    resolution: str = "1080p",
    batch: int = 1,
    device: str = "auto",
    precision: str = "auto",
    scale: float = 1.0,
    tta: bool = False,
    compile: bool = False,
    warmup: int | None = None,
    runs: int | None = None,
    progress=None,
    model_label: str | None = None,
) -> BenchResult:
    """Median latency of one interpolation of ``batch`` random frame pairs at ``resolution``.

    CUDA: each run timed with CUDA events (synchronised), after ``warmup`` runs (default 20 / 100
    runs). CPU: host clock (``time.perf_counter``), default 2 / 10 runs. Also reports the parameter
    count and the peak memory (CUDA: max allocated; CPU: the process's peak RSS).
    """
    w, h = parse_resolution(resolution)
    if batch < 1:
        raise VfiError("--batch must be at least 1")
    n_params = sum(p.numel() for p in model.parameters())
    model_label = model_label or type(model).__name__
    # --compile times what `vfi interpolate --compile` runs: the Interpolator's compiled path
    # (static shapes, one graph inside the CUDA graph, padded convolutions on CUDA).
    interp = Interpolator(model, device=device, precision=precision, scale=scale, compile=compile)
    predictor = Predictor(interp, 0, tta)
    dev = interp.device
    cuda = dev.type == "cuda"
    warmup = (20 if cuda else 2) if warmup is None else warmup
    runs = (100 if cuda else 10) if runs is None else runs
    if runs < 1 or warmup < 0:
        raise VfiError("--runs must be at least 1 and --warmup at least 0")
    gen = torch.Generator().manual_seed(0)
    img0 = torch.rand(batch, 3, h, w, generator=gen).to(dev)
    img1 = torch.rand(batch, 3, h, w, generator=gen).to(dev)
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)

    def once():
        return predictor.infer(img0, img1, 0.5, tta)

    try:
        for _ in range(warmup):
            once()
    except torch.cuda.OutOfMemoryError:
        raise VfiError(
            f"out of GPU memory at {w}x{h} x{batch}; try a smaller --batch or resolution"
        ) from None
    except Exception as e:  # torch.compile surfaces backend failures as many exception types
        if not compile:
            raise
        raise VfiError(
            f"--compile failed on this machine ({type(e).__name__}); run without it"
        ) from None
    times = time_calls(once, runs, cuda, progress)
    median = statistics.median(times)
    if cuda:
        peak_mb, peak_kind = torch.cuda.max_memory_allocated(dev) / 2**20, "cuda max allocated"
    else:
        import resource

        peak_mb, peak_kind = (
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "process peak RSS",
        )
    protocol = {
        "reference": "EMA-VFI / VFIMamba benchmark/TimeTest.py (median instead of mean)",
        "resolution": f"{w}x{h}",
        "batch": batch,
        "precision": interp.precision,
        "device": str(dev) + (f" ({torch.cuda.get_device_name(dev)})" if cuda else ""),
        "scale": scale,
        "tta": tta,
        "compile": compile,
        "warmup": warmup,
        "runs": runs,
        "timer": "cuda events" if cuda else "host clock (perf_counter)",
        "peak_memory": peak_kind,
        "model": model_label,
        "input": "random uniform frames, already on the device; t=0.5",
    }
    summary = {
        "n": runs,
        "median_ms": median,
        "mean_ms": statistics.fmean(times),
        "min_ms": min(times),
        "fps": batch * 1000.0 / median if median > 0 else math.inf,
        "params": n_params,
        "peak_mem_mb": peak_mb,
    }
    items = [{"name": f"run_{i:04d}", "ms": ms} for i, ms in enumerate(times)]
    return BenchResult("time", protocol, summary, items)
