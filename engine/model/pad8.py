"""Convolutions padded to channel counts that are multiples of 8 (compiled CUDA inference).

cuDNN's bf16 tensor-core convolutions in NHWC want input and output channel counts divisible by
8; for the others it launches a padding kernel around the convolution (``nhwcAddPaddingKernel``:
20 launches and ~0.34 ms per compiled 1080p forward of vfi-s on an H100, docs/benchmarks.md,
version 6). vfi-s has 11 such layers (the encoder's RGB input, the motion decoder's concatenated
inputs and 5-channel heads, the cost volumes' 49 scores, the refinement's stem and output).

:func:`pad_convolutions` replaces each of them with :class:`Pad8Conv2d`: zero input channels
appended to the input and zero filters to the weights, the extra outputs sliced off. The result
is the same function (the zero channels add exact zeros); under torch.compile the input's
padding can fuse into the kernel that produces it (often a concatenation), so the separate
padding pass may disappear. It does: ``benchmarks/profile_model.py --compile [--pad8]`` measured
the compiled 1080p bf16 forward at 8.32 ms plain and 7.95 ms padded on one H200
(docs/benchmarks.md, version 8). :class:`engine.interpolator.Interpolator` therefore compiles
:func:`padded_copy` of the model on CUDA. Without torch.compile the input padding stays a separate
kernel, so eager and CUDA-graph runs keep the plain model.
Inference only: the padded copies are new parameters, not the checkpoint's.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

MULTIPLE = 8  # cuDNN's NHWC tensor-core granularity for 16-bit types


class Pad8Conv2d(nn.Module):
    """``conv`` (groups=1) with its channel counts rounded up to multiples of 8."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        if conv.groups != 1:
            raise ValueError("only ungrouped convolutions are padded")
        self.cin, self.cout = conv.in_channels, conv.out_channels
        self.pad_in, self.pad_out = -self.cin % MULTIPLE, -self.cout % MULTIPLE
        self.conv = nn.Conv2d(
            self.cin + self.pad_in, self.cout + self.pad_out, conv.kernel_size, conv.stride,
            conv.padding, conv.dilation, bias=conv.bias is not None, padding_mode=conv.padding_mode,
        ).to(conv.weight.device, conv.weight.dtype)  # fmt: skip
        with torch.no_grad():
            w = F.pad(conv.weight, (0, 0, 0, 0, 0, self.pad_in, 0, self.pad_out))  # (O', I', k, k)
            self.conv.weight.copy_(w)
            if conv.bias is not None:
                self.conv.bias.copy_(F.pad(conv.bias, (0, self.pad_out)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad_in:
            x = F.pad(x, (0, 0, 0, 0, 0, self.pad_in))  # (B, C + pad_in, H, W), zeros
        y = self.conv(x)
        return y[:, : self.cout] if self.pad_out else y


def pad_convolutions(model: nn.Module) -> list[str]:
    """Replace, in place, every ungrouped Conv2d whose channel counts are not multiples of 8;
    returns their names."""
    targets = [
        (name, mod)
        for name, mod in model.named_modules()
        if type(mod) is nn.Conv2d
        and mod.groups == 1
        and (mod.in_channels % MULTIPLE or mod.out_channels % MULTIPLE)
    ]
    for name, mod in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, Pad8Conv2d(mod))
    return [name for name, _ in targets]


def padded_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` with :func:`pad_convolutions` applied; ``model`` is left as it was
    (callers may still save it, train it or run it eagerly)."""
    padded = copy.deepcopy(model)
    pad_convolutions(padded)
    return padded
