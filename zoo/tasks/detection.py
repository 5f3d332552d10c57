"""The `object-detection` task: images in, `Detections` out (letterbox, forward, batched NMS, boxes scaled back).

The task understands YOLO-style models: in eval mode the module returns a tensor (or a tuple whose first
item is one) of shape (batch, boxes, 5 + classes): center x, center y, width, height in input pixels,
objectness, class probabilities. Images are letterboxed like YOLOv5's AutoShape: the longer side scaled to
`size`, the shorter one padded (gray 114) up to a multiple of the model's stride.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import InputError, UnsupportedError
from zoo.images import ImageItem, check_size, collect_images, decode, decode_each
from zoo.progress import progress_bar
from zoo.results import Detections
from zoo.results.batch import SkippedInput, check_on_error, finish
from zoo.streaming import ResultStream, batched, collect, in_input_order, prefetch, worker_count
from zoo.tasks.base import Task

if TYPE_CHECKING:
    import torch

__all__ = ["Letterbox", "ObjectDetection", "letterbox", "non_max_suppression", "resize_linear"]

PAD_VALUE = 114


class ObjectDetection(Task):
    """Object detection with YOLO-style models."""

    name = "object-detection"
    options = frozenset(
        {
            "conf",
            "iou",
            "classes",
            "max_det",
            "size",
            "agnostic",
            "batch_size",
            "amp",
            "on_error",
            "stream",
            "num_workers",
        }
    )
    plots = True
    evaluates = True  # COCO mAP on a COCO-json file or a YOLO folder (`zoo.evaluate`)
    warns_random_weights = True
    hub_pipeline = "object-detection"
    _fused = False  # set once the module's conv + batch-norm pairs are folded (modules with `fuse()`)

    def predict(
        self,
        inputs: Any,
        *,
        conf: float = 0.25,
        iou: float = 0.45,
        classes: Sequence[int] | None = None,
        max_det: int = 1000,
        size: int | None = None,
        agnostic: bool = False,
        batch_size: int = 16,
        amp: bool | None = None,
        on_error: str | None = None,
        stream: bool = False,
        num_workers: int | str = "auto",
    ) -> Detections | list[Detections] | ResultStream:
        """Detect objects.

        Args:
            inputs: a path, folder, glob, bytes, PIL image, numpy HWC uint8 array, tensor, or a list of
                those; images of different sizes can be mixed.
            conf: minimum score (objectness x class probability) of a box.
            iou: IoU above which NMS drops the lower-scored of two boxes of one class.
            classes: keep only these class ids.
            max_det: at most this many boxes per image.
            size: letterbox size (longer side); default the model's (640 for YOLOv5).
            agnostic: NMS across classes instead of per class.
            batch_size: images per forward pass (images are grouped by letterboxed shape).
            amp: bf16 autocast; default on for CUDA, off elsewhere.
            on_error: what an unreadable image of a batch does: "raise", or "skip" it (named in the
                result list's `skipped`, with a `SkippedInputsWarning`); None (default) raises for an
                input you named and skips files a folder or glob found. A single input always raises.
            stream: return a `ResultStream` (an iterator in input order) that decodes and runs one batch at
                a time: each image is letterboxed as soon as it is decoded and its full-size pixels dropped,
                so memory does not grow with the number (or the size) of the inputs.
            num_workers: threads decoding and letterboxing the next batches while one runs ("auto", or 0).

        Returns:
            One `Detections`, or a `ResultList` for list-like inputs; a `ResultStream` with `stream=True`.
        """
        _check(conf, iou, max_det, batch_size)
        check_on_error(on_error)
        check_size(size, "size")
        items, is_batch = collect_images(inputs)
        size = int(size or self.model.spec.meta.get("image_size", 640))
        stride = model_stride(self.model.module)
        workers = worker_count(num_workers)
        self._prepare()

        def boxed(item: ImageItem, channels: int) -> _Boxed:  # one full-size image at a time, not a batch of them
            return self._letterbox(item, decode(item, channels), size, stride)

        def prepare(chunk: list[ImageItem]) -> tuple[list[ImageItem], list[_Boxed], list[SkippedInput]]:
            skipped: list[SkippedInput] = []
            done = decode_each(chunk, 3, on_error=on_error, is_batch=is_batch, skipped=skipped, decoder=boxed)
            return chunk, [each for _, each in done], skipped  # type: ignore[misc]  # decoder returns _Boxed

        def events() -> Iterator[Any]:
            with progress_bar(len(items) if is_batch else 0, "detecting") as advance:
                for chunk, boxed, skipped in prefetch(batched(items, batch_size), prepare, workers):
                    found = self._detect(boxed, amp, (conf, iou, classes, max_det, agnostic))
                    yield list(in_input_order(chunk, [b.item for b in boxed], found, skipped))
                    advance(len(chunk))

        if stream:
            return ResultStream(events(), len(items))
        results, skipped = collect(events())
        return finish(results, skipped, is_batch)

    def _letterbox(self, item: ImageItem, image: torch.Tensor, size: int, stride: int) -> _Boxed:
        """One decoded image letterboxed for the model; only what its result needs is kept of the original."""
        import torch

        hwc = None
        if not isinstance(item.data, Path):  # a file is read again by plot(); other inputs are kept
            pixels = image.mul(255).round().clamp(0, 255).byte() if image.is_floating_point() else image
            hwc = pixels.permute(1, 2, 0).contiguous().cpu().numpy()
        if image.is_floating_point():  # [0, 1] floats: to the 0-255 scale the pad value is in
            image = image.mul(255).round_().clamp_(0, 255).to(torch.uint8)
        shape = letterbox_shape(image.shape[1], image.shape[2], size, stride)
        tensor, box = letterbox(image.to(self.model.device), shape)
        return _Boxed(item, tensor, box, hwc)

    def _detect(self, boxed: list[_Boxed], amp: bool | None, nms: tuple[Any, ...]) -> list[Detections]:
        """Detections for a chunk of letterboxed images, in order; images of one shape share a forward pass."""
        import torch

        groups: dict[tuple[int, ...], list[int]] = {}
        for i, each in enumerate(boxed):  # a batch never pads one image for another
            groups.setdefault(tuple(each.tensor.shape), []).append(i)
        results: list[Any] = [None] * len(boxed)
        for indices in groups.values():
            batch = torch.stack([boxed[i].tensor for i in indices]).float().div_(255)
            found = non_max_suppression(self._forward(batch, amp), *nms)
            for i, det in zip(indices, found):
                results[i] = self._result(boxed[i], boxed[i].box.unscale(det))
        return results

    def _prepare(self) -> None:
        module = self.model.module
        module.eval()
        fuse = getattr(module, "fuse", None)
        if callable(fuse) and not self._fused:
            with contextlib.redirect_stdout(None):  # some hub code prints while fusing
                fuse()
            self._fused = True

    def _forward(self, batch: torch.Tensor, amp: bool | None) -> torch.Tensor:
        import torch

        device = self.model.device
        use_amp = (device.type == "cuda") if amp is None else amp
        autocast = torch.autocast(device.type, dtype=torch.bfloat16) if use_amp else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            out = self.model.module(batch)
        if isinstance(out, (tuple, list)) and out and hasattr(out[0], "shape"):
            out = out[0]
        if not hasattr(out, "ndim") or out.ndim != 3 or out.shape[-1] < 6:
            raise UnsupportedError(
                f"{self.model.name} returned {type(out).__name__}; object-detection needs YOLO-style output "
                f"(batch, boxes, 5 + classes)."
            )
        return out.float()

    def _result(self, boxed: _Boxed, det: Any) -> Detections:
        labels = self.model.labels
        boxes, scores, ids = (t.cpu().numpy() for t in det)
        ids = ids.astype("int64")
        names = tuple(labels[i] if labels and i < len(labels) else str(i) for i in ids.tolist())
        return Detections(boxes, scores, ids, names, boxed.box.size, boxed.item.source, boxed.hwc)


@dataclass(frozen=True)
class _Boxed:
    """An image ready for the model: its item, letterboxed uint8 tensor, letterbox, and pixels when kept."""

    item: ImageItem
    tensor: torch.Tensor
    box: Letterbox
    hwc: Any


@dataclass(frozen=True)
class Letterbox:
    """How an image was letterboxed, to map boxes back: scale `gain`, then `pad` (left, top) added."""

    gain: float
    pad: tuple[float, float]
    size: tuple[int, int]

    def unscale(self, det: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Boxes in the original image's pixels, clipped to it (scores and classes unchanged)."""
        boxes, scores, classes = det
        boxes = boxes.clone()
        boxes[:, [0, 2]] -= self.pad[0]
        boxes[:, [1, 3]] -= self.pad[1]
        boxes /= self.gain
        width, height = self.size
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clamp(0, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clamp(0, height)
        return boxes, scores, classes


def letterbox_shape(height: int, width: int, size: int, stride: int) -> tuple[int, int]:
    """The padded (height, width) YOLOv5's AutoShape uses: longer side `size`, both multiples of `stride`."""
    gain = size / max(height, width)
    return tuple(_ceil_to(int(v * gain), stride) for v in (height, width))  # type: ignore[return-value]


def letterbox(image: torch.Tensor, shape: tuple[int, int]) -> tuple[torch.Tensor, Letterbox]:
    """Resize a uint8 CHW image to fit `shape` (`resize_linear`) and pad it with gray to exactly `shape`, centered."""
    import torch

    _, h, w = image.shape
    gain = min(shape[0] / h, shape[1] / w)
    new_w, new_h = round(w * gain), round(h * gain)
    if (new_h, new_w) != (h, w):
        image = resize_linear(image, new_h, new_w)
    dw, dh = (shape[1] - new_w) / 2, (shape[0] - new_h) / 2
    left, top = round(dw - 0.1), round(dh - 0.1)
    out = torch.full((3, *shape), PAD_VALUE, dtype=image.dtype, device=image.device)
    out[:, top : top + new_h, left : left + new_w] = image
    return out, Letterbox(gain, (float(left), float(top)), (w, h))


def resize_linear(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize of a uint8 CHW image with OpenCV's fixed-point arithmetic (`cv2.INTER_LINEAR`).

    YOLO models were trained and evaluated on OpenCV-resized images, and their scores move by a few
    hundredths when pixels differ by one; this reproduces OpenCV's 11-bit coefficients and rounding
    (bit-exact when downscaling), including its 2x2 averaging for an exact halving. When OpenCV is
    installed, a CPU image is resized by OpenCV itself (the same pixels, about 20x faster).
    """
    import torch

    cv2 = _opencv() if image.device.type == "cpu" and image.shape[0] in (1, 3) else None
    if cv2 is not None:
        array = image.permute(1, 2, 0).contiguous().numpy()
        resized = cv2.resize(array, (width, height), interpolation=cv2.INTER_LINEAR)
        return torch.from_numpy(resized.reshape(height, width, -1)).permute(2, 0, 1)
    _, h, w = image.shape
    if h == 2 * height and w == 2 * width:
        x = image.to(torch.int16)
        total = x[:, 0::2, 0::2] + x[:, 0::2, 1::2] + x[:, 1::2, 0::2] + x[:, 1::2, 1::2]
        return ((total + 2) >> 2).to(torch.uint8)
    x0, x1, cx0, cx1 = (t.to(image.device) for t in _resize_coeffs(w, width))
    y0, y1, cy0, cy1 = (t.to(image.device) for t in _resize_coeffs(h, height))

    def horizontal(rows: torch.Tensor) -> torch.Tensor:
        left = rows.index_select(2, x0).to(torch.int32).mul_(cx0)
        return left.add_(rows.index_select(2, x1).to(torch.int32).mul_(cx1)) >> 4

    top, bottom = horizontal(image.index_select(1, y0)), horizontal(image.index_select(1, y1))
    out = ((top.mul_(cy0.view(1, -1, 1)) >> 16).add_(bottom.mul_(cy1.view(1, -1, 1)) >> 16).add_(2)) >> 2
    return out.clamp_(0, 255).to(torch.uint8)


@functools.cache
def _opencv() -> Any:
    """The cv2 module when OpenCV is installed (it is optional), else None."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def _resize_coeffs(src: int, dst: int) -> tuple[torch.Tensor, ...]:
    """Source indices and 11-bit weights of OpenCV's linear resize along one axis."""
    import numpy as np
    import torch

    f = ((np.arange(dst, dtype=np.float64) + 0.5) * (src / dst) - 0.5).astype(np.float32)
    start = np.floor(f).astype(np.int64)
    f = np.where((start < 0) | (start >= src - 1), np.float32(0), (f - start).astype(np.float32))
    start = np.clip(start, 0, src - 1)
    c0 = np.rint((np.float32(1) - f) * np.float32(2048)).astype(np.int32)
    nxt = np.clip(start + 1, 0, src - 1)
    return tuple(torch.from_numpy(a) for a in (start, nxt, c0, 2048 - c0))


def non_max_suppression(
    preds: torch.Tensor,
    conf: float = 0.25,
    iou: float = 0.45,
    classes: Sequence[int] | None = None,
    max_det: int = 1000,
    agnostic: bool = False,
    max_nms: int = 30000,
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """YOLO post-processing per image: score = objectness x best class probability, threshold, NMS per class.

    Returns:
        Per image `(boxes xyxy, scores, class ids)`, best score first.
    """
    import torch
    from torchvision.ops import batched_nms, box_convert

    out = []
    candidates = preds[..., 4] > conf
    for x, keep in zip(preds, candidates):
        x = x[keep]
        score, cls = (x[:, 5:] * x[:, 4:5]).max(1)
        good = score > conf
        x, score, cls = x[good], score[good], cls[good]
        if classes is not None:
            wanted = torch.isin(cls, torch.as_tensor(list(classes), device=cls.device))
            x, score, cls = x[wanted], score[wanted], cls[wanted]
        if score.numel() > max_nms:
            top = score.topk(max_nms).indices
            x, score, cls = x[top], score[top], cls[top]
        boxes = box_convert(x[:, :4], "cxcywh", "xyxy")
        kept = batched_nms(boxes, score, torch.zeros_like(cls) if agnostic else cls, iou)[:max_det]
        out.append((boxes[kept], score[kept], cls[kept]))
    return out


def model_stride(module: Any) -> int:
    """The largest stride of a detection module (`module.stride`), 32 when it does not say."""
    stride = getattr(module, "stride", None)
    if stride is None:
        return 32
    values = stride.tolist() if hasattr(stride, "tolist") else list(stride) if hasattr(stride, "__iter__") else [stride]
    return int(max(values))


def _ceil_to(x: int, divisor: int) -> int:
    return -(-x // divisor) * divisor


def _check(conf: float, iou: float, max_det: int, batch_size: int) -> None:
    if not 0 <= conf <= 1 or not 0 <= iou <= 1:
        raise InputError(f"conf and iou must be between 0 and 1, not conf={conf}, iou={iou}.")
    if max_det < 1 or batch_size < 1:
        raise InputError(f"max_det and batch_size must be at least 1, not {max_det} and {batch_size}.")
