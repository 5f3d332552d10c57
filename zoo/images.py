"""Image inputs: collect what the user passed (paths, folders, globs, bytes, PIL, numpy, tensors) and
decode it to uint8 CHW tensors with torchvision.io; preprocess batches with transforms v2 on tensors."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import InputError
from zoo.specs import ImagePreprocess

if TYPE_CHECKING:
    import torch

__all__ = ["ImageItem", "collect_images", "decode", "preprocess_batch"]

#: File suffixes a folder or glob contributes (others are skipped there, but a named file is tried).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"})
_TORCHVISION_DECODES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp"})
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class ImageItem:
    """One input image, not yet decoded.

    Attributes:
        data: a `Path`, `bytes`, PIL image, numpy array or tensor.
        source: a name for results: the path, or `<input N>`.
    """

    data: Any
    source: str

    @property
    def is_jpeg_file(self) -> bool:
        """True for a file path with a JPEG suffix (decodable on the GPU)."""
        return isinstance(self.data, Path) and self.data.suffix.lower() in {".jpg", ".jpeg"}


def collect_images(inputs: Any) -> tuple[list[ImageItem], bool]:
    """Expand `inputs` into image items.

    Returns:
        `(items, is_batch)`: `is_batch` is True for lists, folders, globs and NCHW/NHWC arrays, whose
        results come back as a list.

    Raises:
        InputError: a missing path, an empty folder or glob, or an unsupported type.
    """
    if isinstance(inputs, (list, tuple)):
        items: list[ImageItem] = []
        for i, each in enumerate(inputs):
            items.extend(_expand(each, i))
        if not items:
            raise InputError("The input list is empty: pass at least one image.")
        return items, True
    items = list(_expand(inputs, 0))
    return items, _is_batch(inputs)


def _is_batch(obj: Any) -> bool:
    if isinstance(obj, (str, os.PathLike)):
        text = os.fspath(obj)
        return Path(text).is_dir() or (not Path(text).exists() and bool(_GLOB_CHARS & set(text)))
    return getattr(obj, "ndim", None) == 4


def _expand(obj: Any, index: int) -> Iterator[ImageItem]:
    if isinstance(obj, (str, os.PathLike)):
        yield from _expand_path(os.fspath(obj))
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        yield ImageItem(bytes(obj), f"<input {index}>")
    elif getattr(obj, "ndim", None) == 4:  # NCHW tensor or NHWC array
        for j in range(obj.shape[0]):
            yield ImageItem(obj[j], f"<input {index}.{j}>")
    elif getattr(obj, "ndim", None) in (2, 3) or _is_pil(obj):
        yield ImageItem(obj, f"<input {index}>")
    else:
        raise InputError(
            f"Cannot use a {type(obj).__name__} as an image: pass a path, folder, glob, bytes, PIL image, "
            f"numpy HWC array or CHW/NCHW tensor."
        )


def _expand_path(text: str) -> Iterator[ImageItem]:
    path = Path(text).expanduser()
    if path.is_file():
        yield ImageItem(path, str(path))
        return
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"No images in folder {text} (looked for {', '.join(sorted(IMAGE_SUFFIXES))}).")
        yield from (ImageItem(p, str(p)) for p in files)
        return
    if _GLOB_CHARS & set(text):
        files = sorted(Path(p) for p in glob.glob(os.path.expanduser(text), recursive=True))
        files = [p for p in files if p.is_file()]
        if not files:
            raise InputError(f"No files match {text}: check the pattern.")
        yield from (ImageItem(p, str(p)) for p in files)
        return
    raise InputError(f"No such file or folder: {text}. Check the path.")


def _is_pil(obj: Any) -> bool:
    return type(obj).__module__.startswith("PIL.") and hasattr(obj, "convert")


def decode(item: ImageItem, channels: int = 3) -> torch.Tensor:
    """Decode one item to a CHW tensor with `channels` channels: uint8, or float in [0, 1].

    Raises:
        InputError: unreadable, not an image, truncated, or a shape zoo cannot use.
    """
    import torch

    data = item.data
    if isinstance(data, Path):
        image = _decode_file(data, item.source)
    elif isinstance(data, bytes):
        image = _decode_bytes(torch.frombuffer(bytearray(data), dtype=torch.uint8), item.source)
    elif _is_pil(data):
        import numpy as np

        image = torch.from_numpy(np.asarray(data.convert("RGB")).copy()).permute(2, 0, 1)
    elif isinstance(data, torch.Tensor):
        image = _from_tensor(data, item.source)
    else:
        image = _from_numpy(data, item.source)
    return _to_channels(image, channels, item.source)


def _decode_file(path: Path, source: str) -> torch.Tensor:
    import torch
    from torchvision.io import read_file

    if path.suffix.lower() not in _TORCHVISION_DECODES and path.suffix.lower() in IMAGE_SUFFIXES:
        return _decode_pil(path, source)
    try:
        data = read_file(str(path))
    except (RuntimeError, OSError) as exc:
        raise InputError(f"Cannot read {source}: {exc}. Check the file's permissions.") from exc
    if data.numel() == 0:
        raise InputError(f"{source} is empty (0 bytes): it is not an image.")
    return _decode_bytes(torch.as_tensor(data), source)


def _decode_bytes(data: torch.Tensor, source: str) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_image

    try:
        return decode_image(data, mode=ImageReadMode.RGB)
    except RuntimeError as exc:
        reason = str(exc).rsplit(", ", 1)[-1].split(". ")[0].strip()
        raise InputError(f"Cannot decode {source} as an image ({reason}): pass a JPEG, PNG, GIF or WebP file.") from exc


def _decode_pil(path: Path, source: str) -> torch.Tensor:
    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            array = np.asarray(img.convert("RGB")).copy()
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"Cannot decode {source} as an image ({exc}).") from exc
    return torch.from_numpy(array).permute(2, 0, 1)


def _from_tensor(data: torch.Tensor, source: str) -> torch.Tensor:
    if data.ndim == 2:
        data = data.unsqueeze(0)
    if data.ndim != 3:
        raise InputError(f"{source}: a tensor image must be CHW or NCHW, not shape {tuple(data.shape)}.")
    return _check_dtype(data.detach().cpu(), source)


def _from_numpy(data: Any, source: str) -> torch.Tensor:
    import numpy as np
    import torch

    array = np.asarray(data)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise InputError(f"{source}: a numpy image must be HWC or NHWC, not shape {array.shape}.")
    if not array.flags.writeable or not array.flags.c_contiguous:
        array = np.array(array, copy=True, order="C")
    return _check_dtype(torch.from_numpy(array).permute(2, 0, 1), source)


def _check_dtype(image: torch.Tensor, source: str) -> torch.Tensor:
    import torch

    if image.dtype == torch.uint8 or image.is_floating_point():
        return image
    raise InputError(f"{source}: image dtype {image.dtype} is not supported: use uint8, or float in [0, 1].")


def _to_channels(image: torch.Tensor, channels: int, source: str) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as F

    c = image.shape[0]
    if c == 4:
        image, c = image[:3], 3
    if c not in (1, 3):
        raise InputError(
            f"{source} has {c} channels: pass 1 (grayscale), 3 (RGB) or 4 (RGBA) channels, channels first for tensors."
        )
    if c == channels:
        return image
    if channels == 3:
        return image.expand(3, -1, -1)
    return F.rgb_to_grayscale(image)


def preprocess_batch(images: Sequence[torch.Tensor], spec: ImagePreprocess, device: torch.device) -> torch.Tensor:
    """Resize, center-crop, scale and normalize images into one float NCHW batch on `device`.

    Matches torchvision's `ImageClassification` transform bit for bit: each image is resized with
    `torchvision.transforms.functional.resize` (the v2 uint8 fast path rounds differently, enough to
    move a top-1 score by 0.006) and cropped, then the stacked batch is converted and normalized.
    A spec naming another pipeline (face2paint, timm) runs that one (`zoo.pipelines`).
    """
    if spec.pipeline != "torchvision":
        from zoo.pipelines import pipeline_batch

        return pipeline_batch(images, spec, device)
    import torch
    from torchvision.transforms import functional as F1
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    interpolation = InterpolationMode(spec.interpolation)
    out = []
    for image in images:
        image = image.to(device, non_blocking=True)
        if spec.resize is not None:
            size = [spec.resize] if isinstance(spec.resize, int) else list(spec.resize)
            image = F1.resize(image, size, interpolation=interpolation, antialias=spec.antialias)
        if spec.crop is not None:
            image = F.center_crop(image, [spec.crop] if isinstance(spec.crop, int) else list(spec.crop))
        out.append(image)
    shapes = {tuple(t.shape) for t in out}
    if len(shapes) > 1:
        raise InputError(
            f"Images of different sizes {sorted(shapes)} cannot be batched: this model's preprocessing has no crop; "
            f"use batch_size=1."
        )
    if all(t.dtype == torch.uint8 for t in out):  # one conversion for the batch: the same numbers, faster
        batch = F.to_dtype(torch.stack(out), torch.float32, scale=True)
    else:
        batch = torch.stack([F.to_dtype(t, torch.float32, scale=True) for t in out])
    return F.normalize(batch, mean=list(spec.mean), std=list(spec.std))
