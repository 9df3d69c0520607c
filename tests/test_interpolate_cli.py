"""`vfi interpolate` / `vfi probe` end to end on generated clips (CliRunner, CPU, blend/tiny model)."""

from __future__ import annotations

import json
import shutil
from fractions import Fraction as Q
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from engine.errors import VfiError
from engine.interpolator import _cannot_compile
from engine.video.writer import write_png
from tests import clips
from vfi_cli.main import cli


def vfi(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result


def ok(*args):
    r = vfi(*args)
    assert r.exit_code == 0, r.output
    return r


def events(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if ".vfi-work" in p.name or p.suffix == ".part"]


def video_packets(path, kind="video"):
    with av.open(str(path)) as c:
        s = next(x for x in c.streams if x.type == kind)
        return [(p.pts, bytes(p)) for p in c.demux(s) if p.size]


def decoded_frames(path):
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def pngs(directory: Path):
    from engine.video.reader import open_source

    return [f.image.numpy() for f in open_source(directory).frames()]


@pytest.fixture(scope="module")
def cfr(tmp_path_factory):
    return clips.cfr_with_audio_subs(tmp_path_factory.mktemp("cfr"))


def test_cfr_2x_keeps_timing_audio_and_subtitles(cfr, tmp_path):
    out = tmp_path / "out.mp4"
    ok("interpolate", cfr, "-o", out, "--model", "blend")
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        assert Q(v.average_rate.numerator, v.average_rate.denominator) == Q(48000, 1001)
        pts = sorted(p.pts * Q(p.time_base.numerator, p.time_base.denominator)
                     for p in c.demux(v) if p.size)  # fmt: skip
    assert len(pts) == 48
    assert pts == [Q(k * 1001, 48000) for k in range(48)]  # exact, ends at 47/rate_out
    assert pts[-1] + Q(1001, 48000) == Q(24 * 1001, 24000)  # same duration as the input
    assert video_packets(out, "audio") == video_packets(cfr, "audio")  # stream copy, bit-exact
    cues = [p for p in video_packets(out, "subtitle") if p[1] != b"\x00\x00"]
    assert [c[1][2:] for c in cues] == [b"Hello", b"World"]
    assert leftovers(tmp_path) == []


def test_a_model_without_weights_is_a_clear_error(cfr, tmp_path):
    r = vfi("interpolate", cfr, "-o", tmp_path / "o.mp4", "--model", "vfi-b")
    assert r.exit_code == 1
    assert "no trained weights" in r.output and "Traceback" not in r.output
    assert list(tmp_path.iterdir()) == []


def test_the_bundled_default_model_runs_with_no_flags(tmp_path):
    src = clips.make_clip(tmp_path / "in.mp4", frames=3, size=(48, 32))
    r = vfi("interpolate", src, "-o", tmp_path / "o.mp4", "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert len(decoded_frames(tmp_path / "o.mp4")) == 6  # 2 x 3: the duration is kept


def test_vfr_input(tmp_path):
    src = clips.vfr_clip(tmp_path)
    r = ok(
        "interpolate", src, "-o", tmp_path / "o.mkv", "--model", "blend", "--fps", "30", "--json"
    )
    plan = events(r)[0]
    assert plan["vfr"] is True
    n = len(decoded_frames(tmp_path / "o.mkv"))
    assert n == plan["frames_out"] == int(np.ceil(float(Q(plan["input_duration"]["exact"]) * 30)))


def test_hevc10_stays_10_bit_with_tags(tmp_path):
    src = clips.hevc10_clip(tmp_path)
    out = tmp_path / "o.mkv"
    ok("interpolate", src, "-o", out, "--model", "blend", "--codec", "libx265")
    with av.open(str(out)) as c:
        frame = next(iter(c.decode(video=0)))
        cc = c.streams.video[0].codec_context
        assert frame.format.name == "yuv420p10le"
        assert (frame.colorspace, frame.color_range) == (9, 1)
        assert (cc.color_primaries, cc.color_trc) == (9, 18)


@pytest.mark.parametrize("size", [(1, 1), (3, 5), (33, 17)])
def test_tiny_and_odd_sizes(tmp_path, size):
    src = clips.make_clip(tmp_path / "s.mkv", frames=4, size=size, codec="ffv1", pix_fmt="yuv444p")
    ok("interpolate", src, "-o", tmp_path / "frames", "--model", "blend")
    frames = pngs(tmp_path / "frames")
    assert len(frames) == 8 and frames[0].shape == (size[1], size[0], 3)
    ok("interpolate", src, "-o", tmp_path / "o.mp4", "--model", "blend")  # padded to even
    assert len(decoded_frames(tmp_path / "o.mp4")) == 8


def test_scene_cut_frames_repeat_source_frames(tmp_path):
    src = clips.make_clip(tmp_path / "cut.mkv", frames=12, scenes=[0] * 6 + [1] * 6, codec="ffv1",
                          pix_fmt="yuv444p")  # fmt: skip
    r = ok("interpolate", src, "-o", tmp_path / "f", "--factor", "4", "--model", "blend", "--json")
    cuts = [e for e in events(r) if e["event"] == "scene_cut"]
    assert len(cuts) == 1 and Q(cuts[0]["time"]) == Q(6 * 1001, 24000)
    out = pngs(tmp_path / "f")
    source = pngs_from_video(src)
    assert len(out) == 48
    # Output 20..23 lie between source 5 and 6 (the cut): 20 is 5 itself, 21/22 repeat 5, 23 is 6.
    for k, expected in ((20, 5), (21, 5), (22, 5), (23, 6)):
        assert np.array_equal(out[k], source[expected]), k
    assert not np.array_equal(out[17], source[4]) and not np.array_equal(out[17], source[5])
    r = ok("interpolate", src, "-o", tmp_path / "g", "--factor", "4", "--model", "blend",
           "--no-scene-detect", "--json")  # fmt: skip
    assert not [e for e in events(r) if e["event"] == "scene_cut"]


def pngs_from_video(path):
    from engine.video.reader import open_source

    return [f.image.numpy() for f in open_source(path).frames()]


def test_dedup_interpolates_between_unique_frames(tmp_path):
    src = clips.make_clip(tmp_path / "twos.mkv", frames=12, repeat=2, rate=Q(24), codec="ffv1",
                          pix_fmt="yuv444p")  # fmt: skip
    r = ok("interpolate", src, "-o", tmp_path / "f", "--dedup", "--model", "blend", "--json")
    done = events(r)[-1]
    assert done["event"] == "done" and done["duplicates"] == 6 and done["frames_out"] == 24
    out, source = pngs(tmp_path / "f"), pngs_from_video(src)
    # Output frame 2 shows 1/24 s, where the input repeats picture 0: with --dedup it is halfway
    # from picture 0 (at 0) to picture 1 (at 2/24), and output 1 (1/48 s) a quarter of the way.
    p0, p1 = source[0].astype(np.float64), source[2].astype(np.float64)
    assert np.abs(out[2].astype(int) - np.round(0.5 * p0 + 0.5 * p1)).max() <= 1
    assert np.abs(out[1].astype(int) - np.round(0.75 * p0 + 0.25 * p1)).max() <= 1
    assert not np.array_equal(out[2], source[1])


def test_image_pair(tmp_path):
    from engine.video.writer import write_png

    a, b = clips.pattern(0, 20, 12), clips.pattern(6, 20, 12)
    write_png(tmp_path / "a.png", a, 8)
    write_png(tmp_path / "b.png", b, 8)
    ok("interpolate", tmp_path / "a.png", tmp_path / "b.png", "-o", tmp_path / "mid.png",
       "--model", "blend")  # fmt: skip
    mid = pngs_from_pair(tmp_path / "mid.png")
    assert np.abs(mid.astype(int) - (a.astype(int) + b) / 2).max() <= 1
    ok("interpolate", tmp_path / "a.png", tmp_path / "b.png", "-o", tmp_path / "d", "--factor", "4",
       "--model", "blend")  # fmt: skip
    assert len(list((tmp_path / "d").glob("*.png"))) == 3


def pngs_from_pair(path):
    from engine.video.reader import open_pair

    return next(iter(open_pair(path, path).frames())).image.numpy()


def test_frame_directory_to_video(tmp_path):
    from engine.video.writer import write_png

    d = tmp_path / "frames"
    d.mkdir()
    for i in range(5):
        write_png(d / f"img_{i + 1:03d}.png", clips.pattern(i, 32, 16), 8)
    ok("interpolate", d, "-o", tmp_path / "v.mp4", "--model", "blend", "--input-fps", "10")
    with av.open(str(tmp_path / "v.mp4")) as c:
        rate = c.streams.video[0].average_rate
        assert Q(rate.numerator, rate.denominator) == 20
        assert c.streams.video[0].frames == 10


def test_probe_and_dry_run_write_nothing(cfr, tmp_path):
    r = ok("probe", cfr, "--model", "blend")
    assert "48 frames at 48000/1001" in r.output and "audio aac" in r.output
    plan = json.loads(ok("probe", cfr, "--json", "--fps", "60", "--model", "blend").stdout)
    assert plan["frames_out"] == 61 and plan["output_rate"]["exact"] == "60"
    out = tmp_path / "o.mp4"
    r = ok("interpolate", cfr, "-o", out, "--dry-run", "--model", "blend", "--tile", "256")
    assert "whole frames" in r.output  # 64x48 needs no tiles
    r = ok("interpolate", cfr, "-o", out, "--dry-run", "--json", "--model", "blend", "--compile")
    assert events(r)[0]["compile"] is True
    assert list(tmp_path.iterdir()) == []


def test_tiled_and_untiled_outputs_agree(tmp_path):
    src = clips.make_clip(tmp_path / "c.mkv", frames=4, size=(150, 90), codec="ffv1",
                          pix_fmt="yuv444p")  # fmt: skip
    ok("interpolate", src, "-o", tmp_path / "a", "--model", "blend", "--tile", "off")
    ok("interpolate", src, "-o", tmp_path / "b", "--model", "blend", "--tile", "64")
    for x, y in zip(pngs(tmp_path / "a"), pngs(tmp_path / "b")):
        assert np.abs(x.astype(int) - y).max() <= 1


def test_tiny_model_from_a_weights_file(tmp_path, tiny_model):
    import dataclasses

    from safetensors.torch import save_file

    weights = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_model.state_dict().items()}, str(weights))
    weights.with_suffix(".json").write_text(json.dumps(dataclasses.asdict(tiny_model.config)))
    src = clips.make_clip(tmp_path / "c.mp4", frames=4, size=(40, 24))
    ok("interpolate", src, "-o", tmp_path / "o.mp4", "--model", weights, "--factor", "3")
    assert len(decoded_frames(tmp_path / "o.mp4")) == 12


def software_encoders():
    from engine.video.codecs import KNOWN_CODECS, is_hardware

    return [c for c in KNOWN_CODECS if c in av.codecs_available and not is_hardware(c)]


@pytest.mark.parametrize("codec", software_encoders())
def test_every_software_encoder_end_to_end(cfr, tmp_path, capfd, codec):
    # Iterates the encoder table, so a codec added there is muxed here too (AV1 once failed at the
    # mux: its segments decode with libdav1d, which names no encoder).
    from engine.video.codecs import DNXHR_MIN_SIZE, holding_ext

    out = tmp_path / f"o{holding_ext(codec)}"
    src = cfr
    if codec == "dnxhd":
        src = clips.make_clip(tmp_path / "big.mp4", frames=24, size=DNXHR_MIN_SIZE, audio=True)
    ok("interpolate", src, "-o", out, "--model", "blend", "--codec", codec, "-q")
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.codec.id == av.Codec(codec, "w").id
        kinds = {s.type for s in c.streams}
        assert kinds == {"video"} if codec == "gif" else kinds >= {"video", "audio"}
    assert len(decoded_frames(out)) == 48
    # x265 and SVT-AV1 write their banners to the process's stderr unless told not to.
    err = capfd.readouterr().err
    assert "[info]" not in err and "Svt[info]" not in err, err


@pytest.mark.skipif(torch.cuda.is_available(), reason="NVENC may be there")
def test_hardware_encoder_without_its_hardware(cfr, tmp_path):
    r = vfi(
        "interpolate", cfr, "-o", tmp_path / "o.mp4", "--model", "blend", "--codec", "h264_nvenc"
    )
    assert r.exit_code == 1 and "needs a GPU" in r.output, r.output
    assert list(tmp_path.iterdir()) == []


BAD = [
    (["missing.mp4"], "input not found"),
    (["{empty}"], "no image frames"),
    (["{junk}"], "not a video or image file"),
    (["{one}"], "only 1 video frame"),
    (["{clip}", "--factor", "0"], "--factor must be above 0"),
    (["{clip}", "--fps", "-5"], "--fps must be above 0"),
    (["{clip}", "--fps", "100000"], "at most"),
    (["{clip}", "--factor", "2", "--fps", "60"], "not both"),
    (["{clip}", "-o", "{clip}"], "is the input"),
    (["{clip}", "-o", "{exists}"], "-y/--overwrite"),
    (["{clip}", "-o", "{nodir}/o.mp4"], "does not exist"),
    (["{clip}", "-o", "{tmp}/o.xyz"], "unknown output extension"),
    (["{clip}", "--slowmo", "--fps", "60"], "--slowmo"),
    (["{clip}", "--codec", "nope"], "not available"),
    (["{clip}", "--preset", "nope"], "preset=nope (x264: invalid preset 'nope')"),
    (["{clip}", "-e", "nosuch=1"], "has no option nosuch"),
    (["{clip}", "{one}"], "one.mp4 has only 1 video frame"),  # a batch: all planned first
    (["{clip}", "{one}", "-o", "{tmp}/m.png"], "give -o an existing directory"),
    (["{empty}", "{clip}"], "is a directory"),
    (["{clip}", "{clip}", "{clip}"], "is given twice"),
    (["{clip}", "{pic}"], "clip.mp4 is a video and the other input is not"),
]


@pytest.mark.parametrize("args,message", BAD)
def test_bad_input(tmp_path, args, message):
    clip = clips.make_clip(tmp_path / "clip.mp4", frames=3)
    paths = {
        "clip": clip,
        "empty": tmp_path / "empty",
        "junk": tmp_path / "junk.mp4",
        "one": clips.make_clip(tmp_path / "one.mp4", frames=1),
        "exists": tmp_path / "exists.mp4",
        "nodir": tmp_path / "nodir",
        "tmp": tmp_path,
        "pic": tmp_path / "pic.png",
    }
    write_png(tmp_path / "pic.png", clips.pattern(0, 64, 48), 8)
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk.mp4").write_bytes(b"not a video" * 50)
    (tmp_path / "exists.mp4").write_bytes(b"keep me")
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    argv = [a.format(**paths) for a in args]
    r = vfi("interpolate", *argv, "--model", "blend")
    assert r.exit_code != 0
    assert message in r.output, r.output
    assert "Traceback" not in r.output
    assert len([ln for ln in r.stderr.splitlines() if ln.startswith("error:")]) == 1
    after = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    assert after == before  # nothing written, nothing modified


def test_damaged_input_uses_what_is_readable(tmp_path):
    src = clips.make_clip(tmp_path / "c.mkv", frames=24)
    data = src.read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[: len(data) * 2 // 3])
    r = vfi("interpolate", tmp_path / "cut.mkv", "-o", tmp_path / "o.mkv", "--model", "blend")
    assert r.exit_code == 0, r.output
    n = len(decoded_frames(tmp_path / "o.mkv"))
    assert 0 < n < 48


def test_disk_full_is_one_line_and_leaves_nothing(cfr, tmp_path, monkeypatch):
    import errno

    from engine.video import writer

    def full(self, rgb):
        raise writer._write_error(self.path, OSError(errno.ENOSPC, "No space left on device"))

    monkeypatch.setattr(writer.SegmentWriter, "write", full)
    r = vfi("interpolate", cfr, "-o", tmp_path / "o.mp4", "--model", "blend")
    assert r.exit_code == 1 and "disk full" in r.output
    assert list(tmp_path.iterdir()) == []


def interrupt_after(monkeypatch, calls: int):
    """Make the pipeline see Ctrl-C at its ``calls``-th batch."""
    from engine import pipeline

    real = pipeline._Runner._flush
    seen = {"n": 0}

    def flush(self):
        seen["n"] += 1
        if seen["n"] == calls:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(pipeline._Runner, "_flush", flush)


def test_ctrl_c_exits_130_and_removes_temp(cfr, tmp_path, monkeypatch):
    interrupt_after(monkeypatch, 3)
    r = vfi("interpolate", cfr, "-o", tmp_path / "o.mp4", "--model", "blend")
    assert r.exit_code == 130 and "interrupted" in r.output
    assert list(tmp_path.iterdir()) == []


def test_resume_after_ctrl_c_matches_uninterrupted(tmp_path, monkeypatch):
    """Ctrl-C with --resume keeps the finished segments; the resumed run ends bit-identical.

    ffv1 (lossless, deterministic) makes "identical" checkable on the file; libx264 is not
    bit-reproducible between two plain runs in this FFmpeg build (mb-tree), so with it the frames
    sent to the encoder are identical but the bitstreams may differ slightly.
    """
    from engine.video import writer

    src = clips.make_clip(tmp_path / "c.mkv", frames=30, rate=Q(24))
    monkeypatch.setattr(writer, "SEGMENT_SECONDS", Q(1, 6))  # 8-frame segments: several here
    args = ["--model", "blend", "--codec", "ffv1"]
    ok("interpolate", src, "-o", tmp_path / "ref.mkv", *args)
    with monkeypatch.context() as m:
        interrupt_after(m, 5)
        r = vfi("interpolate", src, "-o", tmp_path / "o.mkv", *args, "--resume")
        assert r.exit_code == 130 and "--resume" in r.output
    work = tmp_path / ".o.mkv.vfi-work"
    assert json.loads((work / "journal.json").read_text())["segments"]
    (work / "seg_000099.part").write_bytes(b"half-written garbage")  # as a kill -9 would leave
    r = ok("interpolate", src, "-o", tmp_path / "o.mkv", *args, "--resume")
    assert "resuming after" in r.output
    assert video_packets(tmp_path / "o.mkv") == video_packets(tmp_path / "ref.mkv")
    assert not work.exists()
    r = vfi("interpolate", src, "-o", tmp_path / "p.mkv", "--model", "blend", "--resume", "-y")
    assert r.exit_code == 0 and "nothing to resume" in r.output


KILL_SCRIPT = """
import os, signal, sys
from fractions import Fraction
import engine
from engine.plan import Options, make_plan
from engine.pipeline import run

src, out, kill = sys.argv[1], sys.argv[2], sys.argv[3] == "kill"
opts = Options(model="blend", codec="ffv1", segment_frames=8, resume=True, batch=2)
plan = make_plan([src], out, opts)
work = os.path.join(os.path.dirname(out), "." + os.path.basename(out) + ".vfi-work")

def on_event(event):
    journal = os.path.join(work, "journal.json")
    if kill and event["event"] == "progress" and os.path.exists(journal):
        import json
        with open(journal) as f:
            if len(json.load(f)["segments"]) >= 2:
                os.kill(os.getpid(), signal.SIGKILL)  # no cleanup at all

if kill:  # a slow encoder: the run lasts long enough for progress events between segments
    import time
    from engine.video import writer
    write = writer.SegmentWriter.write
    writer.SegmentWriter.write = lambda self, rgb: (time.sleep(0.01), write(self, rgb))[1]

run(plan, engine.load_model("blend"), opts, on_event=on_event)
"""


@pytest.mark.slow
def test_resume_after_kill_9(tmp_path):
    import subprocess
    import sys

    src = clips.make_clip(tmp_path / "c.mkv", frames=60, rate=Q(24))
    script = tmp_path / "job.py"
    script.write_text(KILL_SCRIPT)

    def job(out, mode):
        cmd = [sys.executable, str(script), str(src), str(tmp_path / out), mode]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    killed = job("o.mkv", "kill")
    assert killed.returncode == -9, killed.stderr
    assert not (tmp_path / "o.mkv").exists()
    assert (tmp_path / ".o.mkv.vfi-work" / "journal.json").is_file()
    assert job("o.mkv", "resume").returncode == 0
    assert job("ref.mkv", "plain").returncode == 0
    assert video_packets(tmp_path / "o.mkv") == video_packets(tmp_path / "ref.mkv")
    assert len(video_packets(tmp_path / "o.mkv")) == 120


def test_parallel_segment_encoders_match_one_encoder(tmp_path):
    """Several segments encoded at once, committed in order: the same file as one encoder gives."""
    import engine
    from engine.pipeline import run
    from engine.plan import Options, make_plan

    src = clips.make_clip(tmp_path / "c.mkv", frames=30, rate=Q(24))
    results = {}
    for n in (1, 3):
        out = tmp_path / f"o{n}.mkv"
        opts = Options(model="blend", codec="ffv1", segment_frames=7, encoders=n, batch=3)
        results[n] = run(make_plan([src], out, opts), engine.load_model("blend"), opts)
    assert video_packets(tmp_path / "o1.mkv") == video_packets(tmp_path / "o3.mkv")
    assert len(video_packets(tmp_path / "o3.mkv")) == 60
    stages = results[3].stages
    assert stages["encode"]["frames"] == 60 and stages["encode"]["parallel"] == 3
    assert stages["convert"]["frames"] == 60 and stages["decode"]["frames"] == 30
    assert stages["model"]["frames"] == results[3].synthesized > 0
    assert stages["mux"]["frames"] == 60 and results[3].warmup >= 0
    assert not leftovers(tmp_path)


def test_compile_without_a_compiler_is_a_clear_error(cfr, tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("CXX", raising=False)
    r = vfi("interpolate", cfr, "-o", tmp_path / "o.mp4", "--model", "blend", "--compile")
    assert r.exit_code == 1
    assert "--compile needs a C++ compiler" in r.output and "Traceback" not in r.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(
    _cannot_compile(torch.device("cpu")) is not None, reason="Inductor on CPU needs a C++ compiler"
)
def test_compile_says_so_and_gives_the_same_frames(tmp_path):
    src = clips.make_clip(tmp_path / "c.mkv", frames=3, size=(48, 32), codec="ffv1",
                          pix_fmt="yuv444p")  # fmt: skip
    ok("interpolate", src, "-o", tmp_path / "eager", "--model", "blend")
    r = ok(
        "interpolate", src, "-o", tmp_path / "compiled", "--model", "blend", "--compile", "--json"
    )
    notices = [e["message"] for e in events(r) if e["event"] == "notice"]
    assert any("compiling the model" in m for m in notices), notices
    for x, y in zip(pngs(tmp_path / "eager"), pngs(tmp_path / "compiled"), strict=True):
        assert np.abs(x.astype(int) - y).max() <= 1
    # Three new frames per pair: the encode-once path (Interpolator.many), compiled too.
    ok("interpolate", src, "-o", tmp_path / "x4e", "--model", "blend", "--factor", "4")
    ok("interpolate", src, "-o", tmp_path / "x4c", "--model", "blend", "--factor", "4", "--compile")
    for x, y in zip(pngs(tmp_path / "x4e"), pngs(tmp_path / "x4c"), strict=True):
        assert np.abs(x.astype(int) - y).max() <= 1


def test_interlaced_video_is_deinterlaced(tmp_path):
    # Woven fields of a moving block: each output frame is compared with the picture of its top
    # field (the time bwdif's one-frame-per-frame output stands for).
    src = clips.interlaced_clip(tmp_path / "i.mkv", frames=8)
    truth = clips.interlaced_scene(16)[::2]
    r = ok("probe", src, "--json")
    plan = json.loads(r.stdout)
    assert (plan["interlaced"], plan["deinterlace"]) == ("tff", "bwdif")

    def psnr_to_truth(directory):
        frames = pngs(directory)
        assert len(frames) == 8
        mse = [np.mean((f.astype(float) - t) ** 2) for f, t in zip(frames, truth)]
        return float(np.mean([10 * np.log10(255**2 / max(m, 1e-3)) for m in mse]))

    for mode in ("auto", "off"):
        (tmp_path / mode).mkdir()
        ok("interpolate", src, "-o", tmp_path / mode, "--factor", "1", "--model", "blend",
           "--deinterlace", mode)  # fmt: skip
    woven, deinterlaced = psnr_to_truth(tmp_path / "off"), psnr_to_truth(tmp_path / "auto")
    assert deinterlaced > woven + 6, (woven, deinterlaced)
    r = ok("interpolate", src, "-o", tmp_path / "o.mkv", "--model", "blend", "--deinterlace", "off")
    assert "interlaced (tff) and --deinterlace is off" in r.output
    assert len(decoded_frames(tmp_path / "o.mkv")) == 16  # times kept: 2x of 8 frames


def test_telecined_film_gets_its_frames_back(tmp_path):
    # 24 film pictures in 30 frames by 2:3 pulldown. ivtc: the 24 pictures themselves, at 23.976
    # fps, and 2x makes 47.952 fps whose even frames are those pictures. Deinterlacing instead
    # keeps 30 frames a second, 2 of every 5 made of two pictures' fields.
    src = clips.telecined_clip(tmp_path / "t.mp4", film_frames=24)
    film = clips.interlaced_scene(24)
    plan = json.loads(ok("probe", src, "--deinterlace", "ivtc", "--json").stdout)
    assert plan["deinterlace"] == "ivtc" and plan["frames_in"] == 24
    assert plan["telecined"] == {"rate": {"exact": "30000/1001", "value": 30000 / 1001},
                                 "frames": 30}  # fmt: skip
    assert plan["input_rate"]["exact"] == "24000/1001"
    assert plan["output_rate"]["exact"] == "48000/1001" and plan["frames_out"] == 48
    r = ok("probe", src, "--deinterlace", "ivtc")
    assert "inverse telecine: 30 frames at 30000/1001" in r.output, r.output

    def psnr(a, b):
        return 10 * np.log10(255**2 / max(np.mean((a.astype(float) - b) ** 2), 1e-3))

    out = tmp_path / "ivtc"
    out.mkdir()
    ok("interpolate", src, "-o", out, "--model", "blend", "--deinterlace", "ivtc")
    frames = pngs(out)
    assert len(frames) == 48
    assert min(psnr(f, p) for f, p in zip(frames[::2], film, strict=True)) > 40
    # Times: 2x of the film rate, exactly (no 3:2 cadence left in them).
    ok("interpolate", src, "-o", tmp_path / "o.mkv", "--model", "blend", "--deinterlace", "ivtc")
    with av.open(str(tmp_path / "o.mkv")) as c:
        times = [f.time for f in c.decode(video=0)]
    assert len(times) == 48
    assert np.allclose(np.diff(times), 1001 / 48000, atol=1.5e-3)  # Matroska's 1 ms clock
    # bwdif on the same input: 30 frames a second showing 24 pictures, some twice in a row (the
    # 3:2 judder that interpolation would then smear into every new frame).
    bw = tmp_path / "bwdif"
    bw.mkdir()
    ok("interpolate", src, "-o", bw, "--model", "blend", "--factor", "1", "--deinterlace", "on")
    shown = [max(range(24), key=lambda k: psnr(f, film[k])) for f in pngs(bw)]
    assert len(shown) == 30 and len(set(shown)) < 30 and shown == sorted(shown), shown


def test_auto_finds_the_pulldown_cadence(tmp_path):
    # --deinterlace auto (the default) on interlaced 29.97: telecined film gets ivtc, video shot
    # interlaced gets bwdif.
    tele = clips.telecined_clip(tmp_path / "t.mp4", film_frames=24)
    r = ok("probe", tele, "--json")
    plan = json.loads(r.stdout)
    assert plan["deinterlace"] == "ivtc" and plan["frames_in"] == 24
    assert any("telecined film" in w for w in plan["warnings"]), plan["warnings"]
    shot = clips.interlaced_clip(tmp_path / "i.mkv", frames=30, rate=Q(30000, 1001))
    assert json.loads(ok("probe", shot, "--json").stdout)["deinterlace"] == "bwdif"
    forced = json.loads(ok("probe", tele, "--json", "--deinterlace", "on").stdout)
    assert forced["deinterlace"] == "bwdif" and forced["frames_in"] == 30


def test_ivtc_needs_telecine_rates(tmp_path):
    src = clips.interlaced_clip(tmp_path / "pal.mkv", frames=4)  # 25 fps
    r = vfi("interpolate", src, "--deinterlace", "ivtc", "--model", "blend")
    assert r.exit_code == 1 and "undoes 2:3 pulldown in 29.97 or 30 fps video" in r.output
    assert "this one is 25 fps" in r.output and "Traceback" not in r.output
    progressive = clips.make_clip(tmp_path / "p.mp4", frames=10, rate=Q(30000, 1001))
    r = ok("probe", progressive, "--deinterlace", "ivtc")
    assert "says it is progressive: it drops one frame in five" in r.output


def test_progressive_video_is_left_alone(cfr, tmp_path):
    plan = json.loads(ok("probe", cfr, "--json").stdout)
    assert (plan["interlaced"], plan["deinterlace"]) == ("", "")
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    ok("interpolate", cfr, "-o", a, "--factor", "1", "--model", "blend")
    ok("interpolate", cfr, "-o", b, "--factor", "1", "--model", "blend", "--deinterlace", "off")
    assert all(np.array_equal(x, y) for x, y in zip(pngs(a), pngs(b)))


@pytest.mark.parametrize(
    "inputs,options,name",
    [
        (["a.mp4"], {}, "a_x2.mp4"),
        (["a.MOV"], {"factor": Q(5, 2)}, "a_x5-2.mov"),
        (["a.avi"], {"fps": Q(60000, 1001)}, "a_60000-1001fps.mp4"),
        (["a.mkv"], {"slowmo": True, "factor": Q(4)}, "a_x4_slowmo.mkv"),
        (["a.mp4"], {"codec": "prores"}, "a_x2.mov"),  # MP4 cannot hold ProRes / DNxHR
        (["a.webm"], {"codec": "dnxhd"}, "a_x2.mov"),
        (["a.mkv"], {"codec": "prores_ks"}, "a_x2.mkv"),  # Matroska can
        (["a.mkv"], {"codec": "dnxhr"}, "a_x2.mov"),  # ... but has no DNxHD mapping
        (["a.webm"], {"codec": "h264"}, "a_x2.mkv"),  # WebM holds VP8/VP9/AV1 only
        (["a.mp4"], {"codec": "nosuch"}, "a_x2.mp4"),  # plan_encoding refuses it, by name
        (["f0.png", "f1.png"], {}, "f0_x2.png"),
        (["f0.png", "f1.png"], {"factor": Q(4)}, "f0_x4"),
    ],
)
def test_default_output_name(inputs, options, name):
    from engine.plan import Options, default_output

    out = default_output([Path("/d") / p for p in inputs], Options(**options))
    assert out == Path("/d") / name


def test_several_videos_are_a_batch(tmp_path):
    a = clips.make_clip(tmp_path / "a.mp4", frames=4)
    b = clips.make_clip(tmp_path / "b.mkv", frames=6, rate=Q(25))
    r = ok("interpolate", a, b, "--model", "blend")
    assert "[1/2]" in r.output and "[2/2]" in r.output
    assert len(decoded_frames(tmp_path / "a_x2.mp4")) == 8
    assert len(decoded_frames(tmp_path / "b_x2.mkv")) == 12
    out = tmp_path / "out"
    out.mkdir()
    ok("interpolate", a, b, "-o", out, "--model", "blend", "--factor", "3", "-q")
    assert sorted(p.name for p in out.iterdir()) == ["a_x3.mp4", "b_x3.mkv"]
    # Planned whole first: two outputs in the way are two error lines, and nothing is written.
    r = vfi("interpolate", a, b, "-o", out, "--model", "blend", "--factor", "3")
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert r.exit_code == 1 and len(errors) == 2 and all("--overwrite" in e for e in errors)
    r = ok("interpolate", a, b, "--model", "blend", "--fps", "50", "--dry-run")
    assert r.output.count("input   ") == 2 and not (tmp_path / "a_50fps.mp4").exists()


def test_a_failing_video_does_not_stop_the_batch(tmp_path, monkeypatch):
    from engine import pipeline

    a = clips.make_clip(tmp_path / "a.mp4", frames=4)
    b = clips.make_clip(tmp_path / "b.mp4", frames=4)
    real_run = pipeline.run

    def run(plan, *args, **kwargs):
        if plan.source.path.name == "a.mp4":
            raise VfiError("a.mp4 broke halfway (simulated)")
        return real_run(plan, *args, **kwargs)

    monkeypatch.setattr(pipeline, "run", run)
    r = vfi("interpolate", a, b, "--model", "blend")
    assert r.exit_code == 1
    assert "a.mp4 broke halfway" in r.output and "1 of 2 videos failed" in r.output
    assert len(decoded_frames(tmp_path / "b_x2.mp4")) == 8
    assert not (tmp_path / "a_x2.mp4").exists()


def test_encoder_reasons_reach_the_error_line_and_nothing_else(tmp_path, capfd):
    # x264 prints a bad preset with its own fprintf, other encoders through FFmpeg's log (which vfi
    # keeps quiet): both end up in the one error line, and nothing else reaches the terminal.
    src = clips.make_clip(tmp_path / "c.mp4", frames=3)
    capfd.readouterr()
    cases = [
        (["--preset", "nope"], "x264: invalid preset 'nope'"),
        (["--codec", "dnxhd", "--preset", "dnxhr_hqx", "--pix-fmt", "yuv422p"],
         "pixel format is incompatible with DNxHR HQX profile"),
        (["--codec", "libvpx-vp9", "--preset", "99"], "Error setting option cpu-used to value 99"),
    ]  # fmt: skip
    for args, reason in cases:
        if "dnxhd" in args:
            src = clips.make_clip(tmp_path / "big.mp4", frames=3, size=(256, 128))
        r = vfi("interpolate", src, "--model", "blend", "--dry-run", *args)
        assert r.exit_code == 1 and reason in r.output, r.output
        assert capfd.readouterr().err == ""  # no line of the encoder's own


@pytest.mark.parametrize("rotation,turns", [(90, 1), (-90, 3), (180, 2)])
def test_rotated_video_to_pictures_is_upright(tmp_path, rotation, turns):
    # A phone's portrait video is landscape pixels plus a rotation flag. Video output keeps the flag;
    # PNG and GIF have none, so their pixels are turned as FFmpeg's players turn the picture.
    src = clips.make_clip(tmp_path / "r.mp4", frames=4, size=(64, 36), rotation=rotation)
    with av.open(str(src)) as c:
        first = next(c.decode(video=0))
        assert first.rotation % 360 == rotation % 360
        upright = np.rot90(first.to_ndarray(format="rgb24"), turns)
    frames = tmp_path / "f"
    frames.mkdir()
    ok("interpolate", src, "-o", frames, "--model", "blend")
    assert np.array_equal(pngs(frames)[0], upright)
    ok("interpolate", src, "-o", tmp_path / "o.gif", "--model", "blend")
    with av.open(str(tmp_path / "o.gif")) as c:
        gif = next(c.decode(video=0)).to_ndarray(format="rgb24")
    assert gif.shape == upright.shape and np.abs(gif.astype(int) - upright).mean() < 4
    ok("interpolate", src, "-o", tmp_path / "o.mp4", "--model", "blend")
    with av.open(str(tmp_path / "o.mp4")) as c:  # video: the flag, pixels as they were
        out = next(c.decode(video=0))
        assert (out.width, out.height, out.rotation % 360) == (64, 36, rotation % 360)


def test_photos_follow_their_exif_orientation(tmp_path):
    # Phone photos are stored landscape with "turn 90 degrees clockwise" in EXIF: the frames made
    # between them are turned as photo viewers turn the photos.
    a = np.zeros((32, 48, 3), np.uint8)
    a[:8, :8] = 255  # a white corner, top left as stored
    clips.exif_jpeg(tmp_path / "a.jpg", a, 6)
    clips.exif_jpeg(tmp_path / "b.jpg", a, 6)
    ok("interpolate", tmp_path / "a.jpg", tmp_path / "b.jpg", "-o", tmp_path / "m.png",
       "--model", "blend")  # fmt: skip
    with av.open(str(tmp_path / "m.png")) as c:
        mid = next(c.decode(video=0)).to_ndarray(format="rgb24")
    assert mid.shape == (48, 32, 3)  # portrait
    assert mid[:8, -8:].mean() > 200 and mid[-8:, :8].mean() < 50  # the corner is now top right


def test_camera_motion_jpeg_with_exif_is_read(tmp_path):
    # FFmpeg 8 hands EXIF on as side data of a type PyAV's enum lacks; listing it raised ValueError.
    jpg = clips.exif_jpeg(tmp_path / "f.jpg", np.full((32, 48, 3), 90, np.uint8), 1).read_bytes()
    src = tmp_path / "cam.mkv"
    with av.open(str(src), "w") as c:
        s = c.add_stream("mjpeg", rate=24)
        s.width, s.height, s.pix_fmt, s.time_base = 48, 32, "yuvj444p", Q(1, 24)
        for i in range(4):
            p = av.Packet(jpg)
            p.pts = p.dts = i
            p.time_base, p.stream = Q(1, 24), s
            c.mux(p)
    ok("interpolate", src, "-o", tmp_path / "o.mkv", "--model", "blend")
    assert len(decoded_frames(tmp_path / "o.mkv")) == 8


def test_progress_lines_without_a_terminal(tmp_path, monkeypatch):
    # A log file or a pipe gets a plain line now and then instead of a bar it cannot redraw.
    from vfi_cli.commands import interpolate

    src = clips.make_clip(tmp_path / "c.mp4", frames=12)
    monkeypatch.setattr(interpolate, "PLAIN_PROGRESS_SECONDS", 0.0)
    r = ok("interpolate", src, "-o", tmp_path / "o.mp4", "--model", "blend")
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("interpolating: ")]
    assert lines and all(" frames (" in ln and " fps" in ln for ln in lines), r.stderr
    assert "interpolating: 0/" not in r.stderr
    r = ok("interpolate", src, "-o", tmp_path / "q.mp4", "--model", "blend", "-q")
    assert "interpolating" not in r.stderr


def test_a_frame_missing_from_a_render_is_filled(tmp_path):
    # shot.1004.png is missing: the frames keep their numbers' times, and --factor 1 makes 1004.
    src = tmp_path / "render"
    src.mkdir()
    pictures = {n: clips.pattern(n - 1001, 64, 48) for n in (1001, 1002, 1003, 1005, 1006)}
    for n, p in pictures.items():
        write_png(src / f"shot.{n}.png", p, 8)
    out = tmp_path / "filled"
    out.mkdir()
    r = ok("interpolate", src, "-o", out, "--factor", "1", "--model", "blend")
    assert "1 numbered frame(s) missing from render (1004)" in r.output
    # Named as the render is: the filled frame is the missing number.
    assert sorted(p.name for p in out.iterdir()) == [f"shot.{n}.png" for n in range(1001, 1007)]
    frames = pngs(out)
    assert len(frames) == 6
    for k, n in enumerate((1001, 1002, 1003)):
        assert np.array_equal(frames[k], pictures[n])
    assert np.array_equal(frames[4], pictures[1005]) and np.array_equal(frames[5], pictures[1006])
    halfway = (pictures[1003].astype(float) + pictures[1005]) / 2
    assert np.abs(frames[3] - halfway).max() <= 1  # the blend model's frame between 1003 and 1005
    # Names without one number each are taken as consecutive, as before.
    plain = tmp_path / "plain"
    plain.mkdir()
    for i, name in enumerate(("a.png", "b.png", "c.png")):
        write_png(plain / name, clips.pattern(i, 64, 48), 8)
    plan = json.loads(ok("probe", plain, "--json").stdout)
    assert plan["missing_frames"] == [] and plan["frames_in"] == 3
    # Numbered in tens: the step is the numbering's, and 40 is the one missing.
    tens = tmp_path / "tens"
    tens.mkdir()
    for n in (10, 20, 30, 50):
        write_png(tens / f"f{n:04d}.png", clips.pattern(n, 64, 48), 8)
    plan = json.loads(ok("probe", tens, "--json", "--factor", "1", "-o", plain).stdout)
    assert plan["missing_frames"] == [40] and plan["frames_out"] == 5
    assert plan["first_frame_name"] == "f0010.png"
    doubled = tmp_path / "doubled"
    doubled.mkdir()
    ok("interpolate", tens, "-o", doubled, "--model", "blend")  # 2x: numbered one by one
    assert sorted(p.name for p in doubled.iterdir()) == [f"f{n:04d}.png" for n in range(10, 20)]
    tens_filled = tmp_path / "tens_filled"
    tens_filled.mkdir()
    ok("interpolate", tens, "-o", tens_filled, "--model", "blend", "--factor", "1")
    assert sorted(p.name for p in tens_filled.iterdir()) == [
        f"f{n:04d}.png" for n in (10, 20, 30, 40, 50)
    ]


def test_float_renders_are_refused_in_one_line(tmp_path):
    # EXR holds scene-linear floats: written as 8/16-bit picture they would look dark and clip.
    renders = tmp_path / "renders"
    renders.mkdir()
    for i in range(2):
        cc = av.CodecContext.create("exr", "w")
        cc.width, cc.height, cc.pix_fmt, cc.time_base = 16, 8, "gbrpf32le", Q(1, 1)
        planes = np.full((8, 16, 3), 0.5 + i, np.float32)  # above 1.0: HDR
        frame = av.VideoFrame.from_ndarray(planes, format="gbrpf32le", channel_last=True)
        (renders / f"r{i}.exr").write_bytes(b"".join(bytes(p) for p in cc.encode(frame)))
    for args in ([renders], [renders / "r0.exr", renders / "r1.exr"]):
        r = vfi("interpolate", *args, "-o", tmp_path / "o.mp4", "--model", "blend")
        assert r.exit_code == 1 and "floating-point (scene-linear) image" in r.output, r.output
        assert "Traceback" not in r.output and not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("suffix,time_base", [(".mp4", Q(1, 90000)), (".mkv", None)])
def test_soft_pulldown_is_timed_as_film(tmp_path, suffix, time_base):
    # DVD film: 23.976 frames flagged to show for 3 fields, then 2. Demuxed, the times step
    # 3 and 2 fields in turn; interpolated at those times, the 3:2 judder would stay in every
    # new frame. Timed as film, 2x puts every source frame on an even output frame.
    field = Q(1001, 60000)
    times, t = [], Q(0)
    for k in range(24):
        times.append(t)
        t += field * (3 if k % 2 == 0 else 2)
    src = clips.make_clip(tmp_path / f"dvd{suffix}", frames=24, times=times, time_base=time_base,
                          rate=1 / field)  # fmt: skip
    plan = json.loads(ok("probe", src, "--json").stdout)
    assert plan["pulldown"] and not plan["vfr"]
    assert plan["input_rate"]["exact"] == "24000/1001" and plan["frames_out"] == 48
    assert "soft 2:3 pulldown" in ok("probe", src).output
    out = tmp_path / "o"
    out.mkdir()
    ok("interpolate", src, "-o", out, "--model", "blend")
    frames = pngs(out)
    with av.open(str(src)) as c:
        source = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 48
    for k in range(24):
        assert np.array_equal(frames[2 * k], source[k]), k
    for k in range(23):
        halfway = (source[k].astype(float) + source[k + 1]) / 2
        assert np.abs(frames[2 * k + 1] - halfway).max() <= 1, k
    # Phone-style VFR (gaps of every size) is not taken for pulldown.
    jitter = [Q(i, 30) + Q((i * 7) % 5, 1000) for i in range(24)]
    vfr = clips.make_clip(tmp_path / "phone.mkv", frames=24, times=jitter, rate=Q(1000))
    assert not json.loads(ok("probe", vfr, "--json").stdout)["pulldown"]


@pytest.mark.parametrize(
    "typed,exact",
    [
        ("59.94", "60000/1001"),
        ("29.97", "30000/1001"),
        ("23.976", "24000/1001"),
        ("23.98", "24000/1001"),
        ("119.88", "120000/1001"),
        ("2997/100", "2997/100"),  # a fraction is taken as written
        ("59.9", "599/10"),  # too coarse to mean 59.94
        ("60", "60"),
        ("50.0", "50"),
    ],
)
def test_ntsc_rates_typed_as_decimals_are_exact(cfr, typed, exact):
    plan = json.loads(ok("probe", cfr, "--fps", typed, "--json").stdout)
    assert plan["output_rate"]["exact"] == exact


def test_matroska_output_reads_back_at_its_rate(cfr, tmp_path):
    # Matroska keeps the frame duration in whole ns: 59.94 comes back as 19001/317 unless the
    # reader names the standard rate it rounds; and the header must hold the rate at all.
    out = tmp_path / "o.mkv"
    ok("interpolate", cfr, "-o", out, "--fps", "59.94", "--model", "blend")
    plan = json.loads(ok("probe", out, "--json").stdout)
    assert plan["input_rate"]["exact"] == "60000/1001" and not plan["vfr"]


def test_duration_makes_a_preview_of_the_start(cfr, tmp_path):
    # 24 frames at 23.976 with audio and subtitles: the first 0.5 s only, every stream cut there.
    out = tmp_path / "o.mkv"
    r = ok("interpolate", cfr, "-o", out, "--model", "blend", "-t", "0.5")
    frames = decoded_frames(out)
    assert len(frames) == 24  # 2 x ceil(0.5 s x 23.976) = 2 x 12
    with av.open(str(out)) as c:
        audio_end = max(f.time + f.samples / f.sample_rate for f in c.decode(audio=0))
    # Copied audio is cut by packet: the packets that start before the cut are kept, so it ends
    # at most two AAC frames (2 x 21 ms, with the encoder's priming) past it.
    assert 0.5 <= audio_end <= 0.5 + 0.045, audio_end
    plan = json.loads(ok("probe", cfr, "-t", "1/2", "--json").stdout)
    assert plan["duration"]["exact"] == "1/2" and plan["frames_in"] == 12
    assert "only its first 0.5 s" in ok("probe", cfr, "-t", "0.5").output
    # Longer than the clip: the whole clip, as without it.
    whole = json.loads(ok("probe", cfr, "-t", "100", "--json").stdout)
    assert whole["duration"] is None and whole["frames_out"] == 48
    for args, message in [(["-t", "0"], "above 0"), (["-t", "0.01"], "fewer than 2 frames")]:
        r = vfi("interpolate", cfr, "-o", tmp_path / "x.mp4", "--model", "blend", *args)
        assert r.exit_code == 1 and message in r.output, r.output


def test_animated_webp_says_what_to_do(tmp_path):
    src = tmp_path / "a.webp"
    with av.open(str(src), "w", format="webp") as c:
        s = c.add_stream("libwebp_anim", rate=10)
        s.width, s.height, s.pix_fmt = 32, 24, "yuv420p"
        for i in range(3):
            f = av.VideoFrame.from_ndarray(np.full((24, 32, 3), 60 * i, np.uint8), format="rgb24")
            f.pts = i
            c.mux(s.encode(f.reformat(format="yuv420p")))
        c.mux(s.encode(None))
    with av.open(str(src)) as c:
        try:
            next(c.decode(video=0))
            pytest.skip("this FFmpeg decodes animated WebP")
        except (av.error.FFmpegError, StopIteration):
            pass
    r = vfi("interpolate", src, "--model", "blend")
    assert r.exit_code == 1 and "animated WebP, which FFmpeg cannot decode" in r.output
