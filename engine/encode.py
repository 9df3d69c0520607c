"""The encode side of the pipeline: colour conversion and encoders in parallel, segments in order.

Output frames arrive from the model thread in output order as ``(k, rgb, ready)``: ``rgb`` is a
host integer RGB (H, W, 3) array or tensor in the travel format, ``ready`` None or a CUDA event that
completes once the download into ``rgb`` has landed (the model thread never waits for it).

- A pool of conversion threads turns each frame into what the encoder takes (a Y'CbCr
  ``av.VideoFrame`` through :func:`engine.video.writer.rgb_to_frame`, the one RGB -> Y'CbCr path;
  PNG output keeps the array). swscale and the encoders release the GIL, so conversions run in
  parallel with each other, with the encoders and with the model thread.
- Segment workers (``workers``; :func:`default_workers`: 2 up to 1080p, more for bigger frames)
  each encode one segment at a time; segment ``j`` goes to worker ``j % workers``. While one
  worker drains its encoder at the end of segment ``j`` (x264's frame threads and lookahead hold
  tens of frames) the next one already encodes ``j + 1``, and when the encoder is the slowest
  stage every worker's queue fills, so several segments encode at once.
  Each worker's queue holds at most ``queue_frames`` frames (bounded by :data:`BUFFER_BYTES` of
  frames in flight, whatever the video's length).
- A finished segment is flushed, fsynced and renamed in its worker, then recorded in the journal
  strictly in segment order (a worker that finishes early waits its turn), so the journal always
  lists a prefix of the output and ``--resume`` continues after it.
"""

from __future__ import annotations

import concurrent.futures
import os
import queue
import threading
import time
from pathlib import Path

_END = object()
_POLL = 0.1  # seconds between checks for a stop request while blocked
BUFFER_BYTES = 2 * 1024**3  # frames in flight between the model and the encoders (host memory)


def default_workers(width: int = 1920, height: int = 1080) -> tuple[int, int]:
    """(segment workers, conversion threads) for this machine and frame size.

    One x264 encoder keeps up with the model at 1080p (with the `fast` preset alone: ~74 fps on 16
    cores; the default `veryfast` about twice that) but not at 4K (~18 fps with `fast`), so big
    frames get one encoder per 1080p's worth of pixels (4K: 4), capped at one per 4 cores (each x264
    runs its own frame threads). Never fewer than 2: one drains its encoder
    at a segment's end while the next encodes.
    """
    cpus = os.cpu_count() or 2
    per_1080p = -(-width * height // (1920 * 1080))  # ceil: 1080p -> 1, 4K -> 4, 8K -> 16
    workers = max(2, min(per_1080p, cpus // 4, 8))
    return workers, max(1, min(4, cpus // 4))


class EncodeSide:
    """Threads that convert, encode and commit the output frames of one run.

    ``first``: index of the first output frame to encode (a segment boundary; > 0 when resuming).
    ``stop``: the run's stop event; ``stages``: :mod:`engine.stages` accounting; ``on_wait``:
    called (from the model thread) every 0.1 s while it waits for the encoders, e.g. for progress.
    """

    def __init__(self, plan, journal, *, seg_frames: int, first: int, stop, stages,
                 workers: int | None = None, converters: int | None = None,
                 on_wait=None):  # fmt: skip
        self.on_wait = on_wait or (lambda: None)
        self.plan, self.journal, self.seg, self.stop = plan, journal, seg_frames, stop
        self.stages = stages
        w, c = default_workers(plan.source.width, plan.source.height)
        self.workers = max(1, workers or w)
        self.converters = max(1, converters or c)
        self.depth = plan.source.travel_depth
        self.encoded = first  # output frames written (counted from 0, resumed ones included)
        self.failure: BaseException | None = None
        self._next_commit = first
        self._commit_cond = threading.Condition()
        self._count_lock = threading.Lock()
        info = plan.source
        frame_bytes = info.width * info.height * 3 * (1 if self.depth == 8 else 2)
        per_worker = BUFFER_BYTES // (self.workers * max(frame_bytes, 1))
        self.queue_frames = int(max(8, min(seg_frames, per_worker)))
        self.queues = [queue.Queue(maxsize=self.queue_frames) for _ in range(self.workers)]
        self.pool = concurrent.futures.ThreadPoolExecutor(self.converters, "vfi-convert")
        self.threads = [
            threading.Thread(target=self._guard, args=(i,), daemon=True, name=f"vfi-encode-{i}")
            for i in range(self.workers)
        ]
        stages["convert"].parallel = self.converters
        stages["encode"].parallel = self.workers

    def start(self) -> None:
        for th in self.threads:
            th.start()

    # model thread ---------------------------------------------------------------------------------

    def put(self, k: int, rgb, ready=None) -> None:
        """Queue output frame ``k`` (frames must come in order, without gaps)."""
        fut = self.pool.submit(self._convert, rgb, ready)
        self._put(self.queues[(k // self.seg) % self.workers], (k, fut))

    def finish(self) -> None:
        """All frames are queued: let the workers close the last segments, and wait for them."""
        for q in self.queues:
            self._put(q, _END)
        for th in self.threads:
            while th.is_alive():
                th.join(timeout=_POLL)
                self._check()
                self.on_wait()
        self._check()
        self.pool.shutdown(wait=True)

    def close(self) -> None:
        """Stop everything (after an error, Ctrl-C, or a normal finish) and release the threads."""
        self.stop.set()
        for q in self.queues:  # unblock a worker waiting on a full queue
            drain(q)
        for th in self.threads:
            if th.ident is not None:  # started
                th.join(timeout=30)
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _put(self, q: queue.Queue, item) -> None:
        while True:
            self._check()
            try:
                q.put(item, timeout=_POLL)
                return
            except queue.Full:
                self.on_wait()

    def _check(self) -> None:
        if self.failure is not None:
            raise self.failure

    # conversion threads ---------------------------------------------------------------------------

    def _convert(self, rgb, ready):
        if ready is not None:
            ready.synchronize()  # the download has landed (blocks this thread only, GIL released)
        t0 = time.perf_counter()
        if hasattr(rgb, "numpy"):
            rgb = rgb.numpy()
        if self.plan.turns:  # PNG / GIF: the display rotation goes into the pixels
            import numpy as np

            rgb = np.rot90(rgb, self.plan.turns)
        if self.plan.output_kind != "frames":
            from engine.video.writer import rgb_to_frame

            rgb = rgb_to_frame(rgb, self.plan.encode)
        self.stages["convert"].add(time.perf_counter() - t0)
        return rgb

    # segment workers ------------------------------------------------------------------------------

    def _guard(self, i: int) -> None:
        try:
            self._work(self.queues[i])
        except _Stopped:
            pass  # the run is stopping for a reason the model thread already knows
        except BaseException as e:  # handed to the model thread, which re-raises it
            if self.failure is None:
                self.failure = e
            self.stop.set()

    def _work(self, q: queue.Queue) -> None:
        stage = self.stages["encode"]
        writer, first = None, 0
        try:
            while True:
                try:
                    item = q.get(timeout=_POLL)
                except queue.Empty:
                    if self.stop.is_set():
                        return
                    continue
                if item is _END or self.stop.is_set():
                    break
                k, fut = item
                frame = self._result(fut)
                t = time.perf_counter()
                if writer is None:
                    writer, first = self._open_segment(k), k
                writer.write(frame)
                if (k + 1) % self.seg == 0:
                    self._close_and_commit(writer, first)
                    writer = None
                stage.add(time.perf_counter() - t)
                with self._count_lock:
                    self.encoded += 1
            if writer is not None and not self.stop.is_set():
                t = time.perf_counter()
                self._close_and_commit(writer, first)
                writer = None
                stage.add(time.perf_counter() - t, 0)
        finally:
            if writer is not None:
                writer.abort()

    def _result(self, fut):
        while True:
            try:
                return fut.result(timeout=_POLL)
            except concurrent.futures.TimeoutError:
                if self.stop.is_set():
                    raise _Stopped() from None

    def _open_segment(self, first: int):
        from engine.video.writer import SegmentWriter

        name = f"seg_{first // self.seg:06d}"
        if self.plan.output_kind == "frames":
            return PngSegment(
                self.journal.dir / f"{name}.part", first, self.depth, self.plan.frame_name
            )
        return SegmentWriter(self.plan.encode, self.journal.dir / f"{name}.part")

    def _close_and_commit(self, writer, first: int) -> None:
        from engine.journal import fsync_dir, fsync_file

        writer.close()  # drains the encoder: runs in parallel with the other workers
        final = writer.path.with_suffix("")
        if self.plan.output_kind != "frames":
            fsync_file(writer.path)
        writer.path.replace(final)
        with self._commit_cond:  # the journal lists segments in order: wait for the previous one
            while self._next_commit != first:
                if self.stop.is_set():
                    return
                self._commit_cond.wait(_POLL)
            fsync_dir(final.parent)
            self.journal.commit(final, first, writer.count)
            self._next_commit = first + writer.count
            self._commit_cond.notify_all()


class _Stopped(Exception):
    """A worker gave up waiting for a conversion because the run is stopping."""


class PngSegment:
    """A directory of PNG frames named by output index; the frame-output twin of SegmentWriter."""

    def __init__(self, path: Path, first: int, depth: int, name=lambda k: f"{k:08d}.png"):
        self.path, self.k, self.depth, self.count = path, first, depth, 0
        self.name = name  # output index -> file name (Plan.frame_name)
        path.mkdir()

    def write(self, rgb) -> None:
        from engine.video.writer import write_png

        write_png(self.path / self.name(self.k), rgb, self.depth)
        self.k += 1
        self.count += 1

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def drain(q: queue.Queue) -> None:
    """Empty a queue without blocking (shutting down: wake a producer blocked on put)."""
    try:
        while True:
            q.get_nowait()
    except queue.Empty:
        pass
