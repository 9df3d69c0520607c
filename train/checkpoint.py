"""Training checkpoints: atomic saves, auto-resume, and the phase chain (``--resume EXP``).

Files per experiment under ``ckpt/``:

- ``<exp>.pkl``: the latest weights, ``{"format", "model": state_dict, "config": ModelConfig dict,
  "train": {...}}``; ``engine.load_model`` reads it directly.
- ``<exp>_best.pkl``: the same layout, the weights that scored the best validation PSNR (the EMA
  weights when ``--ema`` is on: those are the ones evaluated).
- ``<exp>_ema.pkl`` (with ``--ema``): the same layout, the EMA weights at the latest step. A file of
  its own rather than a part of the optimizer state, so that ``engine.load_model`` can score it
  and each file stays under a transfer limit (with ``--compact_state``, 2.8 M parameters: 11 MB of
  fp32 weights, 11 MB of bf16 moments, 6 MB of fp16 EMA).
- ``<exp>_optim.pkl``: what resuming needs besides the weights: optimizer, train state (epoch,
  batch within the epoch, optimizer step, best PSNR), RNG states (as tensors), schedule. Files
  written before the EMA had its own file hold it here, under ``"ema"``; they still resume.

Everything stored is a tensor, dict, list, tuple, number, string or None, so every load uses
``torch.load(weights_only=True)`` and can never run pickled code. Each file is written to a
temporary name in the same folder and renamed over the old one, so a crash (or a kill) leaves the
previous checkpoint intact; the latest weights and optimizer state are renamed back to back and
carry the same step (as does the EMA file), which resuming checks.
"""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.config import ModelConfig
from engine.errors import VfiError
from engine.paths import check_creatable

FORMAT = "vfi-train/1"
# Modules a later phase adds, zero-initialised, with the ModelConfig switch that turns each on.
NEW_MODULES = {
    "feature_warp": "feature_warp",
    "texture": "texture_path",
    "flow_full": "flow_refine_full",
    "flow_corr": "flow_corr",
}


@dataclass
class Paths:
    latest: Path
    best: Path
    optim: Path
    ema: Path


def paths_for(ckpt_dir: Path, exp: str) -> Paths:
    d = Path(ckpt_dir)
    return Paths(
        d / f"{exp}.pkl", d / f"{exp}_best.pkl", d / f"{exp}_optim.pkl", d / f"{exp}_ema.pkl"
    )


def atomic_save(obj, path: Path) -> None:
    """torch.save to a temporary file beside ``path``, flushed to disk, then renamed over it."""
    tmp = _tmp(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _tmp(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


RESUME_FIX = "delete it to start over, or use another --exp_name"


def read(path: Path, fix: str = RESUME_FIX) -> dict:
    """A checkpoint file as a dict, read safely; a corrupt or foreign file is one clear line.

    ``fix``: what the error tells the user to do about a corrupt file (the default suits training
    runs that resume from their own checkpoints).
    """
    path = Path(path)
    if not path.is_file():
        raise VfiError(f"checkpoint not found: {path}")
    if not zipfile.is_zipfile(path):  # torch.save always writes a zip archive
        raise VfiError(f"checkpoint {path} is corrupt (not a torch.save archive); {fix}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise VfiError(
            f"refusing checkpoint {path}: it holds pickled objects other than tensors and plain "
            "containers, which could run code (not written by `vfi train`)"
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise VfiError(f"checkpoint {path} is corrupt or unreadable ({first}); {fix}") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise VfiError(f"{path} is not a `vfi train` checkpoint (format {FORMAT} expected)")
    return obj


# ---- saving ----------------------------------------------------------------------------------


def cpu_state(state: dict) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


def weights_record(state: dict, config: ModelConfig, meta: dict) -> dict:
    return {"format": FORMAT, "model": cpu_state(state), "config": config.to_dict(), "train": meta}


def check_new_output(out: Path, inputs: list[Path], force: bool, what: str) -> None:
    """One-line errors for a checkpoint a command derives from ``inputs`` (``vfi train average``,
    ``grow``): a ``.pkl`` name, none of the inputs, and no existing file unless ``force``."""
    if out.suffix != ".pkl":
        raise VfiError(f"the output is a checkpoint: name it *.pkl, got {out}")
    if out.resolve() in {Path(p).resolve() for p in inputs}:
        which = "one of the inputs" if len(inputs) > 1 else "the input"
        raise VfiError(f"{out} is {which}; write {what} to a new file")
    if out.exists() and not force:
        raise VfiError(f"{out} already exists; pass --force to replace it")
    check_creatable(out.parent, what)


def rng_state() -> dict:
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def save_latest(
    paths: Paths,
    model_state: dict,
    config: ModelConfig,
    meta: dict,
    optim: dict,
    ema_state: dict | None = None,
    scores: dict | None = None,
):
    """Write ``<exp>.pkl``, ``<exp>_optim.pkl`` and, given ``ema_state``, ``<exp>_ema.pkl`` (all
    temp files first, then back-to-back renames). ``scores`` (e.g. psnr, ssim of a validation at
    this step) go into the record of the weights that were evaluated: the EMA's when there is one,
    so an export of ``<exp>_ema.pkl`` says how it validated."""
    paths.latest.parent.mkdir(parents=True, exist_ok=True)
    scores = scores or {}
    raw_meta = meta if ema_state is not None else {**meta, **scores}
    files = [(weights_record(model_state, config, raw_meta), paths.latest)]
    if ema_state is not None:
        ema_meta = {**meta, **scores, "ema_weights": True}
        files.append((weights_record(ema_state, config, ema_meta), paths.ema))
    optim = {
        "format": FORMAT,
        "config": config.to_dict(),
        "ema_file": ema_state is not None,
        **optim,
    }
    files.append((optim, paths.optim))
    for obj, path in files:
        with open(_tmp(path), "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
    for _, path in files:
        os.replace(_tmp(path), path)
    if ema_state is None:
        paths.ema.unlink(missing_ok=True)  # from before --ema was switched off: now stale


def compact(obj, dtype: torch.dtype = torch.bfloat16):
    """``obj`` with every fp32/fp64 tensor inside (dicts, lists) cast to ``dtype``; others (None
    included) untouched.

    For the optimizer state (bf16): AdamW's moments are cast, its ``step`` counters (fp32 scalars)
    are kept as they are so the bias correction continues exactly. For EMA weights: fp16.
    """
    if isinstance(obj, dict):
        return {k: obj[k] if k == "step" else compact(obj[k], dtype) for k in obj}
    if isinstance(obj, (list, tuple)):
        return type(obj)(compact(v, dtype) for v in obj)
    if isinstance(obj, torch.Tensor) and obj.dtype in (torch.float32, torch.float64):
        return obj.to(dtype)
    return obj


def save_best(paths: Paths, model_state: dict, config: ModelConfig, meta: dict) -> None:
    atomic_save(weights_record(model_state, config, meta), paths.best)


# ---- compatibility ---------------------------------------------------------------------------


def saved_config(obj: dict, path: Path) -> ModelConfig:
    cfg = obj.get("config")
    if not isinstance(cfg, dict):
        raise VfiError(f"{path} carries no model config; it was not written by `vfi train`")
    return ModelConfig.from_dict(cfg)


def config_diff(a: ModelConfig, b: ModelConfig) -> list[str]:
    """Fields that differ, as 'name: a -> b' (just the name where the values are long)."""
    da, db = a.to_dict(), b.to_dict()
    out = []
    for k in da:
        if da[k] != db[k]:
            change = f"{k}: {da[k]!r} -> {db[k]!r}"
            out.append(change if len(change) <= 60 else k)
    return out


def check_same_model(saved: ModelConfig, current: ModelConfig, path: Path) -> None:
    diff = config_diff(saved, current)
    if diff:
        raise VfiError(
            f"{path} was trained with another model ({'; '.join(diff[:3])}); resume with the same "
            "flags, or start a new --exp_name"
        )


def check_phase_chain(source: ModelConfig, target: ModelConfig, path: Path) -> list[str]:
    """A later phase may only switch new modules on; returns the names of those switched on."""
    switched = []
    for module, switch in NEW_MODULES.items():
        before, after = getattr(source, switch), getattr(target, switch)
        if before and not after:
            raise VfiError(f"{path} has the {module} module but this phase turns it off")
        if after and not before:
            switched.append(module)
    off = {switch: False for switch in NEW_MODULES.values()}
    rest = config_diff(source.replace(**off), target.replace(**off))
    if rest:
        raise VfiError(
            f"{path} was trained with another architecture ({'; '.join(rest[:3])}); a later phase "
            "keeps the model of the phase it resumes (leave --model/--backbone_mode/--use_mhc out)"
        )
    return switched


def load_state(model, state: dict, path: Path, allow_missing: tuple[str, ...] = ()) -> None:
    """Load ``state`` strictly, except keys of modules in ``allow_missing`` (new, zero-init)."""
    own = model.state_dict()
    state = {k.removeprefix("module."): v for k, v in state.items()}
    for k, v in state.items():
        if k not in own:
            raise VfiError(f"{path}: unexpected key {k!r}: a checkpoint of another architecture")
        if not isinstance(v, torch.Tensor) or tuple(v.shape) != tuple(own[k].shape):
            shape = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise VfiError(
                f"{path}: key {k!r} is {shape}, the model expects {tuple(own[k].shape)} "
                "(a checkpoint of another architecture)"
            )
    missing = [k for k in own if k not in state]
    not_new = [k for k in missing if k.split(".")[0] not in allow_missing]
    if not_new:
        raise VfiError(
            f"{path}: missing key {not_new[0]!r} ({len(not_new)} missing): a checkpoint of "
            "another architecture"
        )
    model.load_state_dict(state, strict=False)


# ---- resuming --------------------------------------------------------------------------------


def exists(paths: Paths) -> bool:
    return paths.latest.is_file() or paths.optim.is_file()


def peek_config(paths: Paths) -> ModelConfig:
    """The model config of an experiment's latest checkpoint (to rebuild before loading)."""
    return saved_config(read(paths.latest), paths.latest)


def _same_step(record: dict, path: Path, step: int, optim_path: Path) -> None:
    """A weights file must be at the optimizer state's step (files renamed back to back)."""
    saved = record.get("train", {}).get("step")
    if saved != step:
        raise VfiError(
            f"{path} (step {saved}) and {optim_path} (step {step}) disagree; delete both to start over"
        )


def load_resume(paths: Paths, model, optimizer, ema, config: ModelConfig) -> dict:
    """Restore weights, optimizer, EMA and RNG; return the saved train state, plus the saved
    learning-rate schedule under ``"schedule"`` (None in files that predate it)."""
    for p in (paths.latest, paths.optim):
        if not p.is_file():
            raise VfiError(
                f"cannot resume: {p} is missing (the run was interrupted before its first "
                "checkpoint?); delete the other file to start over, or use another --exp_name"
            )
    record, opt = read(paths.latest), read(paths.optim)
    check_same_model(saved_config(record, paths.latest), config, paths.latest)
    train_state = opt.get("train_state")
    if not isinstance(train_state, dict) or "step" not in train_state:
        raise VfiError(f"{paths.optim} has no train state; it was not written by `vfi train`")
    _same_step(record, paths.latest, train_state["step"], paths.optim)
    load_state(model, record["model"], paths.latest)
    try:
        optimizer.load_state_dict(opt["optimizer"])
    except (KeyError, ValueError, TypeError) as e:
        raise VfiError(f"{paths.optim}: optimizer state does not fit this model ({e})") from None
    if ema is not None:
        state, source = opt.get("ema"), paths.optim  # files written before the EMA file existed
        if opt.get("ema_file"):
            if not paths.ema.is_file():
                raise VfiError(
                    f"cannot resume: {paths.ema} is missing (it holds the EMA weights); copy it "
                    "back beside the other checkpoint files, or delete them all to start over"
                )
            record_ema, source = read(paths.ema), paths.ema
            _same_step(record_ema, paths.ema, train_state["step"], paths.optim)
            state = record_ema.get("model")
        if state is None:
            ema.reset(model)  # EMA switched on mid-run: start it from the current weights
        else:
            ema.load_state_dict(state, source=source)
    rng = opt.get("rng") or {}
    if isinstance(rng.get("torch"), torch.Tensor):
        torch.set_rng_state(rng["torch"])
    if rng.get("cuda") and torch.cuda.is_available():
        cuda_states = rng["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
    return {**train_state, "schedule": opt.get("schedule")}


def read_start(inp: str | Path, fix: str = "give a checkpoint written by `vfi train`"):
    """(state dict, ModelConfig, provenance) of weights to start from: a training checkpoint
    (``.pkl``/``.pt``), an exported weights file (``.safetensors`` with its ``.json``) or a
    registry name with weights (``vfi-s``: the bundled file)."""
    from engine import weights
    from engine.registry import VARIANTS, get_variant

    path = Path(inp)
    if path.suffix in (".pkl", ".pt"):
        record = read(path, fix=fix)
        phase = (record.get("train") or {}).get("phase")
        return record["model"], saved_config(record, path), {"phase": phase}
    if path.suffix in weights.WEIGHT_SUFFIXES or (str(inp) not in VARIANTS and path.exists()):
        state, config = weights.load_weights_file(path)
        return state, config, {}
    variant = get_variant(str(inp))
    if variant.config is None:
        raise VfiError(f"{inp} is a baseline without learned weights: nothing to start from")
    return weights.load_variant_weights(variant), variant.config, {}


def load_phase_start(start: tuple, source: str | Path, model, config: ModelConfig) -> list[str]:
    """Load the weights a run starts from (``start``: :func:`read_start` of ``source``, another
    experiment's best, an export or a registered model) into ``model``; returns the modules this
    run switches on (zero-initialised)."""
    state, saved, _ = start
    switched = check_phase_chain(saved, config, source)
    load_state(model, state, source, allow_missing=tuple(switched))
    return switched
