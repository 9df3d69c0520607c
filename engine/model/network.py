"""VFINet: the hybrid Mamba2 + gated-window-attention frame interpolation network.

Conventions: frames are float RGB in [0, 1], (B, 3, H, W), H and W multiples of
``alignment / scale`` (the Interpolator pads for you); t in [0, 1] (a float or a (B,) tensor) is the
time of the output between img0 (t=0) and img1 (t=1). Flows are in pixels at the resolution of the
tensor they move; pyramids are lists; the motion decoder runs coarse to fine (1/16, 1/8, 1/4).

Data flow (names are the module attributes, which prefix the state-dict keys):

    encoder       shared CNN pyramid of both frames: 1/1, 1/2, 1/4, 1/8, 1/16
    backbone      hybrid stages (Mamba2 scans + gated window attention) at 1/16, then 1/8
    feature_warp  (phase 2) flow-guided alignment of the 1/8 tokens between the two frames
    flow          coarse-to-fine flow F_t->0, F_t->1 + occlusion mask, conditioned on t
    flow_corr     (flow_corr) bilateral cost volumes feeding the 1/8 and 1/4 flow levels
    flow_full     (flow_refine_full) one more update on the 1/4 grid from full-resolution warps
    refine        U-Net residual over the mask blend of the backward-warped frames
    texture       (phase 3) full-resolution texture residual for 4K

    output = clamp(m * warp(img0, F_t->0) + (1 - m) * warp(img1, F_t->1) + residual, 0, 1)

The backbone does not depend on t: :meth:`encode` runs once per frame pair and :meth:`decode` once per
output time, which is how the video pipeline makes several frames per pair. With ``scale < 1`` the
encoder, backbone and motion decoder see the frames downscaled (large motion, large frames) and the
flow is upsampled; warping and refinement stay at full resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engine.checks import check_frames
from engine.config import ModelConfig
from engine.errors import VfiInputError
from engine.model.backbone import Stage
from engine.model.corr import CorrelationInput
from engine.model.encoder import Encoder, conv
from engine.model.flow import FlowDecoder, FullResFlow
from engine.model.refine import FLOW_NORM, Refine, TexturePath
from engine.model.warp import backward_warp, resize_flow

_STRIDE_LEVEL = {2: 0, 4: 1, 8: 2, 16: 3}  # encoder level holding features at 1/stride


@dataclass
class PairState:
    """What :meth:`VFINet.encode` computes once per frame pair."""

    img0: torch.Tensor  # (B, 3, H, W)
    img1: torch.Tensor
    full_feats: list[torch.Tensor]  # encoder 1/2, 1/4 of the full-resolution frames, (2B, C, h, w)
    motion_feats: list[torch.Tensor]  # inputs of the motion decoder, coarse first, (2B, C, h, w)


class FeatureWarp(nn.Module):
    """Phase 2: align the 1/8 tokens of each frame with the other frame's before the 1/8 stage.

    A small head predicts the flows F_0->1 and F_1->0 at 1/16 from the coarse stage's output; the
    other frame's 1/8 tokens are warped onto each frame's grid and fused through a zero-initialised
    1x1 convolution, so switching this on leaves a phase-1 model's output unchanged at first.
    """

    def __init__(self, coarse_dim: int, dim: int, hidden: int):
        super().__init__()
        self.head = nn.Sequential(
            conv(2 * coarse_dim, hidden), conv(hidden, hidden), nn.Conv2d(hidden, 4, 3, padding=1)
        )
        self.fuse = nn.Conv2d(2 * dim, dim, 1)
        nn.init.zeros_(self.fuse.weight)
        nn.init.zeros_(self.fuse.bias)

    def forward(self, coarse: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """coarse (2B, Cc, h/2, w/2), x (2B, C, h, w) -> the correction to add to x."""
        c0, c1 = coarse.chunk(2, 0)
        flow = self.head(
            torch.cat([torch.cat([c0, c1], 1), torch.cat([c1, c0], 1)], 0)
        )  # (2B, 4, .)
        flow = resize_flow(flow[:, :2], x.shape[-2:])  # frame k -> the other frame
        x0, x1 = x.chunk(2, 0)
        other = backward_warp(torch.cat([x1, x0], 0), flow)  # the other frame on this frame's grid
        return self.fuse(torch.cat([x, other], 1))


class VFINet(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = cfg = config
        self.encoder = Encoder(cfg.enc_dims)
        stages, links = [], []
        for i, st in enumerate(cfg.stages):
            stages.append(Stage(st, cfg, cfg.enc_dims[_STRIDE_LEVEL[st.stride]]))
            if i:
                links.append(nn.Conv2d(cfg.stages[i - 1].dim, st.dim, 1))
        self.backbone = nn.ModuleDict(
            {"stages": nn.ModuleList(stages), "links": nn.ModuleList(links)}
        )
        if cfg.feature_warp:
            self.feature_warp = FeatureWarp(cfg.stages[0].dim, cfg.stages[-1].dim, cfg.flow_dims[0])
        motion_dims = [st.dim for st in cfg.stages] + [cfg.enc_dims[1]]
        self.flow = FlowDecoder(tuple(motion_dims), cfg.flow_dims[: len(motion_dims)])
        if cfg.flow_corr:  # one per level after the first (1/8, 1/4)
            self.flow_corr = nn.ModuleList(
                CorrelationInput(cfg.flow_corr_radius, hd)
                for hd in cfg.flow_dims[1 : len(motion_dims)]
            )
        self.refine = Refine(cfg.enc_dims, cfg.refine_dims, cfg.flow_dims[len(motion_dims) - 1])
        if cfg.flow_refine_full:
            hid = cfg.flow_dims[len(motion_dims) - 1]
            self.flow_full = FullResFlow(hid, hid)
        if cfg.texture_path:
            n_in = 3 * 5 + self.refine.out_dim
            self.texture = TexturePath(n_in, cfg.texture_dim)

    @property
    def alignment(self) -> int:
        return self.config.alignment

    # ------------------------------------------------------------------------------------------
    def encode(self, img0: torch.Tensor, img1: torch.Tensor, scale: float = 1.0) -> PairState:
        self._check(img0, img1, scale)
        imgs = torch.cat([img0, img1], 0)  # (2B, 3, H, W)
        if scale == 1:
            feats = self.encoder(imgs)
            full = feats[:2]
        else:
            small = F.interpolate(
                imgs, scale_factor=scale, mode="bilinear", align_corners=False, antialias=True
            )
            feats = self.encoder(small)
            full = self.encoder(imgs, levels=2)
        out, prev = [], None
        for i, (stage, st) in enumerate(zip(self.backbone["stages"], self.config.stages)):
            extra = None
            if prev is not None:
                size = feats[_STRIDE_LEVEL[st.stride]].shape[-2:]
                extra = F.interpolate(
                    self.backbone["links"][i - 1](prev),
                    size=size,
                    mode="bilinear",
                    align_corners=False,
                )
                if self.config.feature_warp:
                    base = stage.proj(feats[_STRIDE_LEVEL[st.stride]]) + extra
                    extra = extra + self.feature_warp(prev, base)
            prev = stage(feats[_STRIDE_LEVEL[st.stride]], extra)
            out.append(prev)
        return PairState(img0, img1, full, [*out, feats[1]])

    def decode(self, state: PairState, t, aux: bool = False):
        img0, img1 = state.img0, state.img1
        b, _, h, w = img0.shape
        t = _time(t, b, img0)
        scale_imgs = [img0, img1]
        if state.motion_feats[-1].shape[-1] * 4 != w:  # scale < 1: decoder sees downscaled frames
            size = (state.motion_feats[-1].shape[-2] * 4, state.motion_feats[-1].shape[-1] * 4)
            scale_imgs = [
                F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
                for x in scale_imgs
            ]
        corr = self.flow_corr if self.config.flow_corr else None
        flows, masks, hidden = self.flow(state.motion_feats, t, *scale_imgs, corr)  # coarse first
        if self.config.flow_refine_full:  # one more update on the 1/4 grid, from full-res warps
            f, m = self.flow_full(*scale_imgs, flows[-1], masks[-1], hidden, t)
            flows, masks = [*flows, f], [*masks, m]
        flow = resize_flow(flows[-1], (h, w))  # (B, 4, H, W)
        mask = torch.sigmoid(
            F.interpolate(masks[-1], size=(h, w), mode="bilinear", align_corners=False)
        )
        w0, w1 = backward_warp(img0, flow[:, :2]), backward_warp(img1, flow[:, 2:])
        blend = mask * w0 + (1 - mask) * w1
        tmap = t.view(b, 1, 1, 1).to(img0.dtype).expand(b, 1, h, w)
        base = torch.cat(
            [img0, img1, w0, w1, mask, flow * FLOW_NORM, tmap, blend], 1
        )  # (B, 21, H, W)
        warped = []  # encoder features of both frames warped to time t, at 1/2 and 1/4
        for f in state.full_feats:
            f0, f1 = f.chunk(2, 0)
            fl = resize_flow(flow, f.shape[-2:])
            warped.append(
                torch.cat([backward_warp(f0, fl[:, :2]), backward_warp(f1, fl[:, 2:])], 1)
            )
        residual, dec = self.refine(base, warped, hidden)
        if self.config.texture_path:
            dec = F.interpolate(dec, size=(h, w), mode="bilinear", align_corners=False)
            residual = residual + self.texture(torch.cat([img0, img1, w0, w1, blend, dec], 1))
        pred = (blend + residual).clamp(0, 1)
        if not aux:
            return pred
        preds = []
        for fl, m in zip(flows[:-1], masks[:-1]):  # intermediate predictions, coarse to fine
            fl = resize_flow(fl, (h, w))
            m = torch.sigmoid(F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False))
            preds.append(
                m * backward_warp(img0, fl[:, :2]) + (1 - m) * backward_warp(img1, fl[:, 2:])
            )
        preds.append(blend)
        return {
            "pred": pred,
            "preds": preds,
            "flows": flows,
            "masks": masks,
            "flow": flow,
            "mask": mask,
        }

    def forward(
        self, img0: torch.Tensor, img1: torch.Tensor, t=0.5, scale: float = 1.0
    ) -> torch.Tensor:
        return self.decode(self.encode(img0, img1, scale), t)

    def forward_train(self, img0, img1, t=0.5, scale: float = 1.0) -> dict:
        """Like forward, plus intermediate predictions (coarse to fine), flows and masks for losses."""
        return self.decode(self.encode(img0, img1, scale), t, aux=True)

    # ------------------------------------------------------------------------------------------
    def _check(self, img0, img1, scale):
        check_frames(img0, img1)
        if scale not in (1, 0.5, 0.25):
            raise VfiInputError(f"scale must be 1, 0.5 or 0.25, got {scale}")
        a = int(self.alignment / scale)
        h, w = img0.shape[-2:]
        if h % a or w % a:
            raise VfiInputError(
                f"frame size {h}x{w} must be a multiple of {a} at scale {scale}; "
                "use engine.Interpolator, which pads any size"
            )


def _time(t, b: int, ref: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(t, dtype=torch.float32, device=ref.device)
    if t.ndim == 0 or t.numel() == 1:
        return t.reshape(1).expand(b)
    if t.shape != (b,):
        raise VfiInputError(f"t must be a float or a ({b},) tensor, got shape {tuple(t.shape)}")
    return t
