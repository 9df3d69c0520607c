"""Training throughput: samples/s of one optimizer step (forward, losses, backward, AdamW).

The step is the one `vfi train` runs (the same TrainStep, loss_total, optimizer, DDP wrapper and
bf16 autocast), on random frames already on the device, so the number measures the model and the
GPU, not the data pipeline. Run it as one process or under torchrun:

    python -m train.throughput --model vfi-s --crop 256 --batch_size 8
    torchrun --nproc_per_node=2 -m train.throughput --model vfi-s --crop 256 --batch_size 8

Rank 0 prints one JSON line: device, processes, per-process batch, crop, samples/s (all processes
together), ms per step, peak GPU memory per process. ``--vgg`` adds the VGG19 term (needs the
weights file). docs/benchmarks.md records the measured numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time

import torch


def measure(
    model_name="vfi-s",
    crop=256,
    batch_size=8,
    steps=30,
    warmup=10,
    amp=True,
    vgg=False,
    compile=False,
    profile=0,
):
    from train import ddp
    from train.config import make_config
    from train.loop import TrainStep, make_optimizer, model_config_from_arg
    from train.losses import loss_total

    d = ddp.setup("auto")
    try:
        torch.manual_seed(0)
        from engine.loading import build_model

        model = build_model(model_config_from_arg(model_name)).to(d.device).train()
        cfg = make_config(1, exp_name="throughput", data_path="-", batch_size=batch_size)
        optimizer = make_optimizer(model, cfg, d.device)
        net = ddp.wrap(TrainStep(model), d)
        if compile:
            net = torch.compile(net)
        vgg_net = None
        if vgg:
            from train.vgg import load_vgg19

            vgg_net, note = load_vgg19()
            if vgg_net is None:
                raise SystemExit(note)
            vgg_net.to(d.device)
        use_amp = amp and d.device.type == "cuda"
        autocast = (
            (lambda: torch.autocast("cuda", dtype=torch.bfloat16))
            if use_amp
            else contextlib.nullcontext
        )
        frames = torch.rand(batch_size, 3, 3, crop, crop, device=d.device)
        img0, gt, img1 = frames.unbind(1)
        t = torch.full((batch_size,), 0.5, device=d.device)

        def step():
            with autocast():
                out = net(img0, img1, t, 1.0)
            loss, _ = loss_total(out, gt, vgg=vgg_net)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        def sync():
            if d.device.type == "cuda":
                torch.cuda.synchronize(d.device)
            ddp.barrier(d)

        t_warm = time.perf_counter()
        for _ in range(warmup):
            step()
        sync()
        warmup_s = time.perf_counter() - t_warm
        if d.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(d.device)
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        seconds = time.perf_counter() - t0
        result = {
            "device": torch.cuda.get_device_name(d.device) if d.device.type == "cuda" else "cpu",
            "processes": d.world,
            "model": model_name,
            "batch_per_process": batch_size,
            "crop": crop,
            "precision": "bf16" if use_amp else "fp32",
            "vgg": vgg_net is not None,
            "compile": compile,
            "warmup_s": round(warmup_s, 1),
            "samples_per_s": round(steps * batch_size * d.world / seconds, 2),
            "ms_per_step": round(1000 * seconds / steps, 1),
        }
        if d.device.type == "cuda":
            result["peak_mem_gb"] = round(torch.cuda.max_memory_allocated(d.device) / 2**30, 2)
        if profile and d.device.type == "cuda":
            result.update(profile_steps(step, sync, profile))
        if d.is_main:
            print(json.dumps(result), flush=True)
        return result
    finally:
        ddp.cleanup(d)


def profile_steps(step, sync, n: int, top: int = 25) -> dict:
    """Run ``n`` steps under torch.profiler; print the costliest CUDA kernels.

    Returns the wall time and the summed kernel time per step: when kernels cover only a small part
    of the wall time, the step is bound by Python/launch overhead (or syncs), not by the GPU.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        sync()
        wall = time.perf_counter() - t0
    events = prof.key_averages()
    print(events.table(sort_by="self_cuda_time_total", row_limit=top), flush=True)
    kernel_us = sum(e.self_device_time_total for e in events if e.device_type.name == "CUDA")
    return {
        "profile_wall_ms_per_step": round(1000 * wall / n, 1),
        "profile_kernel_ms_per_step": round(kernel_us / 1000 / n, 1),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="vfi-s")
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--no_amp", action="store_true")
    p.add_argument("--vgg", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile the training step")
    p.add_argument("--profile", type=int, default=0, help="then profile this many steps")
    a = p.parse_args(argv)
    measure(
        a.model, a.crop, a.batch_size, a.steps, a.warmup, not a.no_amp, a.vgg, a.compile, a.profile
    )


if __name__ == "__main__":
    main()
