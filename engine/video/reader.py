"""Reading: a video file, a directory of numbered frames, or two images -> RGB frames + exact times.

:func:`open_source` inspects the input once (cheaply: it demuxes packets without decoding them, so
the frame count, start/end times and CFR/VFR are exact) and returns a :class:`Source`;
``Source.frames()`` then decodes, yielding :class:`SourceFrame` objects whose ``time`` is a
``Fraction`` (PTS x time_base) and whose ``image`` is an integer (H, W, 3) RGB tensor in the travel
format of :mod:`engine.video.color` (uint8 for 8-bit sources, uint16 for deeper ones).

Damaged input: packets that fail to decode are skipped and counted (``Source.errors``); what can be
read is used and the caller says so. Frames whose time does not increase are dropped.

Interlaced video (``SourceInfo.interlaced``): ``frames(deinterlace="bwdif")`` turns each frame's
two fields into one progressive frame (one frame out per frame in, times kept); ``"ivtc"`` undoes
2:3 pulldown (film frames back, 4 of every 5, at the film rate). Both before the RGB conversion:
see :mod:`engine.video.fields`.

What a source is lives in :mod:`engine.video.source`, the inspection of a video file in
:mod:`engine.video.probing`, still images (frame directories, pairs) in :mod:`engine.video.images`.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

from engine.errors import VfiError
from engine.timing import snap_to_grid
from engine.video import fields
from engine.video.color import ColorInfo, rgb_format
from engine.video.images import DEFAULT_FRAMES_FPS, ImageSequence, is_image_file, list_frames
from engine.video.probing import inspect_video
from engine.video.source import Source, SourceFrame, open_container, thumbnail, to_fraction

# --------------------------------------------------------------------------------------------------
# Opening


def open_source(path, *, input_fps=None) -> Source:
    """Inspect ``path`` (video file, frame directory) and return a :class:`Source`."""
    path = Path(path)
    if not path.exists():
        raise VfiError(f"input not found: {path}")
    if path.is_dir():
        files = list_frames(path)
        return ImageSequence(path, files, "frames", rate=_rate(input_fps))
    return VideoFile(path, rate_override=_rate(input_fps) if input_fps else None)


def open_pair(path0, path1, *, input_fps=None) -> Source:
    """Two images as a two-frame source (the in-between frames go to a file or a directory)."""
    files = [Path(path0), Path(path1)]
    for p in files:
        if p.is_dir():
            raise VfiError(
                f"{p} is a directory: two inputs are an image pair; give a frame directory alone"
            )
        if not p.is_file():
            raise VfiError(f"input not found: {p}")
        if not is_image_file(p) and _is_video_container(p):
            # FFmpeg would happily read a video's first frame as "the image": refuse instead of
            # quietly interpolating between the first frames of two clips.
            raise VfiError(
                f"{p.name} is a video and the other input is not: give two images (a pair) "
                "or videos only (each makes its own output)"
            )
    return ImageSequence(files[0], files, "pair", rate=_rate(input_fps))


def _is_video_container(path: Path) -> bool:
    """Whether FFmpeg opens ``path`` as a video container rather than a single-image format."""
    container = open_container(path)
    try:
        fmt = container.format.name
    finally:
        container.close()
    # Still images open through the image2 demuxer or one of the per-codec ``*_pipe`` demuxers.
    return not (fmt == "image2" or fmt.endswith("_pipe"))


def looks_like_video(path: Path) -> bool:
    """For telling several videos from an image pair: a file that is no still image.

    A missing or unreadable file counts as a video here, so that it gets its own error line from
    open_source along with the batch's other inputs.
    """
    path = Path(path)
    if path.is_dir() or is_image_file(path):
        return False
    try:
        return _is_video_container(path)
    except VfiError:
        return True


def _rate(input_fps) -> Fraction:
    if input_fps is None:
        return DEFAULT_FRAMES_FPS
    rate = Fraction(input_fps)
    if rate <= 0:
        raise VfiError(f"--input-fps must be positive, got {input_fps}")
    return rate


# --------------------------------------------------------------------------------------------------
# Video files


class VideoFile(Source):
    def __init__(self, path: Path, rate_override: Fraction | None = None):
        self.path = path
        self.errors = 0
        self.dropped = 0
        self.info = inspect_video(path, rate_override)

    def frames(
        self,
        thumb_width: int | None = None,
        deinterlace: str = "",
        converters: int | None = None,
    ) -> Iterator[SourceFrame]:
        """Decode in this thread, convert to RGB (+ thumbnail) in ``converters`` threads.

        swscale releases the GIL, so conversions run in parallel with each other and with
        decoding; results come back in order, at most ``converters + 1`` frames ahead.
        """

        info = self.info
        convert = _convert_args(info.depth, info.color)
        workers = max(1, converters or default_converters())
        pending: deque = deque()  # (time, future of (image, thumb)), in presentation order
        pool = ThreadPoolExecutor(workers, thread_name_prefix="vfi-decode-convert")
        container = open_container(self.path)
        try:
            stream = container.streams[info.video_index]
            configure_decoder(stream)
            tb = to_fraction(stream.time_base) or Fraction(1, 1000)
            rate = info.rate
            decoded = self._decoded(container, stream)
            if deinterlace == "ivtc":
                decoded = fields.inverse_telecine(decoded, stream, info.interlaced, info.rate)
                rate = info.rate * fields.FILM_RATIO
            elif deinterlace:
                decoded = fields.bwdif(decoded, stream, info.interlaced)
            step = 1 / rate
            last: Fraction | None = None
            index = 0
            for frame in decoded:
                if frame.pts is None:
                    time = info.start if last is None else last + step
                else:  # the frame's own time base: the filters hand frames back in their own
                    time = frame.pts * (to_fraction(frame.time_base) or tb)
                if info.pulldown and deinterlace != "ivtc":
                    # Shown for 2 or 3 fields, each film frame is nearest its own film-grid time.
                    time = info.start + Fraction(round((time - info.start) * rate)) / rate
                elif not info.vfr:
                    time = snap_to_grid(time, info.start, rate, info.tick)
                if last is not None and time <= last:
                    self.dropped += 1
                    continue
                last = time
                job = pool.submit(_convert, frame, convert, info.depth, thumb_width)
                pending.append((time, job))
                while len(pending) > workers:
                    yield _ready(index, *pending.popleft())
                    index += 1
            while pending:
                yield _ready(index, *pending.popleft())
                index += 1
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # before the decoder's frames go away
            container.close()

    def _decoded(self, container, stream):
        """The stream's decoded frames; a packet that fails to decode is counted and skipped."""
        import av

        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                self.errors += 1
                continue
            yield from frames


def default_converters() -> int:
    """Conversion threads of the reader: one per 4 cores, 1 to 4 (1080p: ~3 ms per frame each)."""
    return max(1, min(4, (os.cpu_count() or 2) // 4))


def _convert(frame, convert: dict, depth: int, thumb_width: int | None):
    """Decoded frame -> (integer RGB tensor (H, W, 3), luma thumbnail or None); any thread."""
    import torch

    image = torch.from_numpy(frame.to_ndarray(**convert))
    return image, thumbnail(frame, convert, depth, thumb_width)


def _ready(index: int, time: Fraction, job: Future) -> SourceFrame:
    image, thumb = job.result()
    return SourceFrame(index, time, image, thumb)


def configure_decoder(stream) -> None:
    """FFmpeg threads for a video stream's decoder; call before the first packet is decoded.

    Frame threads (several frames decoded at once) + slice threads, one per core (count 0 = auto).
    PyAV's default is slice threads only, which most H.264/HEVC files (one slice per frame) cannot
    use: decoding then runs on one core, ~5x slower at 1080p than FFmpeg's own command line.
    """
    cc = stream.codec_context
    cc.thread_count = 0
    cc.thread_type = "AUTO"


def _convert_args(depth: int, color: ColorInfo) -> dict:
    """to_ndarray/reformat arguments: the travel RGB format, explicit matrix and range."""
    return {
        "format": rgb_format(depth),
        "src_colorspace": color.sws_matrix,
        "src_color_range": color.range,
        "dst_color_range": 2,  # full-range RGB
    }
