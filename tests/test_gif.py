"""GIF output (engine/video/gif.py): palettes, frame delays, what the format cannot hold."""

from __future__ import annotations

from fractions import Fraction as Q

import av
import numpy as np
import pytest
from click.testing import CliRunner

from engine.video.gif import MAX_PLAYABLE_RATE, quantize, rate_warning
from engine.video.streams import plan_streams
from tests import clips
from vfi_cli.main import cli


def vfi(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def decoded(path):
    with av.open(str(path)) as c:
        return [(f.time, f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]


def test_few_colours_are_kept_exactly():
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, (256, 3), dtype=np.uint8)
    image = palette[rng.integers(0, 256, (30, 50))]  # (H, W, 3), 256 colours
    frame = quantize(image)
    assert frame.format.name == "pal8"
    np.testing.assert_array_equal(frame.to_ndarray(format="rgb24"), image)


def test_many_colours_are_dithered_to_a_palette():
    ramp = np.linspace(0, 255, 96)
    image = np.stack([*np.meshgrid(ramp, ramp[:64]), np.full((64, 96), 128.0)], -1)
    image = image.round().astype(np.uint8)  # (64, 96, 3): 6,144 colours
    back = quantize(image).to_ndarray(format="rgb24").astype(int)
    assert len(np.unique(back.reshape(-1, 3), axis=0)) <= 256
    assert np.abs(back - image).mean() < 4  # levels of 255: a palette fitted to this frame


def test_gif_output_end_to_end(tmp_path):
    src = clips.cfr_with_audio_subs(tmp_path)  # 24000/1001 fps, AAC audio, subtitles
    out = tmp_path / "o.gif"
    r = vfi("interpolate", src, "-o", out, "--model", "blend")
    assert r.exit_code == 0, r.output
    assert "gif holds pictures only" in r.output  # the audio's warning
    frames = decoded(out)
    assert len(frames) == 48
    with av.open(str(out)) as c:
        assert [s.type for s in c.streams] == ["video"]
    # Delays are whole hundredths: each frame within half of one of its exact time, no drift.
    rate = Q(48000, 1001)
    t0 = frames[0][0]
    for k, (t, _) in enumerate(frames):
        assert abs(t - t0 - k / rate) <= 0.005 + 1e-9, k
    # The source frames (even outputs) come through the palette close to the source.
    with av.open(str(src)) as c:
        first = next(c.decode(video=0)).to_ndarray(format="rgb24").astype(int)
    assert np.abs(frames[0][1].astype(int) - first).mean() < 4


def test_fast_gif_warns_before_any_work(tmp_path):
    src = clips.make_clip(tmp_path / "c.mp4", frames=4, rate=Q(30))
    r = vfi("interpolate", src, "-o", tmp_path / "o.gif", "--model", "blend", "--dry-run",
            "--factor", "2")  # fmt: skip
    assert r.exit_code == 0 and "browsers play frames shorter than 2/100 s" in r.output, r.output
    # Without --factor or --fps, GIF output goes to the fastest rate browsers play, not 2x.
    r = vfi("interpolate", src, "-o", tmp_path / "o.gif", "--model", "blend", "--dry-run")
    assert "GIF output at 50 fps, not 2x (60)" in r.output and "frames at 50 fps" in r.output
    assert rate_warning(MAX_PLAYABLE_RATE) is None
    assert not (tmp_path / "o.gif").exists()


def test_gif_keeps_no_audio_or_subtitles(tmp_path):
    from engine.video.reader import open_source

    info = open_source(clips.cfr_with_audio_subs(tmp_path)).info
    acts = {a.stream.type: a for a in plan_streams(info.streams, "gif")}
    assert acts["audio"].action == "drop" and acts["audio"].warn
    assert acts["subtitle"].action == "drop" and not acts["subtitle"].warn
    acts = {a.stream.type: a for a in plan_streams(info.streams, "gif", no_audio=True)}
    assert not acts["audio"].warn  # asked for


@pytest.mark.parametrize("alpha", [True, False])
def test_transparency_is_said(tmp_path, alpha):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        rgba = np.full((16, 24, 4), 200, np.uint8)
        rgba[..., 3] = 255
        rgba[:, i * 4 : i * 4 + 8, 3] = 0 if alpha else 255
        with av.open(str(frames / f"f{i:03d}.png"), "w") as c:
            s = c.add_stream("png")
            s.width, s.height, s.pix_fmt = 24, 16, "rgba"
            c.mux(s.encode(av.VideoFrame.from_ndarray(rgba, format="rgba")))
            c.mux(s.encode(None))
    r = vfi("interpolate", frames, "-o", tmp_path / "o.mp4", "--model", "blend", "--dry-run")
    assert r.exit_code == 0, r.output
    assert ("has transparency (alpha)" in r.output) == alpha


def test_gif_to_gif(tmp_path):
    # A GIF source's frames have 256 colours or fewer: carried over, they come out exactly.
    src = tmp_path / "in.gif"
    rng = np.random.default_rng(1)
    pictures = [rng.integers(0, 4, (24, 32, 3), dtype=np.uint8) * 80 for _ in range(3)]
    with av.open(str(src), "w") as c:
        s = c.add_stream("gif", rate=10)
        s.width, s.height, s.pix_fmt = 32, 24, "pal8"
        for i, p in enumerate(pictures):
            f = quantize(p)
            f.pts = i
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    r = vfi("interpolate", src, "--model", "blend")
    assert r.exit_code == 0, r.output
    frames = decoded(tmp_path / "in_x2.gif")  # the default output keeps the format
    assert len(frames) == 6
    for k, p in enumerate(pictures):
        np.testing.assert_array_equal(frames[2 * k][1], p)


def test_frames_with_their_own_palettes_are_written_whole(tmp_path):
    # The encoder's default "only what changed" compares palette indices with the previous frame:
    # here index 0 is (0, 0, 10) in A and (0, 0, 20) in B, so A after B came out as B's left half.
    from engine.video.color import ColorInfo
    from engine.video.writer import SegmentWriter, plan_encoding

    rng = np.random.default_rng(2)
    a = rng.integers(1, 4, (24, 32, 3), dtype=np.uint8) * 60
    a[:, :16] = (0, 0, 10)
    b = a.copy()
    b[:, :16] = (0, 0, 20)
    plan = plan_encoding(tmp_path / "o.gif", width=32, height=24, rate=Q(10),
                         color=ColorInfo(1, 1), source_pix_fmt="rgb24", source_depth=8)  # fmt: skip
    segment = tmp_path / "seg"
    writer = SegmentWriter(plan, segment)
    for image in (a, b, a, b):
        writer.write(image)
    writer.close()
    with av.open(str(segment)) as c:
        back = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    for got, want in zip(back, (a, b, a, b), strict=True):
        np.testing.assert_array_equal(got, want)
