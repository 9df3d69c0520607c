"""Training losses: Laplacian-pyramid L1, ternary census, VGG19 perceptual, and their weighted sum.

All take predictions and ground truth as float (B, 3, H, W) in [0, 1] and return a scalar tensor.

- ``loss_lap``: L1 between Laplacian pyramids (5 levels). Each band is compared separately, so
  low-frequency colour errors and high-frequency edge errors both count, whatever the image size.
- ``loss_ter``: ternary census distance over 7x7 patches. It compares local structure (which
  neighbours are brighter or darker than the centre), robust to brightness changes between frames.
- ``loss_vgg``: L1 between VGG19 ImageNet features (see :mod:`train.vgg`). Only when the real
  weights are present; a random VGG would teach nothing, so the term is then off.
- ``loss_moving`` (optional, ``w_moving``): L1 averaged over the pixels where the middle frame shows
  something neither input frame shows at the same place (:func:`moving_weight`), per sample. A
  small object moving across a still scene is a few per cent of the pixels and nearly vanishes
  from the means above; here it weighs as much as a frame-filling motion (docs/results.md,
  seventh round). ``moving_halo`` widens those pixels by a band of still background around them,
  where a flow that bleeds past the object's edge shows (docs/results.md, nineteenth round).

:class:`Criterion` combines them on the final prediction and on the model's intermediate
predictions (coarse to fine) into ``loss_total``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _gauss_kernel(device, dtype) -> torch.Tensor:
    """5x5 binomial kernel (a Gaussian approximation), one copy per RGB channel: (3, 1, 5, 5)."""
    k1 = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=device, dtype=dtype)
    k2 = torch.outer(k1, k1)
    return (k2 / k2.sum()).expand(3, 1, 5, 5).contiguous()


def _blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    # Replicate padding so borders are not darkened (zero padding would invent an edge).
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), kernel, groups=x.shape[1])


def laplacian_pyramid(x: torch.Tensor, levels: int = 5) -> list[torch.Tensor]:
    """Band-pass images, finest first; the last entry is the low-pass residual."""
    kernel = _gauss_kernel(x.device, x.dtype)
    bands = []
    current = x
    for _ in range(levels - 1):
        if min(current.shape[-2:]) < 2:
            break
        low = _blur(current, kernel)
        down = low[..., ::2, ::2]
        # Upsample by zero insertion + the same blur (x4 to keep the mean), the classic expand step.
        up = torch.zeros_like(current)
        up[..., ::2, ::2] = down * 4
        up = _blur(up, kernel)
        bands.append(current - up)
        current = down
    bands.append(current)
    return bands


def loss_lap(
    pred: torch.Tensor,
    gt: torch.Tensor,
    levels: int = 5,
    gt_bands: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Sum over pyramid levels of the mean L1 between bands (coarser bands weigh more per pixel).

    ``gt_bands``: ``laplacian_pyramid(gt, levels)`` when the caller already has it (one ground
    truth is compared with several predictions per batch).
    """
    if gt_bands is None:
        gt_bands = laplacian_pyramid(gt, levels)
    total = pred.new_zeros(())
    for i, (a, b) in enumerate(zip(laplacian_pyramid(pred, levels), gt_bands)):
        total = total + (2**i) * (a - b).abs().mean()
    return total


def census(x: torch.Tensor, patch: int = 7) -> torch.Tensor:
    """Soft ternary census: (B, patch², H, W) normalised differences to each neighbour.

    Neighbour k is the grey image shifted by (k // patch, k % patch) - patch // 2, zero outside
    the frame; slicing a padded copy gives the values exactly (a convolution with one-hot kernels
    would do the same work as a matrix product, and in TF32 on GPUs it would round them).
    """
    gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]) * 255.0  # (B, 1, H, W)
    h, w = gray.shape[-2:]
    padded = F.pad(gray, (patch // 2,) * 4)  # (B, 1, H + 2r, W + 2r)
    neighbours = torch.cat(
        [padded[..., i : i + h, j : j + w] for i in range(patch) for j in range(patch)], dim=1
    )  # (B, P², H, W)
    diff = neighbours - gray
    # d / sqrt(0.81 + d²) squashes brightness differences to (-1, 1): a smooth "brighter/darker".
    return diff * torch.rsqrt(0.81 + diff * diff)


def loss_ter(
    pred: torch.Tensor, gt: torch.Tensor, patch: int = 7, gt_census: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean robust distance between the census transforms, ignoring the zero-padded border.

    ``gt_census``: ``census(gt, patch)`` when the caller already has it.
    """
    if gt_census is None:
        gt_census = census(gt, patch)
    d = census(pred, patch) - gt_census
    d2 = d * d
    dist = (d2 / (0.1 + d2)).mean(dim=1)  # (B, H, W)
    r = patch // 2
    return dist[..., r:-r, r:-r].mean()


def loss_vgg(pred: torch.Tensor, gt: torch.Tensor, vgg: nn.Module) -> torch.Tensor:
    """Weighted L1 between VGG19 features (``vgg`` from :func:`train.vgg.load_vgg19`)."""
    feats_p = vgg(pred)
    with torch.no_grad():
        feats_g = vgg(gt)
    total = pred.new_zeros(())
    for w, a, b in zip(vgg.layer_weights, feats_p, feats_g):
        total = total + w * (a - b).abs().mean()
    return total


MOVING_TAU = 0.1  # change (0..1) from which a pixel counts fully as moving in moving_weight


def moving_weight(
    gt: torch.Tensor, img0: torch.Tensor, img1: torch.Tensor, halo: int = 0
) -> torch.Tensor:
    """(B, 1, H, W) in [0, 1]: the smaller of |gt - img0| and |gt - img1| (largest channel), ramped
    to 1 at ``MOVING_TAU``. Zero where the middle frame equals either input (still background, and
    the trail an object leaves in one frame); high on the object at its middle position.

    ``halo`` > 0: each pixel takes the largest weight within ``halo`` pixels (a dilation), so the
    still background around a moving object counts as much as the object: there a flow that
    spreads the object's motion past its edge drags the background along."""
    d = torch.minimum((gt - img0).abs(), (gt - img1).abs()).amax(1, keepdim=True)
    w = (d / MOVING_TAU).clamp(max=1.0)  # (B, 1, H, W)
    if halo > 0:
        w = F.max_pool2d(w, 2 * halo + 1, stride=1, padding=halo)
    return w


def loss_moving(pred: torch.Tensor, gt: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Per-sample weighted mean of the L1 error (``weight`` from :func:`moving_weight`), averaged
    over the batch. A sample with less than one pixel's worth of weight contributes its weighted
    sum only (near zero): a still scene has nothing to learn here."""
    err = (pred - gt).abs().mean(1, keepdim=True)  # (B, 1, H, W)
    per_sample = (weight * err).sum((1, 2, 3)) / weight.sum((1, 2, 3)).clamp_min(1.0)  # (B,)
    return per_sample.mean()


def loss_total(
    out: dict,
    gt: torch.Tensor,
    *,
    w_lap: float = 1.0,
    w_ter: float = 1.0,
    w_vgg: float = 0.05,
    w_inter: float = 0.5,
    w_moving: float = 0.0,
    moving_halo: int = 0,
    vgg: nn.Module | None = None,
    inputs: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The training objective for one batch and its logged parts (detached).

    total = w_lap·lap + w_ter·ter + w_vgg·vgg + w_moving·mov     (final prediction ``out["pred"]``)
          + w_inter · mean_k (w_lap·lap_k + w_ter·ter_k + w_moving·mov_k)  (``out["preds"]``)

    ``inputs``: (img0, img1), needed by the moving-pixel term (``w_moving`` > 0; off by default),
    whose pixels ``moving_halo`` widens (:func:`moving_weight`).

    The logged ``loss_lap``/``loss_ter``/``loss_vgg`` are those of the final prediction, so they
    compare across models with and without intermediate outputs. VGG is not applied to the
    intermediate predictions: they are coarse, and VGG is the costly term. ``vgg=None``: the VGG
    term is off and ``loss_vgg`` is absent from the parts.
    """
    # Losses in fp32 even under autocast: small differences of large sums are bf16-fragile.
    pred = out["pred"].float()
    gt = gt.float()
    # The ground truth's pyramid and census serve the final and every intermediate prediction.
    with torch.no_grad():
        gt_bands, gt_census = laplacian_pyramid(gt), census(gt)
        moving = None
        if w_moving > 0:
            if inputs is None:
                raise ValueError("w_moving > 0 needs inputs=(img0, img1)")
            img0, img1 = inputs[0].float(), inputs[1].float()
            moving = moving_weight(gt, img0, img1, moving_halo)  # (B, 1, H, W)
    lap = loss_lap(pred, gt, gt_bands=gt_bands)
    ter = loss_ter(pred, gt, gt_census=gt_census)
    total = w_lap * lap + w_ter * ter
    parts = {"loss_lap": lap.detach(), "loss_ter": ter.detach()}
    if moving is not None:
        mov = loss_moving(pred, gt, moving)
        total = total + w_moving * mov
        parts["loss_moving"] = mov.detach()
    if vgg is not None and w_vgg > 0:
        perceptual = loss_vgg(pred, gt, vgg)
        total = total + w_vgg * perceptual
        parts["loss_vgg"] = perceptual.detach()
    # The final prediction may also be the last entry of preds: count it once.
    inter = [p for p in out.get("preds") or [] if p is not out["pred"]]
    if inter and w_inter > 0:
        extra = sum(
            w_lap * loss_lap(p.float(), gt, gt_bands=gt_bands)
            + w_ter * loss_ter(p.float(), gt, gt_census=gt_census)
            + (w_moving * loss_moving(p.float(), gt, moving) if moving is not None else 0.0)
            for p in inter
        )
        total = total + w_inter * extra / len(inter)
    parts["loss_total"] = total.detach()
    return total, parts
