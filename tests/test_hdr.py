"""HDR10 static metadata: parsed from frame side data, handed to x265 / SVT-AV1, kept end to end."""

from __future__ import annotations

from fractions import Fraction as Q

import av
import pytest
from click.testing import CliRunner

from engine.video.hdr import Hdr10, add_to_options, read_hdr10, svtav1_params, x265_params
from tests import clips
from vfi_cli.main import cli

BT2020_1000 = Hdr10(
    primaries=(
        Q(34, 50),
        Q(16, 50),
        Q(13250, 50000),
        Q(34500, 50000),
        Q(15, 100),
        Q(6, 100),
        Q(3127, 10000),
        Q(329, 1000),
    ),
    luminance=(Q(1, 10000), Q(1000)),
    max_cll=1000,
    max_fall=400,
)


def first_hdr10(path):
    with av.open(str(path)) as c:
        return read_hdr10(next(c.decode(video=0)))


def test_x265_params_are_the_encoders_own_syntax():
    assert ":".join(x265_params(BT2020_1000)) == clips.HDR10_X265
    assert svtav1_params(BT2020_1000) == [
        "mastering-display=G(0.26500,0.69000)B(0.15000,0.06000)R(0.68000,0.32000)"
        "WP(0.31270,0.32900)L(1000.0000,0.0001)",
        "content-light=1000,400",
    ]


def test_user_entries_win_and_other_encoders_decline():
    opts = {"x265-params": "bframes=2:max-cll=500,100"}
    assert add_to_options("libx265", BT2020_1000, opts)
    assert opts["x265-params"].startswith("bframes=2:max-cll=500,100:master-display=G(")
    assert opts["x265-params"].count("max-cll") == 1
    opts = {}
    assert not add_to_options("libx264", BT2020_1000, opts) and opts == {}


def test_read_from_a_real_stream(tmp_path):
    assert first_hdr10(clips.hdr10_clip(tmp_path / "h.mkv")) == BT2020_1000
    assert first_hdr10(clips.make_clip(tmp_path / "sdr.mp4", frames=2)) is None


@pytest.mark.parametrize("codec", [None, "libsvtav1"])
def test_kept_through_interpolate(tmp_path, codec):
    src = clips.hdr10_clip(tmp_path / "h.mkv")
    args = ["interpolate", str(src), "-o", str(tmp_path / "o.mkv"), "--model", "blend", "-q"]
    r = CliRunner().invoke(cli, args + (["--codec", codec] if codec else []))
    assert r.exit_code == 0, r.output
    with av.open(str(tmp_path / "o.mkv")) as c:
        v = c.streams.video[0]
        # A 10-bit source gets HEVC Main 10 by default, not H.264 High 10.
        assert v.codec_context.name == ("hevc" if codec is None else "libdav1d")
        assert (v.codec_context.color_primaries, v.codec_context.color_trc) == (9, 16)
    got = first_hdr10(tmp_path / "o.mkv")
    assert (got.max_cll, got.max_fall) == (1000, 400)
    # AV1 stores chromaticities in 1/65536 and the minimum luminance in 1/16384 cd/m².
    tol = 0 if codec is None else 2e-4
    assert all(abs(a - b) <= tol for a, b in zip(got.primaries, BT2020_1000.primaries))
    assert all(abs(a - b) <= tol for a, b in zip(got.luminance, BT2020_1000.luminance))


def test_an_encoder_without_it_is_a_warning(tmp_path):
    src = clips.hdr10_clip(tmp_path / "h.mkv")
    args = ["interpolate", str(src), "-o", str(tmp_path / "o.mkv"), "--model", "blend"]
    r = CliRunner().invoke(cli, [*args, "--codec", "libx264"])
    assert r.exit_code == 0, r.output
    assert "libx264 cannot carry the source's HDR10 metadata" in r.output


def test_dynamic_metadata_and_captions_are_named():
    from types import SimpleNamespace as NS

    from engine.video.hdr import uncarried

    def side(name):
        return NS(type=NS(name=name))

    frame = NS(side_data=[side("A53_CC"), side("DOVI_RPU_BUFFER"), side("DOVI_METADATA"),
                          side("MASTERING_DISPLAY_METADATA"), side("DYNAMIC_HDR_PLUS")])  # fmt: skip
    assert uncarried(frame) == [
        "HDR10+ dynamic metadata",
        "Dolby Vision metadata",
        "closed captions (CEA-608/708)",
    ]
    assert uncarried(NS(side_data=[side("CONTENT_LIGHT_LEVEL")])) == []


def test_uncarried_metadata_is_warned(tmp_path, monkeypatch):
    # No encoder here writes HDR10+ or Dolby Vision to make a real fixture: the detector is faked,
    # the plan's wording is real.
    from engine.video import probing

    src = clips.hdr10_clip(tmp_path / "h.mkv")
    monkeypatch.setattr(probing, "uncarried", lambda frame: ["HDR10+ dynamic metadata"])
    r = CliRunner().invoke(cli, ["probe", str(src)])
    assert r.exit_code == 0, r.output
    assert (
        "not carried: the source's HDR10+ dynamic metadata (the output keeps HDR10's static "
        "metadata)" in r.output
    ), r.output
