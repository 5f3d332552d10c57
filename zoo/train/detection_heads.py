"""Head surgery on torchvision's detectors: give a detector a new class count by swapping its class predictor.

The recipe of torchvision's object detection fine-tuning tutorial: Faster R-CNN gets a new `FastRCNNPredictor`
(class scores and per-class box deltas); RetinaNet and FCOS a new last classification convolution; SSD and
SSDlite new classification convolutions per feature map. The rest (backbone, region proposals, box regression
of one-stage detectors) keeps its weights. Mask R-CNN and Keypoint R-CNN need masks or keypoints to train their
other heads, which box datasets do not have: they are refused. Class counts include the background (class 0).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from zoo.errors import UnsupportedError

if TYPE_CHECKING:
    import torch

__all__ = ["FINETUNABLE", "box_classes", "box_predictor", "replace_box_predictor"]

#: The detectors whose classes zoo's detection fine-tuning replaces (the names of torchvision's classes).
FINETUNABLE = ("FasterRCNN", "RetinaNet", "FCOS", "SSD")


def _refuse(module: torch.nn.Module) -> UnsupportedError:
    kind = type(module).__name__
    return UnsupportedError(
        f"Cannot fine-tune a {kind} on boxes: zoo fine-tunes torchvision's Faster R-CNN, RetinaNet, FCOS, SSD and "
        "SSDlite detectors (Mask R-CNN and Keypoint R-CNN need masks or keypoints zoo does not train yet)."
    )


def box_classes(module: torch.nn.Module) -> int:
    """How many classes (background included) the detector's class predictor scores.

    Raises:
        UnsupportedError: not one of the detectors zoo fine-tunes (`FINETUNABLE`).
    """
    from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet
    from torchvision.models.detection.ssd import SSD

    if isinstance(module, FasterRCNN):
        heads = module.roi_heads
        if heads.has_mask() or heads.has_keypoint():
            raise _refuse(module)
        return int(heads.box_predictor.cls_score.out_features)
    if isinstance(module, (RetinaNet, FCOS)):
        return int(module.head.classification_head.num_classes)
    if isinstance(module, SSD):
        return int(module.head.classification_head.num_columns)
    raise _refuse(module)


def box_predictor(module: Any) -> torch.nn.Module:
    """The detector's class predictor: the module `replace_box_predictor` swaps (a Faster R-CNN's
    `roi_heads.box_predictor`, else the one-stage detector's `head.classification_head`)."""
    from torchvision.models.detection import FasterRCNN

    return module.roi_heads.box_predictor if isinstance(module, FasterRCNN) else module.head.classification_head


def replace_box_predictor(module: torch.nn.Module, num_classes: int, *, seed: int = 0) -> None:
    """Give `module` a freshly initialised class predictor for `num_classes` classes (background included).

    The new layers are created on the device and dtype of the ones they replace, initialised as torchvision
    initialises them, from `seed` (the global random state is left as it was).

    Raises:
        UnsupportedError: not one of the detectors zoo fine-tunes (`FINETUNABLE`).
    """
    import torch
    from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet
    from torchvision.models.detection.ssd import SSD

    box_classes(module)  # refuses what cannot be swapped, before anything changes
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if isinstance(module, FasterRCNN):
            from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

            old = module.roi_heads.box_predictor
            new = FastRCNNPredictor(old.cls_score.in_features, num_classes)
            module.roi_heads.box_predictor = new.to(old.cls_score.weight.device, old.cls_score.weight.dtype)
        elif isinstance(module, (RetinaNet, FCOS)):
            head = module.head.classification_head
            head.cls_logits = _conv_like(head.cls_logits, head.num_classes, num_classes, "prior")
            head.num_classes = num_classes
        elif isinstance(module, SSD):
            head = module.head.classification_head
            for i, block in enumerate(head.module_list):
                if isinstance(block, torch.nn.Conv2d):  # SSD300
                    head.module_list[i] = _conv_like(block, head.num_columns, num_classes, "xavier")
                else:  # SSDlite: depthwise conv block, then a 1x1 convolution
                    block[-1] = _conv_like(block[-1], head.num_columns, num_classes, "normal")
            head.num_columns = num_classes


def _conv_like(old: torch.nn.Conv2d, classes: int, new_classes: int, init: str) -> torch.nn.Conv2d:
    """A convolution like `old` whose output holds `new_classes` scores per anchor instead of `classes`."""
    import torch

    anchors = old.out_channels // classes
    conv = torch.nn.Conv2d(
        old.in_channels, anchors * new_classes, old.kernel_size, old.stride, old.padding,  # type: ignore[arg-type]
        bias=old.bias is not None,
    ).to(old.weight.device, old.weight.dtype)  # fmt: skip
    bias = conv.bias if conv.bias is not None else torch.empty(0)
    if init == "prior":  # RetinaNet / FCOS: a 1% prior probability for every class
        torch.nn.init.normal_(conv.weight, std=0.01)
        torch.nn.init.constant_(bias, -math.log((1 - 0.01) / 0.01))
    elif init == "xavier":
        torch.nn.init.xavier_uniform_(conv.weight)
        torch.nn.init.constant_(bias, 0.0)
    else:
        torch.nn.init.normal_(conv.weight, mean=0.0, std=0.03)
        torch.nn.init.constant_(bias, 0.0)
    return conv
