"""Reading, writing and stream decisions on generated clips (engine.video)."""

from __future__ import annotations

import itertools
from fractions import Fraction as Q
from pathlib import Path

import av
import numpy as np
import pytest

from engine.errors import VfiError
from engine.video.color import ColorInfo, bit_depth, quantize, to_float
from engine.video.reader import open_pair, open_source
from engine.video.streams import plan_streams, subtitle_payload, subtitle_text
from engine.video.writer import SegmentWriter, plan_encoding, write_png
from tests import clips


@pytest.fixture(scope="module")
def clipdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    clips.cfr_with_audio_subs(d)
    clips.vfr_clip(d)
    clips.hevc10_clip(d)
    clips.odd_size_clip(d)
    return d


def test_cfr_clip_info(clipdir):
    src = open_source(clipdir / "cfr.mp4")
    info = src.info
    assert (info.width, info.height, info.frame_count) == (64, 48, 24)
    assert info.rate == Q(24000, 1001) and not info.vfr
    assert info.start == 0 and info.end == Q(24 * 1001, 24000)
    kinds = sorted(s.type for s in info.streams)
    assert kinds == ["audio", "subtitle"]
    frames = list(src.frames())
    assert [f.time for f in frames] == [Q(i * 1001, 24000) for i in range(24)]
    assert frames[0].image.shape == (48, 64, 3) and str(frames[0].image.dtype) == "torch.uint8"
    # The picture survives decode with the explicit matrix (x264 at crf 10: close to the source).
    ref = clips.pattern(5, 64, 48).astype(np.int16)
    assert np.abs(frames[5].image.numpy().astype(np.int16) - ref).mean() < 3


def test_vfr_clip_times(clipdir):
    src = open_source(clipdir / "vfr.mkv")
    assert src.info.vfr
    times = [f.time for f in src.frames()]
    gaps = {b - a for a, b in itertools.pairwise(times)}
    assert len(gaps) > 1 and all(t.denominator <= 1000 for t in times)


def test_hevc10_keeps_depth_and_tags(clipdir):
    src = open_source(clipdir / "hevc10.mkv")
    info = src.info
    assert info.depth == 10 and info.travel_depth == 16
    assert (info.color.matrix, info.color.range, info.color.primaries, info.color.trc) == (
        9,
        1,
        9,
        18,
    )
    first = next(iter(src.frames()))
    assert str(first.image.dtype) == "torch.uint16"
    ref = clips.pattern(0, 64, 48, depth=10).astype(np.int64)
    assert np.abs(first.image.numpy().astype(np.int64) - ref).mean() < 400  # 0.6% (4:2:0 edges)


def test_quantize_round_trip():
    import torch

    for depth, top in ((8, 255), (16, 65535)):
        ints = torch.arange(0, top + 1, max(1, top // 1000), dtype=torch.int64)
        ints = ints.to(torch.uint8 if depth == 8 else torch.uint16)
        assert torch.equal(quantize(to_float(ints, depth), depth), ints)


@pytest.mark.parametrize(
    "codec,pix_fmt,ext",
    [("libx264", None, ".mp4"), ("libx265", "yuv420p10le", ".mkv"), ("ffv1", None, ".mkv")],
)
def test_segment_writer_round_trip(tmp_path, codec, pix_fmt, ext):
    color = ColorInfo(matrix=9, range=1, primaries=9, trc=18)
    depth = 10 if pix_fmt else 8
    plan = plan_encoding(
        tmp_path / f"out{ext}",
        width=64,
        height=48,
        rate=Q(60000, 1001),
        color=color,
        source_pix_fmt="yuv420p10le" if depth == 10 else "yuv420p",
        source_depth=depth,
        codec=codec,
        pix_fmt=pix_fmt,
        crf=None if codec == "ffv1" else 4,
    )
    w = SegmentWriter(plan, tmp_path / "seg.part")
    for i in range(5):
        w.write(clips.pattern(i, 64, 48, depth=depth))
    w.close()
    c = av.open(str(tmp_path / "seg.part"))
    v = c.streams.video[0]
    frames = list(c.decode(v))
    assert len(frames) == 5
    assert bit_depth(frames[0].format.name) == depth
    assert (frames[0].colorspace, frames[0].color_range) == (9, 1)
    assert (v.codec_context.color_primaries, v.codec_context.color_trc) == (9, 18)
    c.close()


def test_plan_encoding_choices(tmp_path):
    color = ColorInfo(matrix=1, range=1)
    kw = dict(width=33, height=17, rate=Q(24), color=color)
    p = plan_encoding(tmp_path / "o.mp4", source_pix_fmt="yuv420p", source_depth=8, **kw)
    assert (p.width, p.height, p.pix_fmt) == (34, 18, "yuv420p") and p.warnings
    p = plan_encoding(tmp_path / "o.mkv", source_pix_fmt="yuv420p10le", source_depth=10,
                      codec="libx265", **kw)  # fmt: skip
    assert p.pix_fmt == "yuv420p10le"
    p = plan_encoding(tmp_path / "o.webm", source_pix_fmt="yuv420p", source_depth=8, **kw)
    assert p.codec == "libvpx-vp9"
    with pytest.raises(VfiError, match="cannot hold"):
        plan_encoding(tmp_path / "o.webm", source_pix_fmt="yuv420p", source_depth=8,
                      codec="libx264", **kw)  # fmt: skip
    with pytest.raises(VfiError, match="not available"):
        plan_encoding(tmp_path / "o.mp4", source_pix_fmt="yuv420p", source_depth=8,
                      codec="nosuchcodec", **kw)  # fmt: skip
    with pytest.raises(VfiError, match="unknown output extension"):
        plan_encoding(tmp_path / "o.xyz", source_pix_fmt="yuv420p", source_depth=8, **kw)
    with pytest.raises(VfiError, match="cannot encode"):
        plan_encoding(tmp_path / "o.mp4", source_pix_fmt="yuv420p", source_depth=8,
                      pix_fmt="rgb48le", **kw)  # fmt: skip


def intermediate_profiles():
    from engine.video.codecs import PROFILE_PIX_FMTS

    return [(c, p, f) for c, table in PROFILE_PIX_FMTS.items() for p, f in table.items()]


@pytest.mark.parametrize("codec,profile,pix_fmt", intermediate_profiles())
def test_intermediate_profile_sets_pixel_format(tmp_path, codec, profile, pix_fmt):
    # Iterates the table: each profile must open with the format it names, from an 8-bit 4:2:0
    # source (the format that would follow the source is wrong for 4444, HQX and DNxHR 444).
    kw = dict(width=256, height=144, rate=Q(24), color=ColorInfo(matrix=1, range=1))
    p = plan_encoding(tmp_path / "o.mov", source_pix_fmt="yuv420p", source_depth=8,
                      codec=codec, preset=profile, **kw)  # fmt: skip
    assert (p.codec, p.pix_fmt, p.options["profile"]) == (codec, pix_fmt, profile)


def test_intermediate_defaults_keep_the_source(tmp_path):
    kw = dict(width=256, height=144, rate=Q(24), color=ColorInfo(matrix=1, range=1))
    out = tmp_path / "o.mov"
    p = plan_encoding(out, source_pix_fmt="yuv420p", source_depth=8, codec="prores", **kw)
    assert (p.codec, p.options["profile"], p.pix_fmt) == ("prores_ks", "hq", "yuv422p10le")
    p = plan_encoding(out, source_pix_fmt="yuv444p", source_depth=8, codec="prores", **kw)
    assert (p.options["profile"], p.pix_fmt) == ("4444", "yuv444p10le")
    p = plan_encoding(out, source_pix_fmt="yuv420p", source_depth=8, codec="dnxhr", **kw)
    assert (p.codec, p.options["profile"], p.pix_fmt) == ("dnxhd", "dnxhr_hq", "yuv422p")
    p = plan_encoding(out, source_pix_fmt="yuv420p10le", source_depth=10, codec="dnxhr", **kw)
    assert (p.options["profile"], p.pix_fmt, p.warnings) == ("dnxhr_hqx", "yuv422p10le", [])
    p = plan_encoding(out, source_pix_fmt="yuv420p10le", source_depth=10, codec="dnxhr",
                      preset="dnxhr_sq", **kw)  # fmt: skip
    assert p.pix_fmt == "yuv422p" and "keeps 8 bits of the source's 10 (dnxhr_hqx" in p.warnings[0]
    with pytest.raises(VfiError, match=r"takes no --crf \(its --preset \(profile\)"):
        plan_encoding(out, source_pix_fmt="yuv420p", source_depth=8, codec="prores", crf=10, **kw)
    kw["width"] = 200
    with pytest.raises(
        VfiError, match="DNxHR needs frames of at least 256x120, this video is 200x"
    ):
        plan_encoding(out, source_pix_fmt="yuv420p", source_depth=8, codec="dnxhd", **kw)
    with pytest.raises(VfiError, match="cannot hold prores_ks"):
        plan_encoding(tmp_path / "o.mp4", source_pix_fmt="yuv420p", source_depth=8,
                      codec="prores", **kw)  # fmt: skip


def test_stream_decisions(clipdir):
    info = open_source(clipdir / "cfr.mp4").info
    acts = {a.stream.type: a for a in plan_streams(info.streams, "mp4")}
    assert acts["audio"].action == "copy" and acts["subtitle"].action == "copy"
    acts = {a.stream.type: a for a in plan_streams(info.streams, "matroska")}
    assert acts["subtitle"].action == "convert" and acts["subtitle"].target == "subrip"
    acts = {a.stream.type: a for a in plan_streams(info.streams, "webm")}
    assert acts["audio"].action == "transcode" and acts["audio"].warn
    acts = {a.stream.type: a for a in plan_streams(info.streams, "mp4", no_audio=True)}
    assert acts["audio"].action == "drop"
    acts = {a.stream.type: a for a in plan_streams(info.streams, "mp4", slowmo=True)}
    assert acts["audio"].action == "drop" and acts["audio"].warn
    assert all(a.action == "drop" for a in plan_streams(info.streams, None))


def test_subtitle_text_conversion():
    assert subtitle_text("mov_text", b"\x00\x05Hello\x00\x00") == "Hello"
    assert subtitle_text("ass", b"0,0,Default,,0,0,0,,{\\i1}Hi\\Nthere") == "Hi\nthere"
    assert subtitle_payload("mov_text", "Hé") == b"\x00\x03H\xc3\xa9"
    assert subtitle_payload("subrip", "x") == b"x"


def test_png_pair_and_frame_dir(tmp_path):
    for i, depth in ((0, 8), (1, 8)):
        write_png(tmp_path / f"f{i}.png", clips.pattern(i * 4, 20, 10, depth=depth), depth)
    src = open_pair(tmp_path / "f0.png", tmp_path / "f1.png")
    frames = list(src.frames())
    assert len(frames) == 2 and np.array_equal(frames[1].image.numpy(), clips.pattern(4, 20, 10))
    write_png(tmp_path / "deep.png", clips.pattern(0, 20, 10, depth=16), 16)
    deep = open_pair(tmp_path / "deep.png", tmp_path / "deep.png")
    assert deep.info.depth == 16
    assert np.array_equal(
        next(iter(deep.frames())).image.numpy(), clips.pattern(0, 20, 10, depth=16)
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VfiError, match="no image frames"):
        open_source(empty)


def test_bad_files(tmp_path):
    with pytest.raises(VfiError, match="not found"):
        open_source(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 10)
    with pytest.raises(VfiError, match="not a video or image file"):
        open_source(junk)
    audio = tmp_path / "audio.m4a"
    out = av.open(str(audio), "w")
    s = out.add_stream("aac", rate=48000)
    for k in range(5):
        f = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
        )
        f.sample_rate, f.pts = 48000, k * 1024
        out.mux(s.encode(f))
    out.mux(s.encode(None))
    out.close()
    with pytest.raises(VfiError, match="no video stream"):
        open_source(audio)


def test_clip_factory_extras(tmp_path):
    p = clips.make_clip(tmp_path / "rot.mp4", frames=3, rotation=90, metadata={"title": "T"})
    c = av.open(str(p))
    assert c.metadata.get("title") == "T"
    assert next(iter(c.decode(video=0))).rotation == 90
    c.close()
    assert Path(clips.scene_cut_clip(tmp_path)).is_file()
    assert Path(clips.duplicates_clip(tmp_path)).is_file()


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov"])
def test_anamorphic_pixels_are_kept(tmp_path, suffix):
    # A 16:9 DVD is 720x480 pixels 32:27 as wide as tall: without the tag it shows squeezed to 3:2.
    from click.testing import CliRunner

    from vfi_cli.main import cli

    src = clips.make_clip(tmp_path / f"dvd{suffix}", frames=4, size=(72, 48), sar=Q(32, 27))
    assert open_source(src).info.sar == Q(32, 27)
    out = tmp_path / f"o{suffix}"
    r = CliRunner().invoke(cli, ["interpolate", str(src), "-o", str(out), "--model", "blend"])
    assert r.exit_code == 0, r.output
    with av.open(str(out)) as c:
        assert c.streams.video[0].sample_aspect_ratio == Q(32, 27)
    r = CliRunner().invoke(cli, ["probe", str(src)])
    assert "72x48 (SAR 32:27, shown 16:9)" in r.output, r.output
    square = clips.make_clip(tmp_path / f"sq{suffix}", frames=2, size=(72, 48))
    assert open_source(square).info.sar is None


def _codec_of(path):
    with av.open(str(path)) as c:
        cc = c.streams.video[0].codec_context
        return cc.name, cc.codec_tag


def _interpolate(*args):
    from click.testing import CliRunner

    from vfi_cli.main import cli

    r = CliRunner().invoke(cli, ["interpolate", *map(str, args), "--model", "blend"])
    assert r.exit_code == 0, r.output
    return r


def test_prores_flavours_are_labelled(tmp_path):
    # The MOV track's FourCC names the flavour for editors; a remux resets it to HQ's unless set.
    from engine.video.codecs import PRORES_FOURCC

    src = clips.make_clip(tmp_path / "c.mp4", frames=3)
    for profile, fourcc in PRORES_FOURCC.items():
        out = tmp_path / f"{profile}.mov"
        _interpolate(src, "-o", out, "--codec", "prores", "--preset", profile)
        assert _codec_of(out) == ("prores", fourcc), profile


def test_editing_formats_stay_themselves(tmp_path):
    # ProRes LT in, ProRes LT out; DNxHR SQ in, DNxHR SQ out; with no --codec.
    src = clips.make_clip(tmp_path / "c.mp4", frames=3, size=(256, 144))
    lt, sq = tmp_path / "lt.mov", tmp_path / "sq.mov"
    _interpolate(src, "-o", lt, "--codec", "prores", "--preset", "lt")
    _interpolate(src, "-o", sq, "--codec", "dnxhr", "--preset", "dnxhr_sq")
    _interpolate(lt, "-o", tmp_path / "lt2.mov")
    assert _codec_of(tmp_path / "lt2.mov") == ("prores", "apcs")
    _interpolate(sq, "-o", tmp_path / "sq2.mov")
    with av.open(str(tmp_path / "sq2.mov")) as c:
        assert c.streams.video[0].codec_context.profile == "DNXHR SQ"
    _interpolate(lt, "-o", tmp_path / "lt.mp4")  # MP4 cannot hold ProRes: the delivery default
    assert _codec_of(tmp_path / "lt.mp4")[0] == "hevc"  # (HEVC: ProRes is 10-bit)
    _interpolate(src, "-o", tmp_path / "h.mov")  # H.264 in: the delivery default, as before
    assert _codec_of(tmp_path / "h.mov")[0] == "h264"
