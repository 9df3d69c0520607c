"""ModelConfig: the single source of every hyper-parameter of the interpolation network.

A config is plain data (JSON-serialisable through :meth:`ModelConfig.to_dict`); checkpoints and
exported weights carry it, so ``engine.load_model(path)`` rebuilds exactly the trained network.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from engine.errors import VfiError

BACKBONE_MODES = ("hybrid", "mamba2_only", "gated_attn_only")
SCAN_ORDERS = ("row", "row_rev", "col", "col_rev")


@dataclass(frozen=True)
class StageConfig:
    """One backbone stage: ``depth`` blocks of width ``dim`` on the 1/``stride`` feature map."""

    stride: int  # 8 or 16
    dim: int
    depth: int
    heads: int
    window: int  # attention window side, in tokens of this stage's map
    ffn_ratio: float = 2.0
    # Mamba2 scan orders of this stage; None = the model's `scan_orders`. The 1/8 stage has 4x the
    # tokens of the 1/16 one, so vfi-s scans it in two orders only.
    scan_orders: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ModelConfig:
    # Conv encoder widths at 1/2, 1/4, 1/8, 1/16 (shared by both frames). Nothing runs a
    # convolution at full resolution except the optional phase-3 texture path: at 1080p and 4K,
    # full-resolution feature maps cost more memory traffic than the whole backbone.
    enc_dims: tuple[int, ...] = (24, 48, 96, 128)
    # Hybrid backbone stages, coarse first (1/16 runs before 1/8 and feeds it).
    stages: tuple[StageConfig, ...] = (
        StageConfig(stride=16, dim=128, depth=3, heads=4, window=8),
        StageConfig(stride=8, dim=96, depth=1, heads=3, window=8, scan_orders=("row", "row_rev")),
    )
    backbone_mode: str = "hybrid"
    scan_orders: tuple[str, ...] = ("row", "row_rev", "col", "col_rev")
    # Mamba2 mixer (names as in mamba_ssm.Mamba2).
    d_state: int = 32
    d_conv: int = 4
    expand: int = 2
    headdim: int = 32
    chunk_size: int = 128
    # Manifold-constrained hyper-connections.
    use_mhc: bool = False
    mhc_streams: int = 4
    mhc_sinkhorn_iters: int = 20
    # Motion decoder (flow + occlusion mask, coarse to fine: 1/16, 1/8, 1/4).
    flow_dims: tuple[int, ...] = (128, 96, 64)
    # Refinement U-Net widths at 1/2, 1/4.
    refine_dims: tuple[int, ...] = (32, 64)
    # Experimental: a last flow update on the 1/4 grid from the full-resolution frames warped by the
    # current flow (space-to-depth, lossless), aimed at sub-pixel accuracy on near-static texture;
    # zero-initialised. Off in every registered variant (docs/results.md, experiment s1h).
    flow_refine_full: bool = False
    # A bilateral local cost volume (cosine scores of the warped features over (2r+1)^2 symmetric
    # displacements) feeding the 1/8 and 1/4 flow levels, aimed at small objects moving more than
    # the coarse levels resolve; zero-initialised (engine/model/corr.py). Off here so that older
    # configs keep their meaning; on in the registry's vfi-s (engine/registry.py).
    flow_corr: bool = False
    flow_corr_radius: int = 3
    # Phase 2: flow-guided warping of the 1/8 backbone features (zero-initialised fusion).
    feature_warp: bool = False
    # Phase 3: full-resolution texture path (zero-initialised residual).
    texture_path: bool = False
    texture_dim: int = 16

    def __post_init__(self):
        if self.backbone_mode not in BACKBONE_MODES:
            raise VfiError(
                f"unknown backbone_mode {self.backbone_mode!r}; choose one of {', '.join(BACKBONE_MODES)}"
            )
        bad = [o for o in self.scan_orders if o not in SCAN_ORDERS]
        if bad or not self.scan_orders:
            raise VfiError(f"bad scan_orders {self.scan_orders!r}; use some of {SCAN_ORDERS}")
        if self.flow_corr and not 1 <= self.flow_corr_radius <= 8:
            raise VfiError(f"flow_corr_radius must be 1..8, got {self.flow_corr_radius}")
        if len(self.enc_dims) != 4:
            raise VfiError("enc_dims must list 4 widths (1/2, 1/4, 1/8, 1/16)")
        if [s.stride for s in self.stages] != sorted((s.stride for s in self.stages), reverse=True):
            raise VfiError("backbone stages must be listed coarse first (stride 16 before 8)")
        for s in self.stages:
            if s.scan_orders is not None and (
                not s.scan_orders or set(s.scan_orders) - set(SCAN_ORDERS)
            ):
                raise VfiError(
                    f"bad scan_orders {s.scan_orders!r} in a stage; use some of {SCAN_ORDERS}"
                )
            if s.stride not in (8, 16) or s.dim % s.heads:
                raise VfiError(f"bad stage {s}: stride must be 8 or 16 and dim divisible by heads")
            if (s.dim * self.expand) % self.headdim:
                raise VfiError(f"stage dim {s.dim} x expand {self.expand} must divide by headdim")

    @property
    def alignment(self) -> int:
        """H and W given to ``forward`` at scale 1 must be multiples of this (the coarsest stride)."""
        return 16

    def replace(self, **changes) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise VfiError(f"model config has unknown keys {unknown}: written by a newer vfi?")
        d = dict(d)
        if "stages" in d:
            d["stages"] = tuple(
                StageConfig(
                    **{
                        **s,
                        "scan_orders": tuple(s["scan_orders"]) if s.get("scan_orders") else None,
                    }
                )
                for s in d["stages"]
            )
        for k in ("enc_dims", "scan_orders", "flow_dims", "refine_dims"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)
