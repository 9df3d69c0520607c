"""The output schedule: which instant of the input every output frame shows (pure, exact, no torch).

All times are ``fractions.Fraction`` seconds; nothing here ever touches a float, so 23.976 fps input
(24000/1001) does not drift, however long the video.

The input is a list of source frames with presentation times ``p_0 < p_1 < ... < p_{n-1}`` and an end
time ``E = p_{n-1} + d_{n-1}`` (the last frame's display duration). ``S = p_0`` is the start. A
:class:`Timing` fixes two numbers: the output frame rate ``R_out`` and the ``step`` between the input
instants that consecutive output frames show:

- ``--factor F``:        ``R_out = R_in * F``,  ``step = 1 / R_out``
- ``--fps R``:           ``R_out = R``,         ``step = 1 / R``
- ``--factor F --slowmo``: ``R_out = R_in``,    ``step = 1 / (R_in * F)`` (every synthesized frame kept)

Output frame ``k`` is shown at ``S + k / R_out`` and shows input instant ``s_k = S + k * step``.

**Frame count** (the invariant the tests check over many combinations)::

    M = ceil((E - S) / step)        # the number of k >= 0 with s_k < E

so the output covers exactly the input: its duration ``M / R_out`` is at least the input's (times the
slow-motion factor) and shorter than that plus one output frame. For CFR input and an integer factor
this is ``n * F``: the last ``F - 1`` frames lie after the last source frame and repeat it (there is
nothing to interpolate towards).

An instant ``s`` with ``p_i <= s < p_{i+1}`` is made from source frames ``i`` and ``i + 1`` at
``t = (s - p_i) / (p_{i+1} - p_i)``: ``t == 0`` is a plain copy of frame ``i``. This places frames of
variable-frame-rate input at their true times. Across a scene cut nothing is synthesized: the output
repeats the nearer source frame (the earlier one on a tie). Instants at or after ``p_{n-1}`` repeat
the last frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from engine.errors import VfiError

MAX_FPS = Fraction(1000)  # above this an output rate is a typo, not a video
MAX_FACTOR = Fraction(64)


@dataclass(frozen=True)
class Timing:
    """The output rate and the input-time step between output frames."""

    start: Fraction  # S: the first source frame's time; output frame 0 is shown then
    out_rate: Fraction  # R_out, frames per second of the output
    step: Fraction  # input seconds between the instants shown by consecutive output frames
    slowmo: Fraction = Fraction(1)  # output duration / input duration

    def output_time(self, k: int) -> Fraction:
        return self.start + Fraction(k) / self.out_rate

    def sample_time(self, k: int) -> Fraction:
        return self.start + k * self.step

    def count(self, end: Fraction) -> int:
        """M = ceil((E - S) / step): output frames for input that ends (last frame's end) at ``end``."""
        if end <= self.start:
            return 0
        return math.ceil((end - self.start) / self.step)


@dataclass(frozen=True)
class OutputFrame:
    """Output frame ``index``: source frames ``src0``/``src1`` blended at ``t`` (0 = copy of src0)."""

    index: int
    time: Fraction  # when the output shows it
    source_time: Fraction  # the input instant it shows
    src0: int
    src1: int
    t: Fraction
    cut: bool = False  # the pair spans a scene cut: this frame repeats the nearer source frame

    @property
    def copy_of(self) -> int | None:
        """The source frame this output repeats exactly, or None when the model must synthesize it."""
        if self.t == 0:
            return self.src0
        return None


def as_fraction(value, what: str = "value") -> Fraction:
    """A positive exact rational from an int, Fraction, 'a/b' string, or decimal string ('29.97')."""
    try:
        if isinstance(value, float):
            raise TypeError("floats are not exact")
        frac = Fraction(value) if not isinstance(value, Fraction) else value
    except (TypeError, ValueError, ZeroDivisionError):
        raise VfiError(
            f"{what} must be a number like 2, 5/2 or 60000/1001, got {value!r}"
        ) from None
    return frac


def make_timing(
    in_rate: Fraction,
    start: Fraction = Fraction(0),
    *,
    factor=None,
    fps=None,
    slowmo: bool = False,
) -> Timing:
    """Build the :class:`Timing` for ``--factor`` / ``--fps`` / ``--slowmo`` (see the module doc)."""
    if factor is not None and fps is not None:
        raise VfiError("give either --factor or --fps, not both")
    if in_rate is None or in_rate <= 0:
        raise VfiError("the input has no usable frame rate; give it with --input-fps")
    in_rate, start = Fraction(in_rate), Fraction(start)
    if fps is not None:
        fps = as_fraction(fps, "--fps")
        if slowmo:
            raise VfiError("--slowmo keeps the input rate and takes --factor, not --fps")
        if fps <= 0 or fps > MAX_FPS:
            raise VfiError(f"--fps must be above 0 and at most {MAX_FPS}, got {fps}")
        return Timing(start=start, out_rate=fps, step=1 / fps)
    factor = as_fraction(2 if factor is None else factor, "--factor")
    if factor <= 0 or factor > MAX_FACTOR:
        raise VfiError(f"--factor must be above 0 and at most {MAX_FACTOR}, got {factor}")
    if slowmo:
        if factor <= 1:
            raise VfiError("--slowmo needs --factor above 1 (it slows the video down by that much)")
        return Timing(start=start, out_rate=in_rate, step=1 / (in_rate * factor), slowmo=factor)
    out_rate = in_rate * factor
    if out_rate > MAX_FPS:
        raise VfiError(
            f"output rate {out_rate} fps ({float(out_rate):.6g}) is absurd; lower --factor"
        )
    return Timing(start=start, out_rate=out_rate, step=1 / out_rate)


class Scheduler:
    """Streaming form of the schedule: feed source frames in order, get output frames as they fix.

    Memory is constant: it only remembers the previous source frame. ``add`` returns the output
    frames whose instants lie before the new frame; ``finish`` returns the rest, up to the end time.
    """

    def __init__(self, timing: Timing):
        self.timing = timing
        self.k = 0  # next output frame
        self.prev: tuple[int, Fraction] | None = None  # (index, time) of the last source frame

    def add(self, index: int, time: Fraction, *, cut: bool = False) -> list[OutputFrame]:
        """Source frame ``index`` at ``time``; ``cut``: a scene cut lies between it and the previous."""
        time = Fraction(time)
        out: list[OutputFrame] = []
        if self.prev is None:
            if time != self.timing.start:
                raise ValueError(f"the first source frame must be at the start {self.timing.start}")
            self.prev = (index, time)
            return out
        i0, p0 = self.prev
        if time <= p0:
            raise ValueError(f"source times must increase: {time} after {p0}")
        span = time - p0
        while (s := self.timing.sample_time(self.k)) < time:
            t = (s - p0) / span
            if cut and t != 0:
                # No morphing across a cut: repeat the nearer frame (earlier on a tie).
                near = i0 if t <= Fraction(1, 2) else index
                out.append(self._frame(s, near, near, Fraction(0), cut=True))
            else:
                out.append(self._frame(s, i0, index, t))
        self.prev = (index, time)
        return out

    def finish(self, end: Fraction) -> list[OutputFrame]:
        """The remaining output frames (instants before ``end``): copies of the last source frame."""
        if self.prev is None:
            return []
        last, _ = self.prev
        out = []
        while (s := self.timing.sample_time(self.k)) < end:
            out.append(self._frame(s, last, last, Fraction(0)))
        return out

    def _frame(self, s, src0, src1, t, cut=False) -> OutputFrame:
        frame = OutputFrame(
            index=self.k,
            time=self.timing.output_time(self.k),
            source_time=s,
            src0=src0,
            src1=src1 if t else src0,
            t=t,
            cut=cut,
        )
        self.k += 1
        return frame


def schedule(
    times: Sequence[Fraction], end: Fraction, timing: Timing, cuts: Iterable[int] = ()
) -> list[OutputFrame]:
    """The whole schedule at once. ``cuts``: indices ``i`` such that a cut lies before frame ``i``."""
    cuts = set(cuts)
    sched = Scheduler(timing)
    out = []
    for i, p in enumerate(times):
        out += sched.add(i, p, cut=i in cuts)
    return out + sched.finish(end)


# The NTSC family: N x 1000/1001 frames a second.
NTSC_RATES = tuple(Fraction(n * 1000, 1001) for n in (24, 30, 48, 60, 120, 240))
# How close a stored rate must be to a standard one to be it: Matroska keeps a frame's duration in
# whole nanoseconds, and 1e9 / 16683333 ns reads back as 19001/317 for 60000/1001 (5e-8 apart).
STANDARD_RATE_TOLERANCE = Fraction(1, 100_000)


def standard_rate(rate: Fraction) -> Fraction:
    """``rate``, or the NTSC or whole rate it rounds (19001/317 -> 60000/1001, 24.000001 -> 24)."""
    candidates = [*NTSC_RATES, Fraction(round(rate))]
    for c in candidates:
        if c > 0 and abs(rate / c - 1) < STANDARD_RATE_TOLERANCE:
            return c
    return rate


def snap_to_grid(time: Fraction, start: Fraction, rate: Fraction, tolerance: Fraction) -> Fraction:
    """The nearest ideal CFR time ``start + i / rate`` when within ``tolerance``, else ``time``.

    Containers with coarse clocks (Matroska: 1 ms) store 24000/1001 fps as 0, 42, 83, 125 ms...;
    without snapping, output frames meant to be exact copies would be blends at t = 0.99.
    """
    if rate <= 0:
        return time
    i = round((time - start) * rate)
    ideal = start + Fraction(i) / rate
    return ideal if abs(time - ideal) <= tolerance else time


def is_vfr(min_gap: Fraction, max_gap: Fraction, median_gap: Fraction, tick: Fraction) -> bool:
    """True when frame gaps vary by more than clock rounding (one ``tick``, or 1% of the gap).

    Matroska stores 24000/1001 fps with 1 ms ticks as gaps of 41 and 42 ms: that is CFR.
    """
    if min_gap is None or max_gap is None or median_gap is None:
        return False
    slack = max(tick, median_gap / 100)
    return min_gap < median_gap - slack or max_gap > median_gap + slack


def average_rate(times: Sequence[Fraction], end: Fraction) -> Fraction | None:
    """Frames per second over the whole input: n / (E - S), exact, or None if undefined."""
    if not times or end <= times[0]:
        return None
    return Fraction(len(times)) / (end - times[0])


def describe_rate(rate: Fraction) -> str:
    """'24000/1001 (23.976)' or '60'."""
    if rate.denominator == 1:
        return str(rate.numerator)
    return f"{rate} ({float(rate):.6g})"
