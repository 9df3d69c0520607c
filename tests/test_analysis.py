"""Scene cuts and duplicates on thumbnails of generated frames."""

from __future__ import annotations

import torch

from engine.analysis import SceneDetector, is_duplicate, scene_score, thumbnail
from tests.clips import pattern


def thumb(i, scene=0, size=(160, 90), depth=8):
    return thumbnail(torch.from_numpy(pattern(i, *size, scene=scene, depth=depth)), depth)


def test_thumbnail_shape_and_range():
    t = thumbnail(torch.from_numpy(pattern(0, 1920, 1080)), 8)
    assert t.shape == (72, 128)
    assert float(t.min()) >= 0 and float(t.max()) <= 1
    small = thumbnail(torch.from_numpy(pattern(0, 3, 5)), 8)  # tiny frames work too
    assert small.shape[1] <= 3
    deep = thumbnail(torch.from_numpy(pattern(0, 64, 48, depth=10)), 10)
    assert torch.allclose(deep, thumbnail(torch.from_numpy(pattern(0, 64, 48)), 8), atol=0.01)


def test_cut_scores_far_above_motion():
    motion = max(scene_score(thumb(i), thumb(i + 1)) for i in range(10))
    cut = scene_score(thumb(5, 0), thumb(6, 1))
    assert motion < 0.05
    assert cut > 0.2


def test_detector_finds_the_cut_only():
    det = SceneDetector()
    scenes = [0] * 8 + [1] * 8
    flags = [det.push(thumb(i, s)) for i, s in enumerate(scenes)]
    assert flags == [i == 8 for i in range(16)]


def test_detector_ignores_sustained_high_scores():
    det = SceneDetector(threshold=0.01)  # a pan scoring above the threshold every frame
    flags = [det.push(thumb(4 * i)) for i in range(12)]
    assert not any(flags[4:])


def test_duplicates():
    a = pattern(3, 160, 90)
    noisy = torch.from_numpy(a).to(torch.int16) + torch.randint(-2, 3, a.shape, dtype=torch.int16)
    noisy = noisy.clamp(0, 255).to(torch.uint8)
    assert is_duplicate(thumbnail(torch.from_numpy(a)), thumbnail(noisy))
    assert not is_duplicate(thumb(3), thumb(4))
