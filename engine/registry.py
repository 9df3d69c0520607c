"""Named model variants and weight files, described as data (timm-style).

Each :class:`Variant` pairs a :class:`~engine.config.ModelConfig` with a :class:`WeightsEntry`
saying where its trained weights come from. Tests iterate :data:`VARIANTS`, so a new variant is
covered with no extra code. ``weights`` is ``None`` where no trained weights exist yet: then
``load_model(name)`` refuses (never random weights) and ``pretrained=False`` gives a random init.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.config import ModelConfig, StageConfig
from engine.errors import VfiError


@dataclass(frozen=True)
class WeightsEntry:
    """One weight file: where it lives, how to check it, under which terms it ships."""

    file: str  # file name in the package (bundled) or in the cache
    sha256: (
        str | None
    )  # full hex digest; None only where it is not known yet (then `sha256_prefix`)
    size: int | None  # bytes
    licence: str
    urls: tuple[str, ...] = ()  # download sources, tried in order; empty: no public URL yet
    bundled: bool = False  # shipped inside the package (engine/weights/)
    sha256_prefix: str | None = None  # at least these hex digits must match (torchvision naming)
    note: str = ""

    def __post_init__(self):
        # Registry data is checked once at import: a typo here would make every install fail.
        if self.sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise ValueError(f"{self.file}: sha256 must be 64 lowercase hex digits")
        if self.sha256_prefix is not None and not re.fullmatch(
            r"[0-9a-f]{8,64}", self.sha256_prefix
        ):
            raise ValueError(f"{self.file}: sha256_prefix must be 8 to 64 lowercase hex digits")
        if not self.sha256 and not self.sha256_prefix:
            raise ValueError(f"{self.file}: give sha256 (or at least sha256_prefix)")
        if self.sha256 and self.sha256_prefix and not self.sha256.startswith(self.sha256_prefix):
            raise ValueError(f"{self.file}: sha256 does not start with sha256_prefix")

    @property
    def status_kind(self) -> str:
        """'bundled' | 'download' | 'none', as `vfi models --json` reports it."""
        if self.bundled:
            return "bundled"
        return "download" if self.urls else "none"


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    config: ModelConfig | None  # None for non-learned baselines
    weights: WeightsEntry | None
    default: bool = False
    kind: str = "model"  # "model" | "baseline"


# vfi-s is the defaults of ModelConfig plus the bilateral cost volume at the 1/8 and 1/4 flow
# levels (engine/model/corr.py) and wider flow decoders (hidden widths 192, 160, 96 at 1/16, 1/8,
# 1/4; grown from 128, 96, 64 by `vfi train grow`), as the bundled weights were trained
# (docs/results.md).
VFI_S = ModelConfig(flow_corr=True, flow_dims=(192, 160, 96))

VFI_B = ModelConfig(
    enc_dims=(32, 96, 160, 224),
    stages=(
        StageConfig(stride=16, dim=224, depth=6, heads=7, window=8),
        StageConfig(stride=8, dim=160, depth=2, heads=5, window=8),
    ),
    d_state=64,
    headdim=64,
    flow_dims=(192, 160, 96),
    refine_dims=(48, 96),
)

# The ablation scale (docs/results.md, issue 8): vfi-s's design at about a quarter of its
# parameters, so that every backbone mode trains for the same steps within one device call.
VFI_XS = ModelConfig(
    enc_dims=(16, 32, 48, 64),
    stages=(
        StageConfig(stride=16, dim=64, depth=2, heads=2, window=8),
        StageConfig(stride=8, dim=48, depth=1, heads=2, window=8, scan_orders=("row", "row_rev")),
    ),
    flow_dims=(64, 48, 32),
    refine_dims=(16, 32),
)

VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            name="vfi-s",
            description="small and fast default (hybrid Mamba2 + gated window attention)",
            config=VFI_S,
            # Trained here (docs/model_card.md): 67 H100-minutes on the real-video corpus of
            # shared/data/train, 14 H200-minutes with the cost volume, small-object triplets and
            # the moving-pixel loss, then 2 x 15 H200-minutes (DDP) with that loss weighted 2,
            # then one 4,000-step schedule of it on 4 H100s (4 x 20 minutes), then 2,500 steps
            # with texture-weighted distillation on 2 H100s (2 x 14 minutes), then one more
            # 2,750-step schedule of that recipe on 2 H200s (2 x 14 minutes), twice, then once
            # more on 2 H100s to step 2,550 (2 x 17 minutes), then once more on 2 H200s (its EMA
            # at step 2,000 of 2,750, 2 x 10 minutes), then one 3,500-step schedule at batch 128
            # on 4 H200s (its EMA at the end, 4 x 18 minutes), then one 3,500-step schedule at
            # batch 64 on 2 H200s (its EMA at the end, 2 x 16 minutes), then that schedule with
            # the moving-pixel loss widened by an 8-px halo (its EMA at step 2,000 of 3,500,
            # 2 x 9 minutes), then that recipe with the moving-pixel weight at 3 (its EMA at
            # step 1,500 of 3,500, 2 x 6 minutes), then two 3,500-step schedules with an added
            # camera pan and the weight at 4 (2 x 18 H100-minutes, then 2 x 20 H200-minutes at
            # half the pan rate, its EMA at the end); from there, two runs averaged: the flow
            # decoders grown to 192, 160, 96 (`vfi train grow`) and one 1,000-step schedule of
            # that recipe (1 H100, 6.4 minutes, its EMA at the end), and a 2,250-step schedule
            # with the moving-pixel weight at 5 (1 H100, 14 minutes, its EMA at the end, grown
            # the same way after training); the uniform average of the two (`vfi train
            # average`); then that average averaged once more with its own continuation (two
            # 1,000-step schedules of the recipe from it, 1 H200 + 1 H100, 6.4 + 6.9 minutes,
            # the EMA at the end); RIFE HDv3 flow distillation; fp16, inside the package.
            weights=WeightsEntry(
                file="vfi-s.safetensors",
                sha256="c76048d0a4c73d78e27512bb1cb7edbb88ffacedfe78a7fca7e25ece78ababaa",
                size=7990090,
                licence="Apache-2.0; data and teacher terms in docs/model_card.md",
                bundled=True,
                note="early checkpoint: below the reference methods, see docs/model_card.md",
            ),
            default=True,
        ),
        Variant(
            name="vfi-b",
            description="larger variant, same design, more width and depth",
            config=VFI_B,
            # Not trained yet. It will not be bundled (too large); until it has a public URL its
            # entry keeps urls=() and `vfi download-weights vfi-b --file PATH` installs a copy.
            weights=None,
        ),
        Variant(
            name="vfi-xs",
            description="ablation scale: vfi-s's design at a quarter of the parameters",
            config=VFI_XS,
            weights=None,  # research scale: trained per experiment, never shipped
        ),
        Variant(
            name="blend",
            description="baseline: the mean of the two frames (no learning; checks metric code)",
            config=None,
            weights=None,
            kind="baseline",
        ),
    )
}

# Weight files that are not interpolation models (e.g. the perceptual-loss network of training).
EXTRA_WEIGHTS: dict[str, WeightsEntry] = {
    "vgg19": WeightsEntry(
        file="vgg19-dcbb9e9d.pth",
        # The file name gives the first 8 hex digits (torchvision's convention); the full digest
        # and size are the values two independent public projects record for this file (the
        # size also matches torch's own download logs). Not yet re-hashed by us: no network here.
        sha256="dcbb9e9dad569fff7a846263a77324fc34978fea2bfb039c012d710e1776ae44",
        sha256_prefix="dcbb9e9d",
        size=574673361,
        licence="BSD-3-Clause (torchvision); trained on ImageNet",
        urls=("https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",),
        note="torchvision VGG19 ImageNet weights for the training perceptual loss",
    ),
}


def default_variant() -> Variant:
    return next(v for v in VARIANTS.values() if v.default)


def get_variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise VfiError(
            f"unknown model {name!r}; known models: {', '.join(VARIANTS)} "
            "(or give a weights file path)"
        ) from None
