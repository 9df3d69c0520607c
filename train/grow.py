"""`vfi train grow OUT IN --flow_dims A,B,C`: a wider motion decoder that computes the same frames.

Why: the flow is where `vfi-s` loses to RIFE HDv3 (with the teacher's flow our own mask and warps
beat it on every dev set, docs/results.md), and the decoder is small (hidden widths 128 / 96 / 64
at 1/16, 1/8, 1/4). Training a larger variant from scratch would throw away the bundled lineage's
GPU hours; growing the trained model keeps them: the grown model starts at exactly the old
model's output and training then uses the new channels.

How (function-preserving widening, the "Net2Net" idea with zero-initialised fan-out):

- every tensor of the old model is copied into the leading slice of the grown one (old channels
  keep their index, new channels come after them);
- new output channels of a convolution keep the fresh initialisation of the grown model (so they
  compute something and receive gradients), new PReLU slopes their default;
- where a convolution **reads** new channels, the weights from those new inputs into the **old**
  outputs are zero: old channels never see the new ones at the start, so every old activation, and
  with it the frame, is unchanged. Those zeros are ordinary weights and train from the first step.

Grown: the hidden widths of the flow levels (``flow_dims``), the cost-volume inputs of the 1/8 and
1/4 levels (``flow_corr``) and the refinement's input from the last flow level. Widening the first
level with ``feature_warp`` on, or any level with ``flow_refine_full`` on, is refused (those modules
are not handled here). The output is a ``vfi train`` weights checkpoint of the grown config, in
the input's floating dtype;
``vfi train --resume OUT`` starts a new run from it.
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import VfiError
from train import checkpoint


def widen_flow(model, flow_dims: tuple[int, ...], seed: int = 0):
    """A new VFINet with the motion decoder widened to ``flow_dims`` and ``model``'s function."""
    import torch
    from torch import nn

    from engine.loading import build_model

    cfg = model.config
    old_dims = tuple(cfg.flow_dims)
    flow_dims = tuple(int(d) for d in flow_dims)
    if len(flow_dims) != len(old_dims):
        raise VfiError(f"--flow_dims needs {len(old_dims)} widths (one per level), got {flow_dims}")
    if any(n < o for n, o in zip(flow_dims, old_dims, strict=True)):
        raise VfiError(f"--flow_dims can only grow: the model has {old_dims}, asked {flow_dims}")
    if flow_dims == old_dims:
        raise VfiError(f"the model already has flow_dims {old_dims}; give wider ones")
    if cfg.flow_refine_full:
        raise VfiError("growing a model with flow_refine_full is not supported")
    if cfg.feature_warp and flow_dims[0] != old_dims[0]:
        raise VfiError("with feature_warp the first flow width must stay; widen the others")

    torch.manual_seed(seed)  # the new channels' initialisation is reproducible
    grown = build_model(cfg.replace(flow_dims=flow_dims)).eval()
    old_modules = dict(model.named_modules())
    with torch.no_grad():
        for name, new in grown.named_modules():  # each module's own tensors (not its children's)
            old = old_modules[name]
            for pname, p_new in new.named_parameters(recurse=False):
                p_old = getattr(old, pname)
                if p_new.shape == p_old.shape:
                    p_new.copy_(p_old)
                    continue
                if isinstance(new, nn.ConvTranspose2d) or p_new.ndim != p_old.ndim:
                    raise VfiError(f"cannot grow {name}.{pname}: unexpected layout")
                p_new[tuple(slice(0, n) for n in p_old.shape)] = p_old
                if isinstance(new, nn.Conv2d) and pname == "weight":
                    # New inputs must not reach old outputs (the function stays the same).
                    p_new[: p_old.shape[0], p_old.shape[1] :] = 0
            for bname, b_new in new.named_buffers(recurse=False):
                b_new.copy_(getattr(old, bname))
    return grown


def grow(inp: str | Path, out: str | Path, flow_dims: tuple[int, ...], force: bool = False) -> Path:
    """Widen the motion decoder of ``inp`` (a ``vfi train`` checkpoint, a ``.safetensors`` export
    or a registry name such as ``vfi-s``) and write it to ``out``; returns ``out``."""
    from engine.loading import build_model

    out = Path(out)
    checkpoint.check_new_output(out, [Path(inp)], force, "the grown model")
    state, config, provenance = checkpoint.read_start(str(inp))
    model = build_model(config)
    checkpoint.load_state(model, state, Path(inp))
    grown = widen_flow(model, flow_dims)
    # Stored in the input's floating dtype (an fp16 EMA file stays fp16: half the bytes to carry;
    # the old weights round-trip exactly and the zeros stay zeros).
    dtype = next((v.dtype for v in state.values() if v.is_floating_point()), None)
    state = {
        k: v.to(dtype) if dtype is not None and v.is_floating_point() else v
        for k, v in grown.state_dict().items()
    }
    meta = {"grown_from": str(inp), "flow_dims_before": list(config.flow_dims)}
    if provenance.get("phase") is not None:
        meta["phase"] = provenance["phase"]
    checkpoint.atomic_save(checkpoint.weights_record(state, grown.config, meta), out)
    return out
