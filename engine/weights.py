"""Weight files: the cache, installing entries of the registry, safe loading, and fit checks.

Loading never executes code: our weights are safetensors (+ a JSON config beside them), and any
pickle-based file (training ``.pkl`` checkpoints, user ``.pt``/``.pth``) goes through
``torch.load(weights_only=True)``; a file that needs arbitrary pickled objects is refused.

Every registry entry (a variant of :data:`engine.registry.VARIANTS` or a file of
:data:`engine.registry.EXTRA_WEIGHTS`) has one status: ``bundled`` (inside the package),
``cached`` (in the cache dir), ``missing`` (can be installed), ``none`` (no trained weights exist)
or ``n/a`` (a baseline that needs none). The network side lives in :mod:`engine.download`.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path

from engine.errors import VfiError

WEIGHT_SUFFIXES = (".safetensors", ".pkl", ".pt", ".pth", ".ckpt")
BUNDLED_DIR = Path(__file__).parent / "weights"
# Keys under which training checkpoints commonly nest their state dict, most specific first.
_NESTED_STATE_KEYS = ("model", "state_dict", "model_state_dict")


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """Where downloaded weights live: ``override`` > ``$VFI_CACHE`` > the platform cache dir."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get("VFI_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("vfi")) / "weights"


# ---- registry entries: names, paths, status --------------------------------------------------


def entry_names() -> list[str]:
    """Every name `vfi download-weights` knows: model variants first, then extra files."""
    from engine.registry import EXTRA_WEIGHTS, VARIANTS

    return [*VARIANTS, *EXTRA_WEIGHTS]


def get_entry(name: str):
    """``(WeightsEntry | None, kind)`` for a name; ``kind`` is "model", "baseline" or "extra"."""
    from engine.registry import EXTRA_WEIGHTS, VARIANTS

    if name in VARIANTS:
        v = VARIANTS[name]
        return v.weights, v.kind
    if name in EXTRA_WEIGHTS:
        return EXTRA_WEIGHTS[name], "extra"
    raise VfiError(f"unknown weights {name!r}; known: {', '.join(entry_names())}")


def entry_path(entry, cache: str | os.PathLike | None = None) -> Path:
    """Where ``entry``'s file lives (or would live once installed)."""
    return BUNDLED_DIR / entry.file if entry.bundled else cache_dir(cache) / entry.file


def entry_status(name: str, cache: str | os.PathLike | None = None) -> str:
    """'bundled' | 'cached' | 'missing' | 'none' (no trained weights) | 'n/a' (baseline)."""
    entry, kind = get_entry(name)
    if entry is None:
        return "n/a" if kind == "baseline" else "none"
    if not entry_path(entry, cache).is_file():
        return "missing"
    return "bundled" if entry.bundled else "cached"


def extra_weights_path(name: str, cache: str | os.PathLike | None = None) -> Path | None:
    """Path of an installed extra file (e.g. ``vgg19`` for the perceptual loss), None if absent.

    The file was verified when it was installed; training code calls this and, on None, tells the
    user to run ``vfi download-weights NAME``.
    """
    from engine.registry import EXTRA_WEIGHTS

    if name not in EXTRA_WEIGHTS:
        raise VfiError(f"unknown extra weights {name!r}; known: {', '.join(EXTRA_WEIGHTS)}")
    path = entry_path(EXTRA_WEIGHTS[name], cache)
    return path if path.is_file() else None


def digest_of(entry):
    from engine.download import Digest

    return Digest(sha256=entry.sha256, prefix=entry.sha256_prefix, size=entry.size)


def installable_entry(name: str):
    """The entry of ``name`` if it can be installed into the cache, else one line saying why not."""
    entry, kind = get_entry(name)
    if kind == "baseline":
        raise VfiError(f"{name} is a baseline without weights: nothing to install")
    if entry is None:
        raise VfiError(
            f"no trained weights for {name} exist yet, so there is nothing to download or verify "
            "(`vfi models` shows what exists); use your own file with --model PATH"
        )
    if entry.bundled:
        raise VfiError(f"{name} ships inside the package ({entry_path(entry)}): nothing to install")
    return entry


def verify_bundled(name: str) -> Path:
    """The bundled file of ``name`` after checking its size and sha256 (a damaged install fails)."""
    from engine.download import sha256_file

    entry, _ = get_entry(name)
    path, digest = entry_path(entry), digest_of(entry)
    if not path.is_file():
        raise VfiError(f"bundled weights {path} are missing: reinstall vfi")
    actual = sha256_file(path)
    if digest.size_error(path.stat().st_size) or not digest.matches(actual):
        raise VfiError(
            f"bundled weights {path} are damaged (sha256 {actual}, expected "
            f"{digest.describe()}): reinstall vfi"
        )
    return path


def install_hint(name: str) -> str:
    return (
        f"or fetch the file another way and run `vfi download-weights {name} --file PATH` "
        "(or --url URL of a mirror)"
    )


def download_weights(
    name: str,
    *,
    cache: str | os.PathLike | None = None,
    url: str | None = None,
    force: bool = False,
    options=None,
    progress=None,
    notify=None,
) -> Path:
    """Download and verify ``name`` into the cache; return its path.

    ``url`` replaces the registry's sources (a mirror) but never the expected sha256. An already
    cached file is re-hashed: kept when it matches, downloaded again when it does not.
    ``force`` downloads from zero (discarding any partial download) even when a copy is cached.
    """
    from engine import download

    entry = installable_entry(name)
    dest = entry_path(entry, cache)
    digest = digest_of(entry)
    urls = (url,) if url else entry.urls
    if not urls:
        why = f" ({entry.note})" if entry.note else ""
        raise VfiError(
            f"{name} has no public download URL yet{why}; if you have the file, run "
            f"`vfi download-weights {name} --file PATH` (or give a mirror with --url URL)"
        )
    for u in urls:  # refuse a bad URL before touching the cache
        download.check_url(u, allow_http=bool(options and options.allow_http))
    download.prepare_dir(dest.parent)
    if force:  # start from zero; the cached copy stays until the new one is verified
        dest.with_name(dest.name + ".part").unlink(missing_ok=True)
    elif dest.is_file():
        if digest.matches(download.sha256_file(dest, progress)):
            return dest
        if notify:
            notify(f"{dest} does not match its sha256: downloading it again")
        dest.unlink()
    return download.fetch(
        urls,
        dest,
        digest,
        options=options or download.DownloadOptions(),
        progress=progress,
        notify=notify,
        hint=install_hint(name),
    )


def install_weights_file(
    name: str,
    src: str | os.PathLike,
    *,
    cache: str | os.PathLike | None = None,
    progress=None,
) -> Path:
    """Install a local file as ``name`` after checking it against the registry's sha256."""
    from engine import download

    entry = installable_entry(name)
    dest = entry_path(entry, cache)
    return download.install_local(Path(src), dest, digest_of(entry), progress)


# ---- loading ----------------------------------------------------------------------------------


def load_weights_file(path: Path):
    """Return ``(state_dict, ModelConfig)`` from a weights file, never executing pickled code.

    The config comes from ``<name>.json`` beside a ``.safetensors`` file (or, failing that, from a
    ``config`` entry of its metadata), or from the ``config`` key of a training checkpoint.
    """
    from engine.config import ModelConfig

    path = Path(path)
    if not path.is_file():
        raise VfiError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        state, metadata = _load_safetensors(path)
        cfg_path = path.with_suffix(".json")
        if cfg_path.is_file():
            return state, ModelConfig.from_dict(_read_config(cfg_path))
        if "config" in metadata:
            return state, ModelConfig.from_dict(_parse_config(metadata["config"], str(path)))
        raise VfiError(f"{path} needs its config {cfg_path.name} beside it")
    state, cfg = _load_pickle_checkpoint(path)
    if cfg is None:
        raise VfiError(f"{path} carries no model config; export it with `vfi train export`")
    if not isinstance(cfg, dict):
        raise VfiError(f"{path}: its 'config' entry is not a dict of model settings")
    return state, ModelConfig.from_dict(cfg)


def save_weights_file(
    state: dict, config, path: str | os.PathLike, *, dtype=None, info: dict | None = None
) -> Path:
    """Write ``path`` (.safetensors, tensors cast to ``dtype`` if given) and its ``.json`` config.

    The config also goes into the safetensors metadata, so the file alone is enough; ``info``
    adds top-level entries to the JSON (e.g. where the weights came from). Each file is written to
    a temporary name first and renamed, so a crash never leaves a half-written file.
    """
    import torch
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise VfiError(f"{path}: exported weights must be a .safetensors file")
    tensors = {}
    for k, v in state.items():
        v = v.detach().to("cpu")
        if dtype is not None and torch.is_floating_point(v):
            v = v.to(dtype)
        tensors[k.removeprefix("module.")] = v.clone().contiguous()  # no shared storage
    cfg = config.to_dict()
    cfg_path = path.with_suffix(".json")
    tmp, cfg_tmp = path.with_name(path.name + ".tmp"), cfg_path.with_name(cfg_path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(tmp), metadata={"format": "vfi", "config": json.dumps(cfg)})
        cfg_tmp.write_text(json.dumps({"model": cfg, **(info or {})}, indent=2) + "\n")
        # safetensors creates its file owner-only (0600); give it the umask's mode, as the .json has
        os.chmod(tmp, cfg_tmp.stat().st_mode & 0o777)
        os.replace(tmp, path)
        os.replace(cfg_tmp, cfg_path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        cfg_tmp.unlink(missing_ok=True)
        raise VfiError(f"cannot write {path}: {e.strerror or e}") from None
    return path


def load_state_file(path: Path) -> dict:
    """Only the tensors of a weights file (the config comes from elsewhere, e.g. the registry)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return _load_safetensors(path)[0]
    return _load_pickle_checkpoint(path)[0]


def _load_safetensors(path: Path):
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        return load_file(str(path)), metadata
    except (SafetensorError, OSError, ValueError) as e:
        raise VfiError(f"{path} is not a readable safetensors file ({e})") from None


def _read_config(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as e:
        raise VfiError(f"cannot read model config {path}: {e}") from None
    return _parse_config(text, str(path))


def _parse_config(text: str, source: str) -> dict:
    try:
        data = json.loads(text)
    except ValueError as e:
        raise VfiError(f"model config {source} is not valid JSON: {e}") from None
    data = data.get("model", data) if isinstance(data, dict) else data
    if not isinstance(data, dict):
        raise VfiError(f"model config {source} is not a JSON object of model settings")
    return data


def _load_pickle_checkpoint(path: Path):
    """``(state_dict, config_or_None)`` through ``torch.load(weights_only=True)``."""
    import pickle

    import torch

    with open(path, "rb") as f:
        head = f.read(2)
    # torch.save writes a zip archive ("PK"); older torch and pickle.dump write a pickle stream
    # starting with the PROTO opcode 0x80. Anything else is not a checkpoint: say so, rather
    # than letting the unpickler report an odd "unsupported operand".
    if not (head == b"PK" or head[:1] == b"\x80"):
        raise VfiError(f"{path} is not a readable checkpoint (neither a PyTorch file nor a pickle)")
    try:
        with warnings.catch_warnings():
            # e.g. "Detected pickle protocol 4": harmless here, and a CLI must not print it.
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise VfiError(
            f"refusing {path}: loading it needs {_unsafe_what(str(e))}, and arbitrary pickled "
            "objects could run code; only tensors and plain containers are read (re-save it as a "
            "plain state dict, or as safetensors)"
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise VfiError(f"{path} is not a readable checkpoint ({first})") from None
    if not isinstance(obj, dict):
        raise VfiError(f"{path} does not hold a state dict (found {type(obj).__name__})")
    config = obj.get("config")
    for key in _NESTED_STATE_KEYS:
        if isinstance(obj.get(key), dict):
            return obj[key], config
    return obj, config


def _unsafe_what(message: str) -> str:
    """The object the weights-only unpickler refused, from torch's long message."""
    m = re.search(r"Unsupported global: GLOBAL ([\w.]+)", message)
    if m:
        return f"the pickled object `{m.group(1)}`"
    m = re.search(r"Unsupported operand \d+", message)
    if m:
        return f"a pickle instruction the safe loader refuses ({m.group(0).lower()})"
    return "pickled objects other than tensors"


def load_state_checked(model, state: dict, source: str) -> None:
    """Load ``state`` into ``model`` strictly, naming the first mismatching key and shapes."""
    import torch

    own = model.state_dict()
    state = {k.removeprefix("module."): v for k, v in state.items()}  # DDP-wrapped training
    for k, v in state.items():
        if k not in own:
            raise VfiError(f"{source}: unexpected key {k!r}: weights of another architecture?")
        if not isinstance(v, torch.Tensor):
            raise VfiError(f"{source}: key {k!r} holds a {type(v).__name__}, not a tensor")
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
    return entry_path(variant.weights, cache)


def load_variant_weights(variant, cache=None) -> dict:
    """State dict of a registry variant, from the package (bundled) or the cache."""
    w = variant.weights
    if w is None:
        raise VfiError(
            f"no trained weights for {variant.name} exist yet (see `vfi models`); pass --model PATH "
            "to a weights file or training checkpoint (from Python, pretrained=False gives an "
            "untrained network)"
        )
    path = variant_weights_path(variant, cache)
    if not path.is_file():
        if w.bundled:
            raise VfiError(f"bundled weights {path} are missing: reinstall vfi")
        raise VfiError(
            f"weights for {variant.name} not downloaded: run `vfi download-weights {variant.name}`"
        )
    return load_state_file(path)
