"""The `backend="hub"` YOLOv5: ultralytics/yolov5's own DetectionModel, built by its hubconf (after trust)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo_hub.names import HubTarget

__all__ = ["build_hub"]


def build_hub(size: str, *, nc: int = 80, trust: bool | None = None, repo: str | None = None, ref: str = "v7.0") -> Any:
    """`hubconf.yolov5{size}(pretrained=False, autoshape=False)` of ultralytics/yolov5 (or a local clone).

    The model is built on the CPU without weights (zoo loads them, read without running pickled code)
    and without AutoShape: zoo's object-detection task letterboxes and runs NMS around it.
    """
    import torch

    from zoo_hub.loader import load_entry

    entry = f"yolov5{size}"
    if repo is not None:
        target = HubTarget(entry=entry, path=Path(repo).expanduser().absolute())
    else:
        target = HubTarget(entry=entry, owner="ultralytics", repo="yolov5", ref=ref)
    with torch.device("cpu"):
        model = load_entry(target, trust=trust, pretrained=False, classes=nc, autoshape=False, _verbose=False)
    return model.eval()
