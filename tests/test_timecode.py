"""Start timecode: label arithmetic (engine/timecode.py) and the tracks written by interpolate."""

from __future__ import annotations

from fractions import Fraction as Q

import av
import pytest
from click.testing import CliRunner

from engine.timecode import carry, from_frames, to_frames
from tests import clips
from vfi_cli.main import cli

NTSC, NTSC60, FILM = Q(30000, 1001), Q(60000, 1001), Q(24000, 1001)


@pytest.mark.parametrize(
    "label,rate,frames",
    [
        ("00:00:00:00", Q(25), 0),
        ("01:00:00:00", Q(25), 90000),
        ("00:00:01:23", FILM, 47),  # nominal 24 labels a second at 23.976
        ("00:01:00;02", NTSC, 1800),  # ;00 and ;01 do not exist at minute 1 (drop-frame)
        ("00:10:00;00", NTSC, 17982),  # ... but do at every tenth minute
        ("00:01:00;04", NTSC60, 3600),  # 59.94 drops four labels a minute
        ("00:01:00:00", NTSC, 1800),  # non-drop at 29.97: plain counting
    ],
)
def test_labels_and_frame_numbers(label, rate, frames):
    drop = ";" in label
    assert to_frames(label, rate) == (frames, drop)
    assert from_frames(frames, rate, drop) == label


@pytest.mark.parametrize("rate", [NTSC, NTSC60])
def test_drop_frame_round_trip(rate):
    for n in range(0, 2_000_000, 997):
        assert to_frames(from_frames(n, rate, True), rate) == (n, True)


def test_bad_labels_are_refused():
    for label, rate in [("1:2:3", Q(25)), ("00:00:00:25", Q(25)), ("00:00:00;00", Q(25))]:
        with pytest.raises(ValueError):
            to_frames(label, rate)


def test_carry_to_a_new_rate():
    assert carry("01:00:10:05", FILM, FILM * 2) == ("01:00:10:10", "")
    assert carry("01:00:10:04", FILM, NTSC60) == ("01:00:10:10", "")  # 4/24 s = 10/60 s
    label, why = carry("01:00:10:05", FILM, NTSC60)  # 5/24 s is 12.5 frames at 60
    assert label is None and "no whole-frame equal" in why
    assert carry("00:59:59;29", NTSC, NTSC60) == ("00:59:59;58", "")  # drop-frame stays so
    assert carry("10:00:00:00", Q(25), Q(50)) == ("10:00:00:00", "")


def _tags(path):
    with av.open(str(path)) as c:
        return [
            (s.type, {k.lower(): v for k, v in s.metadata.items()}.get("timecode"))
            for s in c.streams
        ]


@pytest.mark.parametrize("suffix", [".mov", ".mp4", ".mkv"])
def test_interpolate_carries_the_start_timecode(tmp_path, suffix):
    src = clips.make_clip(tmp_path / f"c{suffix}", frames=4, timecode="01:00:10:05")
    out = tmp_path / f"o{suffix}"
    r = CliRunner().invoke(cli, ["interpolate", str(src), "-o", str(out), "--model", "blend"])
    assert r.exit_code == 0, r.output
    tags = _tags(out)
    assert ("video", "01:00:10:10") in tags  # 23.976 -> 47.952: frame 5 is frame 10
    if suffix != ".mkv":
        assert ("data", "01:00:10:10") in tags  # a tmcd track, which editors conform by
    r = CliRunner().invoke(
        cli, ["interpolate", str(src), "-o", str(tmp_path / f"p{suffix}"), "--model", "blend",
              "--fps", "60000/1001"],
    )  # fmt: skip
    assert r.exit_code == 0 and "timecode not carried" in r.output, r.output
    assert all(tc is None for _, tc in _tags(tmp_path / f"p{suffix}"))
