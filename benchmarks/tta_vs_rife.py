"""Does flip test-time augmentation change where we stand against RIFE HDv3?

`vfi bench ... --tta` averages our prediction with the one on inputs flipped in H and W. Published
tables often give one model TTA and the other none; this script gives the reference the same flip
(RIFE HDv3, `train/teacher.py`) and joins its per-triplet scores, plain and flipped-averaged, with
ours from a `vfi bench --tta --json` file (which holds both). CPU is fine:

    vfi bench ucf101 --path eval/ucf101-dev21 --device cpu --tta --json ours_tta.json
    python benchmarks/tta_vs_rife.py ucf101 eval/ucf101-dev21 ours_tta.json --teacher flownet.pkl

Scores follow the `vfi bench` protocol of the set (8-bit rounding, PSNR averaged per triplet); the
teacher pads to its own alignment (as in benchmarks/gap_by_motion.py), so its plain mean can differ
from the published figure by a few hundredths of a dB. Gaps are paired per triplet, with a 95 %
bootstrap interval (engine.compare's, the one `vfi compare` prints).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.gap_by_motion import joined_items, open_scores, scores_parser


def flip_average(predict, img0: torch.Tensor, img1: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(plain, flip-TTA) predictions of ``predict(img0, img1)`` -> (1, 3, H, W) each: the TTA one
    averages the plain prediction with the one on both inputs flipped in H and W, flipped back
    (the same augmentation as train.bench.Predictor)."""
    plain = predict(img0, img1)
    flipped = predict(img0.flip(-2, -1), img1.flip(-2, -1)).flip(-2, -1)
    return plain, (plain + flipped) / 2


def paired(dataset: str, names: list[str], a: list[float], b: list[float]) -> dict:
    """`vfi compare`'s PSNR summary of B - A (mean, 95 % interval, samples better...)."""
    from train.compare import compare

    def result(values: list[float]) -> dict:
        items = [{"name": k, "psnr": v} for k, v in zip(names, values, strict=True)]
        return {"dataset": dataset, "items": items}

    return compare(result(a), result(b))["metrics"]["psnr"]


def main() -> None:
    p = scores_parser(__doc__.split("\n")[0], "`vfi bench --tta --json` output of our model")
    args = p.parse_args()

    from train import bench

    ours, teacher, proto = open_scores(args, "tta_vs_rife")
    if ours and "no_tta" not in next(iter(ours.values())):
        raise SystemExit(f"{args.ours} has no plain scores: run `vfi bench` with --tta")

    def rife(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return teacher(a, b)["pred"].clamp(0, 1)

    names, cols = [], {"ours": [], "ours_tta": [], "rife": [], "rife_tta": []}
    for item, record in joined_items(args, ours):
        plain, tta = flip_average(rife, item.img0, item.img1)
        names.append(item.name)
        cols["rife"].append(bench.score(plain, item.gt, proto)["psnr"])
        cols["rife_tta"].append(bench.score(tta, item.gt, proto)["psnr"])
        cols["ours"].append(record["no_tta"]["psnr"])
        cols["ours_tta"].append(record["psnr"])
    n = len(cols["ours"])
    print(f"{args.set} {args.path.name}: {n} triplets, PSNR dB (this script's RIFE padding)")
    print("| | plain | flip TTA | TTA gain |")
    print("|---|---|---|---|")
    for who, name in (("ours", "ours"), ("rife", "RIFE HDv3")):
        a, b = (sum(cols[k]) / n for k in (who, f"{who}_tta"))
        print(f"| {name} | {a:.3f} | {b:.3f} | {b - a:+.3f} |")
    for label, x, y in (
        ("ours − RIFE HDv3, both plain", "ours", "rife"),
        ("ours − RIFE HDv3, both with TTA", "ours_tta", "rife_tta"),
        ("ours with TTA − RIFE HDv3 plain", "ours_tta", "rife"),
    ):
        m = paired(args.set, names, cols[y], cols[x])
        lo, hi = m["interval"]
        print(f"{label}: {m['delta']:+.3f} dB [{lo:+.3f}, {hi:+.3f}], {m['better']} of {n} better")


if __name__ == "__main__":
    main()
