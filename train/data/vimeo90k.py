"""Vimeo90K triplets (Xue et al., "Video Enhancement with Task-Oriented Flow"), train and test.

Layout of the official ``vimeo_triplet`` archive (448x256 frames)::

    ROOT/tri_trainlist.txt           51,312 lines like 00001/0001
    ROOT/tri_testlist.txt            3,782 lines
    ROOT/sequences/00001/0001/im1.png, im2.png, im3.png     (im2 is the middle frame)

Items are ``(frames, name)`` as in :mod:`train.data.triplets`: frames (3, 3, H, W) in time order
[im1, im2, im3] = [img0, gt, img1], name like ``00001/0001``. Augmentation belongs to the
training code; this class only reads.
"""

from __future__ import annotations

from pathlib import Path

import torch

from engine.errors import VfiError
from train.data.triplets import TripletDataset

VIMEO_URL = "http://toflow.csail.mit.edu/"
VIMEO_LAYOUT = (
    "tri_trainlist.txt, tri_testlist.txt and sequences/<00001>/<0001>/im1.png, im2.png, im3.png"
)
SPLIT_FILES = {"train": "tri_trainlist.txt", "test": "tri_testlist.txt"}
FRAME_FILES = ("im1.png", "im2.png", "im3.png")


def read_list(root: Path, split: str) -> list[str]:
    """The sample names of a split, in file order (blank lines skipped, as the references do)."""
    if split not in SPLIT_FILES:
        raise VfiError(f"unknown Vimeo90K split {split!r}; use train or test")
    hint = f"expected {VIMEO_LAYOUT} (the vimeo_triplet archive from {VIMEO_URL})"
    if not root.is_dir():
        raise VfiError(f"Vimeo90K not found at {root}; {hint}")
    list_file = root / SPLIT_FILES[split]
    if not list_file.is_file():
        raise VfiError(f"Vimeo90K list {list_file} is missing; {hint}")
    names = [line.strip() for line in list_file.read_text().splitlines()]
    names = [n for n in names if len(n) > 1]
    if not names:
        raise VfiError(f"Vimeo90K list {list_file} is empty; {hint}")
    for n in names:
        parts = n.split("/")
        if len(parts) != 2 or not all(parts):
            raise VfiError(f"{list_file}: bad line {n!r}; each line must be <sequence>/<clip>")
    return names


class Vimeo90K(TripletDataset):
    """Vimeo90K triplets of ``split`` ("train" or "test"); ``limit`` keeps the first N."""

    def __init__(self, root: str | Path, split: str = "train", dtype=torch.uint8, limit=None):
        root = Path(root)
        names = read_list(root, split)
        if limit is not None:
            names = names[:limit]
        seq = root / "sequences"
        samples = [(n, tuple(seq / n / f for f in FRAME_FILES)) for n in names]
        # Check the ends of the list (not all 51k entries: that is slow on network storage); a
        # missing file later still fails with the file's path when it is read.
        for name, paths in (samples[0], samples[-1]):
            for p in paths:
                if not p.is_file():
                    raise VfiError(
                        f"Vimeo90K sample {name} is incomplete: {p} is missing; expected "
                        f"{VIMEO_LAYOUT} (from {VIMEO_URL})"
                    )
        super().__init__(samples, dtype)
        self.root = root
        self.split = split
