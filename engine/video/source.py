"""What a source is: its description (:class:`SourceInfo`), its frames (:class:`SourceFrame`), and
the :class:`Source` interface that video files (:mod:`engine.video.reader`) and still images
(:mod:`engine.video.images`) implement.

Times are ``Fraction`` seconds (PTS x time_base); images are integer (H, W, 3) RGB tensors in the
travel format of :mod:`engine.video.color` (uint8 for 8-bit sources, uint16 for deeper ones).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from engine.errors import VfiError, short_reason
from engine.video.color import ColorInfo


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


class Source:
    info: SourceInfo
    errors: int = 0  # packets/files that failed to decode in frames()
    dropped: int = 0  # frames dropped because their time did not increase

    def frames(
        self, thumb_width: int | None = None, deinterlace: str = ""
    ) -> Iterator[SourceFrame]:
        """Decoded frames in order; with ``thumb_width``, each with a luma thumbnail that wide.

        ``deinterlace``: "", "bwdif" or "ivtc", video files only (see :mod:`engine.video.reader`);
        image frames are progressive.
        """
        raise NotImplementedError


def open_container(path: Path):
    """``av.open`` for reading; a file FFmpeg cannot open is a one-line :class:`VfiError`."""
    import av

    try:
        return av.open(str(path), "r")
    except av.error.FFmpegError as e:
        raise VfiError(
            f"{path} is not a video or image file FFmpeg can read ({short_reason(e)})"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise VfiError(f"cannot open {path}: {e}") from None


def thumbnail(frame, convert: dict, depth: int, width: int | None):
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
