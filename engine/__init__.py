"""vfi engine: the interpolation model, the one inference wrapper, video I/O and metrics.

Conventions (stated once, used everywhere):

- Images are float tensors in [0, 1], RGB, shape (B, 3, H, W); ``t`` in [0, 1] runs from img0 to img1.
- Flow is in pixels at the resolution of the tensor it moves; pyramids are lists, finest first.
- Timestamps are ``fractions.Fraction`` seconds (PTS × time_base), never floats.
- User errors raise :class:`VfiError` (one line); anything else is a bug.

The public names below are imported lazily so that ``import engine`` (and ``vfi --help``) stays fast:
torch is only imported when a model-related name is first used.
"""

from __future__ import annotations

import importlib

from engine.errors import VfiError, VfiInputError

_LAZY = {
    "ModelConfig": "engine.config",
    "StageConfig": "engine.config",
    "VARIANTS": "engine.registry",
    "get_variant": "engine.registry",
    "load_model": "engine.loading",
    "build_model": "engine.loading",
    "Interpolator": "engine.interpolator",
}

__all__ = ["VfiError", "VfiInputError", *_LAZY]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
