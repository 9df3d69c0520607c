"""Generated training fixtures in the real dataset layouts (imported by the test_train_* files).

Frames are smooth random textures moved by a known shift per frame, so a triplet has real motion
and an exact middle frame. Everything is small (64x96 by default) to keep CPU tests fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F


def texture(h: int, w: int, seed: int) -> torch.Tensor:
    """A smooth random RGB image (3, H, W) in [0, 1], larger than needed so shifts stay inside."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, h // 8 + 2, w // 8 + 2, generator=g)
    fine = torch.rand(1, 3, h // 2 + 1, w // 2 + 1, generator=g)
    img = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False) * 0.8
    img = img + F.interpolate(fine, size=(h, w), mode="bilinear", align_corners=False) * 0.2
    return img[0].clamp(0, 1)


def moving_frames(n: int, h: int, w: int, seed: int, step: int = 2) -> list[torch.Tensor]:
    """n frames of one texture panning ``step`` pixels right and down per frame."""
    pad = step * n
    big = texture(h + pad, w + pad, seed)
    return [big[:, i * step : i * step + h, i * step : i * step + w] for i in range(n)]


def save_png(path: Path, img: torch.Tensor) -> None:
    from train.data.triplets import write_image

    write_image(path, img)


def make_vimeo(root: Path, n_train: int = 6, n_test: int = 3, h: int = 64, w: int = 96) -> Path:
    """``vimeo_triplet`` layout: tri_trainlist.txt, tri_testlist.txt, sequences/NNNNN/NNNN/im*.png."""
    names = {"train": [], "test": []}
    for k in range(n_train + n_test):
        split = "train" if k < n_train else "test"
        name = f"{k // 4 + 1:05d}/{k % 4 + 1:04d}"
        for i, img in enumerate(moving_frames(3, h, w, seed=k)):
            save_png(root / "sequences" / name / f"im{i + 1}.png", img)
        names[split].append(name)
    (root / "tri_trainlist.txt").write_text("\n".join(names["train"]) + "\n")
    (root / "tri_testlist.txt").write_text("\n".join(names["test"]) + "\n")
    return root


def make_x4k(root: Path, clips: int = 2, frames: int = 9, h: int = 128, w: int = 160) -> Path:
    """X4K1000FPS X-TRAIN layout: train/<scene>/<clip>/0000.png ..."""
    for c in range(clips):
        clip = root / "train" / f"{c:03d}" / f"occ008.{c:03d}_f{c * 100:04d}"
        for i, img in enumerate(moving_frames(frames, h, w, seed=100 + c, step=1)):
            save_png(clip / f"{i:04d}.png", img)
    return root


def make_dvf(root: Path, n: int = 3, h: int = 64, w: int = 96) -> Path:
    """DVF layout: <id>/frame_00.png, frame_01_gt.png, frame_02.png."""
    for k in range(n):
        for f, img in zip(
            ("frame_00.png", "frame_01_gt.png", "frame_02.png"), moving_frames(3, h, w, seed=50 + k)
        ):
            save_png(root / str(k + 1) / f, img)
    return root


def tiny_model_json(path: Path, **changes) -> Path:
    """The conftest tiny ModelConfig as a --model .json file (for CLI / subprocess runs)."""
    from conftest import tiny_config

    path.write_text(json.dumps(tiny_config(**changes).to_dict()))
    return path
