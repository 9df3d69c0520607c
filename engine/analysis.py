"""Content analysis on small thumbnails: scene cuts and duplicate frames (pure torch, CPU-cheap).

Both work on a luma thumbnail 128 pixels wide. The pipeline's decode thread gets it from the
reader (:func:`engine.video.reader.VideoFile.frames` with ``thumb_width``: swscale area-scales the
decoded frame to 128 px RGB, then :func:`luma_thumbnail` mixes the luma, ~0.1 ms). :func:`thumbnail`
makes one from a full RGB tensor (slower: ~1-5 ms at 1080p, more with busy cores), for the rest.

- Scene cut between two frames: ``scene_score`` (mean of the thumbnails' mean absolute difference
  and of their 16-bin luma histogram distance, both in [0, 1]) above ``threshold`` *and* well above
  the recent scores, so that a fast pan (high scores all along) is not taken for a cut. Measured on
  real clips: motion scores ~0.005-0.05, hard cuts 0.15-0.6; the default threshold is 0.12.
- Duplicate: the largest thumbnail difference below ``dup_threshold`` (default 0.02, about 5/255),
  which tolerates compression noise on repeated frames (anime on twos, pulldown) but not motion.
"""

from __future__ import annotations

from collections import deque

DEFAULT_SCENE_THRESHOLD = 0.12
DEFAULT_DUP_THRESHOLD = 0.02
THUMB_WIDTH = 128
_LUMA = (0.2126, 0.7152, 0.0722)


def thumbnail(image, depth: int = 8, width: int = THUMB_WIDTH):
    """Integer or float RGB (H, W, 3) -> float luma thumbnail (h, width) in [0, 1]."""
    import torch
    import torch.nn.functional as F

    h, w = image.shape[:2]
    step = max(1, w // (2 * width))  # stride first: cheap on 4K frames, area-average after
    x = image[::step, ::step].permute(2, 0, 1).to(torch.float32)  # (3, h', w')
    if not image.is_floating_point():
        x = x / (255.0 if depth <= 8 else 65535.0)
    tw = min(width, x.shape[2])
    th = max(1, min(x.shape[1], round(tw * h / w)))
    # Average each channel down first, then mix: luma is linear, and the mix on the small image
    # costs nothing (on the strided full image it took tens of ms with contended torch threads).
    small = F.adaptive_avg_pool2d(x[None], (th, tw))[0]  # (3, th, tw)
    return small[0] * _LUMA[0] + small[1] * _LUMA[1] + small[2] * _LUMA[2]


def thumb_size(width: int, height: int, thumb_width: int = THUMB_WIDTH) -> tuple[int, int]:
    """(w, h) of the thumbnail of a width x height frame: ``thumb_width`` wide, same aspect."""
    tw = max(1, min(thumb_width, width))
    return tw, max(1, min(height, round(tw * height / width)))


def luma_thumbnail(small_rgb, depth: int = 8):
    """A small integer RGB array (h, w, 3), already scaled down -> float luma (h, w) in [0, 1]."""
    import numpy as np
    import torch

    x = np.asarray(small_rgb, dtype=np.float32)
    scale = 1.0 / (255.0 if depth <= 8 else 65535.0)
    luma = (x[..., 0] * _LUMA[0] + x[..., 1] * _LUMA[1] + x[..., 2] * _LUMA[2]) * scale
    return torch.from_numpy(np.ascontiguousarray(luma))  # (h, w) float32


def scene_score(a, b) -> float:
    """Dissimilarity of two thumbnails in [0, 1]: 0 = identical, ~0.3+ = different shots."""
    import torch

    mad = (a - b).abs().mean()
    ha = torch.histc(a, bins=16, min=0.0, max=1.0) / a.numel()
    hb = torch.histc(b, bins=16, min=0.0, max=1.0) / b.numel()
    hist = (ha - hb).abs().sum() / 2
    return float((mad + hist) / 2)


def is_duplicate(a, b, threshold: float = DEFAULT_DUP_THRESHOLD) -> bool:
    """True when no thumbnail pixel differs by ``threshold`` or more."""
    return float((a - b).abs().max()) < threshold


class SceneDetector:
    """Streaming cut detection: feed consecutive thumbnails, get True where a cut precedes one.

    Keeps the last few scores (constant memory) to require a cut to stand out from recent motion.
    """

    def __init__(self, threshold: float = DEFAULT_SCENE_THRESHOLD, history: int = 8, ratio=3.0):
        if not 0 < threshold <= 1:
            from engine.errors import VfiError

            raise VfiError(f"--scene-threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.ratio = ratio
        self.recent: deque[float] = deque(maxlen=history)
        self.prev = None
        self.last_score = 0.0

    def push(self, thumb) -> bool:
        prev, self.prev = self.prev, thumb
        if prev is None:
            return False
        score = scene_score(prev, thumb)
        self.last_score = score
        baseline = sorted(self.recent)[len(self.recent) // 2] if self.recent else 0.0
        self.recent.append(score)
        return score > self.threshold and score > self.ratio * baseline
