"""Which optional fast path a forward takes: the switch for vfi's own Triton inference kernels.

``VFI_TRITON_KERNELS=1`` turns on the kernels of :mod:`engine.model.triton_kernels` (the Mamba2
causal conv + SiLU and the bilateral cost volume). They are used only where they can run: a CUDA
tensor (or Triton's CPU interpreter, ``TRITON_INTERPRET=1``, for tests), triton importable, and
autograd off, since they have no backward. Off by default until their speed and parity have been
measured on the device (docs/benchmarks.md). Kept apart from the kernels so that the model imports
triton only when the switch is on.
"""

from __future__ import annotations

import functools
import os
import types

import torch

ENV = "VFI_TRITON_KERNELS"  # "1" turns vfi's Triton inference kernels on


def interpreting() -> bool:
    """Triton's CPU interpreter (``TRITON_INTERPRET=1``): kernels run on CPU tensors."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


@functools.lru_cache(maxsize=1)
def _module() -> types.ModuleType | None:
    try:
        from engine.model import triton_kernels
    except ImportError:  # no triton (CPU-only torch wheels ship without it)
        return None
    return triton_kernels


def triton_kernels(t: torch.Tensor) -> types.ModuleType | None:
    """:mod:`engine.model.triton_kernels` if it should handle ``t`` now, else None."""
    if os.environ.get(ENV, "0") != "1" or torch.is_grad_enabled():
        return None
    if not (t.is_cuda or interpreting()):
        return None
    return _module()
