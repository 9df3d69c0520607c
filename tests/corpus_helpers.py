"""Shared by the corpus-analysis tests: a tiny prepared corpus and a stub teacher."""

from __future__ import annotations

import torch
from clips import make_clip


def square_corpus(tmp_path_factory, gaps, frames: int):
    """A corpus of two clips of a square moving steadily over a gradient (two colour schemes)."""
    from train.data.corpus import prepare_corpus

    src = tmp_path_factory.mktemp("train")
    (src / "videos").mkdir()
    for k in range(2):
        make_clip(src / "videos" / f"{k}.mp4", frames=frames, size=(96, 64), scenes=[k] * frames)
    out = tmp_path_factory.mktemp("cache") / "corpus"
    prepare_corpus(src, out, pack_mb=1, gaps=gaps, workers=1)
    return out


class BlendTeacher:
    """Predicts the blend and a constant flow of ``shift`` px in x: margins 0, known motion."""

    def __init__(self, shift: float = 0.0):
        self.shift = shift

    def __call__(self, a, b):
        flow = torch.zeros(a.shape[0], 4, *a.shape[2:])
        flow[:, 0], flow[:, 2] = -self.shift, self.shift
        return {"flow": flow, "pred": (a + b) / 2}
