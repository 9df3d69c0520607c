"""End-to-end throughput of `vfi interpolate`: 1080p and 4K at 2x on generated clips, per stage.

Run on the device machine (the lead runs it):

    python benchmarks/pipeline.py                       # vfi-s (random init), 1080p + 4K, 2x, 300 frames
    python benchmarks/pipeline.py --sizes 1080p --model blend --encoders 1
    python benchmarks/pipeline.py --sizes 8k --frames 8   # 8K completes (tiles)
    python benchmarks/pipeline.py --encoder-only --sizes 1080p,4k   # libx264 alone: threading modes

Reports, per size, one JSON line and a table:
- output frames per second over the whole wall clock (decode to final file) and in the steady
  state (wall clock minus the warm-up: memory calibration, CUDA-graph capture, autotuning);
- per stage (warm-up, decode, upload, model, download, colour conversion, encode, mux): busy
  seconds, frames, frames per busy second, the threads doing it and the share of the wall clock.
  GPU stages are timed with CUDA events (device time), CPU stages in their threads. A stage's
  capacity is about fps x threads: the lowest capacity is what limits the run;
- peak GPU memory, the tile plan and batch, and the memory estimate next to the measured peak.
Goals (issue 3): 1080p 2x >= 100 output fps, 4K 2x >= 30 output fps within 8 GiB, 8K completes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160), "8k": (7680, 4320)}


def pattern_frames(width: int, height: int, frames: int):
    """Moving-texture RGB frames (uint8, (H, W, 3)), generated lazily."""
    import numpy as np

    yy, xx = np.mgrid[0:height, 0:width]
    base = ((np.sin(xx / 37.0) + np.cos(yy / 23.0)) * 60 + 128).astype(np.float32)
    for i in range(frames):
        shift = np.roll(base, 4 * i, axis=1)
        yield (
            np.stack([shift, np.roll(shift, 2 * i, axis=0), base], -1).clip(0, 255).astype(np.uint8)
        )


def make_clip(path: Path, width: int, height: int, frames: int, rate=Fraction(30)) -> Path:
    """A moving-texture H.264 clip (ultrafast: generating it must not dominate the run)."""
    import av

    out = av.open(str(path), "w")
    s = out.add_stream("libx264", rate=rate)
    s.width, s.height, s.pix_fmt = width, height, "yuv420p"
    s.codec_context.options = {"preset": "ultrafast", "crf": "20"}
    for i, img in enumerate(pattern_frames(width, height, frames)):
        f = av.VideoFrame.from_ndarray(img, format="rgb24")
        f.pts = i
        out.mux(s.encode(f))
    out.mux(s.encode(None))
    out.close()
    return path


def bench(size: str, frames: int, model_name: str, args) -> dict:
    import torch

    import engine
    from engine.pipeline import run
    from engine.plan import Options, make_plan, model_config_for

    w, h = SIZES[size]
    with tempfile.TemporaryDirectory() as tmp:
        src = make_clip(Path(tmp) / f"in_{size}.mp4", w, h, frames)
        opts = Options(
            model=model_name,
            device=args.device,
            precision=args.precision,
            tile=args.tile,
            batch=args.batch,
            preset=args.preset,
            memory_gib=args.memory,
            encoders=args.encoders,
            overwrite=True,
        )
        pretrained = model_name not in ("vfi-s", "vfi-b") or args.pretrained
        net = engine.load_model(model_name, pretrained=pretrained)
        plan = make_plan([src], Path(tmp) / f"out_{size}.mp4", opts,
                         model_config=model_config_for(model_name))  # fmt: skip
        notices = []
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        result = run(
            plan, net, opts, on_event=lambda e: e["event"] == "notice" and notices.append(e)
        )
        wall = time.perf_counter() - t0
        peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0
        steady = max(wall - result.warmup, 1e-9)
        stages = result.stages
        for st in stages.values():
            st["share"] = round(st["seconds"] / wall, 3)
        return {
            "size": size,
            "model": model_name,
            "frames_in": result.frames_in,
            "frames_out": result.frames_out,
            "wall_s": round(wall, 2),
            "warmup_s": round(result.warmup, 2),
            "output_fps": round(result.frames_out / wall, 1),
            "steady_fps": round(result.frames_out / steady, 1),
            "model_share": stages["model"]["share"],
            "stages": stages,
            "peak_gpu_gib": round(peak / 2**30, 2),
            "estimate_gib": round(plan.memory_estimate / 2**30, 2),
            "tile": plan.tile,
            "batch": plan.batch,
            "scale": plan.scale,
            "precision": plan.precision,
            "encode": plan.encode.describe(),
            "notices": [n["message"] for n in notices],
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        }


def print_table(r: dict) -> None:
    print(f"# {r['size']} {r['model']} on {r['device']}: {r['frames_in']} -> {r['frames_out']} "
          f"frames, {r['output_fps']} fps overall, {r['steady_fps']} fps after a "
          f"{r['warmup_s']} s warm-up; peak GPU {r['peak_gpu_gib']} GiB; tile {r['tile']}, "
          f"batch {r['batch']}, scale {r['scale']}; {r['encode']}")  # fmt: skip
    print(
        f"#   {'stage':9} {'busy s':>8} {'frames':>7} {'fps':>8} {'threads':>7} {'capacity':>9} {'share':>6}"
    )
    for name, s in r["stages"].items():
        cap = s["fps"] * s["parallel"]
        print(f"#   {name:9} {s['seconds']:8.2f} {s['frames']:7d} {s['fps']:8.1f} "
              f"{s['parallel']:7d} {cap:9.1f} {s['share']:6.1%}")  # fmt: skip


def encoder_only(size: str, frames: int, preset: str) -> dict:
    """libx264 alone on pre-converted frames: PyAV's default (slice threads) vs frame threads."""
    import av

    w, h = SIZES[size]
    rgb = list(pattern_frames(w, h, frames))
    t = time.perf_counter()
    yuv = [
        av.VideoFrame.from_ndarray(img, format="rgb24").reformat(
            format="yuv420p", src_color_range=2, dst_colorspace=1, dst_color_range=1
        )
        for img in rgb
    ]
    out = {"size": size, "preset": preset, "frames": frames}
    out["rgb_to_yuv_fps"] = round(frames / (time.perf_counter() - t), 1)
    for mode in ("SLICE", "FRAME"):
        with tempfile.TemporaryDirectory() as tmp:
            c = av.open(str(Path(tmp) / "e.mp4"), "w")
            s = c.add_stream("libx264", rate=60)
            s.width, s.height, s.pix_fmt = w, h, "yuv420p"
            s.codec_context.thread_type = mode
            s.codec_context.options = {"crf": "18", "preset": preset}
            t = time.perf_counter()
            for i, f in enumerate(yuv):
                f.pts = i
                c.mux(s.encode(f))
            c.mux(s.encode(None))
            c.close()
            out[f"x264_{mode.lower()}_threads_fps"] = round(frames / (time.perf_counter() - t), 1)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="1080p,4k")
    p.add_argument("--frames", type=int, default=300, help="input frames per clip")
    p.add_argument("--model", default="vfi-s")
    p.add_argument("--pretrained", action="store_true", help="trained weights (else random init)")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--tile", default="auto")
    p.add_argument("--batch", type=int, default=4, help="most output frames per forward")
    p.add_argument("--memory", type=float, default=None, help="GiB for one forward (default 6)")
    p.add_argument("--encoders", type=int, default=None, help="segments encoded at once")
    p.add_argument(
        "--preset", default=None, help="encoder preset (default: the codec's, veryfast for libx264)"
    )
    p.add_argument("--encoder-only", action="store_true", help="time libx264 alone, then exit")
    args = p.parse_args()
    for size in args.sizes.split(","):
        size = size.strip().lower()
        if args.encoder_only:
            print(json.dumps(encoder_only(size, min(args.frames, 120), args.preset or "veryfast")))
            continue
        r = bench(size, args.frames, args.model, args)
        print(json.dumps(r), flush=True)
        print_table(r)


if __name__ == "__main__":
    main()
