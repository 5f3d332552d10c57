"""Build ultralytics models from ultralytics' own yaml files, and the ultralytics classes of each task."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["Arch", "build", "fp32_hook", "task_classes"]


@dataclass(frozen=True)
class Arch:
    """Which yaml, at which scale, makes a catalog model.

    Attributes:
        cfg: the yaml's path under `ultralytics/cfg/models` (`v8/yolov8-seg.yaml`).
        scale: the scale key (`n`, `s`, ...), or None for a yaml without scales.
        task: ultralytics' task name: detect, segment, classify, pose or obb.
        family: `yolo` or `rtdetr` (which ultralytics model class knows its trainer and predictor).
    """

    cfg: str
    scale: str | None
    task: str
    family: str = "yolo"

    @property
    def stem(self) -> str:
        """The yaml's file stem (`yolov8-seg`)."""
        return Path(self.cfg).stem


def task_classes(arch: Arch) -> dict[str, Any]:
    """ultralytics' `{"model", "trainer", "validator", "predictor"}` classes of the model's task.

    ultralytics is imported on the CPU device whatever device context the caller is in: some of its
    classes keep tensors made at import (class attributes), and a first import inside zoo's meta-device
    build would leave them on the meta device, failing every later forward pass in the process
    ("Cannot copy out of meta tensor").
    """
    import torch

    from zoo_yolo.runtime import ultralytics_module

    with torch.device("cpu"):
        ultralytics_module()
        if arch.family == "rtdetr":
            from ultralytics.models.rtdetr import RTDETR

            task_map = RTDETR.task_map.fget(None)  # type: ignore[attr-defined]
        else:
            from ultralytics.models.yolo import YOLO

            task_map = YOLO.task_map.fget(None)  # type: ignore[attr-defined]
    return task_map[arch.task]


def model_yaml(arch: Arch) -> dict[str, Any]:
    """The yaml dict ultralytics builds the model from, with the scale set."""
    from zoo_yolo.runtime import ultralytics_module

    root = Path(ultralytics_module().__file__).resolve().parent
    from ultralytics.utils import YAML

    cfg = dict(YAML.load(root / "cfg" / "models" / arch.cfg))
    cfg["scale"] = arch.scale
    cfg["yaml_file"] = f"{arch.stem}.yaml"
    return cfg


def build(arch: Arch, *, num_classes: int, channels: int = 3) -> torch.nn.Module:
    """The ultralytics model of `arch` with `num_classes` classes, randomly initialised on the CPU.

    ultralytics measures the strides with a forward pass while it builds, which needs real tensors,
    so the model is built on the CPU even inside zoo's meta-device context; zoo then loads weights.

    Args:
        arch: which yaml and scale.
        num_classes: number of classes of the head.
        channels: input channels (3 for RGB).
    """
    import torch

    cls = task_classes(arch)["model"]
    cfg = model_yaml(arch)
    cfg["channels"] = channels
    from zoo_yolo.runtime import quiet

    with torch.device("cpu"), quiet():
        model = cls(cfg, ch=channels, nc=num_classes, verbose=False)
    model.names = {i: str(i) for i in range(num_classes)}
    model.args = {"task": arch.task}
    return model


def fp32_hook(state: dict[str, Any]) -> dict[str, Any]:
    """Float tensors as float32: ultralytics saves its checkpoints in half precision."""
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
