"""Frames to and from the GPU without stalling the model thread, and the one-off GPU warm-up.

On CUDA the model thread only *queues* work; nothing in its loop waits for the GPU:

- upload: a decoded frame (pinned uint8, (H, W, 3)) is copied and converted to float (1, 3, H, W)
  on a side stream; the compute stream waits on that stream (an event, not the host), so the copy
  of the next frame overlaps the forward of the previous batch;
- download: the quantised output (B, H, W, 3) (uint8 or uint16: half or a quarter of the float
  bytes) is copied on another side stream into pinned host memory; the event that marks its arrival
  travels with the frame to the encode side (:mod:`engine.encode`), whose conversion thread waits.

The caching allocators keep this safe: tensors used on a side stream are ``record_stream``-ed, and
pinned host blocks are reused only once the copies that touched them have completed.

On CPU every function is the plain synchronous equivalent.
"""

from __future__ import annotations

import time
from contextlib import contextmanager


class DeviceIO:
    def __init__(self, device, depth: int, stages):
        import torch

        from engine.stages import GpuTimer

        self.device, self.depth, self.stages = device, depth, stages
        self.cuda = device.type == "cuda"
        if self.cuda:
            self.up = torch.cuda.Stream(device)
            self.down = torch.cuda.Stream(device)
            self.timer = GpuTimer(stages)

    def upload(self, image):
        """Integer RGB (H, W, 3) on the host -> float (1, 3, H, W) in [0, 1] on the device."""
        import torch

        from engine.video.color import to_float

        if not self.cuda:
            t0 = time.perf_counter()
            x = to_float(image.permute(2, 0, 1).unsqueeze(0), self.depth)
            self.stages["upload"].add(time.perf_counter() - t0)
            return x
        main = torch.cuda.current_stream(self.device)
        with torch.cuda.stream(self.up):
            start = self.timer.mark(self.up)
            x = image.to(self.device, non_blocking=True)
            x = to_float(x.permute(2, 0, 1).unsqueeze(0), self.depth)  # (1, 3, H, W)
            end = self.timer.mark(self.up)
        main.wait_event(end)
        x.record_stream(main)
        self.timer.span("upload", start, end, 1)
        return x

    @contextmanager
    def model_time(self, frames: int):
        """Time the forward(s) queued inside the block (GPU time on CUDA, wall time on CPU)."""
        if not self.cuda:
            t0 = time.perf_counter()
            yield
            self.stages["model"].add(time.perf_counter() - t0, frames)
            return
        start = self.timer.mark()
        yield
        self.timer.span("model", start, self.timer.mark(), frames)

    def download(self, q) -> list[tuple]:
        """Quantised (B, H, W, 3) -> [(host (H, W, 3) tensor, ready event or None)] per frame."""
        import torch

        if not self.cuda:
            return [(q[i], None) for i in range(q.shape[0])]
        q = q.contiguous()
        host = torch.empty(q.shape, dtype=q.dtype, pin_memory=True)
        self.down.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self.down):
            start = self.timer.mark(self.down)
            host.copy_(q, non_blocking=True)
            end = self.timer.mark(self.down)
        q.record_stream(self.down)
        self.timer.span("download", start, end, q.shape[0])
        return [(host[i], end) for i in range(q.shape[0])]

    def harvest(self, wait: bool = False) -> None:
        if self.cuda:
            self.timer.harvest(wait)


def measure_bytes_per_pixel(interp, batch: int = 1) -> float:
    """Peak CUDA bytes per input pixel of one forward, from two small sizes (slope, not intercept).

    Measured eagerly (a graph-less twin of ``interp`` sharing its model): capturing CUDA graphs at
    the probe sizes would keep their memory pools alive for the whole run.
    """
    import torch

    from engine.interpolator import Interpolator

    eager = Interpolator(interp.model, device=interp.device, precision=interp.precision,
                         scale=interp.scale, cuda_graphs=False)  # fmt: skip
    sides = (256, 512)
    for side in sides:  # first forwards allocate one-off workspaces (cuDNN, Triton): not per pixel
        x = torch.rand(batch, 3, side, side, device=interp.device)
        eager(x, x.flip(-1), 0.5)
    peaks = []
    for side in sides:
        x = torch.rand(batch, 3, side, side, device=interp.device)
        torch.cuda.synchronize(interp.device)
        torch.cuda.reset_peak_memory_stats(interp.device)
        base = torch.cuda.memory_allocated(interp.device)
        eager(x, x.flip(-1), 0.5)
        torch.cuda.synchronize(interp.device)
        peaks.append(torch.cuda.max_memory_allocated(interp.device) - base)
        del x
    slope = (peaks[1] - peaks[0]) / (batch * (512**2 - 256**2))
    if slope <= 0:  # allocator noise: fall back to the whole peak per pixel (an overestimate)
        slope = peaks[1] / (batch * 512**2)
    return max(slope, 1.0)
