"""Bilateral local correlation: a matching cost for the finer motion-decoder levels (``flow_corr``).

Why: on our dev sets most of the gap to RIFE HDv3 sits in a few per cent of the pixels, small objects
moving 4-16 px that the coarse levels miss (docs/results.md, seventh round). RIFE's own flow passed
through our 1/4 grid and back loses 0.03 dB on ucf101-dev21, so the grid is fine; what our 1/8 and
1/4 levels lack is a way to *find* a displacement the coarser level did not propose. Three 3x3 convolutions
over warped features can only infer it; a cost volume measures it.

Convention: at a pixel x of the output time, with both frames' features already warped towards t by
the current flows, the candidate correction d (in pixels of this level's grid, |dx|, |dy| <= r)
compares frame 0 at x + d with frame 1 at x - d, the symmetric (bilateral) search of a linear motion
through x. The score is the cosine similarity of the two feature vectors, so it is in [-1, 1]
whatever the feature scale. Channel k = (dy + r) * (2r + 1) + (dx + r). Outside the map the features
are zero (score 0).

:func:`bilateral_correlation` is a loop over the (2r+1)^2 shifts of views into the padded features:
besides its inputs it holds one product at a time and the scores, about twice the output (an
unfold-based version would hold (2r+1)^2 copies of the features: 2.4 GB at the 1/4 grid of a 4K
frame). :func:`bilateral_correlation_reference` is the slow per-displacement twin the tests compare
it with. CUDA inference takes the Triton twin in ``engine/model/triton_kernels.py`` instead (the
same scores in one pass; ``VFI_TRITON_KERNELS=0`` turns it off, ``fastpath.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.model import fastpath
from engine.model.encoder import conv


def bilateral_correlation(f0: torch.Tensor, f1: torch.Tensor, radius: int) -> torch.Tensor:
    """f0, f1 (B, C, h, w), warped to time t -> (B, (2r+1)^2, h, w) cosine scores."""
    kernels = fastpath.triton_kernels(f0)
    if kernels is not None:  # one pass over the features, inference only (fastpath.py)
        return kernels.bilateral_correlation(F.normalize(f0, dim=1), F.normalize(f1, dim=1), radius)
    h, w = f0.shape[-2:]
    r = radius
    p0 = F.pad(F.normalize(f0, dim=1), (r, r, r, r))  # (B, C, h+2r, w+2r)
    p1 = F.pad(F.normalize(f1, dim=1), (r, r, r, r))
    out = []
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            a = p0[:, :, r + dy : r + dy + h, r + dx : r + dx + w]  # frame 0 at x + d
            b = p1[:, :, r - dy : r - dy + h, r - dx : r - dx + w]  # frame 1 at x - d
            out.append((a * b).sum(1))
    return torch.stack(out, 1)


def bilateral_correlation_reference(
    f0: torch.Tensor, f1: torch.Tensor, radius: int
) -> torch.Tensor:
    """The same scores from the definition, one displacement at a time with torch.roll and an
    explicit validity mask (slow; for tests)."""
    b, _, h, w = f0.shape
    n0, n1 = F.normalize(f0, dim=1), F.normalize(f1, dim=1)
    ys = torch.arange(h).view(h, 1)
    xs = torch.arange(w).view(1, w)
    out = torch.zeros(b, (2 * radius + 1) ** 2, h, w, dtype=f0.dtype)
    k = 0
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            a = torch.roll(n0, shifts=(-dy, -dx), dims=(2, 3))  # a[y, x] = n0[y + dy, x + dx]
            c = torch.roll(n1, shifts=(dy, dx), dims=(2, 3))  # c[y, x] = n1[y - dy, x - dx]
            valid = (
                (ys + dy >= 0) & (ys + dy < h) & (xs + dx >= 0) & (xs + dx < w)
                & (ys - dy >= 0) & (ys - dy < h) & (xs - dx >= 0) & (xs - dx < w)
            )  # fmt: skip
            out[:, k] = (a * c).sum(1) * valid
            k += 1
    return out


class CorrelationInput(nn.Module):
    """Feeds a level's bilateral correlation into its hidden state.

    The scores go through one 3x3 convolution and a zero-initialised 1x1 projection whose output is
    added to the level's first hidden layer: switching ``flow_corr`` on leaves a trained model's
    output unchanged, and the new path learns from there.
    """

    def __init__(self, radius: int, hidden: int):
        super().__init__()
        self.radius = radius
        self.body = conv((2 * radius + 1) ** 2, hidden)
        self.proj = nn.Conv2d(hidden, hidden, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, f0: torch.Tensor, f1: torch.Tensor) -> torch.Tensor:
        """Warped features (B, C, h, w) of both frames -> (B, hidden, h, w), added to the level."""
        return self.proj(self.body(bilateral_correlation(f0, f1, self.radius)))
