"""The cost-volume kernel's tile and warp count at the bundled model's 1080p shapes (GPU).

python benchmarks/corr_speed.py [--res 1080p] [--best_out tile.txt]

Times every combination of ``engine/model/triton_kernels.py``'s correlation tile
(``CORR_BLOCK_X`` pixels x ``CORR_BLOCK_C`` channels) and warp count on inputs shaped as the
model passes them (bf16 slices of a wider channels-last tensor, unit-normalised), checks each
against the default's scores, and prints them fastest first. ``--best_out`` writes the fastest
tile whose scores agree with the default's (``BLOCK_X,BLOCK_C,warps``, the form
``profile_model.py --corr_tile`` takes).

A ranking here is a candidate, not a verdict: on an H100 (docs/benchmarks.md, version 7) the
fastest tile here, (64, 16, 4), made the compiled forward 0.3 ms slower than the default, so a
new default is chosen with ``profile_model.py --compile --corr_tile``, several runs each.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import time

import torch
import torch.nn.functional as F
from model_speed import RESOLUTIONS, cuda_time

from engine.model import triton_kernels as K

# (channels, stride) of the two cost volumes in vfi-s: the 1/8 and 1/4 motion-decoder levels
LEVELS = ((96, 8), (48, 4))
RADIUS = 3
BLOCK_X = (32, 64, 128)
BLOCK_C = (16, 32, 64)
WARPS = (2, 4, 8)
AGREE = 2e-2  # max |diff| to the default's scores: bf16 outputs in [-1, 1], summed in another order


def level_inputs(c: int, h: int, w: int):
    """Both frames' features as the model passes them: the first c channels of a 2c-channel
    channels-last bf16 map, normalised over channels."""
    wide = torch.randn(2, 2 * c, h, w, device="cuda").contiguous(memory_format=torch.channels_last)
    n = F.normalize(wide[:, :c], dim=1).to(torch.bfloat16)
    return n[:1], n[1:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--res", default="1080p", choices=list(RESOLUTIONS))
    ap.add_argument("--best_out", default=None, help="write the fastest agreeing tile here")
    ap.add_argument("--max_seconds", type=float, default=float("inf"), help="stop the sweep after")
    args = ap.parse_args()
    h, w = RESOLUTIONS[args.res]
    h += (-h) % 32  # the model's alignment
    default = (K.CORR_BLOCK_X, K.CORR_BLOCK_C, K.CORR_NUM_WARPS)
    combos = [default] + [k for k in itertools.product(BLOCK_X, BLOCK_C, WARPS) if k != default]
    inputs = [level_inputs(c, h // stride, w // stride) for c, stride in LEVELS]
    refs = [K._launch_correlation(n0, n1, RADIUS, *default).float() for n0, n1 in inputs]
    total, start = {}, time.monotonic()
    for key in combos:  # the default first; each tile compiles once per level (C is constexpr)
        if time.monotonic() - start > args.max_seconds:
            print(f"sweep stopped after {len(total)} of {len(combos)} tiles", flush=True)
            break
        for (n0, n1), ref in zip(inputs, refs):
            err = (K._launch_correlation(n0, n1, RADIUS, *key).float() - ref).abs().max().item()
            ms = cuda_time(functools.partial(K._launch_correlation, n0, n1, RADIUS, *key))
            total.setdefault(key, []).append((ms, err))
        print(f"  measured {key}: {total[key]}", flush=True)
    print(
        f"{args.res}, radius {RADIUS}, levels {LEVELS} (channels, stride); ms per call, max |diff|"
    )
    for key, runs in sorted(total.items(), key=lambda kv: sum(ms for ms, _ in kv[1])):
        cells = "  ".join(f"{ms:.3f} ms ({err:.1e})" for ms, err in runs)
        mark = "  <- default" if key == default else ""
        print(f"BLOCK_X {key[0]:3d} BLOCK_C {key[1]:2d} warps {key[2]}: {cells}{mark}", flush=True)
    agreeing = [k for k, runs in total.items() if max(err for _, err in runs) <= AGREE]
    best = min(agreeing, key=lambda k: sum(ms for ms, _ in total[k]))
    print(f"fastest agreeing: {best}", flush=True)
    if args.best_out:
        with open(args.best_out, "w") as f:
            f.write(",".join(map(str, best)) + "\n")


if __name__ == "__main__":
    main()
