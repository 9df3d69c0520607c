"""Compression artefacts on the input frames of a training batch (``--degrade_prob``).

Real footage reaches the model compressed: ucf101's frames are MPEG-4 at 320x240, phone and web
video is H.264 at modest bitrates. The corpus's frames are far cleaner. So with
``--degrade_prob p`` a share p of the samples in each batch get their two *input* frames passed
through baseline JPEG at a random quality of ``--degrade_quality LO,HI`` (one quality per
sample, for both of its frames, as a video encoder holds its quantiser across neighbouring frames). The
middle frame, the target, stays clean. JPEG stands in for the intra coding of video codecs:
8x8 DCT blocks quantised by a quality-scaled table, and chroma at half resolution.

:func:`jpeg_like` is that codec in torch, on the batch's device: it is everything of JPEG that
loses information (colour conversion, 4:2:0 chroma, 8x8 DCT, quantisation with the IJG quality
scaling of the ITU T.81 Annex K tables, 8-bit samples). The entropy coding is left out, because
it is lossless. ``tests/test_degrade.py`` checks it against Pillow's JPEG encoder.

Frames are float RGB in [0, 1], (B, 3, H, W), any H and W: the edges are replicated up to a
multiple of 16, as libjpeg does, and cropped off again.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

BLOCK = 8
MCU = 16  # a 4:2:0 macroblock: 16x16 luma, 8x8 of each chroma plane

# ITU T.81 Annex K.1: the example quantisation tables at quality 50 (row-major, natural order).
LUMA_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
CHROMA_TABLE = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
    *((99,) * 8 for _ in range(4)),
)


def quant_tables(quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) qualities 1..100 -> luma and chroma tables (B, 8, 8), scaled as libjpeg does."""
    q = quality.clamp(1, 100).float()
    scale = torch.where(q < 50, 5000 / q, 200 - 2 * q)[:, None, None]  # percent of the base table
    out = []
    for base in (LUMA_TABLE, CHROMA_TABLE):
        t = torch.tensor(base, dtype=torch.float32, device=quality.device)
        out.append(torch.floor((t * scale + 50) / 100).clamp(1, 255))
    return out[0], out[1]


def dct_matrix(device=None) -> torch.Tensor:
    """The orthonormal 8-point DCT-II as a matrix D (8, 8): coefficients = D @ block @ D.T."""
    k = torch.arange(BLOCK, dtype=torch.float64)[:, None]
    n = torch.arange(BLOCK, dtype=torch.float64)[None, :]
    d = torch.cos((2 * n + 1) * k * math.pi / (2 * BLOCK)) * math.sqrt(2 / BLOCK)
    d[0] /= math.sqrt(2)
    return d.float().to(device)


def _blocks(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W) -> (B, H/8, W/8, 8, 8)."""
    b, h, w = x.shape
    return x.reshape(b, h // BLOCK, BLOCK, w // BLOCK, BLOCK).transpose(2, 3)


def _unblocks(x: torch.Tensor) -> torch.Tensor:
    """(B, H/8, W/8, 8, 8) -> (B, H, W)."""
    b, nh, nw = x.shape[:3]
    return x.transpose(2, 3).reshape(b, nh * BLOCK, nw * BLOCK)


def _quantise(plane: torch.Tensor, table: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """One plane (B, H, W) of 0..255 samples through DCT ``d``, quantisation and the inverse."""
    coef = d @ _blocks(plane - 128) @ d.T  # (B, H/8, W/8, 8, 8)
    t = table[:, None, None]  # (B, 1, 1, 8, 8)
    coef = torch.round(coef / t) * t
    return _unblocks(d.T @ coef @ d) + 128


def jpeg_like(x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """Baseline 4:2:0 JPEG at ``quality`` (B,) of float RGB frames (B, 3, H, W) in [0, 1]."""
    h, w = x.shape[-2:]
    ph, pw = -h % MCU, -w % MCU
    rgb = F.pad(x.float() * 255, (0, pw, 0, ph), mode="replicate")  # (B, 3, H', W')
    r, g, bl = rgb.unbind(1)
    # JFIF's full-range BT.601 Y'CbCr
    y = 0.299 * r + 0.587 * g + 0.114 * bl
    cb = -0.168736 * r - 0.331264 * g + 0.5 * bl + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * bl + 128
    y, cb, cr = (torch.round(c).clamp(0, 255) for c in (y, cb, cr))  # 8-bit samples
    chroma = F.avg_pool2d(torch.stack([cb, cr], 1), 2)  # (B, 2, H'/2, W'/2): 4:2:0
    luma_t, chroma_t = quant_tables(quality.to(x.device))
    d = dct_matrix(x.device)
    y = _quantise(y, luma_t, d).round().clamp(0, 255)
    cb, cr = (_quantise(c, chroma_t, d) for c in chroma.unbind(1))
    # libjpeg's default "fancy" upsampling is a triangle filter: bilinear at pixel centres
    chroma = F.interpolate(torch.stack([cb, cr], 1), scale_factor=2, mode="bilinear")
    cb, cr = (chroma.round().clamp(0, 255) - 128).unbind(1)
    r = y + 1.402 * cr
    g = y - 0.344136 * cb - 0.714136 * cr
    bl = y + 1.772 * cb
    out = torch.stack([r, g, bl], 1).round().clamp(0, 255) / 255  # (B, 3, H', W')
    return out[..., :h, :w].to(x.dtype)


def degrade_inputs(
    img0: torch.Tensor, img1: torch.Tensor, prob: float, quality: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """A share ``prob`` of the samples get both inputs through :func:`jpeg_like`, one random
    quality in ``quality`` (inclusive) per sample; the others are returned as they are.

    The whole batch is compressed and the chosen samples picked with ``torch.where``: fixed shapes
    and no read of the draw on the host, so the training loop's GPU queue never waits on it.
    """
    if prob <= 0:
        return img0, img1
    b = img0.shape[0]
    hit = (torch.rand(b, device=img0.device) < prob)[:, None, None, None]  # (B, 1, 1, 1)
    q = torch.randint(quality[0], quality[1] + 1, (b,), device=img0.device)
    done = jpeg_like(torch.cat([img0, img1]), torch.cat([q, q])).chunk(2)  # both frames, one q
    return torch.where(hit, done[0], img0), torch.where(hit, done[1], img1)
