"""Where around moving objects does our flow lose? Per-pixel error by distance from motion.

For each triplet of a dev set (CPU is fine), pixels are put in rings by their distance (Chebyshev,
in pixels) from the nearest *moving* pixel, one whose frame-to-frame motion by RIFE HDv3's flow
(|F_t->0| + |F_t->1| at t = 0.5) exceeds ``MOVING_PX``: the moving pixels themselves, then rings
out to ``RINGS[-1]`` px, then everything farther ("far"). Per ring it reports the mean squared
error (x 1e4, frames in [0, 1], rounded to 8 bits) of

- ``final``: the model's frame; ``warp``: its flow-only frame (its flow and mask, no refinement);
- ``t_flow``: the model's mask with the *teacher's* flow; ``t_flow/4``: the same with the teacher's
  flow resized to our 1/4 flow grid and back (bilinear), as ours is (as in ``flow_vs_teacher.py``);
- ``rife``: the teacher's own frame;

pooled over all triplets (sums of squared errors over pixel counts), the ring's share of the pixels,
its share of the total squared-error gap between ``warp`` and ``t_flow``, and ``dB to rife``: how
many dB of the mean PSNR gap between ``final`` and ``rife`` the ring accounts for (positive: we
lose there). Pooled errors are dominated by the hard triplets, while a mean of PSNRs is moved as
much by a small error on an easy triplet; so the last column splits each triplet's own gap,
10 log10(SSE_final / SSE_rife) ~ (10 / ln 10) (SSE_final - SSE_rife) / SSE_mid (SSE_mid the mean
of the two), over its rings, and averages over triplets; its rows add up to about the mean PSNR
gap. Reading it: if ``warp`` matches ``t_flow`` far from motion but not in the inner rings, our
flow lets motion bleed into the still background around moving objects; if ``t_flow/4`` stays
close to ``t_flow`` there, our 1/4 flow grid is not what limits it.

    python benchmarks/gap_by_distance.py ucf101 eval/ucf101-dev21 --model vfi-s --teacher flownet.pkl
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.flow_vs_teacher import FLOW_GRID, _blend, analysis_parser, open_analysis, ours
from benchmarks.gap_by_motion import frame_motion

MOVING_PX = 1.0  # frame-to-frame motion above which a pixel counts as moving
RINGS = (2, 4, 8, 16)  # outer edges (px) of the rings around the moving pixels
COLS = ("final", "warp", "t_flow", "t_flow/4", "rife")
DB_PER_LOG = 10 / math.log(10)  # d(10 log10 x) = DB_PER_LOG * dx / x


def distance_rings(moving: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """moving (1, 1, H, W) bool -> [(label, mask (H, W) bool)]: the moving pixels, one ring per
    edge of ``RINGS`` (pixels within that Chebyshev distance of a moving pixel and not in an inner
    ring), and "far". The masks partition the frame."""
    inner = moving.float()
    rings = [("moving", moving[0, 0])]
    for r in RINGS:
        reach = F.max_pool2d(moving.float(), 2 * r + 1, stride=1, padding=r)  # dilation by r
        rings.append((f"≤ {r} px", (reach > 0)[0, 0] & ~(inner > 0)[0, 0]))
        inner = reach
    rings.append(("far", ~(inner > 0)[0, 0]))
    return rings


def squared_error(x: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) frames -> (H, W) squared error of the 8-bit-rounded prediction."""
    from engine.metrics import quantize

    return ((quantize(x.clamp(0, 1)) - gt) ** 2).mean(1)[0]


def add_triplet(totals: dict, frames: dict, gt: torch.Tensor, flow: torch.Tensor) -> None:
    """Add one triplet to ``totals`` {ring: {"n": pixels, column: summed squared error, "db": summed
    dB of the final - rife gap, "triplets": count}}. frames {column: (1, 3, H, W)}, "final" and
    "rife" among them; flow (1, 4, H, W): the motion that defines the rings."""
    errors = {c: squared_error(x, gt) for c, x in frames.items()}
    # The triplet's own scale: a ring's share of its PSNR gap is its SSE gap over this.
    mid = max(float(errors["final"].sum() + errors["rife"].sum()) / 2, 1e-12)
    for label, mask in distance_rings(frame_motion(flow)[:, None] > MOVING_PX):
        ring = totals.setdefault(
            label, {"n": 0, "db": 0.0, "triplets": 0, **{c: 0.0 for c in frames}}
        )
        sums = {c: float(e[mask].sum()) for c, e in errors.items()}
        for c, v in sums.items():
            ring[c] += v
        ring["n"] += int(mask.sum())
        ring["db"] += DB_PER_LOG * (sums["final"] - sums["rife"]) / mid
        ring["triplets"] += 1


def table(totals: dict) -> list[str]:
    """Markdown rows: ring, pixel share, mean squared error x 1e4 per column, share of the
    warp - t_flow gap, dB of the mean PSNR gap between final and rife."""
    pixels = sum(r["n"] for r in totals.values())
    gap = sum(r["warp"] - r["t_flow"] for r in totals.values())
    lines = [
        "| ring | pixels | "
        + " | ".join(COLS)
        + " | share of the warp − t_flow gap | dB to rife |",
        "|---|---|" + "---|" * len(COLS) + "---|---|",
    ]
    for label, r in totals.items():
        n = max(r["n"], 1)
        cells = " | ".join(f"{r[c] / n * 1e4:.3f}" for c in COLS)
        share = (r["warp"] - r["t_flow"]) / gap if gap else 0.0
        db = r["db"] / max(r["triplets"], 1)
        lines.append(f"| {label} | {r['n'] / pixels:.1%} | {cells} | {share:.0%} | {db:+.3f} |")
    return lines


def main() -> None:
    args = analysis_parser(__doc__.split("\n")[0]).parse_args()

    from engine.model.warp import resize_flow
    from train.data import benchmarks as B

    model, teacher, samples = open_analysis(args)
    totals: dict = {}
    for item in B.iter_items(samples):
        tea = teacher(item.img0, item.img1)
        own = ours(model, item.img0, item.img1)
        h, w = tea["flow"].shape[-2:]
        grid = (-(-h // FLOW_GRID), -(-w // FLOW_GRID))
        coarse = resize_flow(resize_flow(tea["flow"], grid), (h, w))  # as flow_vs_teacher.py
        frames = {
            "final": own["pred"],
            "warp": own["warp"],
            "t_flow": _blend(item.img0, item.img1, tea["flow"], own["mask"]),
            "t_flow/4": _blend(item.img0, item.img1, coarse, own["mask"]),
            "rife": tea["pred"],
        }
        add_triplet(totals, frames, item.gt, tea["flow"])
    print(f"{args.set} {args.path.name}: {len(samples)} triplets, model {args.model}")
    print("\n".join(table(totals)))


if __name__ == "__main__":
    from engine.errors import VfiError

    try:
        main()
    except (VfiError, OSError, ValueError) as e:  # a wrong path or file: one line, no traceback
        raise SystemExit(f"error: {e}") from None
