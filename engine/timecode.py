"""SMPTE timecode of the first frame, carried to a new frame rate.

A timecode label ``HH:MM:SS:FF`` counts frames at the stream's *nominal* rate (24 for 23.976, 30 for
29.97); ``;`` before the frames marks drop-frame counting (29.97 / 59.94: labels 00 and 01, or 00-03
at 59.94, are skipped at the start of every minute that is not a multiple of ten, so the labels keep
up with the clock). Editors conform a clip by its first label, so the output's first frame gets
the label of the same instant at the output rate: source frame number x (output rate / source
rate). That number must be whole (an interpolated start can fall between output frames, e.g. an
odd frame number at 23.976 -> 59.94), otherwise the timecode is not carried and the plan says why.
"""

from __future__ import annotations

import re
from fractions import Fraction

_LABEL = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})([:;.,])(\d{2,3})$")


def nominal(rate: Fraction) -> int:
    """Frames per timecode second: 24 for 24000/1001, 30 for 30000/1001."""
    return round(rate)


def is_drop_rate(rate: Fraction) -> bool:
    """Rates whose timecode may count drop-frame: the NTSC 1001 rates that are multiples of 30."""
    return rate.denominator == 1001 and rate.numerator % 30000 == 0


def _dropped_per_minute(base: int) -> int:
    return base // 15  # 2 at 29.97, 4 at 59.94


def to_frames(label: str, rate: Fraction) -> tuple[int, bool]:
    """``label`` -> (frame number, drop-frame); ValueError if it is no timecode for ``rate``."""
    m = _LABEL.match(label.strip())
    if not m:
        raise ValueError(f"{label!r} is not a timecode")
    hh, mm, ss, sep, ff = int(m[1]), int(m[2]), int(m[3]), m[4], int(m[5])
    base = nominal(rate)
    drop = sep in ";,"
    if mm > 59 or ss > 59 or ff >= base:
        raise ValueError(f"{label!r} is out of range at {base} frames per second")
    if drop and not is_drop_rate(rate):
        raise ValueError(f"{label!r} is drop-frame, which {float(rate):g} fps has no use for")
    minutes = 60 * hh + mm
    frames = (60 * minutes + ss) * base + ff
    if drop:
        frames -= _dropped_per_minute(base) * (minutes - minutes // 10)
    return frames, drop


def from_frames(frames: int, rate: Fraction, drop: bool) -> str:
    """Frame number -> ``HH:MM:SS:FF`` (``;`` before the frames when drop-frame)."""
    base = nominal(rate)
    if drop:
        d = _dropped_per_minute(base)
        per_ten = 600 * base - 9 * d  # labels in ten minutes
        per_minute = 60 * base - d
        tens, rest = divmod(frames, per_ten)
        if rest >= d:
            frames += 9 * d * tens + d * ((rest - d) // per_minute)
        else:
            frames += 9 * d * tens
    ff = frames % base
    seconds = frames // base
    sep = ";" if drop else ":"
    hh = (seconds // 3600) % 24
    return f"{hh:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}{sep}{ff:02d}"


def carry(label: str, in_rate: Fraction, out_rate: Fraction) -> tuple[str | None, str]:
    """The output's first label for a source starting at ``label``: (label, "") or (None, why)."""
    try:
        frames, drop = to_frames(label, in_rate)
    except ValueError as e:
        return None, str(e)
    scaled = Fraction(frames) * out_rate / in_rate
    if scaled.denominator != 1:
        return None, f"{label} has no whole-frame equal at {float(out_rate):g} fps"
    return from_frames(int(scaled), out_rate, drop and is_drop_rate(out_rate)), ""
