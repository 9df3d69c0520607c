"""Model speed on a GPU: Mamba2 Triton vs PyTorch parity/timing, and vfi forward times.

Run on the device machine:  python benchmarks/model_speed.py --out $OUT/model_speed.json
Times are medians of CUDA-event timings after warm-up, batch 1, one output frame per pair.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from engine.config import BACKBONE_MODES
from engine.interpolator import pad_to
from engine.loading import load_model
from engine.model.mamba2 import Mamba2, triton_ops
from engine.weights import WEIGHT_SUFFIXES
from train.timetest import time_calls

RESOLUTIONS = {"720p": (720, 1280), "1080p": (1080, 1920), "4k": (2160, 3840)}


def cuda_time(fn, warmup=5, reps=30) -> float:
    """Median milliseconds of fn() over reps, timed with CUDA events (the TimeTest's timer)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    return statistics.median(time_calls(fn, reps, cuda=True))


def rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def mamba_parity(results: dict):
    torch.manual_seed(0)
    for d_model, length, batch in ((256, 2048, 2), (128, 16320 * 4, 4)):
        m = Mamba2(
            d_model,
            d_state=64 if d_model == 256 else 32,
            headdim=64 if d_model == 256 else 32,
            chunk_size=256 if d_model == 256 else 128,
        ).cuda()
        u = torch.randn(batch, length, d_model, device="cuda", requires_grad=True)
        out = {}
        for backend in ("auto", "torch"):
            m.backend = backend
            y = m(u)
            (g,) = torch.autograd.grad(y.square().mean(), u)
            with torch.no_grad():
                fwd = cuda_time(lambda m=m, u=u: m(u))
            out[backend] = (y.detach(), g, fwd)
        key = f"mamba2_d{d_model}_L{length}_B{batch}"
        results[key] = {
            "triton_ms": out["auto"][2],
            "torch_ms": out["torch"][2],
            "fwd_rel_err": rel(out["auto"][0], out["torch"][0]),
            "grad_rel_err": rel(out["auto"][1], out["torch"][1]),
        }
        print(key, results[key], flush=True)


def _is_file(name: str) -> bool:
    return Path(name).suffix in WEIGHT_SUFFIXES


def model_speed(results: dict, name: str, modes, resolutions, precision="bf16", compile_=False):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[precision]
    for mode in modes:
        # A weights file brings its own architecture (and trained weights); a registry name is
        # timed with random weights in each backbone mode.
        model = (
            (
                load_model(name)
                if _is_file(name)
                else load_model(name, backbone_mode=mode, pretrained=False)
            )
            .cuda()
            .eval()
            .to(memory_format=torch.channels_last)
        )
        params = sum(p.numel() for p in model.parameters())
        fwd = torch.compile(model) if compile_ else model
        for res in resolutions:
            h, w = RESOLUTIONS[res]
            # Frames padded to the model's alignment, as the Interpolator does (1080 -> 1088).
            a = pad_to(torch.rand(1, 3, h, w, device="cuda"), model.alignment)[0].contiguous(
                memory_format=torch.channels_last
            )
            b = pad_to(torch.rand(1, 3, h, w, device="cuda"), model.alignment)[0].contiguous(
                memory_format=torch.channels_last
            )
            torch.cuda.reset_peak_memory_stats()

            def run(fwd=fwd, a=a, b=b):
                with (
                    torch.inference_mode(),
                    torch.autocast("cuda", dtype=dtype, enabled=dtype is not None),
                ):
                    return fwd(a, b, 0.5)

            try:
                ms = cuda_time(run, warmup=3 if not compile_ else 5, reps=20)
                peak = torch.cuda.max_memory_allocated() / 2**20
            except torch.OutOfMemoryError:
                ms, peak = None, None
            key = f"{name}_{mode}_{res}_{precision}{'_compiled' if compile_ else ''}"
            results[key] = {"ms": ms, "peak_mib": peak, "params": params}
            print(key, results[key], flush=True)
            torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="model_speed.json")
    ap.add_argument("--model", default="vfi-s", help="registry name or weights file")
    ap.add_argument("--modes", default=",".join(BACKBONE_MODES))
    ap.add_argument("--res", default="720p,1080p,4k")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--skip-mamba", action="store_true")
    args = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    results = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "triton_ops": triton_ops() is not None,
    }
    print(results, flush=True)
    if not args.skip_mamba and triton_ops() is not None:
        mamba_parity(results)
    modes = args.modes.split(",") if not _is_file(args.model) else ["own"]
    model_speed(results, args.model, modes, args.res.split(","))
    if args.compile:
        model_speed(results, args.model, ["hybrid"], ["1080p"], compile_=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
