"""Where the time goes in one forward (GPU): top kernels, launch count, eager vs CUDA graph.

python benchmarks/profile_model.py --res 1080p [--orders row,row_rev] [--set key=value ...]
    [--compile [--mode M | --options JSON]] [--pad8] [--corr_tile BLOCK_X,BLOCK_C,WARPS]

``--compile`` times ``torch.compile(model)`` (Inductor fuses the elementwise work around the
convolutions: PReLU, concatenations, casts) instead of the eager module, still inside a CUDA graph,
and prints how many graphs Dynamo made and where it broke them; ``--mode`` (e.g.
``max-autotune-no-cudagraphs``) or ``--options`` (Inductor options as JSON, e.g.
``{"freezing": true}``) pick how it compiles; ``--pad8`` first pads the convolutions whose
channel counts are not multiples of 8 (engine/model/pad8.py, the same function); ``--corr_tile``
sets the cost-volume kernel's tile and warp count (see ``benchmarks/corr_speed.py``);
vfi's own Triton kernels are on by default on CUDA; ``VFI_TRITON_KERNELS=0`` in the environment
switches them off, to time the PyTorch paths (engine/model/fastpath.py). ``--lock FILE`` lets
several of these processes start together: each compiles and warms up first, then holds an
exclusive lock on FILE while it times, so the compiles overlap and no two timings run at once
(another process's single warm-up forward still may land inside one; the medians absorb it).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json

import torch
from model_speed import RESOLUTIONS, cuda_time

from engine.config import ModelConfig
from engine.interpolator import capture_graph, cuda_layout, pad_to
from engine.loading import build_model
from engine.model.pad8 import Pad8Conv2d
from engine.registry import get_variant


def graphed(model, a, b):
    """Capture one bf16 forward in a CUDA graph (as the Interpolator does); returns replay, out."""
    t = torch.full((a.shape[0],), 0.5, device=a.device)

    def forward(a, b, t):
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            return model(a, b, t)

    graph, out = capture_graph(forward, a, b, t, warmup=3)
    return graph.replay, out


def report_graphs():
    """Dynamo's count of compiled graphs and its graph-break reasons so far in this process."""
    from torch._dynamo.utils import counters

    breaks = counters["graph_break"]
    print(
        f"dynamo: {counters['stats']['unique_graphs']} graph(s), "
        f"{sum(breaks.values())} graph break(s)",
        flush=True,
    )
    for reason, n in breaks.most_common(10):
        print(f"  break x{n}: {reason.splitlines()[0][:200]}", flush=True)


@contextlib.contextmanager
def timing_lock(path, warm):
    """Without ``path``: nothing. With it: run ``warm`` once (the compile), then hold the lock."""
    if path is None:
        yield
        return
    warm()
    if torch.cuda.is_available():
        torch.cuda.synchronize()  # the compile's kernels done before another process may time
    with open(path, "a") as f:  # closing the file releases the lock, on error too
        fcntl.flock(f, fcntl.LOCK_EX)  # blocks while another process times
        yield


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="vfi-s")
    ap.add_argument("--res", default="1080p")
    ap.add_argument("--set", action="append", default=[], help="config override key=json")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--compile", action="store_true", help="time torch.compile(model)")
    ap.add_argument("--mode", default=None, help="torch.compile mode")
    ap.add_argument("--options", type=json.loads, default=None, help="Inductor options (JSON)")
    ap.add_argument("--pad8", action="store_true", help="pad convolutions to multiples of 8")
    ap.add_argument("--corr_tile", default=None, help="BLOCK_X,BLOCK_C,WARPS of the cost volume")
    ap.add_argument("--lock", default=None, help="time while holding this file's lock")
    args = ap.parse_args()
    cfg: ModelConfig = get_variant(args.model).config
    for kv in args.set:
        k, v = kv.split("=", 1)
        v = json.loads(v)
        cfg = cfg.replace(**{k: tuple(v) if isinstance(v, list) else v})
    if args.corr_tile:
        from engine.model import triton_kernels as K

        K.CORR_BLOCK_X, K.CORR_BLOCK_C, K.CORR_NUM_WARPS = map(int, args.corr_tile.split(","))
    torch.backends.cudnn.benchmark = True
    # The layout the Interpolator runs on CUDA (NHWC; --pad8: padded before it, as compiled there)
    model = cuda_layout(build_model(cfg).cuda().eval(), pad=args.pad8)
    if args.pad8:
        padded = sum(isinstance(m, Pad8Conv2d) for m in model.modules())
        print(f"padded: {padded} convolutions", flush=True)
    if args.compile:
        model = torch.compile(model, dynamic=False, mode=args.mode, options=args.options)
    h, w = RESOLUTIONS[args.res]
    a = pad_to(torch.rand(1, 3, h, w, device="cuda"), model.alignment)[0].contiguous(
        memory_format=torch.channels_last
    )
    b = pad_to(torch.rand(1, 3, h, w, device="cuda"), model.alignment)[0].contiguous(
        memory_format=torch.channels_last
    )

    def eager():
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            return model(a, b, 0.5)

    with timing_lock(args.lock, warm=eager):
        t_eager = cuda_time(eager, warmup=5, reps=20)
        if args.compile:
            report_graphs()
        replay, _ = graphed(model, a, b)
        t_graph = cuda_time(replay, warmup=3, reps=30)
    how = " pad8" if args.pad8 else ""
    how += f" corr_tile {args.corr_tile}" if args.corr_tile else ""
    how += f" compiled {args.mode or ''} {json.dumps(args.options or {})}" if args.compile else ""
    print(
        f"{args.model} {args.res} {args.set}{how}: "
        f"eager {t_eager:.2f} ms, cuda-graph {t_graph:.2f} ms, "
        f"params {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M",
        flush=True,
    )
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                eager()
            torch.cuda.synchronize()
        print(
            prof.key_averages().table(
                sort_by="cuda_time_total", row_limit=30, max_name_column_width=60
            )
        )


if __name__ == "__main__":
    main()
