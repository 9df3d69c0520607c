"""Which optional fast path a forward takes: the switch for vfi's own Triton inference kernels.

The kernels of :mod:`engine.model.triton_kernels` (the Mamba2 causal conv + SiLU and the bilateral
cost volume) are **on by default** for CUDA inference: they passed their parity tests on an H100 and
took the bundled model's 1080p bf16 forward from 19.3 to 13.5 ms there (docs/benchmarks.md).
They are used only where they can run: a CUDA tensor, triton importable, autograd off (they have no
backward, so training keeps the PyTorch paths). ``VFI_TRITON_KERNELS=0`` turns them off (the
reference paths, e.g. to compare); ``VFI_TRITON_KERNELS=1`` together with Triton's CPU interpreter
(``TRITON_INTERPRET=1``) runs them on CPU tensors, which is how the tests exercise them without a
GPU; the interpreter is never chosen by default, being orders of magnitude slower than PyTorch.
Kept apart from the kernels so that the model imports triton only when they are about to run.
"""

from __future__ import annotations

import functools
import os
import shutil
import types

import torch

ENV = "VFI_TRITON_KERNELS"  # "0" turns vfi's Triton inference kernels off; unset = on for CUDA


def interpreting() -> bool:
    """Triton's CPU interpreter (``TRITON_INTERPRET=1``): kernels run on CPU tensors."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


# A constant for torch.compile: traced, shutil.which's filesystem calls are builtins Dynamo cannot
# follow (a warning and a possible graph break in every compiled forward on CUDA).
@torch.compiler.assume_constant_result
def c_compiler() -> str | None:
    """The C compiler Triton builds its kernel launchers with ($CC, else gcc or clang), if any."""
    return os.environ.get("CC") or shutil.which("gcc") or shutil.which("clang")


@functools.lru_cache(maxsize=1)
def _module() -> types.ModuleType | None:
    if not interpreting() and c_compiler() is None:  # compiled kernels could not be launched
        return None
    try:
        from engine.model import triton_kernels
    except ImportError:  # no triton (CPU-only torch wheels ship without it)
        return None
    return triton_kernels


def triton_kernels(t: torch.Tensor) -> types.ModuleType | None:
    """:mod:`engine.model.triton_kernels` if it should handle ``t`` now, else None."""
    switch = os.environ.get(ENV, "")
    if switch == "0" or torch.is_grad_enabled():
        return None
    if not (t.is_cuda or (switch == "1" and interpreting())):
        return None
    return _module()
