"""VGG19 feature network for the perceptual loss, loading torchvision's ImageNet weights file.

torchvision cannot be installed beside our torch, so the network is written here with the same
module layout as ``torchvision.models.vgg19().features``: an ``nn.Sequential`` named ``features``
whose conv layers sit at the same indices, so the state-dict keys (``features.0.weight``, ...) of
the real file ``vgg19-dcbb9e9d.pth`` load as they are (its ``classifier.*`` keys are ignored).

The weights come only from that file (``torch.load(weights_only=True)``). When it is absent the
perceptual term is off: :func:`load_vgg19` returns ``None`` and the reason. A randomly initialised
VGG is never used, since its features carry no perceptual meaning.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from engine.errors import VfiError

# torchvision's configuration "E" (VGG19): conv widths, "M" = 2x2 max-pool.
_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M")
_LAYOUT += (512, 512, 512, 512, "M")
# Indices in `features` of relu1_2, relu2_2, relu3_4, relu4_4, relu5_4 (outputs we compare).
TAPS = (3, 8, 17, 26, 35)
# Deeper layers have larger activations and fewer pixels; these weights keep the terms comparable.
LAYER_WEIGHTS = (1.0, 1.0, 0.5, 0.5, 0.25)
# ImageNet normalisation the weights were trained with (RGB).
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


class VGG19Features(nn.Module):
    """``forward(x)`` with x in [0, 1] RGB (B, 3, H, W) -> list of the 5 tapped activations."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for v in _LAYOUT:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_ch, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                in_ch = v
        self.features = nn.Sequential(*layers)
        self.layer_weights = LAYER_WEIGHTS
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = (x - self.mean) / self.std
        outs = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in TAPS:
                outs.append(h)
                if i == TAPS[-1]:
                    break  # the last pool is not needed
        return outs


def vgg19_path() -> Path:
    """Where the ImageNet VGG19 file is expected (the weights cache; see `vfi download-weights`)."""
    from engine import weights
    from engine.registry import EXTRA_WEIGHTS

    entry = EXTRA_WEIGHTS["vgg19"]
    entry_path = getattr(weights, "entry_path", None)
    return entry_path(entry) if entry_path else weights.cache_dir() / entry.file


def load_vgg19(path: Path | None = None) -> tuple[VGG19Features | None, str]:
    """The frozen VGG19 from ``path`` (default :func:`vgg19_path`), or ``(None, reason)``.

    A missing file disables the loss (the reason says how to get it). A file that exists but is
    not the VGG19 state dict is a user error (:class:`VfiError`), not silently ignored.
    """
    path = Path(path) if path is not None else vgg19_path()
    if not path.is_file():
        return None, (
            f"VGG19 weights not found at {path}; run `vfi download-weights vgg19` to enable it"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise VfiError(
            f"{path} is not a readable VGG19 weights file ({type(e).__name__})"
        ) from None
    net = VGG19Features()
    own = net.state_dict()
    if not isinstance(state, dict):
        raise VfiError(f"{path} does not hold a state dict; expected torchvision's vgg19 weights")
    state = {k: v for k, v in state.items() if k.startswith("features.")}
    for k, v in own.items():
        if k not in state or tuple(state[k].shape) != tuple(v.shape):
            raise VfiError(
                f"{path} is not torchvision's VGG19 (key {k!r} missing or of another shape)"
            )
    net.load_state_dict(state)
    net.eval().requires_grad_(False)
    return net, f"perceptual loss on (VGG19 from {path})"
