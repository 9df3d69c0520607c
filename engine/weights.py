"""Weight files: the cache, safe loading, and the checks that a state dict fits a model.

Loading never executes code: our weights are safetensors (+ a JSON config beside them), and any
pickle-based file (training ``.pkl`` checkpoints, user ``.pt``/``.pth``) goes through
``torch.load(weights_only=True)``; a file that needs arbitrary pickled objects is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from engine.errors import VfiError

WEIGHT_SUFFIXES = (".safetensors", ".pkl", ".pt", ".pth", ".ckpt")
BUNDLED_DIR = Path(__file__).parent / "weights"


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """Where downloaded weights live: ``override`` > ``$VFI_CACHE`` > the platform cache dir."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get("VFI_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("vfi")) / "weights"


def load_weights_file(path: Path):
    """Return ``(state_dict, ModelConfig)`` from a weights file, never executing pickled code."""
    from engine.config import ModelConfig

    path = Path(path)
    if not path.is_file():
        raise VfiError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        cfg_path = path.with_suffix(".json")
        if not cfg_path.is_file():
            raise VfiError(f"{path} needs its config {cfg_path.name} beside it")
        try:
            state = load_file(str(path))
        except Exception as e:
            raise VfiError(f"{path} is not a readable safetensors file ({e})") from None
        return state, ModelConfig.from_dict(_read_config(cfg_path))
    state, cfg = _load_pickle_checkpoint(path)
    if cfg is None:
        raise VfiError(f"{path} carries no model config; export it with `vfi train export`")
    return state, ModelConfig.from_dict(cfg)


def _read_config(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise VfiError(f"cannot read model config {path}: {e}") from None
    return data.get("model", data)


def _load_pickle_checkpoint(path: Path):
    import pickle

    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else "unsupported object"
        raise VfiError(
            f"refusing {path}: it needs arbitrary pickled objects, which could run code "
            f"({first[:160]})"
        ) from None
    except Exception as e:
        raise VfiError(f"{path} is not a readable checkpoint ({type(e).__name__}: {e})") from None
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        return obj["model"], obj.get("config")
    if isinstance(obj, dict):
        return obj, None
    raise VfiError(f"{path} does not hold a state dict")


def load_state_checked(model, state: dict, source: str) -> None:
    """Load ``state`` into ``model`` strictly, naming the first mismatching key and shapes."""
    own = model.state_dict()
    state = {k.removeprefix("module."): v for k, v in state.items()}
    for k, v in state.items():
        if k not in own:
            raise VfiError(f"{source}: unexpected key {k!r}: weights of another architecture?")
        if tuple(own[k].shape) != tuple(v.shape):
            raise VfiError(
                f"{source}: key {k!r} has shape {tuple(v.shape)}, the model expects "
                f"{tuple(own[k].shape)}"
            )
    missing = [k for k in own if k not in state]
    if missing:
        raise VfiError(f"{source}: missing key {missing[0]!r} ({len(missing)} missing in all)")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})


def variant_weights_path(variant, cache: str | os.PathLike | None = None) -> Path:
    w = variant.weights
    return BUNDLED_DIR / w.file if w.bundled else cache_dir(cache) / w.file


def load_variant_weights(variant, cache=None) -> dict:
    """State dict of a registry variant, from the package (bundled) or the cache."""
    w = variant.weights
    if w is None:
        raise VfiError(
            f"no trained weights for {variant.name} exist yet; pass --model PATH to a weights file "
            "(or pretrained=False for a random init to train)"
        )
    path = variant_weights_path(variant, cache)
    if not path.is_file():
        if w.bundled:
            raise VfiError(f"bundled weights {path} are missing: reinstall vfi")
        raise VfiError(f"weights for {variant.name} not downloaded: run `vfi download-weights {variant.name}`")
    state, _ = load_weights_file(path)
    return state
