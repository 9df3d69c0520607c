"""DDP helpers with two real gloo processes on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from train import ddp
from train.loop import time_is_up

# (elapsed seconds on rank 0, on rank 1, step) -> what both ranks must answer, with --max_minutes 1
# and a decision every 10 steps. The ranks' clocks disagree in every case but the last two.
CASES = [
    ((30.0, 90.0, 10), False),  # rank 1 is past the limit, rank 0 is not: rank 0 decides
    ((90.0, 30.0, 10), True),  # and the other way round: both stop at the same step
    ((90.0, 90.0, 13), False),  # between decision points nobody stops
    ((90.0, 90.0, 20), True),
    ((30.0, 30.0, 20), False),
]


def _worker(rank: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    d = ddp.Dist(device=torch.device("cpu"), rank=rank, world=2)
    answers = [time_is_up(d, clocks[rank], 1.0, clocks[2], 10) for clocks, _ in CASES]
    with open(f"{out}.{rank}", "w") as f:
        json.dump(answers, f)
    dist.destroy_process_group()


def test_every_rank_stops_at_the_same_step_by_rank_zeros_clock(tmp_path):
    out = str(tmp_path / "answers")
    mp.spawn(_worker, args=(f"file://{tmp_path / 'rendezvous'}", out), nprocs=2, join=True)
    want = [expected for _, expected in CASES]
    for rank in (0, 1):
        assert json.loads(Path(f"{out}.{rank}").read_text()) == want, f"rank {rank}"


def test_one_process_reads_its_own_clock_at_every_step():
    one = ddp.Dist(device=torch.device("cpu"))
    assert time_is_up(one, 61.0, 1.0, step=13, every=10)
    assert not time_is_up(one, 59.0, 1.0, step=10, every=10)
    assert not time_is_up(one, 1e9, 0.0, step=10, every=10)  # 0 = no limit
