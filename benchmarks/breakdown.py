"""Per-module GPU time of one forward (eager, CUDA events in forward hooks), for config variants.

python benchmarks/breakdown.py --res 1080p --variant base --variant 'stages.1.dim=64' ...
A variant is `name` or `key=json` overrides joined by ';' (keys: ModelConfig fields, or
`stages.I.FIELD` for one stage).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics

import torch
from model_speed import RESOLUTIONS, cuda_time
from profile_model import graphed

from engine.interpolator import pad_to
from engine.loading import build_model
from engine.registry import get_variant


def apply(cfg, spec: str):
    if spec == "base":
        return cfg
    top, per_stage = {}, {}
    for kv in spec.split(";"):
        k, v = kv.split("=", 1)
        v = json.loads(v)
        v = tuple(v) if isinstance(v, list) else v
        if k.startswith("stages."):
            _, i, field = k.split(".")
            per_stage.setdefault(int(i), {})[field] = v
        else:
            top[k] = v
    if per_stage:  # all fields of a stage at once: each StageConfig is validated as a whole
        stages = list(cfg.stages)
        for i, changes in per_stage.items():
            stages[i] = dataclasses.replace(stages[i], **changes)
        top["stages"] = tuple(stages)
    return cfg.replace(**top)


def module_times(model, run, names) -> dict:
    """Median ms per named submodule (inclusive), over 10 runs."""
    events: dict = {n: [] for n in names}
    hooks = []
    for n in names:
        mod = model.get_submodule(n)
        start = {}

        def pre(_m, _i, n=n, start=start):
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            start["e"] = e

        def post(_m, _i, _o, n=n, start=start):
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            events[n].append((start["e"], e))

        hooks += [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post)]
    for _ in range(10):
        run()
    torch.cuda.synchronize()
    for h in hooks:
        h.remove()
    return {n: statistics.median(a.elapsed_time(b) for a, b in ev[3:]) for n, ev in events.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="vfi-s")
    ap.add_argument("--res", default="1080p")
    ap.add_argument("--variant", action="append", default=None)
    args = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    h, w = RESOLUTIONS[args.res]
    rows = []
    for spec in args.variant or ["base"]:
        cfg = apply(get_variant(args.model).config, spec)
        model = build_model(cfg).cuda().eval().to(memory_format=torch.channels_last)
        a = pad_to(torch.rand(1, 3, h, w, device="cuda"), 16)[0].contiguous(
            memory_format=torch.channels_last
        )
        b = torch.rand_like(a)

        def run(model=model, a=a, b=b):
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
                return model(a, b, 0.5)

        eager = cuda_time(run, warmup=5, reps=20)
        names = ["encoder", "flow", "refine"] + [
            f"backbone.stages.{i}" for i in range(len(cfg.stages))
        ]
        parts = module_times(model, run, names)
        replay, _ = graphed(model, a, b)
        graph = cuda_time(replay, warmup=3, reps=30)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        row = {
            "variant": spec,
            "params_m": round(params, 3),
            "eager_ms": round(eager, 2),
            "graph_ms": round(graph, 2),
            **{k: round(v, 2) for k, v in parts.items()},
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
        del model
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
