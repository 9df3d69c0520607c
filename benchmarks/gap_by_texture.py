"""On near-static triplets, where would the teacher's flow gain, by image texture?

For each triplet of a dev set whose motion (the teacher's p95, as in ``gap_by_motion.py``) is below
``--max_motion`` px: the per-pixel squared-error gain of putting RIFE HDv3's flow into our model
(our mask and warps, as ``flow_vs_teacher.py``'s ``t_flow``) over our own flow-only frame, binned by
the ground truth's gradient magnitude (``train.teacher.gradient_magnitude``, which
``texture_weight`` normalises: |d/dx| + |d/dy| of the grey image, 0..1 scale), with the mean end-point difference of the two
flows per bin. CPU is fine:

    python benchmarks/gap_by_texture.py ucf101 eval/ucf101-dev21 --model vfi-s --teacher flownet.pkl
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.flow_vs_teacher import _blend, analysis_parser, open_analysis, ours
from benchmarks.gap_by_motion import motion_p95

EDGES = (0.0, 0.01, 0.03, 0.1, float("inf"))  # gradient magnitude bins (0..1 image scale)


def main() -> None:
    p = analysis_parser(__doc__.split("\n")[0])
    p.add_argument("--max_motion", type=float, default=4.0, help="near-static: p95 motion below")
    args = p.parse_args()

    from train.data import benchmarks as B
    from train.teacher import gradient_magnitude

    model, teacher, samples = open_analysis(args)
    n = len(EDGES) - 1
    pixels, gain, epe_sum = torch.zeros(n), torch.zeros(n), torch.zeros(n)
    count = 0
    for item in B.iter_items(samples):
        tea = teacher(item.img0, item.img1)
        if motion_p95(tea["flow"]) >= args.max_motion:
            continue
        count += 1
        o = ours(model, item.img0, item.img1)
        warp, flow, mask = o["warp"], o["flow"], o["mask"]
        swapped = _blend(item.img0, item.img1, tea["flow"], mask)
        # (H, W): > 0 where the teacher's flow helps
        px_gain = ((warp - item.gt) ** 2).mean(1)[0] - ((swapped - item.gt) ** 2).mean(1)[0]
        diff = flow - tea["flow"]  # (1, 4, H, W)
        epe = (diff[:, :2].norm(dim=1) + diff[:, 2:].norm(dim=1))[0] / 2  # (H, W)
        grad = gradient_magnitude(item.gt)[0, 0]  # (H, W)
        bins = torch.bucketize(grad, torch.tensor(EDGES[1:-1]))
        for k in range(n):
            sel = bins == k
            pixels[k] += sel.sum()
            gain[k] += px_gain[sel].sum()
            epe_sum[k] += epe[sel].sum()
    if not count:
        raise SystemExit(f"no triplet of {args.path} moves less than {args.max_motion} px")
    print(f"{args.path.name}: {count} triplets below {args.max_motion:g} px (p95 motion)")
    print(
        "| gradient magnitude | pixels | share of the flow-swap gain | flow error to the teacher |"
    )
    print("|---|---|---|---|")
    for k in range(n):
        lo, hi = EDGES[k], EDGES[k + 1]
        label = f"≥ {lo:g}" if hi == float("inf") else f"{lo:g}–{hi:g}"
        print(
            f"| {label} | {100 * pixels[k] / pixels.sum():.0f} % | "
            f"{100 * gain[k] / gain.sum():.0f} % | {epe_sum[k] / pixels[k].clamp_min(1):.2f} px |"
        )


if __name__ == "__main__":
    from engine.errors import VfiError

    try:
        main()
    except (VfiError, OSError, ValueError) as e:  # a wrong path or file: one line, no traceback
        raise SystemExit(f"error: {e}") from None
