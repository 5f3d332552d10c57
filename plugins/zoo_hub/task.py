"""The `hub-module` task: what a `hub:` model of unknown kind predicts: its raw forward, without gradients."""

from __future__ import annotations

from typing import Any

from zoo import Task

__all__ = ["HubModule"]


class HubModule(Task):
    """Raw forward of a hub entry point's module: tensors in (moved to the model's device), outputs out.

    For a hub model with a known task, declare it with `zoo.register(..., task=...)` and a builder that
    calls `zoo_hub.load_entry`, so it gets that task's preprocessing and results.
    """

    name = "hub-module"

    def predict(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        """`module(inputs, *args, **kwargs)` under `torch.inference_mode()`, tensors moved to the model's device."""
        import torch

        module = self.model.module
        module.eval()
        device = self.model.device
        moved = inputs.to(device) if isinstance(inputs, torch.Tensor) else inputs
        with torch.inference_mode():
            return module(moved, *args, **kwargs)
