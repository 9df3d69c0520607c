"""engine.metrics against values computed independently here (closed forms and direct loops)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from engine import metrics
from engine.errors import VfiInputError


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def test_psnr_of_a_known_mse():
    gt = torch.full((2, 3, 8, 8), 0.5, dtype=torch.float64)
    pred = gt.clone()
    pred[0] += 0.1  # MSE 0.01 -> 20 dB
    pred[1, :, :4] += 0.2  # half the pixels off by 0.2: MSE 0.02
    out = metrics.psnr(pred, gt)
    assert out.shape == (2,)
    assert out[0].item() == pytest.approx(20.0, abs=1e-9)
    assert out[1].item() == pytest.approx(-10 * math.log10(0.02), abs=1e-9)
    # data_range scales: the same error on 0..255 images gives the same dB
    assert metrics.psnr(pred * 255, gt * 255, data_range=255.0)[0].item() == pytest.approx(20.0)


def test_psnr_single_image_and_identical_cap():
    x = _rand(3, 5, 7)
    assert metrics.psnr(x, x).ndim == 0
    assert metrics.psnr(x, x).item() == pytest.approx(metrics.PSNR_CAP_DB)


def test_ie_is_mean_abs_error_on_255():
    gt = torch.zeros(1, 3, 4, 4)
    pred = torch.zeros(1, 3, 4, 4)
    pred[..., :2, :] = 6 / 255  # half the pixels off by 6 levels -> IE 3
    assert metrics.ie(pred, gt).item() == pytest.approx(3.0)


def test_quantize_rounds_half_to_even_and_clamps():
    x = torch.tensor([1.2 / 255, 2.6 / 255, -0.1, 1.3])
    assert (metrics.quantize(x) * 255).round().tolist() == [1, 3, 0, 255]
    # exact halves (representable with 2 levels): 0.5 -> 0, 1.5 -> 2
    assert metrics.quantize(torch.tensor([0.25, 0.75]), levels=2).tolist() == [0.0, 1.0]


@pytest.mark.parametrize("fn", [metrics.ssim_matlab, metrics.ssim])
def test_ssim_identical_is_one_and_drops_with_noise(fn):
    x = _rand(2, 3, 32, 40)
    assert torch.allclose(fn(x, x), torch.ones(2, dtype=fn(x, x).dtype), atol=1e-6)
    scores = []
    for sigma in (0.02, 0.05, 0.1, 0.2):
        noisy = (
            x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
        ).clamp(0, 1)
        scores.append(fn(noisy, x)[0].item())
    assert all(a > b for a, b in itertools.pairwise(scores)), scores
    assert scores[-1] < 0.9


@pytest.mark.parametrize("fn", [metrics.ssim_matlab, metrics.ssim])
def test_ssim_of_constant_images_by_hand(fn):
    # Flat images have zero variance everywhere: SSIM = (2ab + C1) / (a^2 + b^2 + C1) exactly.
    a, b = 0.3, 0.6
    c1 = 0.01**2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    out = fn(torch.full((1, 3, 16, 16), a), torch.full((1, 3, 16, 16), b))
    assert out.item() == pytest.approx(expected, rel=1e-5)


def _ssim_matlab_direct(x, y):
    """The reference computation: one 11x11x11 conv3d per moment, each product map padded."""
    g = torch.exp(-((torch.arange(11.0, dtype=torch.float64) - 5) ** 2) / (2 * 1.5**2))
    g = (g / g.sum()).to(x.dtype)
    w = (g[:, None, None] * g[None, :, None] * g[None, None, :])[None, None]

    def blur(v):
        return F.conv3d(F.pad(v, (5,) * 6, mode="replicate"), w)

    x, y = x.unsqueeze(1), y.unsqueeze(1)
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return m.mean((1, 2, 3, 4))


@pytest.mark.parametrize(("dtype", "atol"), [(torch.float64, 1e-10), (torch.float32, 2e-5)])
def test_ssim_matlab_matches_direct_3d_convolution(dtype, atol):
    # float64: the same quantity; float32: what the reference scripts compute, within its noise
    x = _rand(2, 3, 24, 30).double()
    y = (x + 0.1 * _rand(2, 3, 24, 30, seed=3).double() - 0.05).clamp(0, 1)
    ours, ref = metrics.ssim_matlab(y, x), _ssim_matlab_direct(y.to(dtype), x.to(dtype)).double()
    assert torch.allclose(ours, ref, atol=atol), (ours, ref)


def test_ssim_matlab_ignores_channel_order():
    # Symmetric window + symmetric padding: RGB (ours) and BGR (OpenCV in the references) agree.
    x, y = _rand(1, 3, 20, 20), _rand(1, 3, 20, 20, seed=5)
    a = metrics.ssim_matlab(x, y)
    b = metrics.ssim_matlab(x.flip(1), y.flip(1))
    assert torch.allclose(a, b, atol=1e-6)


def test_ssim_2d_matches_a_direct_window_loop():
    # Every 7x7 window inside the image, sample covariance, per channel; mean over all.
    x = _rand(1, 2, 9, 11).double()
    y = (x + 0.2 * _rand(1, 2, 9, 11, seed=9).double()).clamp(0, 1)
    c1, c2 = 0.01**2, 0.03**2
    vals = []
    for c in range(2):
        for i in range(9 - 6):
            for j in range(11 - 6):
                a = x[0, c, i : i + 7, j : j + 7].flatten()
                b = y[0, c, i : i + 7, j : j + 7].flatten()
                ma, mb = a.mean(), b.mean()
                va, vb = a.var(unbiased=True), b.var(unbiased=True)
                cov = ((a - ma) * (b - mb)).sum() / 48
                vals.append(
                    ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
                )
    expected = torch.stack(vals).mean()
    assert metrics.ssim(y, x).item() == pytest.approx(expected.item(), abs=1e-12)


def test_batched_equals_one_by_one():
    x, y = _rand(3, 3, 20, 24), _rand(3, 3, 20, 24, seed=2)
    for fn in (metrics.psnr, metrics.ssim_matlab, metrics.ssim, metrics.ie):
        batched = fn(x, y)
        single = torch.stack([fn(x[i], y[i]) for i in range(3)])
        assert torch.allclose(batched, single, atol=1e-6), fn.__name__


def test_bad_inputs_raise_vfi_input_error():
    with pytest.raises(VfiInputError, match="differ in shape"):
        metrics.psnr(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5))
    with pytest.raises(VfiInputError, match="float"):
        metrics.ssim_matlab(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), torch.zeros(1, 3, 4, 4))
    with pytest.raises(VfiInputError, match="at least 7x7"):
        metrics.ssim(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError):  # VfiInputError is also a ValueError
        metrics.ie(torch.zeros(3, 4), torch.zeros(3, 4))


def test_mean_helper():
    assert metrics.mean([1.0, 2.0, 6.0]) == 3.0
    assert math.isnan(metrics.mean([]))
