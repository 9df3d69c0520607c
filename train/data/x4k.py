"""X4K1000FPS X-TRAIN: 65-frame clips of 4K video at 1000 fps, for large-motion training (phase 3).

Layout (as distributed): ``<root>/train/<scene>/<clip>/0000.png ... 0064.png`` (``<root>`` may also
be the ``train`` folder itself). A sample takes a first index ``i`` and a half-gap ``g``, and
returns frames ``i, i+2g`` as inputs and ``i+g`` as the ground truth (t = 0.5); a larger ``g`` is a
larger motion. The curriculum (see :mod:`train.config`) caps ``g`` through :meth:`set_max_gap`.
Crops are large (``x4k_crop``, 512 by default): at 4K, motion spans hundreds of pixels.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from engine.errors import VfiError
from train.data.augment import augment
from train.data.triplets import IMAGE_SUFFIXES, read_image

LAYOUT = "<root>/train/<scene>/<clip>/0000.png ... 0064.png (X4K1000FPS X-TRAIN)"


def find_clips(root: Path) -> list[list[Path]]:
    """Every clip folder under root: a sorted list of its frame files (at least 3)."""
    root = Path(root)
    if not root.is_dir():
        raise VfiError(f"X4K path {root} is not a folder; expected {LAYOUT}")
    base = root / "train" if (root / "train").is_dir() else root
    clips = []
    for clip_dir in sorted(p for p in base.glob("*/*") if p.is_dir()):
        frames = sorted(f for f in clip_dir.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if len(frames) >= 3:
            clips.append(frames)
    if not clips:
        raise VfiError(f"no X4K clips found under {root}; expected {LAYOUT}")
    return clips


class X4KTrain(Dataset):
    """Random triplets of X-TRAIN clips. Item: dict(frames=uint8 (3, 3, crop, crop), t, scale)."""

    def __init__(self, root, crop: int = 512, max_gap: int = 32, scale: float = 0.5, augment=True):
        self.clips = find_clips(Path(root))
        self.crop = crop
        self.scale = scale
        self.augment_on = augment
        self.set_max_gap(max_gap)

    def set_max_gap(self, max_gap: int) -> None:
        """Cap the half-gap g (motion magnitude); at most (frames - 1) // 2 of the shortest clip."""
        shortest = min(len(c) for c in self.clips)
        self.max_gap = max(1, min(int(max_gap), (shortest - 1) // 2))

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        frames = self.clips[index]
        g = int(torch.randint(1, self.max_gap + 1, ()))
        i = int(torch.randint(0, len(frames) - 2 * g, ()))
        paths = (frames[i], frames[i + g], frames[i + 2 * g])
        stack = torch.stack([read_image(p) for p in paths])  # (3, 3, H, W) uint8: img0, gt, img1
        stack, t = augment(
            stack, 0.5, self.crop, where=str(paths[0].parent), enabled=self.augment_on
        )
        return {"frames": stack, "t": torch.tensor(t), "scale": torch.tensor(self.scale)}
