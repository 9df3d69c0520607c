"""Which flow level loses the motion? Inject the teacher's flow at one level, let ours continue.

For each triplet of a dev set (CPU is fine), the model runs once as it is (``ours``), then once per
level k of its motion decoder (1/16, 1/8, 1/4 of the frame) with that level's output flow replaced
by RIFE HDv3's flow resized to its grid (``at 1/16`` ...): the finer levels, the refinement and the
mask then run as usual on top of it. Reading the table:

- ``at 1/4`` is the teacher's flow through our last grid with nothing of ours after it, so it is
  the ceiling of the other columns (``flow_vs_teacher.py``'s ``t_flow/4``, with our refinement);
- if ``at 1/16`` comes close to it, our finer levels carry a good coarse estimate to the frame and
  the coarse level (with the backbone features it reads) is what loses;
- if ``at 1/16`` stays near ``ours`` but ``at 1/8`` or ``at 1/4`` rises, a finer level spoils (or
  cannot refine) a good coarse estimate: that level is what loses;
- ``1/8 only`` is the teacher's flow reduced to the 1/8 grid and injected at the last level (ours
  bypassed): ``at 1/8`` minus it is what our last level adds to a perfect 1/8 estimate, ``at 1/4``
  minus it what a perfect last level would add;
- ``ours, 1/8`` is our own flow with the last level's flow update bypassed: what that update adds
  to our own coarser estimate (compare with ``ours``), and how far our 1/8 estimate is from the
  teacher's (compare with ``1/8 only``).

    python benchmarks/flow_by_level.py middlebury eval/middlebury --model vfi-s --teacher flownet.pkl

PSNR on 8-bit-rounded frames, padded as in ``flow_vs_teacher.py``. The mask of the injected level
is the model's own.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.flow_vs_teacher import analysis_parser, open_analysis, ours

LEVEL_NAMES = ("1/16", "1/8", "1/4")


@contextlib.contextmanager
def injected(model, k: int, flow: torch.Tensor | None):
    """Inside the block, level k's output flow is ``flow`` (1, 4, H, W) at full resolution,
    resized to that level's grid; ``flow = None`` keeps the flow the level received (the level's
    flow update is bypassed, its mask update kept)."""
    from engine.interpolator import pad_to
    from engine.model.warp import resize_flow

    level = model.flow.levels[k]
    if flow is not None:  # padded as the frames are, so the resize keeps its pixel scale
        flow = pad_to(flow, model.alignment)[0]

    def replaced(*args, _orig=level.forward, **kwargs):
        out_flow, mask, hidden = _orig(*args, **kwargs)
        if flow is None:  # FlowDecoder passes (f0, f1, t, img0, img1, flow, mask, corr)
            return args[5], mask, hidden
        return resize_flow(flow, out_flow.shape[-2:]), mask, hidden

    level.forward = replaced  # an instance attribute shadows the method inside the block
    try:
        yield
    finally:
        del level.forward  # the class's forward again


def predict(model, img0, img1, inject=None) -> torch.Tensor:
    """The model's frame (1, 3, H, W); ``inject = (k, flow)``: with :func:`injected` at level k."""
    if inject is None:
        return ours(model, img0, img1)["pred"]
    with injected(model, *inject):
        return ours(model, img0, img1)["pred"]


def main() -> None:
    args = analysis_parser(__doc__.split("\n")[0]).parse_args()

    from engine.metrics import psnr, quantize
    from engine.model.warp import resize_flow
    from train.data import benchmarks as B

    model, teacher, samples = open_analysis(args)
    n_levels = len(model.flow.levels)
    cols = ["ours", *(f"at {LEVEL_NAMES[k]}" for k in range(n_levels))]
    cols += ["1/8 only", "ours, 1/8", "rife"]
    print("| triplet | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    rows = []
    for item in B.iter_items(samples):
        tea = teacher(item.img0, item.img1)
        preds = [predict(model, item.img0, item.img1)]
        preds += [predict(model, item.img0, item.img1, (k, tea["flow"])) for k in range(n_levels)]
        h, w = tea["flow"].shape[-2:]
        eighth = resize_flow(resize_flow(tea["flow"], (-(-h // 8), -(-w // 8))), (h, w))
        preds.append(predict(model, item.img0, item.img1, (n_levels - 1, eighth)))
        preds.append(predict(model, item.img0, item.img1, (n_levels - 1, None)))
        preds.append(tea["pred"])
        row = [float(psnr(quantize(x.clamp(0, 1)), item.gt)[0]) for x in preds]
        rows.append(row)
        print(f"| {item.name} | " + " | ".join(f"{v:.2f}" for v in row) + " |", flush=True)
    if rows:
        mean = [sum(col) / len(rows) for col in zip(*rows)]
        print("| mean | " + " | ".join(f"{v:.2f}" for v in mean) + " |")


if __name__ == "__main__":
    from engine.errors import VfiError

    try:
        main()
    except (VfiError, OSError, ValueError) as e:  # a wrong path or file: one line, no traceback
        raise SystemExit(f"error: {e}") from None
