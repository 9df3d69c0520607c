"""Exponential moving average of the weights, used for evaluation and export when ``--ema`` is on.

The average lives in fp32 beside the model (same device) and follows
``ema = d * ema + (1 - d) * weights`` after every optimizer step. Early in a run the weights change
fast and an average over the random init would lag badly, so the decay ramps up as
``d = min(decay, (1 + step) / (10 + step))``.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.errors import VfiError


class Ema:
    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.reset(model)

    def reset(self, model: nn.Module) -> None:
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                self.shadow[k].mul_(d).add_(v.float(), alpha=1 - d)
            else:  # integer buffers (counters): copied, not averaged
                self.shadow[k].copy_(v)

    def state_dict(self) -> dict:
        return {k: v.detach().cpu().clone() for k, v in self.shadow.items()}

    def load_state_dict(self, state: dict, source="checkpoint") -> None:
        if not isinstance(state, dict) or set(state) != set(self.shadow):
            raise VfiError(f"{source}: its EMA weights do not fit this model")
        for k, v in state.items():
            self.shadow[k].copy_(v)

    def weights_for(self, model: nn.Module) -> dict:
        """The averaged weights in the model's dtypes (for evaluation and saving)."""
        own = model.state_dict()
        return {k: v.to(own[k].dtype) for k, v in self.shadow.items()}
