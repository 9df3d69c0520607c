"""--degrade_prob: JPEG-compressed input frames in training (train/data/degrade.py)."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from engine.errors import VfiError
from train.config import make_config
from train.data.degrade import dct_matrix, degrade_inputs, jpeg_like, quant_tables


def _photo_like(h=77, w=101, seed=0) -> np.ndarray:
    """Smooth shading, hard edges and fine texture: what JPEG treats differently. (H, W, 3) u8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([0.6 * x + 0.2, 0.5 * y + 0.3 * x, 0.8 - 0.5 * y], -1)
    img[h // 3 : 2 * h // 3, w // 4 : w // 2] = (0.9, 0.1, 0.2)  # a red block: chroma edges
    img += 0.06 * rng.standard_normal((h, w, 1))  # grain on every channel
    return (img.clip(0, 1) * 255).round().astype(np.uint8)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b) ** 2)))


def _ours(rgb: np.ndarray, quality: int) -> np.ndarray:
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    y = jpeg_like(x, torch.tensor([quality]))
    return (y[0].permute(1, 2, 0) * 255).round().byte().numpy()


def _pillow(rgb: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality, subsampling=2)  # 2 = 4:2:0
    return np.asarray(Image.open(buf).convert("RGB"))


@pytest.mark.parametrize("quality", [10, 30, 50, 75, 95])
def test_jpeg_like_matches_pillow(quality):
    # The same lossy steps as libjpeg (odd size: the edges are padded and cropped like its MCUs),
    # so the loss against the original is the same to a few hundredths of a dB, and the two
    # decoded images are far closer to each other than either is to the original.
    rgb = _photo_like()
    ours, ref = _ours(rgb, quality), _pillow(rgb, quality)
    assert ours.shape == rgb.shape
    assert abs(_psnr(ours, rgb) - _psnr(ref, rgb)) < 0.25
    assert _psnr(ours, ref) > _psnr(ref, rgb) + 8


def test_lower_quality_loses_more():
    rgb = _photo_like(seed=1)
    scores = [_psnr(_ours(rgb, q), rgb) for q in (5, 20, 40, 60, 80, 100)]
    assert scores == sorted(scores), scores
    assert scores[0] < scores[-1] - 5  # quality 5 against 100 (which still halves the chroma)


def test_tables_and_transform():
    d = dct_matrix()
    assert torch.allclose(d @ d.T, torch.eye(8), atol=1e-6)  # orthonormal: the inverse is d.T
    luma, chroma = quant_tables(torch.tensor([50, 100, 1]))
    assert luma[0, 0, 0] == 16 and chroma[0, 7, 7] == 99  # quality 50 is the Annex K table
    assert bool((luma[1] == 1).all())  # quality 100: every step 1
    assert bool((luma[2] == 255).all())  # quality 1: every step capped at 255


def test_only_the_chosen_samples_change():
    torch.manual_seed(0)
    img0, img1 = torch.rand(2, 64, 3, 24, 40).unbind(0)
    before = img0.clone()
    out0, out1 = degrade_inputs(img0, img1, 0.5, (20, 20))
    changed0 = (out0 != img0).flatten(1).any(1)
    changed1 = (out1 != img1).flatten(1).any(1)
    assert torch.equal(changed0, changed1)  # both frames of a sample, or neither
    assert 10 < int(changed0.sum()) < 54  # about half of 64
    assert torch.equal(out0[~changed0], img0[~changed0])
    same = jpeg_like(img0[changed0], torch.full((int(changed0.sum()),), 20))
    assert torch.equal(out0[changed0], same)  # the quality asked for
    assert torch.equal(img0, before)  # the batch given is not modified in place


def test_off_is_the_identity():
    img0, img1 = torch.rand(2, 4, 3, 16, 16).unbind(0)
    out0, out1 = degrade_inputs(img0, img1, 0.0, (30, 70))
    assert out0 is img0 and out1 is img1


def test_config_checks():
    cfg = make_config(1, exp_name="d", train_data="c", degrade_prob=0.3, degrade_quality="25,60")
    assert cfg.degrade_quality == (25, 60) and cfg.degrade_prob == 0.3
    assert make_config(1, exp_name="d", train_data="c").degrade_prob == 0.0
    with pytest.raises(VfiError, match="degrade_prob"):
        make_config(1, exp_name="d", train_data="c", degrade_prob=1.5)
    with pytest.raises(VfiError, match="1 <= LO <= HI <= 100"):
        make_config(1, exp_name="d", train_data="c", degrade_quality="70,30")
    with pytest.raises(VfiError, match="two JPEG qualities"):
        make_config(1, exp_name="d", train_data="c", degrade_quality="high")


def test_the_training_loop_degrades_the_inputs(tmp_path, monkeypatch):
    from click.testing import CliRunner
    from test_train_helpers import make_vimeo, tiny_model_json

    import train.loop
    from vfi_cli.main import cli

    calls = []

    def recording(img0, img1, prob, quality):
        out = degrade_inputs(img0, img1, prob, quality)
        calls.append((prob, quality, bool((out[0] != img0).any()), bool((out[1] != img1).any())))
        return out

    monkeypatch.setattr(train.loop, "degrade_inputs", recording)
    vimeo = make_vimeo(tmp_path / "v", n_train=2, n_test=1)
    args = ["train", "--exp_name", "d", "--workdir", str(tmp_path), "--device", "cpu"]
    args += ["--crop", "32", "--data_path", str(vimeo), "--num_workers", "0"]
    args += ["--model", str(tiny_model_json(tmp_path / "tiny.json")), "--batch_size", "1"]
    args += ["--epochs", "1", "--max_iters_per_epoch", "2"]
    result = CliRunner().invoke(cli, [*args, "--degrade_prob", "1", "--degrade_quality", "10,10"])
    assert result.exit_code == 0, result.output
    assert calls == [(1.0, (10, 10), True, True)] * 2  # every batch, both inputs changed

    calls.clear()
    result = CliRunner().invoke(cli, [*args, "--exp_name", "c"])
    assert result.exit_code == 0, result.output
    assert calls == []  # off by default
