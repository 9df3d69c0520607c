"""`vfi train export NAME`: a training checkpoint -> safetensors weights + JSON config.

The output is what ``engine.load_model(path)`` and ``vfi interpolate --model path`` read: a
``.safetensors`` file of the state dict and, beside it, a ``.json`` file
``{"model": <ModelConfig dict>, "train": {...}}`` (where it came from: experiment, phase, step,
validation PSNR/SSIM). The best weights are exported by default (the EMA weights when the run used
``--ema``). Both files are written under temporary names and renamed, and the result is loaded back
through ``engine.load_model`` before the command reports success.
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import VfiError
from engine.paths import check_creatable
from train import checkpoint


def export(
    name: str,
    workdir: str | Path = ".",
    out: str | Path | None = None,
    which: str = "best",
    force: bool = False,
    half: bool = False,
) -> Path:
    """Export experiment ``name`` (or a .pkl path); returns the .safetensors path.

    ``which``: "best" (``<exp>_best.pkl``), "latest" (``<exp>.pkl``) or "ema" (``<exp>_ema.pkl``,
    the EMA weights at the latest step); ignored when ``name`` is a .pkl file.

    ``half``: floating-point tensors as fp16 (half the size; what the package bundles). The engine
    casts them back to the model's dtype on loading.
    """
    import torch

    from engine.weights import save_weights_file

    src = Path(name)
    if not (src.suffix == ".pkl" and src.is_file()):
        paths = checkpoint.paths_for(Path(workdir) / "ckpt", name)
        src = {"best": paths.best, "latest": paths.latest, "ema": paths.ema}[which]
        if not src.is_file():
            raise VfiError(
                f"no checkpoint {src}: train experiment {name!r} first (or give --workdir where "
                "its ckpt/ folder is)"
            )
    record = checkpoint.read(src)
    config = checkpoint.saved_config(record, src)
    state = record.get("model")
    if not isinstance(state, dict) or not state:
        raise VfiError(f"{src} holds no weights")

    stem = src.stem if src == Path(name) else name
    if out is None:
        dest = Path(workdir) / "export" / f"{stem}.safetensors"
    elif str(out).endswith(".safetensors"):
        dest = Path(out)
    else:  # a folder
        dest = Path(out) / f"{stem}.safetensors"
    cfg_path = dest.with_suffix(".json")
    if not force and (dest.exists() or cfg_path.exists()):
        raise VfiError(f"{dest} already exists; pass --force to replace it")
    check_creatable(dest.parent, "the export")

    meta = {k: v for k, v in (record.get("train") or {}).items() if _plain(v)}
    meta["source"] = str(src)
    meta["dtype"] = "float16" if half else "as trained"
    dtype = torch.float16 if half else None
    save_weights_file(state, config, dest, dtype=dtype, info={"train": meta})

    # The export is only done if the engine loads it back into the same weights.
    from engine.loading import load_model

    loaded = load_model(dest).state_dict()
    for k, v in state.items():
        k = k.removeprefix("module.")
        stored = v.to(dtype) if dtype is not None and v.is_floating_point() else v
        if not loaded[k].equal(stored.to(loaded[k].dtype)):
            raise RuntimeError(f"export check failed: {k} differs after loading {dest}")
    return dest


def _plain(v) -> bool:
    """JSON-ready metadata: a scalar, or a flat list of scalars (a soup's ``averaged_from``)."""
    if isinstance(v, (list, tuple)):
        return all(_scalar(x) for x in v)
    return _scalar(v)


def _scalar(v) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))
