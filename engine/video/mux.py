"""The final file: the encoded segments' packets joined (no re-encode) + the input's other streams.

Video packets keep their exact times: segment ``j`` starting at output frame ``k_j`` is shifted by
``k_j / R_out`` (an integer number of ticks of the segment's time base), plus the input's start time
so that audio stays where it was. Audio/subtitle packets are copied with their own timestamps (or
converted / transcoded, see :mod:`engine.video.streams`); packets of all streams are merged in time
order so the muxer never buffers more than a few of them (constant memory).
"""

from __future__ import annotations

import contextlib
import heapq
import math
from fractions import Fraction
from pathlib import Path

from engine.errors import VfiError
from engine.video.codecs import PRORES_FOURCC
from engine.video.source import SourceInfo, to_fraction
from engine.video.streams import StreamAction, copy_metadata, subtitle_payload, subtitle_text
from engine.video.writer import EncodePlan

_MAX_TB_DEN = 2**31 - 1


def assemble(
    out_path: Path,
    plan: EncodePlan,
    segments: list[tuple[Path, int]],
    *,
    source: SourceInfo | None,
    actions: list[StreamAction],
    start: Fraction = Fraction(0),
    time_scale: Fraction = Fraction(1),
    timecode: str = "",
    stop: Fraction | None = None,
) -> None:
    """Write ``out_path`` (a temporary name; the caller renames it) from ``segments``.

    ``segments``: (file, index of its first output frame), in order. ``time_scale``: the slow-motion
    factor applied to copied subtitle times and chapters (1 otherwise). ``timecode``: the first
    frame's label at the output rate (engine.timecode), or "". ``stop``: --duration's end, in
    source time: other streams' packets and chapters from then on are left out.
    """
    import av

    if not segments:
        raise VfiError("no video was produced")
    try:
        # MP4 keeps a timecode track only when asked (MOV always writes one).
        opts = {"write_tmcd": "1"} if timecode and plan.container == "mp4" else {}
        out = av.open(str(out_path), "w", format=plan.container, options=opts)
    except (OSError, av.error.FFmpegError) as e:
        raise VfiError(f"cannot write {out_path}: {e}") from None
    opened = []
    try:
        first = av.open(str(segments[0][0]))
        opened.append(first)
        template = first.streams.video[0]
        seg_tb = to_fraction(template.time_base)
        # opaque=True: take the segment's codec as it is. Otherwise PyAV looks up an *encoder* named
        # after the segment's decoder, and AV1 segments decode with libdav1d, which has none.
        ov = out.add_stream_from_template(template, opaque=True)
        fourcc = (
            PRORES_FOURCC.get(plan.options.get("profile", ""))
            if plan.codec == "prores_ks"
            else None
        )
        if fourcc and plan.container == "mov":  # the flavour's label (codecs.PRORES_FOURCC)
            ov.codec_context.codec_tag = fourcc
        fine_tb, start = _fine_time_base(seg_tb, start)
        ov.time_base = fine_tb
        inp = None
        routes = {}
        if source is not None and source.kind == "video":
            inp = av.open(str(source.path))
            opened.append(inp)
            copy_metadata(dict(inp.metadata or {}), out.metadata)
            vin = inp.streams[source.video_index]
            for key in ("language", "title", "handler_name"):
                if key in (vin.metadata or {}):
                    ov.metadata[key] = vin.metadata[key]
            if source.rotation and hasattr(ov, "set_display_rotation"):
                ov.set_display_rotation(source.rotation)
            if timecode:  # MOV/MP4 write it as a tmcd track, Matroska as a tag
                ov.metadata["timecode"] = timecode
            routes = _add_streams(out, inp, actions)
            _copy_chapters(inp, out, start, time_scale, stop)
        videos = _video_packets(segments, ov, plan.rate, seg_tb, fine_tb, start, opened)
        others = _other_packets(inp, routes, start, time_scale, stop) if routes else iter(())
        for _, packet in heapq.merge(videos, others, key=lambda item: item[0]):
            out.mux(packet)
        out.close()
    except av.error.FFmpegError as e:
        _close_quietly(out)
        raise _mux_error(out_path, e) from None
    except OSError as e:
        _close_quietly(out)
        raise _mux_error(out_path, e) from None
    except BaseException:
        _close_quietly(out)
        raise
    finally:
        for c in opened:
            c.close()


def _fine_time_base(seg_tb: Fraction, start: Fraction) -> tuple[Fraction, Fraction]:
    """A time base in which both segment ticks and the start time are integers (if reasonable)."""
    if seg_tb.numerator == 1:
        den = math.lcm(seg_tb.denominator, start.denominator)
        if den <= _MAX_TB_DEN:
            return Fraction(1, den), start
    # Start not representable: round it to a segment tick (less than one tick of shift).
    return seg_tb, round(start / seg_tb) * seg_tb


def _video_packets(segments, ov, rate, seg_tb, fine_tb, start, opened):
    import av

    for path, first_index in segments:
        container = av.open(str(path))
        opened.append(container)
        stream = container.streams.video[0]
        tb = to_fraction(stream.time_base)
        offset = start + Fraction(first_index) / rate
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            pts = None if packet.pts is None else _ticks(offset + packet.pts * tb, fine_tb)
            dts = None if packet.dts is None else _ticks(offset + packet.dts * tb, fine_tb)
            duration = _ticks(packet.duration * tb, fine_tb) if packet.duration else 0
            packet.time_base = fine_tb
            packet.pts, packet.dts, packet.duration = pts, dts, duration
            packet.stream = ov
            yield (dts if dts is not None else pts) * fine_tb, packet
        container.close()
        opened.remove(container)


def _ticks(time: Fraction, tb: Fraction) -> int:
    return round(time / tb)


def _add_streams(out, inp, actions: list[StreamAction]) -> dict:
    """Output streams for the kept input streams: index -> (action, output stream)."""
    routes = {}
    for a in actions:
        if a.action == "drop":
            continue
        src = inp.streams[a.stream.index]
        if a.action == "copy":
            dst = out.add_stream_from_template(src)
        elif a.action == "convert":
            dst = out.add_mux_stream(a.target)
            dst.time_base = to_fraction(src.time_base)
        else:  # transcode audio
            cc = src.codec_context
            dst = out.add_stream(a.target, rate=cc.sample_rate)
            dst.layout = cc.layout
            routes[a.stream.index] = (a, dst, src.codec_context)
        for key, value in (src.metadata or {}).items():
            if key.lower() in ("language", "title", "handler_name", "filename", "mimetype"):
                dst.metadata[key] = value
        routes.setdefault(a.stream.index, (a, dst, None))
    return routes


def _other_packets(inp, routes, start: Fraction, time_scale: Fraction, stop=None):
    """Packets of the kept streams, in file order, copied / converted / transcoded.

    ``stop`` (source time): packets that start from then on are left out; the stream ends there.
    """
    import av

    streams = [inp.streams[i] for i in routes if inp.streams[i].type != "attachment"]
    if not streams:
        return
    last = Fraction(0)
    for packet in inp.demux(*streams):
        action, dst, decoder = routes[packet.stream.index]
        if _past(packet, stop):
            continue  # past --duration (a flush packet still drains a transcoder)
        if action.action == "transcode":
            try:
                frames = decoder.decode(packet if packet.size else None)
            except av.error.FFmpegError:
                continue  # a damaged audio packet: skip it, as players do
            for frame in frames:
                for out in dst.encode(frame):
                    last = _time(out, last)
                    yield last, out
            if not packet.size:
                for out in dst.encode(None):
                    last = _time(out, last)
                    yield last, out
            continue
        if not packet.size:
            continue
        if action.stream.codec == "mov_text" and bytes(packet) == b"\x00\x00":
            continue  # an empty gap cue: the MP4 muxer writes its own between cues
        if action.action == "convert":
            text = subtitle_text(action.stream.codec, bytes(packet))
            if not text and action.target != "mov_text":
                continue
            out = av.Packet(subtitle_payload(action.target, text))
            out.pts, out.dts, out.duration = packet.pts, packet.dts, packet.duration
            out.time_base = to_fraction(packet.time_base)
        else:
            out = packet
        if time_scale != 1 and out.pts is not None:
            tb = to_fraction(out.time_base)
            out.pts = _ticks(start + (out.pts * tb - start) * time_scale, tb)
            out.dts = out.pts
            out.duration = round((out.duration or 0) * time_scale)
        out.stream = dst
        last = _time(out, last)
        yield last, out


def _time(packet, last: Fraction) -> Fraction:
    ts = packet.dts if packet.dts is not None else packet.pts
    tb = to_fraction(packet.time_base)
    return ts * tb if ts is not None and tb else last


def _past(packet, stop) -> bool:
    """Whether a packet with data starts at or after ``stop`` (source time; None: never)."""
    if stop is None or not packet.size or packet.pts is None:
        return False
    return packet.pts * to_fraction(packet.time_base) >= stop


def _copy_chapters(inp, out, start: Fraction, time_scale: Fraction, stop=None) -> None:
    if not (hasattr(inp, "chapters") and hasattr(out, "set_chapters")):
        return
    chapters = inp.chapters()
    if not chapters:
        return
    chapters = [
        {**ch, "time_base": to_fraction(ch["time_base"]) or Fraction(1, 1000)} for ch in chapters
    ]
    if stop is not None:  # --duration: the chapters that start before the cut, ending at it
        chapters = [
            {**ch, "end": min(ch["end"], _ticks(stop, ch["time_base"]))}
            for ch in chapters
            if ch["start"] * ch["time_base"] < stop
        ]
        if not chapters:
            return
    if time_scale != 1:
        scaled = []
        for ch in chapters:
            tb = ch["time_base"]
            ch = dict(ch)
            ch["start"] = _ticks(start + (ch["start"] * tb - start) * time_scale, tb)
            ch["end"] = _ticks(start + (ch["end"] * tb - start) * time_scale, tb)
            scaled.append(ch)
        chapters = scaled
    out.set_chapters(chapters)


def _close_quietly(container) -> None:
    # The file is being abandoned; the original error is what matters.
    with contextlib.suppress(Exception):
        container.close()


def _mux_error(path: Path, err) -> VfiError:
    import errno

    if getattr(err, "errno", None) == errno.ENOSPC:
        return VfiError(f"disk full while writing {path.parent}; free some space and rerun")
    return VfiError(f"cannot write {path}: {err}")
