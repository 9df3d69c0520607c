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
"""

from __future__ import annotations

import heapq
import itertools
import math
import os
import re
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from engine.errors import VfiError, short_reason
from engine.timing import is_vfr, snap_to_grid, standard_rate
from engine.video import fields
from engine.video.color import ColorInfo, bit_depth, color_info, is_rgb, rgb_format
from engine.video.hdr import read_hdr10, uncarried

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".tga", ".ppm", ".dpx")
# Scene-linear floating-point images (VFX renders): no display transform is known for them, and
# storing their linear values as 8/16-bit picture would show them dark and clip the highlights.
FLOAT_IMAGE_EXTS = (".exr", ".hdr", ".pfm")
FLOAT_REFUSAL = (
    "is a floating-point (scene-linear) image, which vfi does not interpolate yet; export the "
    "frames through your view transform as 16-bit PNG or TIFF"
)
DEFAULT_FRAMES_FPS = Fraction(24)


def to_fraction(value) -> Fraction | None:
    """A PyAV rational (Fraction in PyAV < 19, AVRational from 19 on; falsy when unset) or None."""
    if value is None or not value:
        return None
    return Fraction(int(value.numerator), int(value.denominator))


@dataclass(frozen=True)
class StreamInfo:
    """A stream of the input other than the video being interpolated."""

    index: int
    type: str  # "audio" | "subtitle" | "attachment" | "data" | "video"
    codec: str
    language: str = ""
    title: str = ""
    detail: str = ""  # e.g. "48000 Hz, stereo"


@dataclass
class SourceInfo:
    path: Path
    kind: str  # "video" | "frames" | "pair"
    width: int
    height: int
    rate: Fraction  # nominal input rate (CFR: the rate; VFR: the average)
    start: Fraction  # time of the first frame
    end: Fraction  # end of the last frame (its time + its duration)
    last_time: Fraction  # time of the last frame
    frame_count: int
    vfr: bool
    codec: str
    pix_fmt: str
    depth: int  # bits per component of the source (8, 10, 12, 16)
    color: ColorInfo
    rotation: int = 0  # display rotation, degrees counter-clockwise (kept as metadata)
    format_name: str = ""
    streams: list[StreamInfo] = field(default_factory=list)
    video_index: int = 0
    tick: Fraction = Fraction(1, 1000)  # the time base: timestamps are exact to this
    damaged_packets: int = 0  # packets the demuxer flagged or could not read during the scan
    chapters: int = 0
    interlaced: str = ""  # "tff" / "bff" (field order), "interlaced" (order unsaid), or ""
    hdr10: object = None  # engine.video.hdr.Hdr10 of the first frame, or None
    transparent: bool = False  # the first frame has an alpha channel that is not all opaque
    sar: Fraction | None = None  # sample (pixel) aspect ratio when not square (DVD, DV, HDV)
    timecode: str = ""  # SMPTE timecode of the first frame (a tmcd track, or a tag), if any
    uncarried: tuple[str, ...] = ()  # per-frame metadata not carried (engine.video.hdr.uncarried)
    missing: tuple[int, ...] = ()  # frame directories: numbers the numbering skips (a gap in time)
    pulldown: bool = False  # soft 2:3 pulldown: frame times re-gridded to the film rate (``rate``)
    fourcc: str = ""  # the video track's codec tag (ProRes flavours: apcn, apch, ap4h ...)
    profile: str = ""  # the decoder's name for the stream's profile ("HQ", "DNXHR SQ", "High")

    @property
    def duration(self) -> Fraction:
        return self.end - self.start

    @property
    def travel_depth(self) -> int:
        """8 or 16: the bit depth of the RGB frames the pipeline carries."""
        return 8 if self.depth <= 8 else 16


@dataclass
class SourceFrame:
    index: int  # position among the frames yielded (0, 1, 2, ...)
    time: Fraction
    image: object  # torch.Tensor (H, W, 3), uint8 or uint16
    thumb: object = None  # float luma (h, w) in [0, 1] when frames(thumb_width=...) asked for it


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
    container = _open_container(path)
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


def is_float(pix_fmt: str) -> bool:
    """Floating-point samples (gbrpf32le, rgbaf16le, grayf32le ...)."""
    return bool(re.search(r"f(16|32)(le|be)?$", pix_fmt))


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTS


def list_frames(directory: Path) -> list[Path]:
    """Image files of a directory in frame order (by the last number in the name, then name)."""
    files = [p for p in directory.iterdir() if p.is_file() and is_image_file(p)]
    if not files:
        floats = sorted(p for p in directory.iterdir() if p.suffix.lower() in FLOAT_IMAGE_EXTS)
        if floats:
            raise VfiError(f"{floats[0]} {FLOAT_REFUSAL}")
        raise VfiError(f"{directory} holds no image frames ({', '.join(IMAGE_EXTS[:4])}, ...)")

    return sorted(files, key=lambda p: (-1 if (n := frame_number(p)) is None else n, p.name))


def frame_number(path: Path) -> int | None:
    """The frame number in a file name: its last run of digits (``shot_v2.1047.exr`` -> 1047)."""
    digits = frame_digits(path)
    return int(digits.group()) if digits else None


def frame_digits(path: Path) -> re.Match | None:
    """Where the frame number is in ``path.stem``: its last run of digits."""
    found = list(re.finditer(r"\d+", path.stem))
    return found[-1] if found else None


def numbered_slots(files: list[Path]) -> tuple[list[int], int] | None:
    """(each frame's slot, the numbering's step) when the numbers say where frames are missing.

    The step is the numbers' common divisor (renders numbered 10, 20, 30 are consecutive); a slot
    is (number - first) / step. None when a file has no number or numbers repeat: consecutive.
    """
    numbers = [frame_number(p) for p in files]
    if any(n is None for n in numbers) or any(b <= a for a, b in itertools.pairwise(numbers)):
        return None
    step = math.gcd(*(b - a for a, b in itertools.pairwise(numbers))) or 1
    return [(n - numbers[0]) // step for n in numbers], step


class Source:
    info: SourceInfo
    errors: int = 0  # packets/files that failed to decode in frames()
    dropped: int = 0  # frames dropped because their time did not increase

    def frames(
        self, thumb_width: int | None = None, deinterlace: str = ""
    ) -> Iterator[SourceFrame]:
        """Decoded frames in order; with ``thumb_width``, each with a luma thumbnail that wide.

        ``deinterlace``: "", "bwdif" or "ivtc", video files only (see the module docstring); image
        frames are progressive.
        """
        raise NotImplementedError


# --------------------------------------------------------------------------------------------------
# Video files


class VideoFile(Source):
    def __init__(self, path: Path, rate_override: Fraction | None = None):
        self.path = path
        self.errors = 0
        self.dropped = 0
        self.info = _inspect_video(path, rate_override)

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
        container = _open_container(self.path)
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
    return image, _thumbnail(frame, convert, depth, thumb_width)


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


def _thumbnail(frame, convert: dict, depth: int, width: int | None):
    """Luma thumbnail of a decoded frame, scaled down by swscale (area) before any pixel math.

    Scaling the Y'CbCr frame straight to a 128 px RGB image costs ~1 ms at 1080p, instead of
    reading the whole full-size RGB frame again in torch; the colour arguments are those of the full
    frame, so the thumbnail is the (area-averaged) luma of the very RGB the model sees.
    """
    if not width:
        return None
    from engine.analysis import luma_thumbnail, thumb_size

    tw, th = thumb_size(frame.width, frame.height, width)
    small = frame.to_ndarray(width=tw, height=th, interpolation="AREA", **convert)
    return luma_thumbnail(small, depth)


def _open_container(path: Path):
    import av

    try:
        return av.open(str(path), "r")
    except av.error.FFmpegError as e:
        raise VfiError(
            f"{path} is not a video or image file FFmpeg can read ({short_reason(e)})"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise VfiError(f"cannot open {path}: {e}") from None


def _inspect_video(path: Path, rate_override: Fraction | None) -> SourceInfo:
    """Read the headers, the first frame (colour, rotation) and every packet's time (no decoding)."""

    container = _open_container(path)
    try:
        videos = [s for s in container.streams if s.type == "video" and not _is_cover_art(s)]
        if not videos:
            raise VfiError(
                f"{path} has no video stream (an audio-only file?); nothing to interpolate"
            )
        stream = videos[0]
        cc = stream.codec_context
        if cc is None or not cc.name:
            raise VfiError(f"{path}: this FFmpeg build has no decoder for its video codec")
        tb = to_fraction(stream.time_base) or Fraction(1, 1000)
        first = _first_frame(container, stream, path)
        pix_fmt = first.format.name
        depth = 8 if pix_fmt in ("pal8",) else bit_depth(pix_fmt)
        color = color_info(first, first.height, pix_fmt)
        if is_rgb(pix_fmt):
            color = ColorInfo(matrix=0, range=2, primaries=color.primaries, trc=color.trc)
        rotation = int(getattr(first, "rotation", 0) or 0)
        interlaced = _interlacing(first, cc)
        hdr10 = read_hdr10(first)
        transparent = is_transparent(first)
        sar = _sample_aspect(stream, first)
        timecode = _timecode(container, stream)
        lost = tuple(uncarried(first))
        others = [_stream_info(s) for s in container.streams if s is not stream]
        chapters = len(container.chapters()) if hasattr(container, "chapters") else 0
        format_name = container.format.name
        video_index = stream.index
        codec = cc.name
        fourcc = _fourcc(cc)
        profile = str(getattr(cc, "profile", "") or "")
        header_rates = [
            to_fraction(getattr(stream, a, None)) for a in ("base_rate", "average_rate")
        ]
    finally:
        container.close()

    scan = _scan_packets(path, video_index, tb)
    if scan.count == 0:
        raise VfiError(f"{path} has no readable video frames")
    vfr = is_vfr(scan.min_gap, scan.max_gap, scan.median_gap, tb) if scan.count > 2 else False
    film = soft_pulldown_rate(scan.gaps, tb) if vfr and rate_override is None else None
    if film is not None:  # film frames shown 2 and 3 fields in turn: their own rate is CFR
        vfr = False
    rate = rate_override or film or _nominal_rate(header_rates, scan, vfr, tb)
    if rate is None:
        raise VfiError(f"{path}: cannot tell its frame rate; give it with --input-fps")
    last_duration = scan.last_duration or (1 / rate)
    last = scan.last
    if film is not None:  # soft pulldown: the last film frame's own slot
        last = scan.first + Fraction(round((scan.last - scan.first) * rate)) / rate
        last_duration = 1 / rate
    elif not vfr:  # CFR: times on the exact grid (coarse container clocks round them)
        last = snap_to_grid(scan.last, scan.first, rate, tb)
        last_duration = 1 / rate
    return SourceInfo(
        path=path,
        kind="video",
        width=first.width,
        height=first.height,
        rate=rate,
        start=scan.first,
        end=last + last_duration,
        last_time=last,
        frame_count=scan.count,
        vfr=vfr,
        codec=codec,
        pix_fmt=pix_fmt,
        depth=depth,
        color=color,
        rotation=rotation,
        format_name=format_name,
        streams=others,
        video_index=video_index,
        tick=tb,
        damaged_packets=scan.damaged,
        chapters=chapters,
        interlaced=interlaced,
        hdr10=hdr10,
        transparent=transparent,
        sar=sar,
        timecode=timecode,
        uncarried=lost,
        pulldown=film is not None,
        fourcc=fourcc,
        profile=profile,
    )


# AVFieldOrder: TT / BT display the top field first, BB / TB the bottom one (1 = progressive).
_TOP_FIRST, _BOTTOM_FIRST = (2, 5), (3, 4)


def _interlacing(first_frame, cc) -> str:
    """How the video stores its fields: "tff", "bff", "interlaced" (order not said) or ""."""
    order = int(getattr(cc, "field_order", 0) or 0)
    if order in _TOP_FIRST:
        return "tff"
    if order in _BOTTOM_FIRST:
        return "bff"
    return "interlaced" if getattr(first_frame, "interlaced_frame", False) else ""


def _fourcc(cc) -> str:
    tag = getattr(cc, "codec_tag", "") or ""
    return tag if isinstance(tag, str) and tag.isprintable() else ""


def _timecode(container, video) -> str:
    """The start timecode: the video stream's tag, a timecode track's (MOV tmcd), the file's."""
    candidates = [video] + [s for s in container.streams if s.type == "data"]
    for obj in (*candidates, container):
        # FFmpeg's keys are case-insensitive, PyAV's dict is not: Matroska says TIMECODE.
        tags = {k.lower(): v for k, v in (obj.metadata or {}).items()}
        if tags.get("timecode"):
            return tags["timecode"].strip()
    return ""


def _sample_aspect(stream, first_frame) -> Fraction | None:
    """The pixels' aspect ratio (width / height of one pixel), None when square or unsaid.

    The container's value wins over the bitstream's, as FFmpeg's players do.
    """
    for value in (
        getattr(stream, "sample_aspect_ratio", None),
        getattr(stream.codec_context, "sample_aspect_ratio", None),
        getattr(first_frame, "sample_aspect_ratio", None),
    ):
        sar = to_fraction(value)
        if sar is not None and sar > 0:
            return None if sar == 1 else sar
    return None


def is_transparent(frame) -> bool:
    """Whether a decoded frame has alpha below opaque anywhere (GIF decodes to bgra even when
    nothing in it is transparent, so the format alone does not say)."""
    if not any(c.is_alpha for c in frame.format.components):
        return False
    return bool((frame.to_ndarray(format="rgba")[..., 3] < 255).any())


def _is_cover_art(stream) -> bool:
    disp = getattr(stream, "disposition", None)
    try:
        return bool(disp is not None and int(disp) & 0x400)  # AV_DISPOSITION_ATTACHED_PIC
    except (TypeError, ValueError):
        return False


def _first_frame(container, stream, path):
    import av

    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                continue
            if frames:
                return frames[0]
    except av.error.FFmpegError as e:
        raise VfiError(
            f"{path} is damaged: no video frame could be decoded ({short_reason(e)})"
        ) from None
    if stream.codec_context.name == "webp":  # FFmpeg decodes still WebP only, not animated
        raise VfiError(
            f"{path} is an animated WebP, which FFmpeg cannot decode; convert it to GIF or MP4 "
            "first (ImageMagick: magick in.webp out.gif)"
        )
    raise VfiError(f"{path} has no decodable video frames (damaged, or an unsupported codec)")


def _stream_info(s) -> StreamInfo:
    meta = dict(s.metadata or {})
    detail = ""
    cc = s.codec_context if s.type in ("audio", "video") else None
    name = getattr(cc, "name", None) if cc is not None else None
    if not name:
        name = getattr(getattr(s, "codec", None), "name", None) or _codec_name(s)
    if s.type == "audio" and cc is not None:
        layout = getattr(getattr(cc, "layout", None), "name", "")
        detail = f"{cc.sample_rate} Hz" + (f", {layout}" if layout else "")
    elif s.type == "attachment":
        detail = meta.get("filename", "")
    elif s.type == "data" and meta.get("timecode"):
        detail = f"timecode {meta['timecode']}"
    return StreamInfo(
        index=s.index,
        type=s.type,
        codec=name or "unknown",
        language=meta.get("language", ""),
        title=meta.get("title", ""),
        detail=detail,
    )


def _codec_name(s) -> str:
    try:
        return s.codec_context.name
    except AttributeError:
        return "unknown"


@dataclass
class _Scan:
    count: int = 0
    first: Fraction = Fraction(0)
    last: Fraction = Fraction(0)
    last_duration: Fraction | None = None
    min_gap: Fraction | None = None
    max_gap: Fraction | None = None
    median_gap: Fraction | None = None
    damaged: int = 0
    gaps: dict = field(default_factory=dict)  # gap (ticks) -> how often (at most 4096 values)


def _scan_packets(path: Path, index: int, tb: Fraction) -> _Scan:
    """Every video packet's presentation time, in presentation order, without decoding.

    Packets come in decode order (B-frames), so times pass through a small min-heap that puts them
    back in presentation order; memory stays constant however long the file.
    """
    import av

    scan = _Scan()
    heap: list[tuple[int, int]] = []
    prev: int | None = None
    gaps: dict[int, int] = {}  # gap (ticks) -> how often: few distinct values, constant memory

    def take(pts, dur):
        nonlocal prev
        if prev is not None:
            if pts <= prev:
                return
            gap = pts - prev
            if len(gaps) < 4096 or gap in gaps:
                gaps[gap] = gaps.get(gap, 0) + 1
        else:
            scan.first = pts * tb
        prev = pts
        scan.count += 1
        scan.last = pts * tb
        scan.last_duration = dur * tb if dur else None

    container = _open_container(path)
    try:
        stream = container.streams[index]
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                if getattr(packet, "is_corrupt", False):
                    scan.damaged += 1
                pts = packet.pts if packet.pts is not None else packet.dts
                if pts is None:  # raw streams without times: count only, at the nominal rate
                    pts = (prev or 0) + 1 if not heap else max(heap)[0] + 1
                heapq.heappush(heap, (pts, packet.duration or 0))
                if len(heap) > 32:
                    take(*heapq.heappop(heap))
        except av.error.FFmpegError:
            scan.damaged += 1  # truncated: what was read so far is the file
        while heap:
            take(*heapq.heappop(heap))
    finally:
        container.close()
    scan.gaps = gaps
    if gaps:
        ordered = sorted(gaps)
        scan.min_gap, scan.max_gap = ordered[0] * tb, ordered[-1] * tb
        half, seen = sum(gaps.values()) / 2, 0
        for g in ordered:
            seen += gaps[g]
            if seen >= half:
                scan.median_gap = g * tb
                break
    return scan


# Soft pulldown (NTSC DVDs, and their rips): 23.976 film frames stored as such, flagged to be shown
# for 3 fields, then 2, and so on. Demuxed, their times step by 3 and 2 fields (1/59.94 s each) in
# turn: variable rate to a scan, yet the film is constant-rate, and interpolating it at those
# display times would keep the 3:2 judder in every new frame.
PULLDOWN_MIN_SHARE = 0.9  # of all gaps, those of 2 or 3 fields
PULLDOWN_BALANCE = (0.8, 1.25)  # 2-field gaps per 3-field gap (1 in 2:3 pulldown)
FILM_RATES = (Fraction(24000, 1001), Fraction(24))  # carried by 2:3 pulldown at 29.97 / 30
PULLDOWN_RATE_TOLERANCE = 0.002  # a 1 ms clock's rounding of a 2- plus 3-field pair: < 0.1 %


def soft_pulldown_rate(gaps: dict, tb: Fraction) -> Fraction | None:
    """The film rate when frame gaps are 2 and 3 fields in turn (soft 2:3 pulldown), else None."""
    total = sum(gaps.values())
    if total < 8:
        return None
    common = sorted(gaps, key=gaps.get, reverse=True)
    two, three = sorted(common[:2]) if len(common) > 1 else (None, None)
    if two is None or abs(2 * three - 3 * two) > 2:  # 3 fields vs 2, within clock rounding
        return None

    def near(g):  # clocks round the gaps: 4504 and 4505 ticks of 90 kHz, 33 and 34 ms
        return {k: n for k, n in gaps.items() if abs(k - g) <= 1}

    def mean(d):
        return Fraction(sum(k * n for k, n in d.items()), sum(d.values()))

    n2, n3 = sum(near(two).values()), sum(near(three).values())
    if (n2 + n3) < PULLDOWN_MIN_SHARE * total:
        return None
    if not PULLDOWN_BALANCE[0] <= n2 / max(n3, 1) <= PULLDOWN_BALANCE[1]:
        return None
    measured = 2 / ((mean(near(two)) + mean(near(three))) * tb)  # 2 + 3 fields: 2 film frames
    for film in FILM_RATES:  # the clock rounds the gaps: name the rate they stand for
        if abs(measured / film - 1) < PULLDOWN_RATE_TOLERANCE:
            return film
    return None


def _nominal_rate(header_rates, scan: _Scan, vfr: bool, tb: Fraction) -> Fraction | None:
    """The input rate: a header rate that matches the packet times (CFR), else the average.

    A CFR rate that rounds a standard one is that rate (engine.timing.standard_rate).
    """
    if not vfr and scan.median_gap:
        for r in header_rates:
            if r and r > 0 and abs(1 / r - scan.median_gap) <= tb:
                return standard_rate(r)
        return standard_rate((1 / scan.median_gap).limit_denominator(1001))
    if scan.count > 1 and scan.last > scan.first:
        avg = Fraction(scan.count - 1) / (scan.last - scan.first)
        return avg.limit_denominator(100000)
    return next((r for r in header_rates if r and r > 0), None)


# --------------------------------------------------------------------------------------------------
# Image sequences (a frame directory, or an image pair)


class ImageSequence(Source):
    """Still images as frames: a pair, or a directory of numbered frames.

    In a directory, frame ``i`` is at ``slot_i / rate`` where ``slot_i`` is its number minus the
    first frame's: a frame missing from a render (``0046``, ``0048``) leaves a gap in time that the
    interpolation fills like any other. Files without such numbers are consecutive.
    """

    def __init__(self, path: Path, files: list[Path], kind: str, rate: Fraction):
        self.path = path
        self.files = files
        self.errors = 0
        self.dropped = 0
        numbered = numbered_slots(files) if kind == "frames" else None
        # step: the numbering's (None when the files are taken as consecutive, unnumbered)
        self.slots, self.step = numbered or (list(range(len(files))), None)
        step = self.step or 1
        base = frame_number(files[0]) or 0
        missing = sorted(set(range(self.slots[-1] + 1)) - set(self.slots))
        first = _read_image(files[0])
        h, w = first.height, first.width
        pix_fmt = first.format.name
        if is_float(pix_fmt):
            raise VfiError(f"{files[0]} {FLOAT_REFUSAL}")
        depth = bit_depth(pix_fmt) if pix_fmt != "pal8" else 8
        self.info = SourceInfo(
            path=path,
            kind=kind,
            width=w,
            height=h,
            rate=rate,
            start=Fraction(0),
            end=Fraction(self.slots[-1] + 1) / rate,
            last_time=Fraction(self.slots[-1]) / rate,
            frame_count=len(files),
            vfr=False,
            codec=first_codec(files[0]),
            pix_fmt=pix_fmt,
            depth=depth,
            color=ColorInfo(matrix=1, range=2, primaries=1, trc=13),  # images: sRGB
            tick=1 / rate,
            transparent=is_transparent(first),
            rotation=int(getattr(first, "rotation", 0) or 0),  # a photo's EXIF orientation
            missing=tuple(base + step * m for m in missing),
        )

    def frames(
        self, thumb_width: int | None = None, deinterlace: str = ""
    ) -> Iterator[SourceFrame]:
        import torch

        fmt = rgb_format(self.info.depth)
        for i, p in enumerate(self.files):
            frame = _read_image(p)
            if (frame.width, frame.height) != (self.info.width, self.info.height):
                raise VfiError(
                    f"{p.name} is {frame.width}x{frame.height} but the first frame is "
                    f"{self.info.width}x{self.info.height}; all frames must have one size"
                )
            arr = frame.to_ndarray(format=fmt)
            thumb = _thumbnail(frame, {"format": fmt}, self.info.depth, thumb_width)
            time = Fraction(self.slots[i]) / self.info.rate
            yield SourceFrame(i, time, torch.from_numpy(arr), thumb)


def first_codec(path: Path) -> str:
    return path.suffix.lower().lstrip(".")


def _read_image(path: Path):
    import av

    container = _open_container(path)
    try:
        for frame in container.decode(video=0):
            return frame
    except (av.error.FFmpegError, IndexError) as e:
        raise VfiError(f"{path} is not a readable image ({short_reason(e)})") from None
    finally:
        container.close()
    raise VfiError(f"{path} is not a readable image")
