"""Click parameter types and options shared by the commands: exact rationals, key=value pairs,
tile sizes, --deinterlace."""

from __future__ import annotations

import re
from fractions import Fraction

import click

from engine.source_plan import DEINTERLACE_MODES
from engine.timing import NTSC_RATES

_RATIONAL = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)(\s*/\s*\d+(\.\d*)?)?\s*$")


class Rational(click.ParamType):
    """'2', '5/2', '60000/1001' or '29.97' -> an exact Fraction (never a float)."""

    name = "rational"

    def convert(self, value, param, ctx):
        if isinstance(value, Fraction):
            return value
        text = str(value).strip()
        if not _RATIONAL.match(text):
            self.fail(f"{value!r} is not a number like 2, 5/2 or 60000/1001", param, ctx)
        num, _, den = text.partition("/")
        try:
            result = Fraction(num.strip()) / Fraction(den.strip() or 1)
        except ZeroDivisionError:
            self.fail(f"{value!r} divides by zero", param, ctx)
        return result


# NTSC rates typed as decimals (23.976, 29.97, 59.94) mean the exact N x 1000/1001 rates; taken
# literally, 2997/100 would drift a frame from a 30000/1001 timeline every 9 hours and mark the file
# as no standard rate at all.


class FrameRate(Rational):
    """A Rational frame rate; a decimal that rounds an NTSC rate (29.97, 23.976) is that rate."""

    name = "rate"

    def convert(self, value, param, ctx):
        rate = super().convert(value, param, ctx)
        text = str(value).strip()
        if "." in text and "/" not in text:
            digits = len(text.split(".")[1])
            for ntsc in NTSC_RATES:
                if digits >= 2 and round(ntsc, digits) == rate:  # 59.9 is not precise enough
                    return ntsc
        return rate


class KeyValue(click.ParamType):
    """'key=value' -> (key, value), e.g. ``-e x264-params=aq-mode=3``."""

    name = "key=value"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        key, sep, val = str(value).partition("=")
        if not sep or not key.strip():
            self.fail(f"{value!r} is not key=value", param, ctx)
        return key.strip(), val


class TileSize(click.ParamType):
    """'auto', 'off' or a side in pixels."""

    name = "auto|off|pixels"

    def convert(self, value, param, ctx):
        text = str(value).strip().lower()
        if text in ("auto", "off"):
            return text if text == "auto" else None
        try:
            side = int(text)
        except ValueError:
            self.fail(f"{value!r} is not auto, off or a size in pixels", param, ctx)
        if side <= 0:
            return None
        return side


RATIONAL = Rational()
FRAME_RATE = FrameRate()
KEY_VALUE = KeyValue()
TILE = TileSize()

# interpolate and probe plan the same run, so they take the option alike.
DEINTERLACE_OPTION = click.option(
    "--deinterlace",
    type=click.Choice(DEINTERLACE_MODES),
    default="auto",
    show_default=True,
    help="Fields to frames first. auto: bwdif when the video says it is interlaced (1080i, DV), "
    "ivtc when that video is film telecined to 29.97 fps (a 2:3 cadence found in its first "
    "10 s). on: bwdif always. ivtc: the film's 23.976 frames back (NTSC DVD, broadcast).",
)
