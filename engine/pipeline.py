"""The video pipeline: decode -> analyse -> schedule -> infer -> encode, concurrently.

Three threads joined by bounded queues, so memory stays constant however long the video:

- decode: PyAV frames -> integer RGB tensors (pinned host memory on CUDA) + luma thumbnails;
- main: scene cuts / duplicates (:mod:`engine.analysis`), the exact schedule (:mod:`engine.timing`)
  and the model, several output frames per forward, always through :class:`engine.Interpolator`;
- encode: the one RGB -> Y'CbCr path and the encoder (:mod:`engine.video.writer`), segment by
  segment, each finished segment recorded in the journal (:mod:`engine.journal`).

Then :mod:`engine.video.mux` joins the segments with the copied audio/subtitles into a temporary file
that is renamed onto the output. Progress goes to ``on_event`` as dicts (``{"event": "progress",
...}``; the CLI renders them as a Rich bar or JSON lines). A CUDA out-of-memory error is caught
once: tiles shrink, the batch drops to one frame, and the forward is retried. On any exit other than
success the work directory is removed, unless ``--resume`` asked to keep it for a later run.

The plan (everything decided before the first frame) is :func:`engine.plan.make_plan`.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from engine.errors import VfiError
from engine.plan import Options, Plan

_END = object()  # end of a queue's stream
_POLL = 0.1  # seconds between checks for a failed peer thread while blocked on a queue


@dataclass
class Result:
    output: Path
    frames_in: int = 0  # decoded source frames
    frames_out: int = 0
    synthesized: int = 0  # output frames made by the model
    cuts: list[Fraction] = field(default_factory=list)  # times of the first frame after each cut
    duplicates: int = 0
    seconds: float = 0.0
    rates: dict = field(default_factory=dict)


class _Stage:
    """Busy time and item count of one stage (rates show the bottleneck)."""

    def __init__(self):
        self.busy = 0.0
        self.count = 0

    def rate(self) -> float:
        return self.count / self.busy if self.busy > 0 else 0.0


@dataclass
class _Frame:
    index: int  # among kept source frames
    time: Fraction
    image: object  # (H, W, 3) integer tensor, host
    thumb: object
    gpu: object = None  # (1, 3, H, W) float on the model's device, made when first needed


def run(plan: Plan, model, options: Options | None = None, on_event=None, stop=None) -> Result:
    """Execute ``plan`` with ``model`` (an nn.Module from engine.load_model)."""
    options = options or Options()
    runner = _Runner(plan, model, options, on_event or (lambda event: None), stop)
    if plan.source.kind == "pair":
        return runner.run_pair()
    return runner.run()


class _Runner:
    def __init__(self, plan: Plan, model, options: Options, emit, stop):
        from engine.interpolator import Interpolator

        self.plan, self.options, self._emit = plan, options, emit
        self.stop = stop or threading.Event()
        self.interp = Interpolator(
            model, device=plan.device, precision=plan.precision, scale=plan.scale, tile=plan.tile
        )
        self.device = self.interp.device
        self.depth = plan.source.travel_depth
        self.batch = max(1, int(options.batch))
        self.result = Result(plan.output)
        self.stages = {"decode": _Stage(), "model": _Stage(), "encode": _Stage()}
        self.failure: BaseException | None = None
        self.encoded = 0
        self.oom_retried = False

    def emit(self, event: str, **fields) -> None:
        self._emit({"event": event, **fields})

    # ---------------------------------------------------------------------------------------------
    # Two images

    def run_pair(self) -> Result:
        from engine.video.writer import write_png

        t0 = time.perf_counter()
        frames = list(_open(self.plan, self.options).frames())
        a, b = (_Frame(i, f.time, f.image, None) for i, f in enumerate(frames[:2]))
        ts = self.plan.pair_times
        outs = self._model([(a, b, t) for t in ts])
        out = self.plan.output
        if self.plan.output_kind == "image":
            write_png(out, outs[0], self.depth)
        else:
            out.mkdir(exist_ok=True)
            for j, rgb in enumerate(outs, start=1):
                write_png(out / f"{j:08d}.png", rgb, self.depth)
        self.result.frames_in, self.result.frames_out = 2, len(outs)
        self.result.synthesized = len(outs)
        self.result.seconds = time.perf_counter() - t0
        self.emit("done", **self._summary())
        return self.result

    # ---------------------------------------------------------------------------------------------
    # Videos and frame directories

    def run(self) -> Result:
        from engine.journal import input_fingerprint, open_work_dir, remove_work_dir

        t0 = time.perf_counter()
        self._calibrate_tiles()
        if self.plan.encode:
            self.seg_frames = self.plan.encode.segment_frames
        else:
            self.seg_frames = self.options.segment_frames or 240
        fingerprint = {"input": input_fingerprint(self.plan.source.path), **self._settings()}
        self.journal = open_work_dir(
            self.plan.output,
            fingerprint,
            resume=self.options.resume,
            notice=lambda m: self.emit("notice", message=m),
        )
        self.resume_k = self.journal.frames_done
        self.t_start = time.perf_counter()
        q_in: queue.Queue = queue.Queue(maxsize=self.options.queue_size)
        q_out: queue.Queue = queue.Queue(maxsize=self.options.queue_size * 2)
        threads = [
            threading.Thread(target=self._guard, args=(self._decode_loop, q_in), daemon=True),
            threading.Thread(target=self._guard, args=(self._encode_loop, q_out), daemon=True),
        ]
        for th in threads:
            th.start()
        ok = False
        try:
            self._main_loop(q_in, q_out)
            self._put(q_out, _END)
            threads[1].join()
            self._check_failure()
            self._finish()
            ok = True
        finally:
            self.stop.set()
            for q in (q_in, q_out):  # unblock a peer waiting on a full queue
                _drain(q)
            for th in threads:
                th.join(timeout=30)
            if not ok and not self.options.resume:
                remove_work_dir(self.journal.dir)
        self.result.seconds = time.perf_counter() - t0
        self.result.rates = {k: s.rate() for k, s in self.stages.items()}
        self.emit("done", **self._summary())
        return self.result

    def _guard(self, loop, q) -> None:
        try:
            loop(q)
        except BaseException as e:  # handed to the main thread, which re-raises it
            self.failure = e
            self.stop.set()

    def _check_failure(self) -> None:
        if self.failure is not None:
            raise self.failure

    def _put(self, q: queue.Queue, item) -> None:
        while True:
            self._check_failure()
            try:
                q.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def _get(self, q: queue.Queue):
        while True:
            self._check_failure()
            try:
                return q.get(timeout=_POLL)
            except queue.Empty:
                continue

    # decode thread --------------------------------------------------------------------------------

    def _decode_loop(self, q_in: queue.Queue) -> None:
        from engine.analysis import thumbnail

        source = _open(self.plan, self.options)
        self.source = source
        stage = self.stages["decode"]
        pin = self.device.type == "cuda"
        it = iter(source.frames())
        while not self.stop.is_set():
            t = time.perf_counter()
            frame = next(it, None)
            if frame is None:
                break
            image = frame.image.pin_memory() if pin else frame.image
            thumb = thumbnail(frame.image, self.plan.source.depth)
            stage.busy += time.perf_counter() - t
            stage.count += 1
            while not self.stop.is_set():
                try:
                    q_in.put((frame.time, image, thumb), timeout=_POLL)
                    break
                except queue.Full:
                    continue
        while not self.stop.is_set():
            try:
                q_in.put(_END, timeout=_POLL)
                return
            except queue.Full:
                continue

    # main thread ----------------------------------------------------------------------------------

    def _main_loop(self, q_in: queue.Queue, q_out: queue.Queue) -> None:
        from engine.analysis import SceneDetector, is_duplicate
        from engine.timing import Scheduler

        opts, info = self.options, self.plan.source
        detector = SceneDetector(opts.scene_threshold) if opts.scene_detect else None
        sched = None
        prev: _Frame | None = None
        self.pending: list = []
        self.q_out = q_out
        self.last_progress = 0.0
        kept = 0
        last_seen = None  # the last decoded frame (a dropped duplicate still covers its time)
        while (item := self._get(q_in)) is not _END:
            frame_time, image, thumb = item
            self.result.frames_in += 1
            last_seen = frame_time
            if (
                prev is not None
                and opts.dedup
                and is_duplicate(prev.thumb, thumb, opts.dup_threshold)
            ):
                self.result.duplicates += 1
                continue
            cut = detector.push(thumb) if detector else False
            cur = _Frame(kept, frame_time, image, thumb)
            if sched is None:
                sched = Scheduler(dataclasses.replace(self.plan.timing, start=frame_time))
            if cut:
                self.result.cuts.append(frame_time)
                self.emit("scene_cut", time=str(frame_time), seconds=float(frame_time),
                          score=round(detector.last_score, 4))  # fmt: skip
            for job in sched.add(kept, frame_time, cut=cut):
                self._job(job, prev, cur)
            prev, kept = cur, kept + 1
            self._progress()
        if prev is None:
            raise VfiError(f"{info.path}: no video frame could be decoded")
        errors = getattr(self, "source", None) and self.source.errors
        if errors:
            self.emit("warning", message=f"{errors} damaged packets were skipped while decoding")
        # The input ends one frame duration after its last frame (the scan knows the last one's).
        end = info.end if last_seen == info.last_time else last_seen + 1 / info.rate
        for job in sched.finish(end):
            self._job(job, prev, prev)
        self._flush()

    def _job(self, job, a: _Frame, b: _Frame) -> None:
        if job.index < self.resume_k:
            return  # already encoded in a finished segment (resume)
        src0 = a if job.src0 == a.index else b
        if job.copy_of is not None:
            self.pending.append((job, src0, None))
        else:
            self.pending.append((job, a, b))
        n_synth = sum(1 for _, _, other in self.pending if other is not None)
        boundary = (job.index + 1) % self.seg_frames == 0  # batches never straddle segments
        if n_synth >= self.batch or len(self.pending) >= 64 or boundary:
            self._flush()

    def _flush(self) -> None:
        jobs, self.pending = self.pending, []
        synth = [(a, b, float(job.t)) for job, a, b in jobs if b is not None]
        outs = iter(self._model(synth)) if synth else iter(())
        for job, a, b in jobs:
            rgb = next(outs) if b is not None else a.image.numpy()
            self._put(self.q_out, (job.index, rgb))
            self.result.frames_out += 1
        self.result.synthesized += len(synth)

    def _model(self, triples: list) -> list:
        """Synthesize frames for (frame0, frame1, t) triples; host integer RGB (H, W, 3) out."""
        import torch

        from engine.video.color import quantize

        stage = self.stages["model"]
        t0 = time.perf_counter()
        outs = self._with_oom_retry(lambda: self._synthesize(triples))
        q = quantize(torch.cat(outs), 8 if self.depth == 8 else 16)
        q = q.permute(0, 2, 3, 1).cpu()  # (B, H, W, 3)
        stage.busy += time.perf_counter() - t0
        stage.count += len(triples)
        return [q[i].numpy() for i in range(q.shape[0])]

    def _synthesize(self, triples: list) -> list:
        """(B, 3, H, W) outputs in the order of ``triples``.

        With ``Interpolator.many`` (encode once per pair, decode per t), pairs sharing the same list
        of t's are batched through it; otherwise every (pair, t) is one item of a batched forward.
        """
        import torch

        many = getattr(self.interp, "many", None)
        groups: dict = {}
        for n, (a, b, t) in enumerate(triples):
            groups.setdefault((id(a), id(b)), (a, b, [], []))
            groups[(id(a), id(b))][2].append(t)
            groups[(id(a), id(b))][3].append(n)
        if many is None or all(len(g[2]) == 1 for g in groups.values()):
            a = torch.cat([self._on_device(x) for x, _, _ in triples])  # (B, 3, H, W)
            b = torch.cat([self._on_device(y) for _, y, _ in triples])
            t = torch.tensor([tt for _, _, tt in triples], dtype=torch.float32)
            return list(self._forward(a, b, t).split(1))
        result: list = [None] * len(triples)
        by_ts: dict = {}
        for a, b, ts, idx in groups.values():
            by_ts.setdefault(tuple(ts), []).append((a, b, idx))
        for ts, pairs in by_ts.items():
            a = torch.cat([self._on_device(x) for x, _, _ in pairs])
            b = torch.cat([self._on_device(y) for _, y, _ in pairs])
            frames = many(a, b, list(ts))  # len(ts) tensors of (P, 3, H, W)
            for j, out in enumerate(frames):
                for p, (_, _, idx) in enumerate(pairs):
                    result[idx[j]] = out[p : p + 1]
        return result

    def _with_oom_retry(self, fn):
        import torch

        from engine.tiling import smaller_tile

        try:
            return fn()
        except torch.cuda.OutOfMemoryError:
            if self.oom_retried:
                raise VfiError(
                    f"out of GPU memory even with {self.interp.tile}px tiles and one frame per "
                    "forward; try --scale 0.25, a smaller --tile, or --device cpu"
                ) from None
            self.oom_retried = True
            torch.cuda.empty_cache()
            h, w = self.plan.source.height, self.plan.source.width
            self.interp.tile = smaller_tile(self.interp.tile, h, w, self.interp.alignment)
            self.batch = 1
            self.emit("warning", message=f"out of GPU memory: retrying with {self.interp.tile}px "
                      "tiles, one frame per forward")  # fmt: skip
            return fn()

    def _forward(self, a, b, t):
        if a.shape[0] <= self.batch:
            return self.interp(a, b, t)
        import torch

        parts = [
            self.interp(a[i : i + self.batch], b[i : i + self.batch], t[i : i + self.batch])
            for i in range(0, a.shape[0], self.batch)
        ]
        return torch.cat(parts)

    def _on_device(self, f: _Frame):
        from engine.video.color import to_float

        if f.gpu is None:
            x = f.image.to(self.device, non_blocking=True)
            f.gpu = to_float(x.permute(2, 0, 1).unsqueeze(0), self.depth)  # (1, 3, H, W)
        return f.gpu

    def _progress(self, final: bool = False) -> None:
        now = time.perf_counter()
        if not final and now - self.last_progress < 0.25:
            return
        self.last_progress = now
        done = self.encoded
        elapsed = max(now - self.t_start, 1e-9)
        fps = (done - self.resume_k) / elapsed
        total = self.plan.frames_out
        eta = (total - done) / fps if fps > 0 and total >= done else None
        self.emit(
            "progress",
            done=done,
            total=total,
            fps=round(fps, 2),
            eta=None if eta is None else round(eta, 1),
            rates={k: round(s.rate(), 2) for k, s in self.stages.items()},
            cuts=len(self.result.cuts),
            duplicates=self.result.duplicates,
        )

    # encode thread --------------------------------------------------------------------------------

    def _encode_loop(self, q_out: queue.Queue) -> None:
        stage = self.stages["encode"]
        writer, first = None, 0
        try:
            while True:
                try:
                    item = q_out.get(timeout=_POLL)
                except queue.Empty:
                    if self.stop.is_set():
                        break
                    continue
                if item is _END or self.stop.is_set():
                    break
                k, rgb = item
                t = time.perf_counter()
                if writer is None:
                    writer, first = self._open_segment(k), k
                writer.write(rgb)
                if (k + 1) % self.seg_frames == 0:
                    self._commit(writer, first)
                    writer = None
                stage.busy += time.perf_counter() - t
                stage.count += 1
                self.encoded = k + 1
            if writer is not None and not self.stop.is_set():
                self._commit(writer, first)
                writer = None
        finally:
            if writer is not None:
                writer.abort()

    def _open_segment(self, first: int):
        from engine.video.writer import SegmentWriter

        name = f"seg_{first // self.seg_frames:06d}"
        if self.plan.output_kind == "frames":
            return _PngSegment(self.journal.dir / f"{name}.part", first, self.depth)
        return SegmentWriter(self.plan.encode, self.journal.dir / f"{name}.part")

    def _commit(self, writer, first: int) -> None:
        from engine.journal import fsync_dir, fsync_file

        writer.close()
        final = writer.path.with_suffix("")
        if self.plan.output_kind != "frames":
            fsync_file(writer.path)
        writer.path.replace(final)
        fsync_dir(final.parent)
        self.journal.commit(final, first, writer.count)

    # finishing ------------------------------------------------------------------------------------

    def _finish(self) -> None:
        from engine.journal import remove_work_dir

        work = self.journal.dir
        segments = [(work / s["file"], s["first"]) for s in self.journal.segments]
        out = self.plan.output
        if self.plan.output_kind == "frames":
            target = out if out.is_dir() else work / "frames"
            target.mkdir(exist_ok=True)
            for seg, _ in segments:
                for png in sorted(seg.iterdir()):
                    png.replace(target / png.name)
            if target != out:
                target.replace(out)
        else:
            from engine.video.mux import assemble

            tmp = work / f"output{out.suffix}"
            assemble(
                tmp,
                self.plan.encode,
                segments,
                source=self.plan.source,
                actions=self.plan.streams,
                start=self.plan.source.start,
                time_scale=self.plan.timing.slowmo,
            )
            tmp.replace(out)
        remove_work_dir(work)
        self._progress(final=True)

    # settings -------------------------------------------------------------------------------------

    def _settings(self) -> dict:
        """Everything that changes the output frames or file: a resumed run must match it."""
        p, o = self.plan, self.options
        model = str(o.model or "")
        if model and Path(model).is_file():
            st = Path(model).stat()
            model += f"@{st.st_size}:{st.st_mtime_ns}"
        return {
            "output_kind": p.output_kind,
            "timing": [str(p.timing.out_rate), str(p.timing.step), str(p.timing.slowmo)],
            "encode": p.encode.describe() if p.encode else "",
            "streams": [a.describe() for a in p.streams],
            "model": model,
            "device": self.device.type,
            "precision": p.precision,
            "scale": p.scale,
            "tile": self.interp.tile,
            "batch": self.batch,
            "segment_frames": self.seg_frames,
            "scene": [o.scene_detect, o.scene_threshold],
            "dedup": [o.dedup, o.dup_threshold],
        }

    def _calibrate_tiles(self) -> None:
        """On CUDA with --tile auto, replace the analytic memory estimate by a measured one."""
        if self.device.type != "cuda" or self.options.tile != "auto":
            return
        from engine.tiling import choose_tile

        info = self.plan.source
        bpp = measure_bytes_per_pixel(self.interp, self.batch)
        budget = self.plan.memory_budget
        if budget:
            tile = choose_tile(info.height, info.width, budget, align=self.interp.alignment,
                               batch=self.batch, bytes_per_pixel=bpp)  # fmt: skip
            self.interp.tile = tile
            self.emit("notice", message=f"measured {bpp / 1024:.1f} KiB per pixel: "
                      f"{'whole frames' if tile is None else f'{tile}px tiles'}")  # fmt: skip

    def _summary(self) -> dict:
        r = self.result
        return {
            "output": str(r.output),
            "frames_in": r.frames_in,
            "frames_out": r.frames_out,
            "synthesized": r.synthesized,
            "cuts": [str(c) for c in r.cuts],
            "duplicates": r.duplicates,
            "seconds": round(r.seconds, 3),
            "rates": {k: round(v, 2) for k, v in r.rates.items()},
        }


class _PngSegment:
    """A directory of PNG frames named by output index; the frame-output twin of SegmentWriter."""

    def __init__(self, path: Path, first: int, depth: int):
        self.path, self.k, self.depth, self.count = path, first, depth, 0
        path.mkdir()

    def write(self, rgb) -> None:
        from engine.video.writer import write_png

        write_png(self.path / f"{self.k:08d}.png", rgb, self.depth)
        self.k += 1
        self.count += 1

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def _open(plan: Plan, options: Options):
    from engine.video.reader import open_pair, open_source

    info = plan.source
    if info.kind == "pair":
        return open_pair(*plan.inputs, input_fps=options.input_fps)
    return open_source(info.path, input_fps=options.input_fps)


def _drain(q: queue.Queue) -> None:
    try:
        while True:
            q.get_nowait()
    except queue.Empty:
        pass


def measure_bytes_per_pixel(interp, batch: int = 1) -> float:
    """Peak CUDA bytes per input pixel of one forward, from two small sizes (slope, not intercept)."""
    import torch

    peaks = []
    for side in (256, 512):
        x = torch.rand(batch, 3, side, side, device=interp.device)
        torch.cuda.synchronize(interp.device)
        torch.cuda.reset_peak_memory_stats(interp.device)
        base = torch.cuda.memory_allocated(interp.device)
        interp(x, x.flip(-1), 0.5)
        torch.cuda.synchronize(interp.device)
        peaks.append(torch.cuda.max_memory_allocated(interp.device) - base)
        del x
    return max((peaks[1] - peaks[0]) / (batch * (512**2 - 256**2)), 1.0)


__all__ = ["Options", "Plan", "Result", "measure_bytes_per_pixel", "run"]
