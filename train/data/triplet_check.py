"""Teacher-checked corpus triplets: `vfi train check-triplets`, and the loader's filter on it.

A triplet is a good interpolation target when its middle frame is determined by its neighbours:
motion that is linear over the gap and within reach. A cheap test of that is whether a strong
interpolator (the RIFE HDv3 teacher, `train/teacher.py`) predicts the middle frame clearly better
than the linear blend does. `benchmarks/gap_linearity.py` measured it on random crops: at gaps
1-3 of our corpus the teacher's median margin is 1.1-2.6 dB, at gaps 4-6 only 0.05-0.5 dB, and it
loses to the blend on 17-31 % and 37-49 % of the crops (docs/data.md, "Wider gaps").

This module scores every triplet of a corpus once, on the centre ``crop``² window of its frames
(the training crops are random; the centre is their deterministic stand-in), and writes

    {"crop": 256, "teacher": "...", "clips": {file: {gap: {"start": [...], "margin": [...]}}}}

with the margin teacher PSNR - blend PSNR in dB (8-bit rounded frames, 0..1 range; ``null`` for a
triplet left unscored: frames smaller than the crop, or frames the loader's RAM budget left out).
``CorpusDataset(margins=..., min_margin=...)`` (``vfi train --triplet_margins F
--min_teacher_margin DB``) then drops the triplets below the threshold; unscored triplets stay.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from engine.errors import VfiError


def margin_db(pred, gt, a, b):
    """Per sample (B,): PSNR of ``pred`` minus PSNR of the blend of ``a`` and ``b``, both rounded
    to 8 bits as the bench protocol does (all (B, 3, H, W) in [0, 1])."""
    from engine.metrics import psnr, quantize

    return psnr(quantize(pred), gt) - psnr(quantize((a + b) / 2), gt)


def row_images(ds, row: int) -> list[np.ndarray] | None:
    """The frames [img0, gt, img1] ((H, W, 3) uint8) of table row ``row`` of a CorpusDataset, or
    None where its RAM budget left one of them out."""
    clip, frames = ds.triplet_frames(row)
    if any(i not in clip.rows for i in frames):
        return None
    return [clip.frames[clip.rows[i]] for i in frames]


def centre_window(img: np.ndarray, crop: int) -> np.ndarray | None:
    """The centre ``crop``² window of an (H, W, 3) frame, or None if the frame is smaller."""
    h, w = img.shape[:2]
    if h < crop or w < crop:
        return None
    y, x = (h - crop) // 2, (w - crop) // 2
    return img[y : y + crop, x : x + crop]


def triplet_margins(ds, teacher, crop: int = 256, batch: int = 32, device="cpu", progress=None):
    """Score every row of ``ds.table`` (a CorpusDataset); returns the margins record (above)."""
    import torch

    margins = np.full(len(ds.table), np.nan)
    pending: list[tuple[int, list[np.ndarray]]] = []

    def flush():
        if not pending:
            return
        x = torch.from_numpy(np.stack([np.stack(f) for _, f in pending]))  # (B, 3, c, c, 3) uint8
        x = x.to(device).permute(1, 0, 4, 2, 3).float() / 255  # (3, B, 3, c, c)
        with torch.no_grad():
            m = margin_db(teacher(x[0], x[2])["pred"], x[1], x[0], x[2])  # (B,)
        margins[[r for r, _ in pending]] = m.double().cpu().numpy()
        pending.clear()

    for row in range(len(ds.table)):
        imgs = row_images(ds, row)
        wins = [centre_window(im, crop) for im in imgs] if imgs else [None]
        if all(w is not None for w in wins):
            pending.append((row, wins))
        if len(pending) == batch:
            flush()
        if progress:
            progress(row + 1, len(ds.table))
    flush()

    clips: dict[str, dict[str, dict[str, list]]] = {}
    for (c, g, s, _), m in zip(ds.table, margins, strict=True):
        entry = clips.setdefault(ds.clips[int(c)].name, {}).setdefault(
            str(int(g)), {"start": [], "margin": []}
        )
        entry["start"].append(int(s))
        entry["margin"].append(None if math.isnan(m) else round(float(m), 3))
    return {"crop": int(crop), "clips": clips}


def describe(record: dict) -> dict:
    """Counts and summary of a margins record: triplets, scored, median margin, share below 0."""
    m = np.array(
        [x for gaps in record["clips"].values() for e in gaps.values() for x in e["margin"]],
        dtype=float,
    )  # None -> nan
    scored = m[~np.isnan(m)]
    return {
        "triplets": len(m),
        "scored": len(scored),
        "median": float(np.median(scored)) if len(scored) else float("nan"),
        "below_blend": float(np.mean(scored < 0)) if len(scored) else 0.0,
    }


def write_margins(record: dict, path: str | os.PathLike) -> Path:
    """Write the margins record atomically (temporary name, then rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, separators=(",", ":")) + "\n")
    tmp.replace(path)
    return path


def read_margins(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise VfiError(
            f"--triplet_margins {path} does not exist; write it with `vfi train check-triplets`"
        ) from None
    except (OSError, ValueError) as e:
        raise VfiError(f"--triplet_margins {path} is not a margins file ({e})") from None
    if not isinstance(record, dict) or not isinstance(record.get("clips"), dict):
        raise VfiError(f"--triplet_margins {path} is not a margins file (no 'clips' table)")
    return record


def keep_mask(table: np.ndarray, files: list[str], record: dict, min_margin: float) -> np.ndarray:
    """Which rows of a loader table (clip, gap, start, motion) to keep: margin >= ``min_margin``.

    ``files[c]`` names clip ``c``. Rows the record does not score (other clips or gaps, a null
    margin) are kept: the filter only removes what the teacher found it could not beat the blend on.
    """
    lookup: dict[tuple[str, int, int], float] = {}
    for file, gaps in record["clips"].items():
        for g, entry in gaps.items():
            for s, m in zip(entry["start"], entry["margin"], strict=True):
                if m is not None:
                    lookup[(file, int(g), int(s))] = float(m)
    keep = np.ones(len(table), bool)
    for i, (c, g, s, _) in enumerate(table):
        m = lookup.get((files[int(c)], int(g), int(s)))
        keep[i] = m is None or m >= min_margin
    return keep
