"""End-to-end throughput of `vfi interpolate` on the GPU: 1080p and 4K at 2x, generated clips.

Run on the device machine (the lead runs it):

    python benchmarks/pipeline.py                       # vfi-s (random init), 1080p + 4K, 2x
    python benchmarks/pipeline.py --sizes 1080p --frames 240 --model blend
    python benchmarks/pipeline.py --sizes 8k --frames 8   # 8K completes (tiles)

Reports, per size: output frames per second (wall clock, decode to final file), the share of wall
time the model thread spent in forwards, the per-stage rates (decode / model / encode, frames per
second of busy time: the lowest one is the bottleneck), peak GPU memory, the tile plan, and the
memory estimate next to the measured peak (to recalibrate engine.tiling.ACTIVATION_FACTOR).
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


def make_clip(path: Path, width: int, height: int, frames: int, rate=Fraction(30)) -> Path:
    """A moving-texture H.264 clip (fast preset: generating it must not dominate the run)."""
    import av
    import numpy as np

    out = av.open(str(path), "w")
    s = out.add_stream("libx264", rate=rate)
    s.width, s.height, s.pix_fmt = width, height, "yuv420p"
    s.codec_context.options = {"preset": "ultrafast", "crf": "20"}
    yy, xx = np.mgrid[0:height, 0:width]
    base = ((np.sin(xx / 37.0) + np.cos(yy / 23.0)) * 60 + 128).astype(np.float32)
    for i in range(frames):
        shift = np.roll(base, 4 * i, axis=1)
        img = (
            np.stack([shift, np.roll(shift, 2 * i, axis=0), base], -1).clip(0, 255).astype(np.uint8)
        )
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
        model_busy = result.frames_out and result.synthesized / max(result.rates["model"], 1e-9)
        return {
            "size": size,
            "model": model_name,
            "frames_in": result.frames_in,
            "frames_out": result.frames_out,
            "wall_s": round(wall, 2),
            "output_fps": round(result.frames_out / wall, 1),
            "model_share": round(model_busy / wall, 3),
            "rates_fps": {k: round(v, 1) for k, v in result.rates.items()},
            "peak_gpu_gib": round(peak / 2**30, 2),
            "estimate_gib": round(plan.memory_estimate / 2**30, 2),
            "tile": plan.tile,
            "scale": plan.scale,
            "precision": plan.precision,
            "notices": [n["message"] for n in notices],
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="1080p,4k")
    p.add_argument("--frames", type=int, default=120, help="input frames per clip")
    p.add_argument("--model", default="vfi-s")
    p.add_argument("--pretrained", action="store_true", help="trained weights (else random init)")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--tile", default="auto")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--preset", default=None, help="encoder preset (libx264 default: fast)")
    args = p.parse_args()
    for size in args.sizes.split(","):
        print(json.dumps(bench(size.strip().lower(), args.frames, args.model, args)), flush=True)


if __name__ == "__main__":
    main()
