"""Image-quality metrics for frame interpolation: PSNR, SSIM (two kinds) and IE.

Every function takes ``pred`` and ``gt`` as float tensors of the same shape, either one image
(C, H, W) -> a 0-d tensor, or a batch (B, C, H, W) -> a (B,) tensor of per-image scores (average
them yourself: the benchmarks average per image, never over pixels of the whole set). Values are in
[0, data_range] (data_range=1 for the engine's [0, 1] images). Nothing here rounds: benchmark
protocols that score 8-bit predictions call :func:`quantize` first, so the choice stays visible.

The two SSIMs are not interchangeable and papers differ by which one they quote:

- :func:`ssim_matlab`: the variant of the RIFE / EMA-VFI / VFIMamba benchmark scripts (used for
  Vimeo90K, UCF101, SNU-FILM, X4K). The colour image is treated as a (C, H, W) *volume*: one 3-D
  Gaussian window 11x11x11 (sigma 1.5) slides over channels as well as pixels, with replicate
  padding of 5 on every side (so the map has the input's size), constants K1=0.01, K2=0.03.
- :func:`ssim`: the standard 2-D SSIM as scikit-image's ``structural_similarity`` computes it with
  its defaults (used by the Xiph protocol): per channel, a 7x7 uniform window, sample covariance
  (N/(N-1)), only the window positions that fit inside the image, averaged over pixels and channels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from engine.errors import VfiInputError

# PSNR of identical images is infinite; cap it so that means over a set stay finite.
PSNR_CAP_DB = 100.0


def _check(pred: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Validate and return 4-D views plus whether the input was a single (C, H, W) image."""
    for name, x in (("pred", pred), ("gt", gt)):
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise VfiInputError(
                f"{name} must be a float tensor, got {getattr(x, 'dtype', type(x))}"
            )
        if x.ndim not in (3, 4):
            raise VfiInputError(f"{name} must be (C, H, W) or (B, C, H, W), got {tuple(x.shape)}")
    if pred.shape != gt.shape:
        raise VfiInputError(
            f"pred and gt differ in shape: {tuple(pred.shape)} vs {tuple(gt.shape)}"
        )
    single = pred.ndim == 3
    if single:
        pred, gt = pred.unsqueeze(0), gt.unsqueeze(0)
    return pred, gt, single


def _out(x: torch.Tensor, single: bool) -> torch.Tensor:
    return x[0] if single else x


def quantize(x: torch.Tensor, levels: int = 255) -> torch.Tensor:
    """Round a [0, 1] image to the nearest of ``levels`` + 1 steps (8-bit by default), still in [0, 1].

    Rounds half to even, as ``numpy.round`` / ``torch.round`` do in the reference scripts.
    """
    return torch.round(x.clamp(0, 1) * levels) / levels


def psnr(pred: torch.Tensor, gt: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, per image: -10 log10(MSE / data_range^2).

    The mean squared error is accumulated in float64 (the reference scripts use numpy float64).
    Identical images give :data:`PSNR_CAP_DB` instead of infinity.
    """
    pred, gt, single = _check(pred, gt)
    diff = pred.double() - gt.double()
    mse = diff.pow(2).flatten(1).mean(1)  # (B,)
    floor = data_range**2 * 10 ** (-PSNR_CAP_DB / 10)
    out = -10 * torch.log10(mse.clamp_min(floor) / data_range**2)
    return _out(out, single)


def ie(pred: torch.Tensor, gt: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Interpolation error: mean absolute error on the 0..255 scale, per image (Middlebury's IE).

    The Middlebury protocol first rounds the prediction to 8 bits (call :func:`quantize`).
    """
    pred, gt, single = _check(pred, gt)
    err = (pred.double() - gt.double()).abs().flatten(1).mean(1) * (255.0 / data_range)
    return _out(err, single)


def gaussian_1d(size: int, sigma: float, device=None, dtype=torch.float32) -> torch.Tensor:
    """A normalised 1-D Gaussian of odd or even ``size``, centred on index size // 2."""
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).to(device=device, dtype=dtype)


def _blur_volume(v: torch.Tensor, g: torch.Tensor, pad: int) -> torch.Tensor:
    """Replicate-pad a (N, D, H, W) volume by ``pad`` on every side, then filter it with the 3-D
    window g x g x g ('valid'), as one separable pass per axis.

    The reference convolves once with the 11^3 window; three 1-D passes give the same result up to
    float rounding. The depth (colour) pass runs first because it shrinks the volume the most
    (3 + 2*5 padded channels -> 3), which keeps the metric cheap on the CPU.
    """
    k = g.numel()
    first, last = v[:, :1], v[:, -1:]
    v = torch.cat([first.expand(-1, pad, -1, -1), v, last.expand(-1, pad, -1, -1)], 1)
    d = v.shape[1] - k + 1
    v = sum(g[i] * v[:, i : i + d] for i in range(k))  # (N, D', H, W)
    n, _, h, w = v.shape
    v = F.pad(v.reshape(n * d, 1, h, w), (pad,) * 4, mode="replicate")
    v = F.conv2d(F.conv2d(v, g.view(1, 1, 1, k)), g.view(1, 1, k, 1))
    return v.reshape(n, d, v.shape[-2], v.shape[-1])


def ssim_matlab(
    pred: torch.Tensor,
    gt: torch.Tensor,
    data_range: float = 1.0,
    window_size: int = 11,
    sigma: float = 1.5,
) -> torch.Tensor:
    """The 3-D "ssim_matlab" SSIM of the RIFE / EMA-VFI / VFIMamba benchmarks, per image.

    The (C, H, W) image is one volume; the window is a 3-D Gaussian of side
    ``min(window_size, H, W)`` (sigma 1.5), the volume is replicate-padded by 5 on every side as in
    the reference (so the SSIM map covers every voxel), and the map is averaged. Symmetric in
    ``pred`` and ``gt``, and in the channel order (RGB or BGR give the same value).
    """
    pred, gt, single = _check(pred, gt)
    h, w = pred.shape[-2:]
    g = gaussian_1d(min(window_size, h, w), sigma, device=pred.device, dtype=torch.float64)
    pad = 5  # fixed in the reference, whatever the window side
    # float64: flat regions have near-zero variance, where float32 cancellation in E[x^2] - E[x]^2
    # moves the score in the 5th decimal (the reference runs float32 and carries that noise).
    x, y = pred.double(), gt.double()  # (B, C, H, W): colour is the depth axis of the volume
    b = x.shape[0]
    # Replicate padding commutes with pointwise products, so the five local moments come from one
    # batched blur (the reference pads each product map separately; same values).
    stats = _blur_volume(torch.cat([x, y, x * x, y * y, x * y], 0), g, pad)  # (5B, C', H', W')
    mu_x, mu_y, e_xx, e_yy, e_xy = stats.split(b, 0)
    var_x = e_xx - mu_x.pow(2)
    var_y = e_yy - mu_y.pow(2)
    cov = e_xy - mu_x * mu_y
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x.pow(2) + mu_y.pow(2) + c1) * (var_x + var_y + c2)
    )
    return _out(ssim_map.flatten(1).mean(1), single)


def ssim(
    pred: torch.Tensor,
    gt: torch.Tensor,
    data_range: float = 1.0,
    win_size: int = 7,
) -> torch.Tensor:
    """Standard 2-D SSIM per image, as ``skimage.metrics.structural_similarity`` with its defaults
    (``channel_axis`` set, ``gaussian_weights=False``): the Xiph protocol's SSIM.

    Per channel: uniform ``win_size`` x ``win_size`` window, sample (N-1) covariance, constants
    K1=0.01, K2=0.03; only window positions inside the image (skimage filters the whole image and
    then crops (win_size-1)//2 pixels, which leaves exactly these); mean over pixels and channels.
    Computed in float64, like skimage.
    """
    pred, gt, single = _check(pred, gt)
    h, w = pred.shape[-2:]
    if min(h, w) < win_size:
        raise VfiInputError(f"ssim needs images of at least {win_size}x{win_size}, got {h}x{w}")
    x, y = pred.double(), gt.double()
    b = x.shape[0]
    n = win_size * win_size
    cov_norm = n / (n - 1)  # sample covariance, as skimage's use_sample_covariance=True
    # avg_pool2d with stride 1 is the uniform filter at every position where the window fits.
    stats = F.avg_pool2d(torch.cat([x, y, x * x, y * y, x * y], 0), win_size, stride=1)
    mu_x, mu_y, e_xx, e_yy, e_xy = stats.split(b, 0)  # each (B, C, H-6, W-6)
    var_x = cov_norm * (e_xx - mu_x.pow(2))
    var_y = cov_norm * (e_yy - mu_y.pow(2))
    cov = cov_norm * (e_xy - mu_x * mu_y)
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x.pow(2) + mu_y.pow(2) + c1) * (var_x + var_y + c2)
    )
    return _out(s.flatten(1).mean(1), single)


def mean(values) -> float:
    """Plain mean of a list of floats (NaN for an empty list), the per-set average of benchmarks."""
    values = [float(v) for v in values]
    return sum(values) / len(values) if values else math.nan
