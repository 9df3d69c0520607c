"""`vfi train average OUT A B ...`: the uniform average of several checkpoints' weights.

Averaging the weights of fine-tunes that share one starting point (a "model soup", or the
checkpoint averaging of SWA) can score better than each of them; it costs no training. Rules:

- Every input is a ``vfi train`` weights checkpoint (``<exp>.pkl``, ``<exp>_best.pkl``) of the
  **same architecture**: same ModelConfig, same tensor names and shapes; anything else is one
  clear error, since an average of unrelated weights is noise.
- Floating-point tensors are averaged in float64 and stored in the first input's dtype; integer
  tensors (counters, indices) must be equal in every input and are copied.
- The output is a checkpoint like the inputs (``engine.load_model``, ``vfi bench --model`` and
  ``vfi train export`` read it), with ``train.averaged_from`` listing the inputs; it is written to a
  temporary name and renamed, and an existing file is replaced only with ``force``.

Whether the average is better is an empirical question: score it (``vfi bench``) like any run.
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import VfiError
from train import checkpoint

MIN_INPUTS = 2


def average(inputs: list[str | Path], out: str | Path, force: bool = False) -> Path:
    """Write the uniform average of the ``inputs`` checkpoints to ``out``; returns ``out``."""
    import torch

    paths = [Path(p) for p in inputs]
    out = Path(out)
    if len(paths) < MIN_INPUTS:
        raise VfiError(f"give at least {MIN_INPUTS} checkpoints to average, got {len(paths)}")
    checkpoint.check_new_output(out, paths, force, "the average")

    records = [checkpoint.read(p, fix="give checkpoints written by `vfi train`") for p in paths]
    first, config = records[0], checkpoint.saved_config(records[0], paths[0])
    names = set(first["model"])
    for rec, path in zip(records[1:], paths[1:], strict=True):
        diff = checkpoint.config_diff(config, checkpoint.saved_config(rec, path))
        if diff:
            raise VfiError(
                f"{path} is another architecture than {paths[0]} ({'; '.join(diff[:3])})"
            )
        if set(rec["model"]) != names:
            raise VfiError(f"{path} holds other tensors than {paths[0]}: not the same model")

    state = {}
    for name, ref in first["model"].items():
        tensors = [rec["model"][name] for rec in records]
        if any(t.shape != ref.shape for t in tensors):
            raise VfiError(f"tensor {name} has different shapes across the inputs")
        if ref.is_floating_point():
            mean = torch.stack([t.to(torch.float64) for t in tensors]).mean(0)
            state[name] = mean.to(ref.dtype)
        elif all(t.equal(ref) for t in tensors):
            state[name] = ref.clone()
        else:
            raise VfiError(f"integer tensor {name} differs across the inputs; cannot average it")

    meta = {"averaged_from": [str(p) for p in paths]}
    if "phase" in (first.get("train") or {}):  # provenance, as in every training checkpoint
        meta["phase"] = first["train"]["phase"]
    checkpoint.atomic_save(checkpoint.weights_record(state, config, meta), out)
    return out
