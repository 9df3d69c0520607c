"""benchmarks/gap_by_distance.py: the distance rings and the pooled per-ring errors."""

from __future__ import annotations

import pytest
import torch

from benchmarks.gap_by_distance import RINGS, add_triplet, distance_rings, table


def _one_moving_pixel(h: int = 41, w: int = 41) -> torch.Tensor:
    moving = torch.zeros(1, 1, h, w, dtype=torch.bool)
    moving[0, 0, h // 2, w // 2] = True
    return moving


def test_rings_partition_the_frame_by_chebyshev_distance():
    rings = dict(distance_rings(_one_moving_pixel()))
    assert list(rings) == ["moving", *(f"≤ {r} px" for r in RINGS), "far"]
    total = torch.stack(list(rings.values())).sum(0)
    assert torch.equal(total, torch.ones(41, 41, dtype=torch.long))  # every pixel exactly once
    # Around one pixel, the ring out to r is the (2r+1)^2 square minus the inner one.
    inner = 1
    for r in RINGS:
        assert int(rings[f"≤ {r} px"].sum()) == (2 * r + 1) ** 2 - inner
        inner = (2 * r + 1) ** 2
    assert int(rings["far"].sum()) == 41 * 41 - 33 * 33
    # The pixel 3 px to the right sits in the 2-4 px ring, not the first.
    assert rings["≤ 4 px"][20, 23] and not rings["≤ 2 px"][20, 23]


def test_errors_are_pooled_per_ring_and_the_gap_shares_sum_to_one():
    h = w = 41
    gt = torch.full((1, 3, h, w), 128 / 255)  # on the 8-bit grid: no rounding error
    flow = torch.zeros(1, 4, h, w)
    flow[:, 0, h // 2, w // 2] = 3.0  # one moving pixel, by the teacher's flow
    off = gt.clone()
    off[..., h // 2, w // 2 + 1] += 10 / 255  # an error one pixel beside it (the first ring)
    frames = {c: gt for c in ("final", "t_flow", "t_flow/4", "rife")} | {"warp": off}
    totals: dict = {}
    add_triplet(totals, frames, gt, flow)
    add_triplet(totals, frames, gt, flow)  # pooled: counts and sums add
    assert totals["moving"]["n"] == 2
    assert totals["≤ 2 px"]["n"] == 2 * 24
    assert totals["≤ 2 px"]["warp"] > 0 and totals["far"]["warp"] == 0
    assert all(r["t_flow"] == 0 for r in totals.values())
    rows = table(totals)
    assert rows[2].startswith("| moving |") and rows[3].endswith("| 100% | +0.000 |")
    assert sum(r["n"] for r in totals.values()) == 2 * h * w


def test_the_db_column_splits_each_triplets_psnr_gap_over_its_rings():
    h = w = 41
    gt = torch.full((1, 3, h, w), 128 / 255)
    flow = torch.zeros(1, 4, h, w)
    flow[:, 0, h // 2, w // 2] = 3.0
    rife = gt + 2 / 255  # the same small error everywhere
    final = rife.clone()
    final[..., h // 2 - 2 : h // 2 + 3, w // 2 - 2 : w // 2 + 3] = gt[..., :5, :5] + 6 / 255
    totals: dict = {}
    add_triplet(totals, {"final": final, "rife": rife}, gt, flow)
    db = {label: r["db"] / r["triplets"] for label, r in totals.items()}
    assert db["≤ 2 px"] > 0 and db["moving"] > 0  # we lose where our error is larger
    assert all(db[k] == 0 for k in db if k not in ("≤ 2 px", "moving"))
    # The rows add up to about the triplet's PSNR gap (a first-order split of the log).
    sse = {k: ((x - gt) ** 2).sum() for k, x in (("final", final), ("rife", rife))}
    gap = 10 * torch.log10(sse["final"] / sse["rife"])
    assert sum(db.values()) == pytest.approx(float(gap), rel=0.05)
