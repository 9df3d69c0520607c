"""The cost-volume kernel's tile and warp count at the bundled model's 1080p shapes (GPU).

python benchmarks/corr_speed.py [--res 1080p]

The compiled 1080p forward spends ~0.95 ms of its ~9.2 ms in the two calls of
``engine/model/triton_kernels.py``'s correlation (docs/benchmarks.md, version 6); its tile
(``CORR_BLOCK_X`` pixels x ``CORR_BLOCK_C`` channels) and Triton's default 4 warps were never
tuned. This times every combination on the inputs the model passes (bf16 slices of a wider
channels-last tensor, unit-normalised), checks each against the default's scores, and prints
them fastest first.
"""

from __future__ import annotations

import argparse
import functools
import itertools

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


def level_inputs(c: int, h: int, w: int):
    """Both frames' features as the model passes them: the first c channels of a 2c-channel
    channels-last bf16 map, normalised over channels."""
    wide = torch.randn(2, 2 * c, h, w, device="cuda").contiguous(memory_format=torch.channels_last)
    n = F.normalize(wide[:, :c], dim=1).to(torch.bfloat16)
    return n[:1], n[1:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--res", default="1080p", choices=list(RESOLUTIONS))
    args = ap.parse_args()
    h, w = RESOLUTIONS[args.res]
    h += (-h) % 32  # the model's alignment
    total = {}
    for c, stride in LEVELS:
        n0, n1 = level_inputs(c, h // stride, w // stride)
        ref = K._launch_correlation(n0, n1, RADIUS).float()
        for bx, bc, nw in itertools.product(BLOCK_X, BLOCK_C, WARPS):
            out = K._launch_correlation(n0, n1, RADIUS, bx, bc, nw)
            err = (out.float() - ref).abs().max().item()
            ms = cuda_time(functools.partial(K._launch_correlation, n0, n1, RADIUS, bx, bc, nw))
            total.setdefault((bx, bc, nw), []).append((ms, err))
    default = (K.CORR_BLOCK_X, K.CORR_BLOCK_C, 4)
    print(
        f"{args.res}, radius {RADIUS}, levels {LEVELS} (channels, stride); ms per call, max |diff|"
    )
    for key, runs in sorted(total.items(), key=lambda kv: sum(ms for ms, _ in kv[1])):
        cells = "  ".join(f"{ms:.3f} ms ({err:.1e})" for ms, err in runs)
        mark = "  <- default" if key == default else ""
        print(f"BLOCK_X {key[0]:3d} BLOCK_C {key[1]:2d} warps {key[2]}: {cells}{mark}", flush=True)


if __name__ == "__main__":
    main()
