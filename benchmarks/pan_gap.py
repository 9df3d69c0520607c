"""Does our gap to RIFE HDv3 grow when a camera pan is added to real triplets?

Each triplet of a dev set is cut into three windows that pan at a constant velocity, as
``vfi train --pan_prob`` does to training triplets (train/data/corpus_dataset.py): img0's window
at the origin, the ground truth's at half the pan, img1's at the pan (pans are even, so every
window is a whole-pixel cut and the middle frame stays exact). The window is the largest the frame
allows, (H - |dy|, W - |dx|); speed 0 scores the whole frame. The direction turns by 45 degrees from
one triplet to the next, so each speed sees all eight. Our model and RIFE HDv3 (`train/teacher.py`)
score the same windows under the `vfi bench` protocol (8-bit rounding, PSNR averaged per
triplet; each model pads to its own alignment, so at speed 0 Middlebury can differ from `vfi
bench`, which pads to 32 centred, by a few hundredths of a dB); the gap is paired per triplet with
a 95 % bootstrap interval (`vfi compare`'s). If the gap widens with speed, large global motion is
one of our weaknesses and training with an added pan aims at it. CPU is fine:

    python benchmarks/pan_gap.py middlebury eval/middlebury --model vfi-s --teacher flownet.pkl

Two models against each other: each run with ``--json FILE`` writes our per-window scores as a
``vfi bench``-style result (one sample per triplet and speed, named ``<triplet>@<speed>px``, RIFE
HDv3's score beside ours), so ``vfi compare a.json b.json`` pairs them window by window. It pools
the speeds of the run: pass ``--speeds 8`` for one speed alone. The teacher's scores do not
depend on our model, so a later run can take them from an earlier one's file
(``--teacher_scores a.json``) and skip the teacher, about half the time.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.flow_vs_teacher import analysis_parser, open_analysis, ours
from benchmarks.tta_vs_rife import paired
from train.data.corpus_dataset import pan_offsets, pan_vector

SPEEDS = (0, 8, 16, 24)  # px per half-step (img0 -> middle frame)
DIRECTIONS = 8  # the pan's direction turns by 360 / DIRECTIONS degrees per triplet


def pan_for(speed: float, k: int) -> tuple[int, int]:
    """The (dy, dx) pan, img0 -> img1, of triplet ``k`` at ``speed`` px per half-step: even, so that
    half of it is a whole pixel."""
    angle = 2 * math.pi * (k % DIRECTIONS) / DIRECTIONS
    return tuple(int(p) for p in pan_vector(speed, angle, 0.5))  # training's rounding


def pan_windows(img0, gt, img1, pan: tuple[int, int]) -> tuple[torch.Tensor, ...]:
    """The three (1, 3, h, w) windows of a pan (even dy, dx): img0's at the origin, gt's at half the
    pan, img1's at the pan; h = H - |dy|, w = W - |dx|."""
    dy, dx = pan
    if dy % 2 or dx % 2:
        raise ValueError(f"a pan must be even to keep the middle frame exact, got {pan}")
    H, W = img0.shape[-2:]
    h, w = H - abs(dy), W - abs(dx)
    if h < 1 or w < 1:
        raise ValueError(f"a pan of {pan} leaves no window of a {H}x{W} frame")
    y, x = max(0, -dy), max(0, -dx)  # img0's window, so that img1's (at +pan) stays inside

    return tuple(
        img[..., y + oy : y + oy + h, x + ox : x + ox + w]
        for img, (oy, ox) in zip((img0, gt, img1), pan_offsets(pan, 0.5))
    )  # the windows of training's pans (train/data/corpus_dataset.py)


def speeds_label(speeds: list[float]) -> str:
    """The speeds as a --json protocol records them: "8,16"."""
    return ",".join(f"{s:g}" for s in speeds)


def window_name(triplet: str, speed: float) -> str:
    """A --json sample: one triplet's windows at one speed, "00001@8px"."""
    return f"{triplet}@{speed:g}px"


def dataset_name(args) -> str:
    """The ``dataset`` of a --json file: the set and its folder, so two sets never pair up."""
    return f"{args.set} {args.path.name} under an added pan"


def pan_result(
    args, names: list[str], speeds: list[float], scores: dict[float, dict[str, list[float]]]
) -> dict:
    """Our per-window PSNRs as a ``vfi bench --json`` result that ``vfi compare`` accepts: the
    speeds and directions are part of the protocol, so runs over other pans are refused."""
    items = [
        {
            "name": window_name(name, s),
            "psnr": scores[s]["ours"][k],
            "rife_psnr": scores[s]["rife"][k],
        }
        for s in speeds
        for k, name in enumerate(names)
    ]
    protocol = {
        "reference": "benchmarks/pan_gap.py",
        "rounding": "8bit",
        "pad": "each model's alignment",
        "pan_speeds": speeds_label(speeds),
        "pan_directions": DIRECTIONS,
        "model": str(args.model),
        "limit": args.limit or None,
    }
    return {
        "dataset": dataset_name(args),
        "protocol": protocol,
        "items": items,
    }


def teacher_scores(path: Path, dataset: str, speeds: list[float]) -> dict[str, float]:
    """RIFE HDv3's per-window PSNRs from an earlier ``--json`` file of the same set and pans."""
    from engine.errors import VfiError
    from train.compare import load_result

    data = load_result(path)
    pans = speeds_label(speeds)
    theirs = (data.get("dataset"), (data.get("protocol") or {}).get("pan_speeds"))
    if theirs != (dataset, pans):
        raise VfiError(
            f"{path} scored {theirs[0]!r} at pans {theirs[1]}, not {dataset!r} at {pans}: give "
            "a --json file of the same set and --speeds"
        )
    return {i["name"]: float(i["rife_psnr"]) for i in data["items"] if "rife_psnr" in i}


def write_json(path: Path, data: dict) -> None:
    """Write atomically (a temporary file beside the target, then rename): never half a file."""
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def main() -> None:
    p = analysis_parser(__doc__.split("\n")[0])
    p.add_argument("--speeds", default=",".join(map(str, SPEEDS)), help="px per half-step")
    p.add_argument("--json", type=Path, help="also write our per-window scores here")
    p.add_argument(
        "--teacher_scores", type=Path, help="RIFE HDv3's scores from an earlier --json file"
    )
    args = p.parse_args()
    if args.json is not None and (args.json.is_dir() or not args.json.parent.is_dir()):
        p.error(f"--json takes a file in an existing folder, got {str(args.json)!r}")
    try:
        speeds = [float(s) for s in args.speeds.split(",")]
    except ValueError:
        p.error(f"--speeds takes px per half-step like 0,8,16, got {args.speeds!r}")
    if any(s < 0 for s in speeds):
        p.error(f"--speeds cannot be negative, got {args.speeds!r}")

    from engine.errors import VfiError
    from train import bench
    from train.data import benchmarks as B

    cached = {}
    if args.teacher_scores is not None:
        cached = teacher_scores(args.teacher_scores, dataset_name(args), speeds)
    model, teacher, samples = open_analysis(args)
    proto = bench.Protocol("pan_gap", "8bit", "ssim_matlab", 0, 1.0)
    names: list[str] = []
    scores = {s: {"ours": [], "rife": []} for s in speeds}
    for k, item in enumerate(B.iter_items(samples)):
        names.append(item.name)
        for s in speeds:
            a, gt, b = pan_windows(item.img0, item.gt, item.img1, pan_for(s, k))
            scores[s]["ours"].append(bench.score(ours(model, a, b)["pred"], gt, proto)["psnr"])
            window = window_name(item.name, s)
            if args.teacher_scores is not None:
                if window not in cached:
                    raise VfiError(
                        f"{args.teacher_scores} has no score for {window}: rerun without it"
                    )
                scores[s]["rife"].append(cached[window])
            else:
                rife = teacher(a, b)["pred"].clamp(0, 1)
                scores[s]["rife"].append(bench.score(rife, gt, proto)["psnr"])
    n = len(names)
    print(f"{args.set} {args.path.name}: {n} triplets, model {args.model}, PSNR dB")
    print("| added pan (px per half-step) | ours | RIFE HDv3 | ours − RIFE HDv3 | 95 % interval |")
    print("|---|---|---|---|---|")
    for s in speeds:
        m = paired(args.set, names, scores[s]["rife"], scores[s]["ours"])
        ours_mean, rife_mean = (sum(scores[s][w]) / n for w in ("ours", "rife"))
        lo, hi = m["interval"]
        print(
            f"| {s:g} | {ours_mean:.3f} | {rife_mean:.3f} | {m['delta']:+.3f} | "
            f"[{lo:+.3f}, {hi:+.3f}] |"
        )
    if args.json is not None:
        write_json(args.json, pan_result(args, names, speeds, scores))


if __name__ == "__main__":
    from engine.errors import VfiError

    try:
        main()
    except (VfiError, OSError, ValueError) as e:  # a wrong path or file: one line, no traceback
        raise SystemExit(f"error: {e}") from None
