"""The video pipeline: decode -> analyse -> schedule -> infer -> encode, concurrently.

Threads joined by bounded queues, so memory stays constant however long the video:

- decode: PyAV frames -> integer RGB tensors (pinned host memory on CUDA) + luma thumbnails;
- main (the model thread): scene cuts / duplicates (:mod:`engine.analysis`), the exact schedule
  (:mod:`engine.timing`) and the model (:mod:`engine.synth`, always through
  :class:`engine.Interpolator`), several output frames per forward. On CUDA it only queues GPU work
  (:mod:`engine.device_io`): uploads and downloads run on side streams, nothing waits for the GPU;
- encode (:mod:`engine.encode`): conversion threads (the one RGB -> Y'CbCr path) and segment
  workers encoding segments in parallel, each finished segment recorded in order in the journal
  (:mod:`engine.journal`).

Before the first frame comes the warm-up (:mod:`engine.synth`): on CUDA with ``--tile auto`` the
memory of a forward is measured and the tile plan and batch are fitted to the budget; then one
forward at the real shape captures the CUDA graph and runs the autotuners. Every batch is padded to
that one size, so one graph serves the whole video. The threads start after it (a graph capture
must not overlap other threads' CUDA calls), and ``Result.warmup`` reports it apart.

Then :mod:`engine.video.mux` joins the segments with the copied audio/subtitles into a temporary file
that is renamed onto the output. Progress goes to ``on_event`` as dicts (``{"event": "progress",
...}``; the CLI renders them as a Rich bar or JSON lines); ``Result.stages`` says where the time went
(:mod:`engine.stages`). A CUDA out-of-memory error is caught once: tiles shrink, the batch drops to
one frame, and the forward is retried. On any exit other than success the work directory is removed,
unless ``--resume`` asked to keep it for a later run.

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

from engine.device_io import measure_bytes_per_pixel
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
    warmup: float = 0.0  # seconds of it spent before the first frame (calibration, graph capture)
    rates: dict = field(default_factory=dict)  # decode / model / encode frames per busy second
    stages: dict = field(default_factory=dict)  # every stage: seconds, frames, fps, parallel


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
        from engine.stages import new_stages
        from engine.synth import Synthesizer

        self.plan, self.options, self._emit = plan, options, emit
        self.stop = stop or threading.Event()
        self.stages = new_stages()
        self.synth = Synthesizer(plan, model, options, self.stages, self.emit)
        self.device = self.synth.device
        self.depth = plan.source.travel_depth
        self.result = Result(plan.output)
        self.failure: BaseException | None = None
        self.enc = None
        self.journal = None
        self.resume_k = 0
        self.t_start = time.perf_counter()

    def emit(self, event: str, **fields) -> None:
        self._emit({"event": event, **fields})

    # ---------------------------------------------------------------------------------------------
    # Two images

    def run_pair(self) -> Result:
        import numpy as np

        from engine.video.writer import write_png

        t0 = time.perf_counter()
        frames = list(_open(self.plan, self.options).frames())
        a, b = (_Frame(i, f.time, f.image, None) for i, f in enumerate(frames[:2]))
        outs = []
        for rgb, ready in self.synth([(a, b, float(t)) for t in self.plan.pair_times]):
            if ready is not None:
                ready.synchronize()
            outs.append(np.rot90(rgb.numpy(), self.plan.turns))  # photos: EXIF orientation
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
        from engine.encode import EncodeSide, drain
        from engine.journal import input_fingerprint, open_work_dir, remove_work_dir

        t0 = time.perf_counter()
        if self.plan.encode:
            self.seg_frames = self.plan.encode.segment_frames
        else:
            self.seg_frames = self.options.segment_frames or 240
        q_in: queue.Queue = queue.Queue(maxsize=self.options.queue_size)
        decoder = threading.Thread(target=self._guard, args=(self._decode_loop, q_in), daemon=True)
        ok = False
        try:
            if self.synth.cuda:  # a silent pause of up to a minute would look like a hang
                self.emit(
                    "notice",
                    message=f"warming up {self.synth.device}: memory calibration, kernel "
                    "autotuning, CUDA-graph capture (up to a minute on a machine's first run)",
                )
            with self.stages["warmup"].timed(0):
                self.synth.calibrate()
            fingerprint = {"input": input_fingerprint(self.plan.source.path), **self._settings()}
            self.journal = open_work_dir(
                self.plan.output,
                fingerprint,
                resume=self.options.resume,
                notice=lambda m: self.emit("notice", message=m),
            )
            self.resume_k = self.journal.frames_done
            self.enc = EncodeSide(self.plan, self.journal, seg_frames=self.seg_frames,
                                  first=self.resume_k, stop=self.stop, stages=self.stages,
                                  workers=self.options.encoders, on_wait=self._progress)  # fmt: skip
            with self.stages["warmup"].timed(0):
                self.synth.warm_up()  # before the other threads: no CUDA call may overlap a capture
            self.result.warmup = time.perf_counter() - t0
            self.t_start = time.perf_counter()
            decoder.start()
            self.enc.start()
            self._main_loop(q_in)
            self.enc.finish()
            self._check_failure()
            self._finish()
            ok = True
        finally:
            self.stop.set()
            drain(q_in)  # unblock the decoder waiting on a full queue
            if self.enc is not None:
                self.enc.close()
            if decoder.is_alive():
                decoder.join(timeout=30)
            if not ok and not self.options.resume and self.journal is not None:
                remove_work_dir(self.journal.dir)
        self.synth.io.harvest(wait=True)
        self.result.seconds = time.perf_counter() - t0
        self.result.rates = {k: self.stages[k].rate() for k in ("decode", "model", "encode")}
        self.result.stages = {k: s.to_dict() for k, s in self.stages.items()}
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
        if self.enc is not None and self.enc.failure is not None:
            raise self.enc.failure

    def _get(self, q: queue.Queue):
        while True:
            self._check_failure()
            try:
                return q.get(timeout=_POLL)
            except queue.Empty:
                continue

    # decode thread --------------------------------------------------------------------------------

    def _decode_loop(self, q_in: queue.Queue) -> None:
        from engine.analysis import THUMB_WIDTH

        source = _open(self.plan, self.options)
        self.source = source
        stage = self.stages["decode"]
        pin = self.device.type == "cuda"
        depth = self.plan.source.depth
        # The reader makes the thumbnails from the decoded frame (swscale, tiny); scene/duplicate
        # analysis on them runs on the main thread, so this thread only decodes and converts.
        it = iter(source.frames(thumb_width=THUMB_WIDTH, deinterlace=self.plan.deinterlace))
        limit = self.plan.limit
        while not self.stop.is_set():
            t = time.perf_counter()
            frame = next(it, None)
            if frame is None or (limit is not None and frame.time >= limit):
                break  # the end, or --duration's
            item = decode_item(frame, depth, pin)
            stage.add(time.perf_counter() - t)
            _put_until_stopped(q_in, item, self.stop)
        _put_until_stopped(q_in, _END, self.stop)

    # main thread ----------------------------------------------------------------------------------

    def _main_loop(self, q_in: queue.Queue) -> None:
        from engine.analysis import SceneDetector, is_duplicate
        from engine.timing import Scheduler

        opts, info = self.options, self.plan.source
        detector = SceneDetector(opts.scene_threshold) if opts.scene_detect else None
        sched = None
        prev: _Frame | None = None
        self.pending: list = []
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
        if self.plan.limit is not None:
            end = min(self.plan.limit, last_seen + 1 / info.rate)  # --duration's cut
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
        if n_synth >= self.synth.batch or len(self.pending) >= 64 or boundary:
            self._flush()

    def _flush(self) -> None:
        jobs, self.pending = self.pending, []
        synth = [(a, b, float(job.t)) for job, a, b in jobs if b is not None]
        outs = iter(self.synth(synth)) if synth else iter(())
        for job, a, b in jobs:
            rgb, ready = next(outs) if b is not None else (a.image, None)
            self.enc.put(job.index, rgb, ready)
            self.result.frames_out += 1
        self.result.synthesized += len(synth)

    def _progress(self, final: bool = False) -> None:
        now = time.perf_counter()
        if not final and now - self.last_progress < 0.25:
            return
        self.last_progress = now
        self.synth.io.harvest()
        done = self.enc.encoded
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
            rates={k: round(self.stages[k].rate(), 2) for k in ("decode", "model", "encode")},
            cuts=len(self.result.cuts),
            duplicates=self.result.duplicates,
        )

    # finishing ------------------------------------------------------------------------------------

    def _finish(self) -> None:
        from engine.journal import remove_work_dir

        work = self.journal.dir
        segments = [(work / s["file"], s["first"]) for s in self.journal.segments]
        out = self.plan.output
        t0 = time.perf_counter()
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
                timecode=self.plan.timecode,
                stop=self.plan.limit,
            )
            tmp.replace(out)
        self.stages["mux"].add(time.perf_counter() - t0, self.journal.frames_done)
        remove_work_dir(work)
        self._progress(final=True)

    # settings and warm-up -------------------------------------------------------------------------

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
            "tile": self.synth.interp.tile,
            "batch": self.synth.batch,
            "segment_frames": self.seg_frames,
            "scene": [o.scene_detect, o.scene_threshold],
            "dedup": [o.dedup, o.dup_threshold],
            "deinterlace": p.deinterlace,
            "limit": str(p.limit),
        }

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
            "warmup": round(r.warmup, 3),
            "rates": {k: round(v, 2) for k, v in r.rates.items()},
            "stages": r.stages,
        }


def _open(plan: Plan, options: Options):
    from engine.video.reader import open_pair, open_source

    info = plan.source
    if info.kind == "pair":
        return open_pair(*plan.inputs, input_fps=options.input_fps)
    return open_source(info.path, input_fps=options.input_fps)


def decode_item(frame, depth: int, pin: bool) -> tuple:
    """A reader's SourceFrame -> the decode queue's ``(time, image, thumb)``.

    ``pin``: copy the image into page-locked memory (CUDA) so its upload can be asynchronous.
    """
    from engine.analysis import thumbnail

    image = frame.image.pin_memory() if pin else frame.image
    thumb = frame.thumb if frame.thumb is not None else thumbnail(frame.image, depth)
    return frame.time, image, thumb


def _put_until_stopped(q: queue.Queue, item, stop) -> None:
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL)
            return
        except queue.Full:
            continue


__all__ = ["Options", "Plan", "Result", "measure_bytes_per_pixel", "run"]
