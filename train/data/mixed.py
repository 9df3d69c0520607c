"""Mixing training sources into batches: the ``--mixed_ratio`` sampler and the augmenting wrapper.

Sources differ in crop size (Vimeo90K 256², X4K 512²), so one batch never mixes them: the mix is by
*batches*. With ratio a:b, the batch sequence of an epoch repeats "a batches of source 0, then b of
source 1". Each source keeps a per-epoch permutation of its samples; a source that runs out
starts a new permutation (X4K has far fewer clips than Vimeo90K has triplets). The epoch ends
after one pass over source 0 (or over the source with a non-zero share, if source 0 has none).

Under DDP every process takes its own slice of the same global batch, so all ranks work on the
same source at the same step and the permutation stays consistent. ``set_epoch(epoch, start)``
restarts an epoch at its ``start``-th batch: a resumed run skips the batches it already trained on
without reading them.
"""

from __future__ import annotations

import torch
from torch.utils.data import ConcatDataset, Dataset, Subset

from engine.errors import VfiError
from train.data.augment import augment


class Augmented(Dataset):
    """A dataset of ``(frames, name)`` triplets (train.data.triplets) as training samples.

    Item: dict(frames=(3, 3, crop, crop) [img0, gt, img1] augmented, t=(), scale=()).
    """

    def __init__(self, dataset: Dataset, crop: int, scale: float = 1.0, enabled: bool = True):
        self.dataset = dataset
        self.crop = crop
        self.scale = scale
        self.enabled = enabled

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        frames, name = self.dataset[i]
        frames, t = augment(frames, 0.5, self.crop, where=str(name), enabled=self.enabled)
        return {"frames": frames, "t": torch.tensor(t), "scale": torch.tensor(self.scale)}


class MixedBatchSampler:
    """Yields lists of indices into ``ConcatDataset(sources)`` for this rank, by ``ratio``.

    Args:
        sizes: number of samples of each source.
        batch_sizes: per-process batch size of each source.
        ratio: batches of each source per cycle (e.g. (2, 1)).
        rank, world: this process and the number of processes.
        seed: the run's seed; epoch permutations derive from (seed, epoch).
        max_batches: cap on batches per epoch (0 = none), for dry runs and tests.
    """

    def __init__(self, sizes, batch_sizes, ratio, rank=0, world=1, seed=0, max_batches=0):
        if len(sizes) != len(batch_sizes) or len(sizes) != len(ratio):
            raise ValueError("sizes, batch_sizes and ratio must have one entry per source")
        self.sizes = list(sizes)
        self.batch_sizes = list(batch_sizes)
        self.ratio = list(ratio)
        self.rank, self.world, self.seed = rank, world, seed
        self.max_batches = max_batches
        self.offsets = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        self.epoch, self.start = 0, 0
        self.lead = next(i for i, r in enumerate(self.ratio) if r > 0)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def _lead_batches(self) -> int:
        """Global batches of the leading source per epoch (one pass, last partial batch dropped)."""
        return max(1, self.sizes[self.lead] // (self.batch_sizes[self.lead] * self.world))

    def __len__(self) -> int:
        cycles, rest = divmod(self._lead_batches(), self.ratio[self.lead])
        n = cycles * sum(self.ratio) + rest
        return min(n, self.max_batches) if self.max_batches else n

    def _pattern(self) -> list[int]:
        """The source of each batch of the epoch: a, a, b, a, a, b, ... for ratio 2:1."""
        cycle = [i for i, r in enumerate(self.ratio) for _ in range(r)]
        return [cycle[k % len(cycle)] for k in range(len(self))]

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perms = [torch.randperm(n, generator=g) for n in self.sizes]
        cursor = [0] * len(self.sizes)
        for k, src in enumerate(self._pattern()):
            b = self.batch_sizes[src]
            need = b * self.world
            if cursor[src] + need > len(perms[src]):  # source exhausted: a fresh permutation
                fresh = torch.randperm(self.sizes[src], generator=g)
                perms[src] = torch.cat([perms[src][cursor[src] :], fresh])
                cursor[src] = 0
                while len(perms[src]) < need:  # a source smaller than one global batch
                    perms[src] = torch.cat(
                        [perms[src], torch.randperm(self.sizes[src], generator=g)]
                    )
            global_batch = perms[src][cursor[src] : cursor[src] + need]
            cursor[src] += need
            if k < self.start:
                continue  # already trained on before the interruption; draws kept identical
            mine = global_batch[self.rank * b : (self.rank + 1) * b]
            yield [int(i) + self.offsets[src] for i in mine]


# ---- assembling a run's data -------------------------------------------------------------------


class AsUint8(Dataset):
    """Float [0, 1] frames -> uint8, so that every source collates with the others (Vimeo90K and
    X4K items are uint8) and batches cross worker processes at a quarter of the size."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.dataset[i])
        item["frames"] = item["frames"].clamp(0, 1).mul(255).round().to(torch.uint8)
        return item

    def __getattr__(self, name):  # set_max_gap / set_motion_scale of the wrapped corpus
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


def open_corpus(cfg) -> Dataset:
    """Our own corpus (``--train_data``, written by ``vfi train prepare``).

    Its loader decodes the packs into RAM once, in the constructor (before DataLoader workers
    fork); ``--train_packs`` picks packs, and a dry run loads only the first of them.
    """
    from train.data.corpus_dataset import CorpusDataset
    from train.data.synthetic import SyntheticConfig

    packs = list(cfg.train_packs) if cfg.train_packs is not None else None
    if cfg.dry_run:  # one pack is enough to try the pipeline
        packs = packs[:1] if packs else [0]
    synthetic = SyntheticConfig(small_layers=(0, cfg.small_objects), still_scene=cfg.still_scene)
    return AsUint8(
        CorpusDataset(
            cfg.train_data,
            packs,
            crop=cfg.crop,
            augment=cfg.augment,
            seed=cfg.seed,
            photo_prob=cfg.photo_prob,
            motion_power=cfg.motion_power,
            pan_prob=cfg.pan_prob,
            pan_max=cfg.pan_max,
            ram_gb=cfg.ram_gb,
            margins=cfg.triplet_margins,
            min_margin=cfg.min_teacher_margin,
            synthetic=synthetic,
        )
    )


def build_train_sources(cfg) -> list[tuple[str, Dataset, int]]:
    """``[(name, dataset, per-process batch size)]``: the primary mix first, then X4K (phase 3).

    Vimeo90K and our corpus (either or both) form the primary source; X4K batches get a batch size
    scaled so that one batch holds about as many pixels as a primary batch (512² crops: a quarter).
    """
    from train.data.vimeo90k import Vimeo90K

    primary = []
    if cfg.data_path:
        primary.append(Augmented(Vimeo90K(cfg.data_path, "train"), cfg.crop, enabled=cfg.augment))
    if cfg.train_data:
        primary.append(open_corpus(cfg))
    sources = [
        ("primary", primary[0] if len(primary) == 1 else ConcatDataset(primary), cfg.batch_size)
    ]
    if cfg.x4k_path and cfg.mixed_ratio[1] > 0:
        from train.data.x4k import X4KTrain

        x4k = X4KTrain(cfg.x4k_path, cfg.x4k_crop, scale=cfg.x4k_scale, augment=cfg.augment)
        x4k_batch = max(1, cfg.batch_size * cfg.crop**2 // cfg.x4k_crop**2)
        sources.append(("x4k", x4k, x4k_batch))
    return sources


def build_train_data(cfg, rank: int = 0, world: int = 1):
    """The training dataset (concatenated sources) and its batch sampler for this process."""
    sources = build_train_sources(cfg)
    ratio = cfg.mixed_ratio if len(sources) == 2 else (1,)
    sampler = MixedBatchSampler(
        sizes=[len(ds) for _, ds, _ in sources],
        batch_sizes=[b for _, _, b in sources],
        ratio=ratio,
        rank=rank,
        world=world,
        seed=cfg.seed,
        max_batches=cfg.max_iters_per_epoch,
    )
    return ConcatDataset([ds for _, ds, _ in sources]), sampler, sources


def set_curriculum(sources, cfg, epoch: int) -> str:
    """Apply the motion curriculum of ``epoch`` (see :mod:`train.config`); returns a note."""
    from train.config import curriculum_corpus, curriculum_max_gap

    notes = []
    for name, ds, _ in sources:
        if name == "x4k":
            ds.set_max_gap(curriculum_max_gap(cfg, epoch))
            notes.append(f"X4K half-gap <= {ds.max_gap}")
        parts = ds.datasets if isinstance(ds, ConcatDataset) else [ds]
        for part in parts:
            if isinstance(part, AsUint8) and cfg.curriculum:
                gap, motion = curriculum_corpus(cfg, epoch)
                part.set_max_gap(gap)
                part.set_motion_scale(motion)
                notes.append(f"corpus gap <= {gap}, synthetic motion x{motion:.2f}")
    return "; ".join(notes)


def build_val_data(cfg) -> Dataset:
    """``--val_path`` (DVF layout) if given, else the Vimeo90K test list; float frames."""
    from train.data.triplets import DVFTriplets
    from train.data.vimeo90k import Vimeo90K

    if cfg.val_path:
        ds = DVFTriplets(cfg.val_path, dtype=torch.float32, what="validation set (--val_path)")
    elif cfg.data_path:
        ds = Vimeo90K(cfg.data_path, "test", dtype=torch.float32)
    else:
        raise VfiError(
            "no validation set: give --val_path DIR (triplets in the DVF layout, e.g. "
            "<id>/frame_00.png, frame_01_gt.png, frame_02.png) or --data_path (Vimeo90K test list)"
        )
    if cfg.max_val and len(ds) > cfg.max_val:
        ds = Subset(ds, range(cfg.max_val))
    return ds
