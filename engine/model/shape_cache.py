"""Per-shape constant tensors (pixel grids, attention masks), cached in eager mode only.

Under ``torch.compile`` the decorated function is traced instead: the compiled graph holds its
result anyway, and Dynamo warns about every ``functools.lru_cache`` wrapper it traces through
(noise on the terminal of ``vfi interpolate --compile``).
"""

from __future__ import annotations

import functools

import torch


def shape_cache(maxsize: int):
    """``functools.lru_cache(maxsize)`` in eager mode, a plain call while torch.compile traces."""

    def decorate(fn):
        cached = functools.lru_cache(maxsize=maxsize)(fn)

        @functools.wraps(fn)
        def call(*args):
            return fn(*args) if torch.compiler.is_compiling() else cached(*args)

        call.cache_info = cached.cache_info
        return call

    return decorate
