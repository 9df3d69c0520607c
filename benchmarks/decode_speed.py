"""Decode-side speed: what the pipeline's decode thread costs per frame, part by part.

Makes (or takes) an H.264 clip and times, over the whole clip:

- ``decode``: FFmpeg decoding only (no conversion), with the reader's thread settings;
- ``reader``: :meth:`engine.video.reader.VideoFile.frames` (decode + RGB conversion + tensor);
- ``loop``: ``reader`` plus the work the pipeline's decode thread adds per frame (thumbnail,
  pinning on CUDA), i.e. the decode stage capacity of ``vfi interpolate``;
- ``analysis``: scene score + duplicate test on the thumbnails (runs on the model thread).

    python benchmarks/decode_speed.py --size 1080p --frames 120
    python benchmarks/decode_speed.py --input clip.mp4 --json
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

SIZES = {"540p": (960, 540), "1080p": (1920, 1080), "4k": (3840, 2160)}


def time_decode_only(path: Path) -> float:
    """Frames per second of FFmpeg decoding alone (threads as the reader sets them)."""
    import av

    from engine.video.reader import configure_decoder

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        configure_decoder(stream)
        n, t0 = 0, time.perf_counter()
        for _ in container.decode(stream):
            n += 1
        return n / (time.perf_counter() - t0)


def time_reader(path: Path, with_loop: bool, device: str) -> tuple[float, float]:
    """(frames per second, analysis ms per frame) through the reader [+ the decode loop's work]."""
    from engine.analysis import THUMB_WIDTH, is_duplicate, scene_score
    from engine.pipeline import decode_item
    from engine.video.reader import open_source

    source = open_source(path)
    depth = source.info.depth
    pin = device == "cuda"
    n, t0 = 0, time.perf_counter()
    thumbs = []
    for frame in source.frames(thumb_width=THUMB_WIDTH if with_loop else None):
        if with_loop:
            _, _, thumb = decode_item(frame, depth, pin)
            thumbs.append(thumb)
        n += 1
    fps = n / (time.perf_counter() - t0)
    t1 = time.perf_counter()
    for a, b in itertools.pairwise(thumbs):
        scene_score(a, b)
        is_duplicate(a, b)
    ms = 1000 * (time.perf_counter() - t1) / max(1, len(thumbs) - 1)
    return fps, ms


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="1080p")
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--input", type=Path, help="an existing clip instead of a generated one")
    ap.add_argument("--device", default="cpu", help="cuda: pin frames as the pipeline does")
    ap.add_argument("--repeat", type=int, default=3, help="passes over the clip; the best counts")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    import os

    with tempfile.TemporaryDirectory() as tmp:
        path = args.input
        if path is None:
            from pipeline import make_clip

            w, h = SIZES[args.size]
            path = make_clip(Path(tmp) / f"clip_{args.size}.mp4", w, h, args.frames)
        # Best of --repeat: the first pass pays one-off costs (glibc raises its mmap threshold only
        # after the first big frame is freed; thread pools start), which a long video amortises.
        decode = max(time_decode_only(path) for _ in range(args.repeat))
        reader = max(time_reader(path, False, args.device)[0] for _ in range(args.repeat))
        loops = [time_reader(path, True, args.device) for _ in range(args.repeat)]
        loop, analysis_ms = max(loops)[0], min(ms for _, ms in loops)
    result = {
        "input": str(args.input or args.size),
        "cpus": os.cpu_count(),
        "decode_fps": round(decode, 1),
        "reader_fps": round(reader, 1),
        "loop_fps": round(loop, 1),
        "analysis_ms_per_frame": round(analysis_ms, 3),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>22}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
