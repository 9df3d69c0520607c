"""The exact schedule: frame-count formula, durations, VFR placement, cuts, slow motion, errors."""

from __future__ import annotations

import itertools
import math
import random
from fractions import Fraction as Q

import pytest

from engine.errors import VfiError
from engine.timing import (
    Scheduler,
    is_vfr,
    make_timing,
    schedule,
    snap_to_grid,
)

RATES = [Q(24000, 1001), Q(24), Q(25), Q(30000, 1001), Q(60), Q(12)]
FACTORS = [Q(2), Q(3), Q(4), Q(5, 2), Q(3, 2), Q(1, 2), Q(8)]
FPS = [Q(60), Q(60000, 1001), Q(50), Q(23976, 1000), Q(120), Q(10)]


def cfr_times(n, rate, start=Q(0)):
    return [start + Q(i) / rate for i in range(n)]


@pytest.mark.parametrize("rate,factor,n", list(itertools.product(RATES, FACTORS, [2, 3, 7, 48])))
def test_factor_invariants(rate, factor, n):
    times = cfr_times(n, rate, start=Q(1, 3))
    end = times[-1] + 1 / rate
    timing = make_timing(rate, times[0], factor=factor)
    out = schedule(times, end, timing)
    duration_in = end - times[0]
    # The documented formula, and exact rate.
    assert len(out) == math.ceil(duration_in / timing.step) == timing.count(end)
    assert timing.out_rate == rate * factor
    # Output covers the input and ends within one output frame of it.
    duration_out = Q(len(out)) / timing.out_rate
    assert duration_in <= duration_out < duration_in + 1 / timing.out_rate
    # Integer factors on CFR input: n * F frames, every source frame kept exactly.
    if factor.denominator == 1 and factor >= 1:
        assert len(out) == n * factor
        copies = [f.copy_of for f in out if f.copy_of is not None]
        assert set(range(n)) <= set(copies)
    # Times are consecutive output ticks, all exact.
    for k, f in enumerate(out):
        assert f.index == k
        assert f.time == times[0] + Q(k) / timing.out_rate
        assert 0 <= f.t < 1
        assert f.src0 <= f.src1 <= f.src0 + 1


@pytest.mark.parametrize("rate,fps", list(itertools.product(RATES, FPS)))
def test_fps_invariants(rate, fps):
    n = 30
    times = cfr_times(n, rate)
    end = Q(n) / rate
    timing = make_timing(rate, Q(0), fps=fps)
    out = schedule(times, end, timing)
    assert timing.out_rate == fps
    assert len(out) == math.ceil(end * fps)
    assert end <= Q(len(out)) / fps < end + 1 / fps
    for f in out:  # each output time is placed between the right source frames
        assert times[f.src0] <= f.source_time
        if f.t:
            assert f.source_time < times[f.src1]
            assert f.t == (f.source_time - times[f.src0]) / (times[f.src1] - times[f.src0])


def test_no_drift_over_an_hour():
    rate = Q(24000, 1001)
    timing = make_timing(rate, Q(0), factor=2)
    k = 2 * 24 * 3600  # roughly an hour of output frames
    assert timing.output_time(k) == Q(k * 1001, 48000)
    assert timing.count(Q(86400 * 1001, 24000)) == 2 * 86400


def test_vfr_placement():
    rng = random.Random(0)
    times = [Q(0)]
    for _ in range(40):
        times.append(times[-1] + Q(rng.choice([1, 2, 3, 5]), 48))
    end = times[-1] + Q(1, 48)
    timing = make_timing(Q(24), Q(0), fps=Q(30))
    out = schedule(times, end, timing)
    assert len(out) == timing.count(end)
    for f in out:
        s = f.source_time
        i = max(j for j, p in enumerate(times) if p <= s)
        assert f.src0 == i
        if i + 1 < len(times):
            assert f.t == (s - times[i]) / (times[i + 1] - times[i])
        else:
            assert f.t == 0  # after the last frame: repeat it


def test_scene_cut_repeats_nearer_frame():
    rate = Q(24)
    times = cfr_times(6, rate)
    out = schedule(times, Q(6, 24), make_timing(rate, Q(0), factor=4), cuts=[3])
    across = [f for f in out if f.src0 <= 2 < f.src1 or f.cut]
    assert [f for f in out if f.cut], "frames between 2 and 3 are marked as a cut"
    for f in out:
        if f.cut:
            assert f.copy_of is not None and f.t == 0
            # t = 1/4, 1/2 -> frame 2 (earlier on the tie); 3/4 -> frame 3
            expected = 2 if (f.source_time - times[2]) <= Q(1, 48) else 3
            assert f.copy_of == expected
    assert all(f.copy_of is not None for f in across if f.cut)


def test_slowmo():
    rate = Q(30)
    times = cfr_times(10, rate)
    end = Q(10, 30)
    timing = make_timing(rate, Q(0), factor=4, slowmo=True)
    out = schedule(times, end, timing)
    assert timing.out_rate == rate
    assert len(out) == 40
    assert Q(len(out)) / timing.out_rate == end * 4
    assert [f.t for f in out[:4]] == [0, Q(1, 4), Q(1, 2), Q(3, 4)]


def test_streaming_equals_batch():
    times = cfr_times(9, Q(25))
    timing = make_timing(Q(25), Q(0), factor=Q(7, 3))
    sched = Scheduler(timing)
    streamed = []
    for i, p in enumerate(times):
        streamed += sched.add(i, p)
    streamed += sched.finish(Q(9, 25))
    assert streamed == schedule(times, Q(9, 25), timing)


@pytest.mark.parametrize(
    "kwargs,msg",
    [
        (dict(factor=0), "--factor must be above 0"),
        (dict(factor=-2), "--factor must be above 0"),
        (dict(factor=1000), "at most"),
        (dict(fps=0), "--fps must be above 0"),
        (dict(fps=-24), "--fps must be above 0"),
        (dict(fps=10**6), "at most"),
        (dict(factor=2, fps=60), "not both"),
        (dict(factor=1, slowmo=True), "--slowmo needs --factor above 1"),
        (dict(fps=60, slowmo=True), "--slowmo"),
        (dict(factor=2.5), "must be a number"),
    ],
)
def test_bad_timing_arguments(kwargs, msg):
    with pytest.raises(VfiError, match=msg):
        make_timing(Q(24), Q(0), **kwargs)


def test_snap_and_vfr_detection():
    rate = Q(24000, 1001)
    ms = Q(1, 1000)
    for i in range(200):  # Matroska stores these rounded to 1 ms
        rounded = round(Q(i) / rate * 1000) * ms
        assert snap_to_grid(rounded, Q(0), rate, ms) == Q(i) / rate
    assert snap_to_grid(Q(1, 100), Q(0), rate, ms) == Q(1, 100)  # far from the grid: kept
    assert not is_vfr(Q(41, 1000), Q(42, 1000), Q(42, 1000), ms)  # 23.976 in 1 ms ticks
    assert is_vfr(Q(1, 24), Q(1, 12), Q(1, 24), ms)


def test_standard_rates_are_recognised():
    from engine.timing import standard_rate

    assert standard_rate(Q(19001, 317)) == Q(60000, 1001)  # Matroska's ns durations
    assert standard_rate(Q(24000001, 1000000)) == 24
    assert standard_rate(Q(30000, 1001)) == Q(30000, 1001)
    assert standard_rate(Q(25)) == 25
    assert standard_rate(Q(1, 3)) == Q(1, 3)  # a time-lapse stays what it is
    assert standard_rate(Q(5994, 100)) == Q(60000, 1001)  # 1e-6 apart
    assert standard_rate(Q(599, 10)) == Q(599, 10)  # 0.07 % is another rate
