"""Triplet datasets: image reading, the shared Dataset base, and any folder in the DVF layout.

A triplet is (frame before, ground-truth middle frame, frame after). Every dataset here returns
``(frames, name)`` per item: ``frames`` is a (3, 3, H, W) tensor in time order
``[img0, gt, img1]`` (uint8 0..255 by default, or float32 in [0, 1] with ``dtype=torch.float32``),
``name`` a short string naming the sample (used by benchmarks in ``items`` and ``--save-dir``).
The default collate of a DataLoader turns these into (B, 3, 3, H, W) and a list of names.

The DVF layout (UCF101 test set of Liu et al., "Video Frame Synthesis using Deep Voxel Flow";
also the generic layout for user triplets)::

    ROOT/<id>/frame_00.png       first frame
    ROOT/<id>/frame_01_gt.png    ground-truth middle frame
    ROOT/<id>/frame_02.png       last frame
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch.utils.data import Dataset

from engine.errors import VfiError

DVF_FILES = ("frame_00.png", "frame_01_gt.png", "frame_02.png")  # img0, gt, img1
DVF_LAYOUT = "<id>/frame_00.png, <id>/frame_01_gt.png, <id>/frame_02.png (one folder per triplet)"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def natural_key(s: str):
    """Sort key that orders '2' before '10' (numbers compared as numbers)."""
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", s)]


def read_image(path: str | Path) -> torch.Tensor:
    """Read an image file as a uint8 (3, H, W) RGB tensor.

    Pillow decodes (libjpeg for JPEG, as OpenCV does in the reference scripts: ffmpeg's JPEG
    decoder rounds colours differently and would shift scores).
    """
    import numpy as np

    path = Path(path)
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # e.g. the GPU machine: OpenCV decodes with the same libjpeg/libpng
        return _read_image_cv2(path)
    try:
        with Image.open(path) as im:
            if im.mode in ("I;16", "I;16B", "I", "F"):
                raise VfiError(f"{path}: {im.mode} images are not supported; use 8-bit RGB")
            arr = np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise VfiError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise VfiError(f"cannot read image {path}: {e}") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()  # (3, H, W)


def _read_image_cv2(path: Path) -> torch.Tensor:
    import cv2

    if not path.is_file():
        raise VfiError(f"image not found: {path}")
    arr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if arr is None:
        raise VfiError(f"cannot read image {path}")
    return torch.from_numpy(arr[..., ::-1].copy()).permute(2, 0, 1).contiguous()  # BGR -> RGB


def write_image(path: str | Path, img: torch.Tensor) -> None:
    """Write a [0, 1] float (3, H, W) image as an 8-bit PNG, atomically (temp file, then rename)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = torch.round(img.detach().float().clamp(0, 1) * 255).to(torch.uint8)
    arr = arr.permute(1, 2, 0).cpu().numpy()
    tmp = path.with_name(path.name + ".part")
    Image.fromarray(arr).save(tmp, format="PNG")
    tmp.replace(path)


class TripletDataset(Dataset):
    """Triplets given as file paths: ``samples`` is a list of (name, (img0, gt, img1) paths)."""

    def __init__(self, samples: list[tuple[str, tuple[Path, Path, Path]]], dtype=torch.uint8):
        if dtype not in (torch.uint8, torch.float32):
            raise ValueError("dtype must be torch.uint8 or torch.float32")
        self.samples = samples
        self.dtype = dtype

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        name, paths = self.samples[i]
        imgs = [read_image(p) for p in paths]
        shapes = {tuple(x.shape) for x in imgs}
        if len(shapes) != 1:
            raise VfiError(f"triplet {name}: frames differ in size {sorted(shapes)}")
        frames = torch.stack(imgs)  # (3, 3, H, W): img0, gt, img1
        if self.dtype == torch.float32:
            frames = frames.float() / 255.0
        return frames, name


class DVFTriplets(TripletDataset):
    """Any folder of triplets in the DVF layout (UCF101's test set, ``--val_path``, user data)."""

    def __init__(self, root: str | Path, dtype=torch.uint8, what: str = "triplet folder", url=None):
        root = Path(root)
        where = f"; get it from {url}" if url else ""
        if not root.is_dir():
            raise VfiError(f"{what} not found: {root}; expected {DVF_LAYOUT}{where}")
        samples = []
        for d in sorted(
            (p for p in root.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name)
        ):
            present = [(d / f).is_file() for f in DVF_FILES]
            if all(present):
                samples.append((d.name, tuple(d / f for f in DVF_FILES)))
            elif any(present):
                missing = [f for f, ok in zip(DVF_FILES, present) if not ok]
                raise VfiError(
                    f"malformed triplet {d}: missing {', '.join(missing)}; expected {DVF_LAYOUT}"
                )
        if not samples:
            raise VfiError(f"no triplets in {root}; expected {DVF_LAYOUT}{where}")
        super().__init__(samples, dtype)
        self.root = root
