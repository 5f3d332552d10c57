"""The `pytorch-module` task: what a model of unknown kind predicts: its raw forward, without gradients."""

from __future__ import annotations

from typing import Any

from zoo import Task

__all__ = ["RawForward"]


class RawForward(Task):
    """`module(inputs, *args, **kwargs)` under `torch.inference_mode()`, tensors moved to the model's device."""

    name = "pytorch-module"

    def predict(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        """The module's output for `inputs` (a tensor, or whatever the module takes)."""
        import torch

        module = self.model.module
        module.eval()
        moved = inputs.to(self.model.device) if isinstance(inputs, torch.Tensor) else inputs
        with torch.inference_mode():
            return module(moved, *args, **kwargs)
