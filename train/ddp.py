"""Distributed training glue: one process, or ``torchrun --nproc_per_node=N`` (DDP).

torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; then each process joins the group with
NCCL on GPUs (one GPU per process, ``cuda:LOCAL_RANK``) or gloo on the CPU. Without them, training
is a plain single process and every helper here is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from engine.errors import VfiError


@dataclass
class Dist:
    device: torch.device
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str = "auto") -> Dist:
    """Join the process group if launched by torchrun, and pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device == "cuda" or device.startswith("cuda") or device == "auto"
    use_cuda = use_cuda and torch.cuda.is_available()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise VfiError("CUDA was asked for but no CUDA GPU is available; use --device cpu")
    if use_cuda:
        if world > 1:
            if local_rank >= torch.cuda.device_count():
                raise VfiError(
                    f"process {local_rank} has no GPU: this machine has "
                    f"{torch.cuda.device_count()}; use --nproc_per_node <= that"
                )
            dev = torch.device("cuda", local_rank)
        else:
            dev = torch.device(device if device.startswith("cuda") else "cuda")
            if dev.index is None:  # set_device needs an index
                dev = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank=rank, world=world, local_rank=local_rank, device=dev)


def cleanup(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def all_reduce_sum(d: Dist, x: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over processes (in place; returned for convenience)."""
    if d.enabled:
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def broadcast_flag(d: Dist, flag: bool) -> bool:
    """Rank 0's boolean, on every rank (e.g. 'a checkpoint exists': ranks must agree)."""
    if not d.enabled:
        return flag
    t = torch.tensor([int(flag)], device=d.device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def wrap(model: torch.nn.Module, d: Dist) -> torch.nn.Module:
    """DDP wrapper over the parameters that currently require grad (call again after freezing)."""
    if not d.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [d.device.index] if d.device.type == "cuda" else None
    return DDP(model, device_ids=ids)
