"""`load_model` / `build_model`: from a registry name or a weights file to a ready nn.Module."""

from __future__ import annotations

from pathlib import Path

from engine.config import ModelConfig
from engine.errors import VfiError
from engine.registry import VARIANTS, get_variant


def build_model(config: ModelConfig):
    """A randomly initialised network for ``config``."""
    from engine.model.network import VFINet

    return VFINet(config)


def load_model(
    name_or_path: str | Path,
    *,
    backbone_mode: str | None = None,
    use_mhc: bool | None = None,
    pretrained: bool = True,
):
    """Return the model ``name_or_path`` in eval mode on the CPU.

    ``name_or_path`` is a registry name (see ``vfi models``) or a weights file: ``.safetensors``
    (with its ``.json`` config beside it) or a training ``.pkl``/``.pt`` checkpoint, which is read
    with ``torch.load(weights_only=True)`` so that it can never execute code.
    ``backbone_mode``/``use_mhc`` override the variant's config (only with ``pretrained=False``,
    since trained weights fit one architecture). ``pretrained=False`` gives a random init.
    """
    from engine import weights

    path = Path(name_or_path)
    # A registry name wins over a same-named file or folder in the working directory, unless the
    # argument looks like a path to a weights file.
    is_file = path.suffix in weights.WEIGHT_SUFFIXES or (
        str(name_or_path) not in VARIANTS and path.exists()
    )
    if is_file:
        if not pretrained:
            raise VfiError("pretrained=False makes no sense with a weights file; pass a model name")
        state, config = weights.load_weights_file(path)
        config = _override(config, backbone_mode, use_mhc, allow=False)
        model = build_model(config)
        weights.load_state_checked(model, state, source=str(path))
        return model.eval()

    variant = get_variant(str(name_or_path))
    if variant.kind == "baseline":
        from engine.model.baseline import BlendModel

        return BlendModel().eval()
    config = _override(variant.config, backbone_mode, use_mhc, allow=not pretrained)
    # Read the weights before building the network, so a missing file fails at once.
    state = weights.load_variant_weights(variant) if pretrained else None
    model = build_model(config)
    if state is not None:
        weights.load_state_checked(model, state, source=variant.name)
    return model.eval()


def _override(config: ModelConfig, backbone_mode, use_mhc, *, allow: bool) -> ModelConfig:
    changes = {}
    if backbone_mode is not None and backbone_mode != config.backbone_mode:
        changes["backbone_mode"] = backbone_mode
    if use_mhc is not None and bool(use_mhc) != config.use_mhc:
        changes["use_mhc"] = bool(use_mhc)
    if changes and not allow:
        raise VfiError(
            f"trained weights fit backbone_mode={config.backbone_mode}, use_mhc={config.use_mhc}; "
            "changing them needs pretrained=False (a fresh model to train)"
        )
    return config.replace(**changes) if changes else config
