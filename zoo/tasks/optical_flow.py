"""The `optical-flow` task: two frames in, `OpticalFlow` out (RAFT).

torchvision's `OpticalFlow` preset: both frames scaled to [0, 1], then to [-1, 1]; the last of RAFT's
iterative estimates is the flow. RAFT needs sides divisible by 8: other frames are resized for the model
and the flow resized back (its vectors scaled with it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from zoo.errors import InputError, UnsupportedError
from zoo.images import collect_images, decode
from zoo.results.flow import OpticalFlow
from zoo.tasks.base import Task

if TYPE_CHECKING:
    import torch

__all__ = ["OpticalFlowTask"]


class OpticalFlowTask(Task):
    """Optical flow between two frames."""

    name = "optical-flow"
    options = frozenset({"num_flow_updates"})
    plots = True
    warns_random_weights = True

    def predict(self, inputs: Any, *, num_flow_updates: int = 12) -> OpticalFlow:
        """The flow from the first frame to the second.

        Args:
            inputs: two frames (paths, PIL images, arrays or CHW tensors) of the same size, as a list or tuple.
            num_flow_updates: RAFT's refinement iterations.
        """
        import torch

        if not isinstance(inputs, Sequence) or isinstance(inputs, (str, bytes)) or len(inputs) != 2:
            raise InputError("optical-flow takes two frames: predict([first, second]).")
        items, _ = collect_images(list(inputs))
        if len(items) != 2:
            raise InputError("optical-flow takes exactly two frames, not a folder or glob.")
        first, second = (decode(item, 3) for item in items)
        if first.shape != second.shape:
            raise InputError(f"The two frames differ in size: {tuple(first.shape)} and {tuple(second.shape)}.")
        height, width = first.shape[1:]
        size = (max(8, height // 8 * 8), max(8, width // 8 * 8))
        batch = [_flow_input(image, size).unsqueeze(0).to(self.model.device) for image in (first, second)]
        with torch.inference_mode():
            out = self.model.module.eval()(*batch, num_flow_updates=num_flow_updates)
        flow = out[-1] if isinstance(out, (list, tuple)) else out
        if not hasattr(flow, "ndim") or flow.ndim != 4 or flow.shape[1] != 2:
            raise UnsupportedError(f"{self.model.name} returned {type(out).__name__}; optical-flow needs (N, 2, H, W).")
        flow = flow.float()
        if size != (height, width):
            from torch.nn.functional import interpolate

            flow = interpolate(flow, size=(height, width), mode="bilinear", align_corners=False)
            flow[:, 0] *= width / size[1]
            flow[:, 1] *= height / size[0]
        return OpticalFlow(flow[0].cpu().numpy(), items[0].source)


def _flow_input(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """torchvision's `OpticalFlow` preset ([0, 1] then [-1, 1]), resized to `size` when it differs."""
    import torch
    from torchvision.transforms import functional as F

    if tuple(image.shape[1:]) != size:
        image = F.resize(image, list(size), antialias=True)
    image = F.convert_image_dtype(image, torch.float)
    return F.normalize(image, mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5]).contiguous()
