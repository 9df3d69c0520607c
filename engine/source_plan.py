"""The plan's decisions about the source itself, each a function of what was probed.

Deinterlacing (``--deinterlace``: bwdif, inverse telecine for 2:3 film, or nothing), the cut of
``--duration``, a numbered render's own frame naming for frame output, the warnings about what the
source holds that the output cannot (gaps, dynamic HDR metadata, alpha), GIF's playable rate, and
the start timecode carried to the output rate. :func:`engine.plan.make_plan` calls them in turn;
``info`` is always the source's :class:`engine.video.source.SourceInfo`.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from typing import TYPE_CHECKING

from engine.errors import VfiError

if TYPE_CHECKING:
    from engine.plan import Options

# Muxers that store a start timecode: MOV as a tmcd track, MP4 with one (write_tmcd), Matroska and
# NUT as a tag.
TIMECODE_CONTAINERS = ("mov", "mp4", "matroska", "nut")
DEINTERLACE_MODES = ("auto", "on", "off", "ivtc")


def resolve_deinterlace(mode: str, info, warnings: list[str]) -> str:
    """ "bwdif", "ivtc" or "": "auto" deinterlaces when the video says it is interlaced."""
    if mode not in DEINTERLACE_MODES:
        raise VfiError(f"--deinterlace takes {', '.join(DEINTERLACE_MODES)}, not {mode!r}")
    if info.kind != "video":
        if mode in ("on", "ivtc"):
            warnings.append(f"--deinterlace {mode} applies to video files only: ignored")
        return ""
    if mode == "off":
        if info.interlaced:
            warnings.append(
                f"the video is interlaced ({info.interlaced}) and --deinterlace is off: the "
                "fields' combing is interpolated as if it were picture"
            )
        return ""
    if mode == "auto" and info.pulldown:
        return ""  # soft pulldown: whole film frames, whatever the stream's interlaced flag says
    if mode == "auto" and info.interlaced and telecined(info):
        warnings.append(
            "the video is telecined film (a 2:3 pulldown cadence): its 24p frames are "
            "recovered first (--deinterlace ivtc); --deinterlace on deinterlaces instead"
        )
        return "ivtc"
    if mode == "ivtc":
        if not info.interlaced:
            warnings.append(
                "--deinterlace ivtc on a video that says it is progressive: it drops one frame "
                "in five, which is right only for film telecined to 29.97 fps"
            )
        return "ivtc"
    return "bwdif" if mode == "on" or info.interlaced else ""


def telecined(info) -> bool:
    """29.97 / 30 fps video whose first frames show the 2:3 cadence (decodes up to 10 s of it)."""
    from engine.video.fields import is_telecine_rate, looks_telecined

    return is_telecine_rate(info.rate) and looks_telecined(info.path, info.video_index)


def frame_naming(source, timing) -> dict:
    """A numbered frame folder's own naming for frame output (shot.1001.png, shot.1002.png ...).

    At the source's own rate (filling a render's gaps) its numbering step is kept too; at another
    rate the new frames are numbered one by one from the first.
    """
    from engine.video.images import frame_digits

    step = getattr(source, "step", None)  # ImageSequence: the numbering's, None if unnumbered
    if source.info.kind != "frames" or step is None:
        return {}
    same_rate = timing.out_rate == source.info.rate and timing.slowmo == 1
    stem = source.files[0].stem
    digits = frame_digits(source.files[0])
    before, after = (part.replace("{", "{{").replace("}", "}}") for part in
                     (stem[: digits.start()], stem[digits.end() :]))  # fmt: skip
    return {
        "frame_pattern": f"{before}{{:0{len(digits.group())}d}}{after}.png",
        "frame_first": int(digits.group()),
        "frame_step": step if same_rate else 1,
    }


def limit_duration(info, duration):
    """(info, stop time) for --duration: the source cut to its first ``duration`` seconds."""
    if duration is None:
        return info, None
    duration = Fraction(duration)
    if duration <= 0:
        raise VfiError(f"--duration must be above 0 seconds, got {duration}")
    if info.kind == "pair":
        raise VfiError("--duration applies to videos and frame folders, not to two images")
    stop = info.start + duration
    if stop >= info.end:
        return info, None  # the source is no longer: nothing to cut
    kept = min(info.frame_count, math.ceil(duration * info.rate))  # CFR; VFR: an estimate
    if kept < 2:
        raise VfiError(f"--duration {float(duration):g} s holds fewer than 2 frames; give more")
    last = info.start + Fraction(kept - 1) / info.rate
    return dataclasses.replace(info, end=stop, frame_count=kept, last_time=last), stop


def source_notes(info) -> list[str]:
    """Warnings about the source itself: gaps in a render, what cannot be carried, alpha."""
    notes = []
    if info.missing:
        shown = ", ".join(str(n) for n in info.missing[:5])
        shown += " ..." if len(info.missing) > 5 else ""
        notes.append(
            f"{len(info.missing)} numbered frame(s) missing from {info.path.name} ({shown}): "
            "their times are filled by interpolation"
        )
    if info.uncarried:
        base = " (the output keeps HDR10's static metadata)" if info.hdr10 else ""
        notes.append(f"not carried: the source's {', '.join(info.uncarried)}{base}")
    if info.transparent:
        notes.append(
            f"{info.path.name} has transparency (alpha): vfi interpolates colour only, so the "
            "output is opaque and transparent areas show the colour stored under them"
        )
    return notes


def gif_rate(options: Options, in_rate: Fraction, warnings: list[str]) -> Fraction | None:
    """--fps for GIF output: the user's, or 50 where the default 2x would be faster than that."""
    from engine.video.gif import MAX_PLAYABLE_RATE

    if options.fps is not None or options.factor is not None or options.slowmo:
        return options.fps
    if in_rate * 2 <= MAX_PLAYABLE_RATE:
        return None
    warnings.append(
        f"GIF output at {MAX_PLAYABLE_RATE} fps, not 2x ({float(in_rate * 2):g}): browsers play "
        "faster GIFs slower; --fps or --factor overrides"
    )
    return MAX_PLAYABLE_RATE


def carry_timecode(info, in_rate, out_rate, kind, encode, warnings: list[str]) -> str:
    """The output's first timecode label, or "" (with a warning when the source had one)."""
    from engine.timecode import carry

    if not info.timecode:
        return ""
    if kind != "video" or encode.container not in TIMECODE_CONTAINERS:
        if kind != "video" or encode.container != "gif":  # GIF: no one expects a timecode there
            where = "frames" if kind != "video" else f"{encode.container} output"
            warnings.append(f"timecode {info.timecode} not carried: {where} cannot hold it")
        return ""
    label, why = carry(info.timecode, in_rate, out_rate)
    if label is None:
        warnings.append(f"timecode not carried: {why}")
        return ""
    return label
