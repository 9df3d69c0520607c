"""Encoding: one RGB -> Y'CbCr path for every frame, bit depth kept, colour tags copied.

Every output frame (a repeated source frame or a synthesized one) arrives here as integer RGB in the
travel format (:func:`engine.video.color.quantize`), and goes through :func:`rgb_to_frame`: the same
swscale conversion with the same explicit matrix and range. So no frame is converted differently from
its neighbours, and nothing flickers.

The video is encoded in *segments* (a few seconds each, one encoder per segment, every segment
starting with a keyframe): the pipeline renames a finished segment into place and records it in the
journal, so an interrupted run resumes from the last finished segment and ends bit-identical to an
uninterrupted one. :mod:`engine.video.mux` then joins the segments' packets (no re-encode) with the
copied audio and subtitles into the final file.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from engine.errors import VfiError, short_reason
from engine.video import codecs, gif, hdr
from engine.video.codecs import (
    CODEC_ALIASES,
    CODEC_DEFAULTS,
    DNXHR_MIN_SIZE,
    KNOWN_CODECS,
    PROFILE_PIX_FMTS,
    SEGMENT_CONTAINERS,
    container_for,
    container_holds,
    default_codec,
    find_encoder,
    holding_ext,
    is_hardware,
    matching_intermediate,
)
from engine.video.color import TV, ColorInfo, bit_depth, rgb_format

SEGMENT_SECONDS = 4  # journal granularity; also a natural keyframe interval


@dataclass
class EncodePlan:
    """Everything the encoder needs, decided once before the first frame."""

    codec: str
    container: str  # muxer of the final file
    pix_fmt: str
    width: int  # encoded size (even where chroma is subsampled)
    height: int
    src_width: int  # the frames' size (the right/bottom edge is repeated up to width x height)
    src_height: int
    rate: Fraction  # output frames per second
    color: ColorInfo
    depth: int  # travel depth of the RGB frames: 8 or 16
    options: dict[str, str] = field(default_factory=dict)
    sar: Fraction | None = None  # the source's non-square pixel aspect, kept (None: square)
    segment_frames: int = 240
    warnings: list[str] = field(default_factory=list)

    @property
    def segment_container(self) -> str:
        return SEGMENT_CONTAINERS.get(self.codec, "matroska")

    def describe(self) -> str:
        opts = " ".join(f"{k}={v}" for k, v in self.options.items())
        size = f"{self.width}x{self.height}"
        if (self.width, self.height) != (self.src_width, self.src_height):
            size += f" (padded from {self.src_width}x{self.src_height})"
        if self.sar:
            size += f" SAR {self.sar.numerator}:{self.sar.denominator}"
        return f"{self.codec} {self.pix_fmt} {size} {opts}".strip()


def plan_encoding(
    out_path: Path,
    *,
    width: int,
    height: int,
    rate: Fraction,
    color: ColorInfo,
    source_pix_fmt: str,
    source_depth: int,
    codec: str | None = None,
    crf: int | None = None,
    preset: str | None = None,
    pix_fmt: str | None = None,
    options: dict[str, str] | None = None,
    hdr10=None,
    sar: Fraction | None = None,
    source_format: tuple[str, str, str] = ("", "", ""),
) -> EncodePlan:
    """Resolve codec, pixel format (keeping the bit depth), size and options for ``out_path``.

    ``hdr10``: the source's engine.video.hdr.Hdr10, passed on where the encoder takes it.
    ``source_format``: the source's (decoder, FourCC, profile): with no ``codec``, a ProRes or
    DNxHR source is written in its own format where the container holds it (what an editor expects
    of a clip that goes back on the timeline).
    """
    import av

    container = container_for(out_path)
    if codec is None:
        same = matching_intermediate(*source_format)
        if same and same[0] in av.codecs_available and container_holds(container, same[0]):
            codec, preset = same[0], preset if preset is not None else same[1]
        else:
            codec = default_codec(container, source_depth)
    av_codec = find_encoder(codec)
    if av_codec is None:
        # Suggest only what this build has: wheels differ (e.g. no libaom-av1 in PyAV's).
        have = [c for c in KNOWN_CODECS if c in av.codecs_available and not is_hardware(c)]
        raise VfiError(
            f"encoder {CODEC_ALIASES.get(codec.lower(), codec)!r} is not available in this "
            f"FFmpeg build; try {', '.join(have)}"
        )
    if av_codec.type != "video":
        raise VfiError(f"{codec!r} is not a video encoder")
    # A format name stands for FFmpeg's encoder of it: h264 -> libx264, hevc -> libx265, av1 -> ...
    codec = av_codec.name
    _check_container_accepts(container, av_codec.name, out_path)
    warnings: list[str] = []
    formats = [f.name for f in av_codec.video_formats or ()]

    opts: dict[str, str] = {}
    crf_key, crf_default, preset_key, preset_default = CODEC_DEFAULTS.get(codec, (None,) * 4)
    if crf is not None:
        if crf_key is None:
            why = "its --preset (profile) sets the quality" if preset_key else "it is lossless"
            raise VfiError(f"{codec} takes no --crf ({why}; other settings go in -e key=value)")
        if not 0 <= crf <= 63:
            raise VfiError(f"--crf must be between 0 and 63, got {crf}")
    if crf_key:
        opts[crf_key] = str(crf if crf is not None else crf_default)
    if codec == "libvpx-vp9":
        opts.update({"b": "0", "row-mt": "1", "deadline": "good"})
    if codec == "gif":
        opts.update(gif.ENCODER_OPTIONS)
    if preset_key:
        default = codecs.default_profile(codec, source_pix_fmt, source_depth) or preset_default
        opts[preset_key] = str(preset if preset is not None else default)
    elif preset is not None:
        raise VfiError(f"{codec} takes no --preset; set encoder options with -e key=value")
    opts.update(options or {})
    profile_fmt = PROFILE_PIX_FMTS.get(codec, {}).get(opts.get(preset_key or "", ""))
    if codec == "gif":
        profile_fmt = "pal8"  # 256 colours, a palette per frame (engine.video.gif)
        warnings += [w for w in (gif.rate_warning(Fraction(rate)),) if w]
        if source_depth > 8:
            warnings.append(f"GIF holds 8 bits per channel: the source's {source_depth} are cut")
    chosen = _choose_pix_fmt(
        pix_fmt or profile_fmt, formats, source_pix_fmt, source_depth, codec, warnings
    )
    if profile_fmt and not pix_fmt and bit_depth(profile_fmt) < source_depth:
        deeper = [
            p for p, f in PROFILE_PIX_FMTS.get(codec, {}).items() if bit_depth(f) >= source_depth
        ]
        warnings.append(
            f"{codec} {opts[preset_key]} keeps {bit_depth(profile_fmt)} bits of the source's "
            f"{source_depth} ({deeper[0] if deeper else 'ffv1'} keeps them all)"
        )
    if hdr10 is not None and not hdr.add_to_options(codec, hdr10, opts):
        warnings.append(
            f"{codec} cannot carry the source's {hdr10.describe()}: players will assume "
            "defaults (libx265 and libsvtav1 keep it)"
        )

    if codec == "dnxhd" and (width < DNXHR_MIN_SIZE[0] or height < DNXHR_MIN_SIZE[1]):
        raise VfiError(
            f"DNxHR needs frames of at least {DNXHR_MIN_SIZE[0]}x{DNXHR_MIN_SIZE[1]}, this video "
            f"is {width}x{height}; use --codec prores or ffv1"
        )
    fmt = av.VideoFormat(chosen)
    w, h = width, height
    # Subsampled chroma needs even sizes: repeat the last column/row (H.264 & co. cannot crop odd).
    if fmt.chroma_width(w) * 2 != w and _subsampled(fmt, "w"):
        w += 1
    if fmt.chroma_height(h) * 2 != h and _subsampled(fmt, "h"):
        h += 1
    if (w, h) != (width, height):
        warnings.append(
            f"{width}x{height} is odd and {chosen} halves the chroma: encoding {w}x{h} with the "
            "edge repeated (use --pix-fmt yuv444p to keep the exact size)"
        )
    check_encoder_opens(codec, w, h, chosen, Fraction(rate), opts)
    out_color = color
    if not color.range:
        out_color = ColorInfo(color.matrix, TV, color.primaries, color.trc)
    segment = max(8, round(rate * SEGMENT_SECONDS))
    return EncodePlan(
        codec=codec,
        container=container,
        pix_fmt=chosen,
        width=w,
        height=h,
        src_width=width,
        src_height=height,
        rate=Fraction(rate),
        color=out_color,
        depth=8 if source_depth <= 8 else 16,
        options=opts,
        sar=sar,
        segment_frames=segment,
        warnings=warnings,
    )


def _subsampled(fmt, axis: str) -> bool:
    probe = 4
    return (fmt.chroma_width(probe) if axis == "w" else fmt.chroma_height(probe)) < probe


def _check_container_accepts(container: str, codec_name: str, out_path: Path) -> None:
    if not container_holds(container, codec_name):
        raise VfiError(
            f"{out_path.suffix} files cannot hold {codec_name} video; pick another --codec "
            f"or another output extension ({holding_ext(codec_name)} holds it)"
        )


def _choose_pix_fmt(requested, formats, source_pix_fmt, source_depth, codec, warnings) -> str:
    if requested:
        if formats and requested not in formats:
            raise VfiError(f"{codec} cannot encode {requested}; it takes {', '.join(formats[:12])}")
        return requested
    src = source_pix_fmt.replace("yuvj", "yuv")  # full range is a tag, not a format
    depth = max(8, source_depth)
    wanted = [src] if src.startswith("yuv") and "a" not in src[3:5] else []
    wanted += [f"yuv420p{depth}le" if depth > 8 else "yuv420p", "yuv420p10le", "yuv420p"]
    for cand in wanted:
        if not formats or cand in formats:
            if bit_depth(cand) < depth:
                warnings.append(
                    f"{codec} cannot keep the source's {depth}-bit depth here: writing {cand} "
                    "(libx265 or ffv1 keep 10-bit)"
                )
            return cand
    return formats[0]


def rgb_to_frame(rgb, plan: EncodePlan):
    """Integer RGB (H, W, 3) numpy array -> a Y'CbCr av.VideoFrame tagged with the plan's colour.

    The only place the pipeline converts RGB to Y'CbCr (see the module docstring).
    """
    import av
    import numpy as np

    if plan.pix_fmt == "pal8":  # GIF: 8-bit RGB to a palette of its own; no Y'CbCr, no tags
        if rgb.dtype == np.uint16:
            rgb = ((rgb.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
        return gif.quantize(np.ascontiguousarray(rgb))
    if plan.depth == 16 and rgb.dtype != np.uint16:
        rgb = rgb.astype(np.uint16)
    ph, pw = plan.height - rgb.shape[0], plan.width - rgb.shape[1]
    if ph or pw:
        rgb = np.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode="edge")
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format=rgb_format(plan.depth))
    c = plan.color
    out = frame.reformat(
        format=plan.pix_fmt,
        src_color_range=2,
        dst_colorspace=c.sws_matrix,
        dst_color_range=c.range,
    )
    out.colorspace = c.matrix
    out.color_range = c.range
    out.color_primaries = c.primaries
    out.color_trc = c.trc
    return out


# x265 and SVT-AV1 print banners and notes straight to stderr (not through FFmpeg's log, which vfi
# already silences), a dozen lines per segment encoder: they bury the progress display and break
# -q's "only errors and warnings". They are kept to errors unless the user asked for a level
# (-e x265-params=log-level=info, or SVT_LOG in the environment).
X265_LOG_LEVEL = "error"
SVT_LOG_LEVEL = "1"  # SVT-AV1: 1 = errors


def _quiet_encoder_logs(codec: str, options: dict[str, str]) -> dict[str, str]:
    opts = dict(options)
    if codec == "libx265":
        hdr.merge_params(opts, "x265-params", [f"log-level={X265_LOG_LEVEL}"])
    elif codec == "libsvtav1":
        os.environ.setdefault("SVT_LOG", SVT_LOG_LEVEL)  # read by each encoder as it opens
    return opts


class SegmentWriter:
    """Encodes one segment: frames with local pts 0, 1, 2, ... at the plan's rate."""

    def __init__(self, plan: EncodePlan, path: Path):
        import av

        self.plan = plan
        self.path = Path(path)
        self.count = 0
        try:
            self.container = av.open(str(path), "w", format=plan.segment_container)
        except (OSError, av.error.FFmpegError) as e:
            raise VfiError(f"cannot write {path}: {e}") from None
        stream = self.container.add_stream(plan.codec, rate=plan.rate)
        stream.width, stream.height = plan.width, plan.height
        stream.pix_fmt = plan.pix_fmt
        stream.time_base = 1 / plan.rate
        cc = stream.codec_context
        cc.colorspace = plan.color.matrix
        cc.color_range = plan.color.range
        cc.color_primaries = plan.color.primaries
        cc.color_trc = plan.color.trc
        if plan.sar:  # anamorphic sources (DVD, DV, HDV) display wider than their pixel grid
            cc.sample_aspect_ratio = plan.sar
        if plan.codec == "libx264":
            # PyAV asks for slice threads, which x264 takes as --sliced-threads: rows of one frame
            # split across cores, poorer scaling and compression. Frame threads (x264's default)
            # keep every core busy at 1080p and 4K; the extra latency only delays a segment's end,
            # which the pipeline overlaps with the next segment (engine/encode.py).
            cc.thread_type = "FRAME"
        cc.options = _quiet_encoder_logs(plan.codec, plan.options)
        self.stream = stream

    def write(self, rgb) -> None:
        """Encode one frame: integer RGB (H, W, 3), or an ``av.VideoFrame`` from rgb_to_frame."""
        import av

        frame = rgb if isinstance(rgb, av.VideoFrame) else rgb_to_frame(rgb, self.plan)
        # pts counts frames; a frame out of a filter graph (GIF's palette) carries the graph's
        # time base, which PyAV would otherwise rescale the count from.
        frame.time_base = 1 / self.plan.rate
        frame.pts = self.count
        self.count += 1
        self._mux(self.stream.encode(frame))

    def close(self) -> None:
        self._mux(self.stream.encode(None))
        self.container.close()

    def abort(self) -> None:
        # Closing a half-written file may fail; the file is deleted next anyway.
        with contextlib.suppress(Exception):
            self.container.close()

    def _mux(self, packets) -> None:
        import av

        try:
            self.container.mux(packets)
        except av.error.FFmpegError as e:
            raise _write_error(self.path, e) from None
        except OSError as e:
            raise _write_error(self.path, e) from None


def check_encoder_opens(
    codec: str, width: int, height: int, pix_fmt: str, rate: Fraction, options: dict[str, str]
) -> None:
    """Open the encoder once, as every segment will, and let it go.

    So a misspelt --preset, an -e option the encoder does not have, or a hardware encoder without
    its hardware is one line before any frame is decoded (and in --dry-run / probe), not a failure
    when the first segment opens. Milliseconds for software encoders (SVT-AV1 at 4K: ~0.2 s).
    """
    import av

    cc = av.CodecContext.create(codec, "w")
    cc.width, cc.height, cc.pix_fmt = width, height, pix_fmt
    cc.time_base, cc.framerate = 1 / rate, rate
    cc.options = _quiet_encoder_logs(codec, options)
    said: list[str] = []
    try:
        with _encoder_messages(said):
            cc.open()
    except av.error.FFmpegError as e:
        settings = " ".join(f"{k}={v}" for k, v in options.items()) or "its defaults"
        hint = (
            "it needs a GPU and driver with that hardware encoder; pick a software --codec"
            if is_hardware(codec)
            else "check --preset, --crf and -e"
        )
        reason = said[-1] if said else short_reason(e)  # the encoder's own words, when it said any
        raise VfiError(
            f"encoder {codec} does not open with {settings} ({reason}); {hint}"
        ) from None
    unused = sorted(cc.options)  # FFmpeg hands back the options no part of the encoder took
    if unused:
        raise VfiError(
            f"encoder {codec} has no option {', '.join(unused)}; "
            f"list its options with: ffmpeg -h encoder={codec}"
        )


@contextlib.contextmanager
def _encoder_messages(said: list[str]):
    """Collect what an encoder says while it opens, instead of letting it reach the terminal.

    FFmpeg's log (at error level, for this thread) and the process's stderr: x264 reports a bad
    preset with its own fprintf before FFmpeg's log is hooked up ("x264 [error]: invalid preset").
    What arrives on stderr is passed on unchanged when the encoder opens after all.
    """
    import tempfile

    import av.logging

    level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    sys.stderr.flush()
    saved = os.dup(2)
    opened = False
    try:
        with tempfile.TemporaryFile() as sink, av.logging.Capture() as logs:
            os.dup2(sink.fileno(), 2)
            try:
                yield
                opened = True
            finally:
                os.dup2(saved, 2)
                sink.seek(0)
                text = sink.read().decode(errors="replace")
                said += [m.strip() for _, _, m in logs if m.strip()]
                said += [_strip_tag(ln) for ln in text.splitlines() if "error" in ln.lower()]
                if opened and text:
                    sys.stderr.write(text)
    finally:
        os.close(saved)
        av.logging.set_level(level)


def _strip_tag(line: str) -> str:
    """ "x264 [error]: invalid preset 'blah'" -> "x264: invalid preset 'blah'" """
    return line.replace(" [error]:", ":").strip()


def _write_error(path: Path, err) -> VfiError:
    import errno

    code = getattr(err, "errno", None)
    if code == errno.ENOSPC:
        return VfiError(f"disk full while writing {path.parent}; free some space and rerun")
    return VfiError(f"cannot write {path}: {err}")


def write_png(path: Path, rgb, depth: int) -> None:
    """One PNG (8- or 16-bit RGB) written through a temporary name and renamed."""
    import av
    import numpy as np

    fmt = rgb_format(depth)
    if depth == 16 and rgb.dtype != np.uint16:
        rgb = rgb.astype(np.uint16)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format=fmt)
    cc = av.CodecContext.create("png", "w")
    cc.width, cc.height = frame.width, frame.height
    cc.pix_fmt = "rgb24" if depth == 8 else "rgb48be"
    cc.time_base = Fraction(1, 1)
    if depth == 16:
        frame = frame.reformat(format="rgb48be")
    data = b"".join(bytes(p) for p in [*cc.encode(frame), *cc.encode(None)])
    tmp = path.with_name(path.name + ".part")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise _write_error(path, e) from None
