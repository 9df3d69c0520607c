"""Fields to frames: deinterlacing (bwdif) and inverse telecine (fieldmatch + decimate).

Both run in the reader, on decoded frames, before the RGB conversion: the model never sees combing.

- ``bwdif``: video shot interlaced (1080i, DV): every frame's two fields become one progressive
  frame, one frame out per frame in, times kept.
- ``ivtc``: film (24 frames per second) carried in 60i by 2:3 pulldown: of every 5 interlaced
  frames, 3 are whole film frames and 2 weave fields of two different film frames. ``fieldmatch``
  pairs each field with the field of its own film frame, ``yadif`` deinterlaces what has no match
  (video-shot inserts), and ``decimate`` drops the one duplicate of each cycle of 5: the film's
  own frames come back, at 4/5 of the rate (29.97 -> 23.976 fps), with no blended or combed frame.
  Interpolating the telecined frames instead would carry the 3:2 judder into every new frame.

``--deinterlace auto`` picks ``ivtc`` for interlaced 29.97 / 30 fps video whose first frames show
the 2:3 cadence (:func:`looks_telecined`), ``bwdif`` for other interlaced video.

Soft pulldown (whole film frames flagged to repeat fields, as DVDs store film) needs none of this:
the reader times those frames as film (:func:`engine.video.probing.soft_pulldown_rate`).

Times after ``ivtc``: the n-th kept frame is at ``start + n / film_rate`` (decimate's output is
constant-rate); ``n - n // 5`` frames come out of ``n`` (a last, partial cycle is kept whole).
"""

from __future__ import annotations

import dataclasses
import itertools
from fractions import Fraction

from engine.errors import VfiError

PULLDOWN_CYCLE = 5  # interlaced frames per 4 film frames in 2:3 pulldown
FILM_RATIO = Fraction(PULLDOWN_CYCLE - 1, PULLDOWN_CYCLE)
# Frame rates that carry 2:3 pulldown: NTSC 29.97 and its integer twin 30.
TELECINE_RATES = (Fraction(30000, 1001), Fraction(30))


def is_telecine_rate(rate: Fraction) -> bool:
    """29.97 or 30 fps (as stored: within 1/100 of a frame a second)."""
    return any(abs(rate - r) < Fraction(1, 100) for r in TELECINE_RATES)


def bwdif(frames, stream, interlaced: str):
    """Interlaced ``frames`` of ``stream`` -> progressive ones, one per frame, same times.

    FFmpeg's bwdif (w3fdif-style, with yadif's edge checks), every frame treated as interlaced: the
    caller decided the stream is. ``interlaced`` gives the field order ("tff" / "bff"); otherwise
    the frames' own flags decide, top field first where they say nothing.
    """
    parity = {"tff": "tff", "bff": "bff"}.get(interlaced, "auto")
    return _filter(frames, stream, [("bwdif", f"mode=send_frame:parity={parity}:deint=all")])


def inverse_telecine(frames, stream, interlaced: str, rate: Fraction):
    """Telecined ``frames`` (2:3 pulldown at ``rate``) -> the film frames, at 4/5 of the rate."""
    order = {"tff": "tff", "bff": "bff"}.get(interlaced, "auto")
    chain = [
        ("fieldmatch", f"order={order}:combmatch=full"),
        ("yadif", "deint=interlaced"),  # only frames fieldmatch could not make whole
        ("decimate", f"cycle={PULLDOWN_CYCLE}"),
    ]
    return _filter(frames, stream, chain, rate=rate)


# Telecine detection (``--deinterlace auto`` on interlaced 29.97 / 30 fps video): FFmpeg's idet flags
# each frame whose top or bottom field repeats the previous frame's. 2:3 pulldown repeats one field
# in 2 frames of every 5, always at the same two places of the cycle (still shots show none, so the
# share of frames varies with the content); video shot interlaced repeats none. So: repeats at two
# phases of the cycle, several cycles over, and few elsewhere (an edit made after the telecine
# shifts the phase).
TELECINE_PROBE_FRAMES = 300  # ~10 s: past a fade-in, under a second of decoding at 1080i
TELECINE_MIN_CYCLES = 4  # repeats seen at least this many times at each of the two phases
TELECINE_MAX_SHARE = 0.5  # more frames than this with a repeated field is no 2:3 cadence
TELECINE_PHASE_SHARE = 0.75  # share of the repeats at the two commonest phases


def looks_telecined(path, video_index: int) -> bool:
    """Whether the video's first TELECINE_PROBE_FRAMES frames show a 2:3 pulldown cadence."""
    import av

    repeats: list[int] = []  # indices of frames with a repeated field
    n = 0
    try:
        with av.open(str(path)) as container:
            stream = container.streams[video_index]
            decoded = (f for packet in container.demux(stream) for f in _decode_quietly(packet))
            for frame in _filter(
                itertools.islice(decoded, TELECINE_PROBE_FRAMES), stream, [("idet", "")]
            ):
                repeated = frame.metadata.get("lavfi.idet.repeated.current_frame", "neither")
                if repeated != "neither":
                    repeats.append(n)
                n += 1
    except av.error.FFmpegError:  # a damaged file: judge by what was read before the damage
        pass
    if not n or len(repeats) > TELECINE_MAX_SHARE * n:
        return False
    phases = sorted(sum(1 for i in repeats if i % PULLDOWN_CYCLE == p) for p in range(5))
    two = phases[-1] + phases[-2]
    return phases[-2] >= TELECINE_MIN_CYCLES and two >= TELECINE_PHASE_SHARE * len(repeats)


def _decode_quietly(packet):
    import av

    try:
        return packet.decode()
    except av.error.FFmpegError:
        return []


def film_info(info):
    """The SourceInfo that inverse telecine leaves: film rate, 4 frames of every 5, progressive."""
    if info.kind != "video":
        raise VfiError("--deinterlace ivtc applies to video files only")
    if info.vfr or not is_telecine_rate(info.rate):
        raise VfiError(
            f"--deinterlace ivtc undoes 2:3 pulldown in 29.97 or 30 fps video; this one is "
            f"{'variable-rate' if info.vfr else f'{float(info.rate):g} fps'}"
        )
    rate = info.rate * FILM_RATIO
    count = info.frame_count - info.frame_count // PULLDOWN_CYCLE
    last = info.start + Fraction(count - 1) / rate
    return dataclasses.replace(
        info, rate=rate, frame_count=count, last_time=last, end=last + 1 / rate, interlaced=""
    )


def _filter(frames, stream, chain: list[tuple[str, str]], rate: Fraction | None = None):
    """Push ``frames`` through a linear FFmpeg filter ``chain``; yield what comes out, in order."""
    import av

    graph = av.filter.Graph()
    if rate is None:
        src = graph.add_buffer(template=stream)
    else:  # decimate needs the input's frame rate, which a template buffer does not pass on
        cc = stream.codec_context
        sar = stream.sample_aspect_ratio or cc.sample_aspect_ratio
        sar = f"{sar.numerator}/{sar.denominator}" if sar else "1/1"
        src = graph.add(
            "buffer",
            f"video_size={cc.width}x{cc.height}:pix_fmt={cc.pix_fmt}:time_base={stream.time_base}"
            f":pixel_aspect={sar}:frame_rate={rate}",
        )
    nodes = [src] + [graph.add(name, args) for name, args in chain] + [graph.add("buffersink")]
    for a, b in itertools.pairwise(nodes):
        a.link_to(b)
    graph.configure()
    sink = nodes[-1]

    def ready():
        while True:
            try:
                yield sink.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return

    for frame in frames:
        src.push(frame)
        yield from ready()
    src.push(None)  # flush: the filters hold frames back to see their neighbours' fields
    yield from ready()
