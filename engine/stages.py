"""Per-stage accounting of the video pipeline: where the wall time goes.

Every stage (decode, upload, model, download, convert, encode, mux, plus the one-off warm-up) adds
its busy seconds and the frames it handled to a :class:`Stage`. CPU stages time themselves with
``time.perf_counter`` in the thread that does the work (several threads may add to one stage: the
lock keeps the sums exact). GPU stages cannot: their work is queued asynchronously, so
:class:`GpuTimer` records CUDA events around each batch and adds their elapsed times once the events
have completed (polled without blocking, drained at the end of the run).

``rate`` is frames per busy second of one worker; a stage run by ``parallel`` threads can sustain
about ``rate * parallel``. The lowest capacity among the stages is the pipeline's ceiling.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

STAGE_NAMES = ("warmup", "decode", "upload", "model", "download", "convert", "encode", "mux")


class Stage:
    """Busy seconds and frames of one stage (thread-safe sums)."""

    def __init__(self, parallel: int = 1):
        self.busy = 0.0
        self.count = 0
        self.parallel = parallel  # threads (or CUDA streams) doing this stage's work
        self._lock = threading.Lock()

    def add(self, seconds: float, frames: int = 1) -> None:
        with self._lock:
            self.busy += seconds
            self.count += frames

    @contextmanager
    def timed(self, frames: int = 1):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(time.perf_counter() - t0, frames)

    def rate(self) -> float:
        return self.count / self.busy if self.busy > 0 else 0.0

    def to_dict(self) -> dict:
        return {
            "seconds": round(self.busy, 3),
            "frames": self.count,
            "fps": round(self.rate(), 2),
            "parallel": self.parallel,
        }


def new_stages() -> dict[str, Stage]:
    return {name: Stage() for name in STAGE_NAMES}


class GpuTimer:
    """CUDA-event timing of queued GPU work, harvested without ever blocking the launching thread.

    ``mark(stream)`` records an event; ``span(stage, start, end, frames)`` remembers that the work
    between two marks belongs to ``stage``. ``harvest()`` adds the spans whose end event completed.
    """

    def __init__(self, stages: dict[str, Stage]):
        self.stages = stages
        self.pending: list[tuple[str, object, object, int]] = []

    def mark(self, stream=None):
        import torch

        ev = torch.cuda.Event(enable_timing=True)
        ev.record(stream)
        return ev

    def span(self, stage: str, start, end, frames: int) -> None:
        self.pending.append((stage, start, end, frames))
        if len(self.pending) > 64:
            self.harvest()

    def harvest(self, wait: bool = False) -> None:
        keep = []
        for stage, start, end, frames in self.pending:
            if wait:
                end.synchronize()
            if end.query():
                self.stages[stage].add(start.elapsed_time(end) / 1000, frames)
            else:
                keep.append((stage, start, end, frames))
        self.pending = keep
