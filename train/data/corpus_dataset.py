"""The ``--train_data`` loader: decode a corpus pack once into RAM, then serve random triplet crops.

``CorpusDataset(cache_dir)`` reads the packs of ``cache_dir`` (a folder written by ``vfi train
prepare``: every pack its index lists unless ``packs`` picks some; or one ``pack-NN`` folder of
it), decodes, in a thread pool across clips, only the frames its triplet index uses into uint8
arrays (subsampling whole windows of frames when that would exceed ``ram_gb``), loads the pack's
photos, and then serves samples:

- a video triplet drawn with probability growing with its motion score (``motion_power``) and
  divided by the square root of its clip's triplet count, so long clips do not crowd out short ones;
  gap-2 triplets also give t = 1/3 or 2/3 samples (frames s, s+1, s+3 or s, s+2, s+3) with
  probability ``third_prob``;
- with probability ``pan_prob``, a video triplet seen through a window that pans at a constant
  velocity (up to ``pan_max`` px per half-step, any direction) on top of the clip's own motion:
  each frame's window is offset by its time times the pan, so the middle frame is still exact;
- with probability ``photo_prob``, a synthetic triplet from the photos (train.data.synthetic).

It is a map-style ``torch.utils.data.Dataset`` (the index only picks a sample slot; every draw is
random), so it works with any sampler, DataLoader workers and DDP. Decode happens in the constructor:
build it before the DataLoader forks its workers and they share the frames copy-on-write.

Item: ``dict(frames=(3, 3, crop, crop) float32 [img0, gt, img1] in [0, 1], t=(), scale=())``, the
same as train.data.mixed.Augmented, so it mixes with the Vimeo90K source. Randomness comes from
numpy generators seeded by (seed, index, a draw from torch's RNG), which the DataLoader seeds per
worker and per epoch from the run's seed: runs are reproducible and epochs differ.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from engine.errors import VfiError
from train.data.corpus import load_index
from train.data.synthetic import SyntheticConfig, load_photo_pyramid, synthetic_triplet

log = logging.getLogger(__name__)

MOTION_FLOOR = 0.5  # px: triplets with less motion are weighted as if they had this much
WINDOW = 24  # frames per window when subsampling a clip to fit the RAM budget
# Default budget: this share of the machine's memory, split between the training processes on it
# (each decodes its own copy); the rest is for the model, the teacher, CUDA and the loader workers.
# 0.6 keeps the whole 40 GiB corpus of shared/data/train on the device hosts (4 processes on
# 512 GiB, 8 on 560 GiB) and fits a 24 GiB development machine instead of being killed by the OOM
# killer there, as the old fixed 48 GiB budget was.
RAM_SHARE = 0.6
CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


@dataclass
class Clip:
    name: str
    keep: np.ndarray  # distinct frame indices (positions s index into it)
    rows: dict[int, int]  # frame index -> row of `frames`
    frames: np.ndarray  # (n, H, W, 3) uint8


class CorpusDataset(Dataset):
    """Random training triplets from the packs of a prepared corpus (see the module docstring).

    Args:
        cache_dir: a corpus folder (``index.json`` + ``pack-NN/``) or a single ``pack-NN`` folder.
        packs: which packs to load (names like ``"pack-01"`` or numbers); None = every pack of the
            index, a VfiError when one of them is missing (an incomplete copy).
        crop: output side; frames smaller than that are upscaled to fit.
        gaps: index gaps to use (None = all in the index); ``set_max_gap`` changes it later.
        photo_prob: share of synthetic photo triplets.
        third_prob: share of gap-2 triplets served as t = 1/3 or 2/3 samples.
        motion_power: sampling weight = max(motion, 0.5 px) ** motion_power (0 = uniform).
        min_motion: drop triplets whose motion score is below this (px), e.g. for a large-motion
            dataset with ``crop=384``.
        margins: a record of `vfi train check-triplets` (dict or path): with ``min_margin``,
            drop the triplets on which the teacher beat the linear blend by less than
            ``min_margin`` dB (``train/data/triplet_check.py``); unscored triplets stay.
        zoom_prob: chance to take a window up to 2x the crop from a large frame and scale it down
            (more context per crop, lower-resolution statistics).
        pan_prob: chance to add a constant-velocity pan of the window to a video triplet (large
            camera motion over real footage; see :func:`draw_pan`).
        pan_max: the largest added pan, px per half-step in the source frame (before any zoom).
        augment: True for flips, rot90, temporal and channel reversal; a callable
            ``f(frames, t, rng) -> (frames, t)`` to replace them; False for none.
        samples_per_epoch: ``len()``; default the number of triplets loaded.
        ram_gb: budget for decoded frames (GiB); above it whole windows of frames are left out.
            Default: :func:`default_ram_gb` (a share of this machine's memory per process).
        threads: decode threads (default: all cores).
        synthetic: SyntheticConfig for the photo triplets (its size is set to ``crop``).
        verify: check each file's sha256 against the index before decoding.
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike,
        packs: Sequence[str | int] | None = None,
        crop: int = 256,
        *,
        gaps: Sequence[int] | None = None,
        photo_prob: float = 0.15,
        third_prob: float = 0.1,
        motion_power: float = 0.5,
        min_motion: float = 0.0,
        margins: dict | str | os.PathLike | None = None,
        min_margin: float = 0.0,
        zoom_prob: float = 0.25,
        pan_prob: float = 0.0,
        pan_max: float = 16.0,
        augment: bool | Callable = True,
        samples_per_epoch: int | None = None,
        ram_gb: float | None = None,
        threads: int | None = None,
        synthetic: SyntheticConfig | None = None,
        verify: bool = True,
        seed: int = 0,
    ):
        self.crop = int(crop)
        self.photo_prob, self.third_prob = photo_prob, third_prob
        self.motion_power, self.zoom_prob = motion_power, zoom_prob
        self.pan_prob, self.pan_max = pan_prob, pan_max
        self.augment = augment
        self.seed = seed
        self.synthetic = synthetic or SyntheticConfig()
        self.synthetic.size = self.crop
        threads = threads or os.cpu_count() or 1

        entries, photo_paths, index_gaps = _read_packs(Path(cache_dir), packs)
        self.all_gaps = tuple(index_gaps)
        table = _triplet_table(entries, min_motion)  # (T, 4): clip, gap, start, motion
        self.dropped_by_teacher = 0
        if margins is not None:
            from train.data.triplet_check import keep_mask, read_margins

            record = margins if isinstance(margins, dict) else read_margins(margins)
            keep = keep_mask(table, [e["file"] for e in entries], record, min_margin)
            table, self.dropped_by_teacher = table[keep], int((~keep).sum())
        self.ram_gb = default_ram_gb() if ram_gb is None else ram_gb
        budget = float("inf") if self.ram_gb is None else self.ram_gb * 2**30
        self.triplets_indexed = len(table)
        table, needed = _fit_budget(entries, table, budget, seed)
        if verify:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(lambda e: _verify(e["path"], e["sha256"]), entries))
        per_clip = max(1, min(4, threads // max(1, len(entries))))

        def decode(i: int) -> Clip:
            e = entries[i]
            frames = decode_frames(e["path"], needed[i], threads=per_clip)
            rows = {int(f): r for r, f in enumerate(needed[i])}
            return Clip(e["file"], np.asarray(e["keep"]), rows, frames)

        with ThreadPoolExecutor(threads) as pool:
            self.clips = list(pool.map(decode, range(len(entries))))
            self.pyramids = list(pool.map(load_photo_pyramid, photo_paths))
        self.table = table
        self.paths = {e["file"]: e["path"] for e in entries}
        self.bytes = sum(c.frames.nbytes for c in self.clips)
        if not len(table) and not self.pyramids:
            raise VfiError(f"the corpus at {cache_dir} has no usable triplets or photos")
        self._n = samples_per_epoch or max(len(table), 1000)
        self.set_max_gap(max(gaps) if gaps else max(self.all_gaps, default=1), gaps)

    # -- configuration the training loop may change between epochs (before workers fork) --

    def set_max_gap(self, max_gap: int, gaps: Sequence[int] | None = None) -> None:
        """Serve only index gaps <= ``max_gap`` (a motion curriculum); also recomputes weights."""
        use = set(gaps) if gaps else {g for g in self.all_gaps if g <= max_gap}
        mask = np.isin(self.table[:, 1], sorted(use)) if len(self.table) else np.zeros(0, bool)
        clip_ids = self.table[:, 0].astype(np.int64)
        counts = np.bincount(clip_ids[mask], minlength=len(self.clips)).astype(np.float64)
        w = np.maximum(self.table[:, 3], MOTION_FLOOR) ** self.motion_power
        w = np.where(mask, w / np.sqrt(np.maximum(counts[clip_ids], 1)), 0.0)
        self.cum_weights = np.cumsum(w)
        self.max_gap = max_gap

    def set_motion_scale(self, scale: float) -> None:
        """Scale the synthetic motion ranges (a curriculum for the photo triplets)."""
        self.synthetic.motion_scale = scale

    # -- Dataset --

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, index, int(torch.randint(0, 2**31, ()))])
        has_video = len(self.cum_weights) and self.cum_weights[-1] > 0
        if self.pyramids and (not has_video or rng.random() < self.photo_prob):
            frames = torch.stack(synthetic_triplet(self.pyramids, rng, self.synthetic))
            t = 0.5
        else:
            frames, t = self._video_sample(rng)
        if self.augment is True:
            frames, t = default_augment(frames, t, rng)
        elif callable(self.augment):
            frames, t = self.augment(frames, t, rng)
        return {
            "frames": frames.contiguous(),
            "t": torch.tensor(t, dtype=torch.float32),
            "scale": torch.tensor(1.0),
        }

    def triplet_frames(self, row: int, t: float = 0.5) -> tuple[Clip, list[int]]:
        """The clip and frame indices [img0, gt, img1] of table row ``row`` for time ``t``."""
        c, g, s, _ = self.table[row]
        clip = self.clips[int(c)]
        s, g = int(s), int(g)
        if t == 0.5:
            pos = [s, s + g, s + 2 * g]
        elif g == 2 and t in (1 / 3, 2 / 3):
            pos = [s, s + 1, s + 3] if t == 1 / 3 else [s, s + 2, s + 3]
        else:
            raise ValueError(f"no t={t} sample for a gap-{g} triplet")
        return clip, [int(clip.keep[p]) for p in pos]

    def _video_sample(self, rng: np.random.Generator) -> tuple[torch.Tensor, float]:
        row = int(np.searchsorted(self.cum_weights, rng.random() * self.cum_weights[-1], "right"))
        row = min(row, len(self.table) - 1)
        t = 0.5
        if self.table[row, 1] == 2 and rng.random() < self.third_prob:
            t = 1 / 3 if rng.random() < 0.5 else 2 / 3
        clip, idx = self.triplet_frames(row, t)
        if any(i not in clip.rows for i in idx):  # t = 1/3 frame left out by the RAM budget
            t = 0.5
            clip, idx = self.triplet_frames(row, t)
        imgs = [clip.frames[clip.rows[i]] for i in idx]  # 3 x (H, W, 3) uint8
        # Only draw when panning is on, so that runs without it keep their random stream.
        pan = (
            draw_pan(rng, self.pan_max, t)
            if self.pan_prob and rng.random() < self.pan_prob
            else None
        )
        return _random_window(imgs, self.crop, self.zoom_prob, rng, pan=pan, t=t), t


def default_augment(
    frames: torch.Tensor, t: float, rng: np.random.Generator
) -> tuple[torch.Tensor, float]:
    """Flips, rot90, temporal reversal (t -> 1 - t) and RGB -> BGR, each at random."""
    if rng.random() < 0.5:
        frames = frames.flip(-1)
    if rng.random() < 0.5:
        frames = frames.flip(-2)
    k = int(rng.integers(4))
    if k and frames.shape[-1] == frames.shape[-2]:
        frames = torch.rot90(frames, k, dims=(-2, -1))
    if rng.random() < 0.5:
        frames, t = frames.flip(0), 1.0 - t
    if rng.random() < 0.5:
        frames = frames.flip(-3)
    return frames, t


def decode_frames(path: str | os.PathLike, wanted: Sequence[int], threads: int = 2) -> np.ndarray:
    """The frames ``wanted`` (sorted indices in decode order) of a video: (n, H, W, 3) uint8 RGB.

    PyAV decodes when it is installed; otherwise OpenCV (the GPU machine has it, and PyAV's wheel,
    34 MiB, would not fit a device call beside a 48 MiB pack). Both decode every frame in order,
    which is how the index counted them.
    """
    wanted = [int(i) for i in wanted]
    if not wanted:
        return np.zeros((0, 1, 1, 3), np.uint8)
    want = set(wanted)
    out: list[np.ndarray] = []
    try:
        import av
    except ModuleNotFoundError:
        av = None
    if av is not None:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type, stream.thread_count = "AUTO", threads
            for i, frame in enumerate(container.decode(stream)):
                if i in want:
                    out.append(frame.to_ndarray(format="rgb24"))
                if i >= wanted[-1]:
                    break
    else:
        import cv2

        cap = cv2.VideoCapture(str(path))
        i = 0
        while i <= wanted[-1]:
            ok, bgr = cap.read()
            if not ok:
                break
            if i in want:
                out.append(np.ascontiguousarray(bgr[..., ::-1]))
            i += 1
        cap.release()
    if len(out) != len(wanted):
        raise VfiError(
            f"{path} decoded to fewer frames than its index says ({len(out)} of {len(wanted)} "
            "wanted frames); the file differs from the one indexed: rebuild the corpus"
        )
    return np.stack(out)


# ---------------------------------------------------------------------------------------------
# helpers


def _read_packs(root: Path, packs) -> tuple[list[dict], list[Path], list[int]]:
    """Entries (one dict per clip, with absolute path), photo paths and gaps of the chosen packs."""
    if not root.is_dir():
        raise VfiError(
            f"--train_data {root} is not a folder; give a corpus written by `vfi train prepare`"
        )
    if (root / "pack.json").is_file():
        dirs = [root]
    else:
        index = load_index(root)  # a clear error when root is no corpus at all
        dirs = sorted(p for p in root.glob("pack-*") if (p / "pack.json").is_file())
        absent = [p["name"] for p in index.get("packs", []) if not (root / p["name"]).is_dir()]
        if packs is None and absent:
            # An incomplete copy would otherwise train on part of the data without a word.
            nums = [d.name.removeprefix("pack-") for d in dirs]
            present = ",".join(str(int(n)) if n.isdigit() else f"pack-{n}" for n in nums) or "none"
            raise VfiError(
                f"{root} is an incomplete corpus: {', '.join(absent)} of its index "
                f"{'is' if len(absent) == 1 else 'are'} missing; copy them in, or train on the "
                f"packs present with --train_packs {present}"
            )
    if packs is not None:
        names = {f"pack-{p:02d}" if isinstance(p, int) else str(p) for p in packs}
        missing = names - {d.name for d in dirs}
        if missing:
            have = ", ".join(d.name for d in dirs) or "none"
            raise VfiError(f"pack(s) {', '.join(sorted(missing))} not in {root} (present: {have})")
        dirs = [d for d in dirs if d.name in names]
    if not dirs:
        raise VfiError(
            f"no packs in {root}: copy at least one pack-NN folder there (with its pack.json)"
        )
    entries, photos, gaps = [], [], set()
    for d in dirs:
        meta = load_index(d)
        gaps.update(int(g) for g in meta["gaps"])
        for rel, c in meta["clips"].items():
            entries.append({**c, "file": rel, "path": d / rel})
        photos += [d / rel for rel in meta["photos"]]
    return entries, photos, sorted(gaps)


def _triplet_table(entries: list[dict], min_motion: float) -> np.ndarray:
    rows = []
    for ci, e in enumerate(entries):
        for g, tr in e["triplets"].items():
            starts = np.asarray(tr["start"], dtype=np.float64)
            motion = np.asarray(tr["motion"], dtype=np.float64)
            rows.append(
                np.stack(
                    [np.full_like(starts, ci), np.full_like(starts, int(g)), starts, motion], 1
                )
            )
    table = np.concatenate(rows) if rows else np.zeros((0, 4))
    return table[table[:, 3] >= min_motion] if min_motion > 0 else table


def _frames_of(entry: dict, rows: np.ndarray) -> np.ndarray:
    """Frame indices used by table rows of one clip (t = 0.5 and the gap-2 thirds)."""
    keep = np.asarray(entry["keep"])
    pos = [rows[:, 2] + k * rows[:, 1] for k in range(3)]
    third = rows[rows[:, 1] == 2, 2]
    pos += [third + 1, third + 3]
    return np.unique(keep[np.concatenate(pos).astype(np.int64)])


def machine_ram_bytes(cgroup_files: Sequence[str] = CGROUP_LIMITS) -> int | None:
    """The memory this process may use: physical RAM, or a container's (cgroup) limit if lower."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system that reports it
        total = None
    for name in cgroup_files:
        try:
            text = Path(name).read_text().strip()
        except OSError:
            continue
        if text.isdigit():  # "max" (v2) means no limit; v1 reports a huge number instead
            total = min(total, int(text)) if total else int(text)
    return total


def default_ram_gb(total_bytes: int | None = None, processes: int | None = None) -> float | None:
    """The decoded-frame budget of one training process: RAM_SHARE of the machine's memory split
    between its training processes (torchrun's LOCAL_WORLD_SIZE). None when the memory is unknown
    (no budget then). It depends only on the machine, so every rank of a run computes the same
    budget, keeps the same triplets and has the same number of batches per epoch (DDP needs it)."""
    total = total_bytes if total_bytes is not None else machine_ram_bytes()
    if not total:
        return None
    procs = processes if processes is not None else int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return RAM_SHARE * total / max(1, procs) / 2**30


def _fit_budget(entries, table, budget: float, seed: int):
    """Leave out random windows of frames until the decoded frames fit ``budget`` bytes."""
    rng = np.random.default_rng(seed)
    frac = 1.0
    win_keep = [rng.random(1 + len(e["keep"]) // WINDOW) for e in entries]
    while True:
        in_win = (
            np.array(
                [win_keep[int(c)][int(s) // WINDOW] < frac for c, s in table[:, :3:2]], dtype=bool
            )
            if len(table)
            else np.zeros(0, bool)
        )
        sub = table[in_win]
        needed = [_frames_of(e, sub[sub[:, 0] == i]) for i, e in enumerate(entries)]
        total = sum(len(n) * e["width"] * e["height"] * 3 for n, e in zip(needed, entries))
        if total <= budget or frac < 1e-3:
            break
        frac *= 0.9 * budget / total
    if frac < 1.0:
        log.warning(
            "corpus frames exceed the RAM budget of %.1f GiB per process: keeping %.0f%% of the "
            "triplets (%.1f GiB); --ram_gb sets the budget",
            budget / 2**30,
            100 * len(sub) / max(1, len(table)),
            total / 2**30,
        )
    return sub, needed


def _verify(path: Path, sha256: str) -> None:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != sha256:
        raise VfiError(f"{path} does not match its index (sha256 differs): rebuild the corpus")


def pan_quantum(t: float) -> int:
    """Pans are multiples of this (px), so that the middle frame's window offset, t times the pan,
    is a whole pixel: 2 for t = 1/2, 3 for t = 1/3 or 2/3."""
    return 2 if t == 0.5 else 3


def pan_vector(speed: float, angle: float, t: float = 0.5) -> np.ndarray:
    """The window pan from img0 to img1, (dy, dx) int px, of ``speed`` px per half-step in direction
    ``angle`` (radians, 0 = +x), rounded to a multiple of :func:`pan_quantum`."""
    q = pan_quantum(t)
    full = 2 * speed * np.array([np.sin(angle), np.cos(angle)])  # (dy, dx), img0 -> img1
    return (np.round(full / q) * q).astype(np.int64)


def draw_pan(rng: np.random.Generator, pan_max: float, t: float = 0.5) -> np.ndarray:
    """A random :func:`pan_vector`: speed uniform in [0, pan_max] px per half-step, direction
    uniform."""
    speed, angle = rng.uniform(0.0, pan_max), rng.uniform(0.0, 2 * np.pi)
    return pan_vector(speed, angle, t)


def pan_offsets(pan, t: float) -> list[tuple[int, int]]:
    """(dy, dx) window offsets of [img0, middle frame, img1] for a pan (dy, dx) of img0 -> img1 that
    is a multiple of :func:`pan_quantum`: the window moves by t times the pan to the middle frame."""
    dy, dx = int(pan[0]), int(pan[1])
    return [(0, 0), (round(t * dy), round(t * dx)), (dy, dx)]


def _fit_pan(pan: np.ndarray, room: tuple[int, int], q: int) -> np.ndarray:
    """``pan`` scaled down (same direction, multiples of q, toward zero) to fit ``room`` (y, x)."""
    scale = min([1.0] + [r / abs(p) for p, r in zip(pan, room) if abs(p) > r])
    return (np.trunc(pan * scale / q) * q).astype(np.int64)


def _random_window(
    imgs: list[np.ndarray],
    crop: int,
    zoom_prob: float,
    rng,
    pan: np.ndarray | None = None,
    t: float = 0.5,
) -> torch.Tensor:
    """The same random square window of three (H, W, 3) uint8 frames, scaled to crop: (3, 3, c, c).

    Frames smaller than ``crop`` give their largest square window, upscaled; large frames give, with
    probability ``zoom_prob``, a window up to 2x the crop, scaled down (antialiased). ``pan`` (dy,
    dx), a multiple of ``pan_quantum(t)``: the window moves by it from img0 to img1 and by t times
    it to the middle frame (fit to the frame if it does not, toward zero).
    """
    h, w = imgs[0].shape[:2]
    short = min(h, w)
    win = crop
    if short < crop:
        win = short
    elif rng.random() < zoom_prob and short > crop * 1.25:
        win = int(crop * rng.uniform(1.0, min(2.0, short / crop)))
    pan = (
        np.zeros(2, np.int64) if pan is None else _fit_pan(pan, (h - win, w - win), pan_quantum(t))
    )
    y = int(rng.integers(h - win - abs(pan[0]) + 1)) - min(0, int(pan[0]))
    x = int(rng.integers(w - win - abs(pan[1]) + 1)) - min(0, int(pan[1]))
    stack = np.stack(
        [
            im[y + oy : y + oy + win, x + ox : x + ox + win]
            for im, (oy, ox) in zip(imgs, pan_offsets(pan, t))
        ]
    )  # (3, win, win, 3)
    frames = torch.from_numpy(stack).permute(0, 3, 1, 2).float().div_(255.0)  # (3, 3, win, win)
    if win != crop:
        frames = F.interpolate(
            frames, size=(crop, crop), mode="bilinear", align_corners=False, antialias=win > crop
        ).clamp_(0, 1)
    return frames


def _benchmark() -> None:
    """``python -m train.data.corpus_dataset PACK [--workers N] [--seconds S]``: decode + serve rates.

    Runs where the training runs (e.g. on the device machine, one pack carried): prints the decode
    time of the pack and the samples/s a DataLoader with N workers serves at 256² (batch 32).
    """
    import argparse
    import time

    parser = argparse.ArgumentParser(description=_benchmark.__doc__)
    parser.add_argument("cache_dir")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--ram-gb", type=float, default=None, help="default: default_ram_gb()")
    args = parser.parse_args()
    start = time.time()
    ds = CorpusDataset(args.cache_dir, crop=args.crop, ram_gb=args.ram_gb)
    took = time.time() - start
    frames = sum(len(c.frames) for c in ds.clips)
    print(
        f"decoded {frames} frames ({ds.bytes / 2**30:.1f} GiB) of {len(ds.clips)} clips and "
        f"{len(ds.pyramids)} photos in {took:.1f} s: {len(ds.table)} triplets"
    )
    loader = torch.utils.data.DataLoader(ds, batch_size=32, num_workers=args.workers)
    n, start = 0, None
    for batch in loader:
        if start is None:  # skip the workers' start-up
            start = time.time()
            continue
        n += len(batch["frames"])
        if time.time() - start > args.seconds:
            break
    rate = n / (time.time() - start)
    print(f"served {rate:.0f} samples/s at {args.crop}² with {args.workers} workers")


if __name__ == "__main__":
    _benchmark()
