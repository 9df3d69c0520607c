"""Inspecting a video file without decoding it: headers, the first frame, every packet's time.

:func:`inspect_video` returns the :class:`engine.video.source.SourceInfo` of a video file. Only the
first frame is decoded (colour, rotation, fields, HDR10, alpha); the rest is demuxed, so the frame
count, the start and end times and CFR/VFR are exact and cheap. A CFR rate that rounds a standard
one is named as that rate; soft 2:3 pulldown is recognised from the gaps and timed as film.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from engine.errors import VfiError, short_reason
from engine.timing import is_vfr, snap_to_grid, standard_rate
from engine.video.color import ColorInfo, bit_depth, color_info, is_rgb
from engine.video.hdr import read_hdr10, uncarried
from engine.video.source import SourceInfo, StreamInfo, open_container, to_fraction


def inspect_video(path: Path, rate_override: Fraction | None) -> SourceInfo:
    """Read the headers, the first frame (colour, rotation) and every packet's time (no decoding)."""

    container = open_container(path)
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

    container = open_container(path)
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
