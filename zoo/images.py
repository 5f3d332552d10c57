"""Image inputs: collect what the user passed (paths, folders, globs, bytes, PIL, numpy, tensors) and
decode it to upright uint8 CHW tensors with torchvision.io; preprocess batches with transforms v2 on tensors.

Every encoded image (file, bytes, PIL image) is checked before it is decoded: its size, read from the
header, must be under the pixel limit (`max_pixels`, `ZOO_MAX_PIXELS`), and its EXIF orientation is
applied, so a phone photo stored sideways is seen upright everywhere (predict, fine-tuning, plots).
"""

from __future__ import annotations

import glob
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import InputError, ZooError
from zoo.specs import ImagePreprocess

if TYPE_CHECKING:
    import torch

__all__ = [
    "ImageItem",
    "check_size",
    "collect_images",
    "decode",
    "exif_orientation",
    "max_pixels",
    "normalize_batch",
    "open_upright",
    "orient",
    "preprocess_batch",
    "resize_crop",
]

#: File suffixes a folder or glob contributes (others are skipped there, but a named file is tried).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"})
_TORCHVISION_DECODES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp"})
_GLOB_CHARS = frozenset("*?[")
#: The largest side a caller may ask preprocessing to resize, crop or letterbox to.
MAX_SIDE = 8192
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class ImageItem:
    """One input image, not yet decoded.

    Attributes:
        data: a `Path`, `bytes`, PIL image, numpy array or tensor.
        source: a name for results: the path, or `<input N>`.
        found: True for a file a folder or glob contributed (not named by the caller); such files are
            skipped when unreadable unless `on_error="raise"`.
    """

    data: Any
    source: str
    found: bool = False

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
        yield from (ImageItem(p, str(p), found=True) for p in files)
        return
    if _GLOB_CHARS & set(text):
        files = sorted(Path(p) for p in glob.glob(os.path.expanduser(text), recursive=True))
        files = [p for p in files if p.is_file()]
        if not files:
            raise InputError(f"No files match {text}: check the pattern.")
        yield from (ImageItem(p, str(p), found=True) for p in files)
        return
    raise InputError(f"No such file or folder: {text}. Check the path.", path=text)


def _is_pil(obj: Any) -> bool:
    return type(obj).__module__.startswith("PIL.") and hasattr(obj, "convert")


def decode(item: ImageItem, channels: int = 3) -> torch.Tensor:
    """Decode one item to an upright CHW tensor with `channels` channels: uint8, or float in [0, 1].

    Files, bytes and PIL images are checked against the pixel limit before decoding, and their EXIF
    orientation is applied.

    Raises:
        InputError: unreadable, not an image, truncated, over the pixel limit, or a shape zoo cannot use.
    """
    import torch

    data = item.data
    if isinstance(data, Path):
        orientation = check_header(item)
        image = orient(_decode_file(data, item.source), orientation)
    elif isinstance(data, bytes):
        orientation = check_header(item)
        image = orient(_decode_bytes(torch.frombuffer(bytearray(data), dtype=torch.uint8), item.source), orientation)
    elif _is_pil(data):
        import numpy as np

        _check_pixels(data.size, item.source)
        array = np.asarray(data.convert("RGB")).copy()
        image = orient(torch.from_numpy(array).permute(2, 0, 1), exif_orientation(data))
    elif isinstance(data, torch.Tensor):
        image = _from_tensor(data, item.source)
    else:
        image = _from_numpy(data, item.source)
    return _to_channels(image, channels, item.source)


def max_pixels() -> int | None:
    """The most pixels an encoded image may have before zoo decodes it; None for no limit.

    `ZOO_MAX_PIXELS` (an integer; 0 or `none` for no limit) sets it; the default is where PIL itself
    refuses an image as a decompression bomb: twice `PIL.Image.MAX_IMAGE_PIXELS` (178,956,970 pixels).

    Raises:
        ZooError: `ZOO_MAX_PIXELS` is not a non-negative integer.
    """
    raw = os.environ.get("ZOO_MAX_PIXELS", "").strip().lower().replace("_", "")
    if not raw:
        from PIL import Image

        return 2 * int(Image.MAX_IMAGE_PIXELS) if Image.MAX_IMAGE_PIXELS else None
    if raw == "none":
        return None
    if not raw.isdigit():
        raise ZooError(f"ZOO_MAX_PIXELS={raw!r} is not a number of pixels: use an integer, or 0 for no limit.")
    return int(raw) or None


def _check_pixels(size: tuple[int, int], source: str) -> None:
    limit = max_pixels()
    width, height = size
    if limit is not None and width * height > limit:
        raise InputError(
            f"{source} is {width}x{height} pixels ({width * height / 1e6:.1f} Mpx), over the limit of "
            f"{limit / 1e6:.1f} Mpx: shrink it, or raise ZOO_MAX_PIXELS (0 for no limit)."
        )


def check_header(item: ImageItem) -> int:
    """Check an encoded image's size from its header, before decoding, and return its EXIF orientation.

    PIL reads only the header (`Image.open` is lazy). Data PIL cannot identify gives orientation 1 and is
    left to the decoder, which names the problem.

    Raises:
        InputError: the image has more pixels than `max_pixels()`.
    """
    import io

    from PIL import Image

    data = item.data
    stream: Any = data if isinstance(data, Path) else io.BytesIO(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(stream) as img:
                size = img.size
                _check_pixels(size, item.source)
                return exif_orientation(img)
    except Image.DecompressionBombError as exc:  # over PIL's own limit: read the size without its check
        size = _unchecked_size(data) or (_bomb_pixels(exc), 1)
        _check_pixels(size, item.source)
        return 1
    except ZooError:
        raise
    except Exception:  # noqa: BLE001 - not something PIL identifies: the decoder reports it
        return 1


def _unchecked_size(data: Path | bytes) -> tuple[int, int] | None:
    """(width, height) from the header by PIL's format plugins, without `Image.open`'s decompression-bomb check."""
    import io

    from PIL import Image

    Image.init()
    with open(data, "rb") if isinstance(data, Path) else io.BytesIO(data) as stream:
        prefix = stream.read(16)
        for fmt in Image.ID:
            factory, accept = Image.OPEN[fmt]
            if accept is not None and not accept(prefix):
                continue
            stream.seek(0)
            try:
                return tuple(factory(stream, "").size)  # type: ignore[return-value]
            except Exception:  # noqa: BLE001, S112 - not this format: try the next one
                continue
    return None


def _bomb_pixels(exc: Exception) -> int:
    found = re.search(r"\((\d+) pixels\)", str(exc))
    return int(found.group(1)) if found else 2**62


def exif_orientation(image: Any) -> int:
    """The EXIF orientation (1-8) of an opened PIL image, read without decoding its pixels; 1 when absent."""
    from PIL import Image

    try:
        if image.format == "PNG":  # PIL's getexif() decodes a PNG to find a late eXIf chunk: read the header's
            raw = image.info.get("exif")
            exif = Image.Exif()
            if raw:
                exif.load(raw)
        else:
            exif = image.getexif()
        value = int(exif.get(_EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001 - broken EXIF: the pixels as stored
        return 1
    return value if 1 <= value <= 8 else 1


def orient(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """Apply an EXIF orientation to a CHW tensor: the same pixels as `PIL.ImageOps.exif_transpose`."""
    turned = {
        2: lambda: image.flip(-1),
        3: lambda: image.flip(-1, -2),
        4: lambda: image.flip(-2),
        5: lambda: image.transpose(-1, -2),
        6: lambda: image.rot90(-1, (-2, -1)),
        7: lambda: image.transpose(-1, -2).flip(-1, -2),
        8: lambda: image.rot90(1, (-2, -1)),
    }.get(orientation)
    return image if turned is None else turned().contiguous()


def open_upright(path: str | os.PathLike[str]) -> Any:
    """A file as an upright PIL RGB image (EXIF orientation applied), checked against the pixel limit.

    Raises:
        InputError: over the pixel limit, or not an image PIL can read.
    """
    from PIL import Image, ImageOps

    item = ImageItem(Path(path), os.fspath(path))
    check_header(item)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return (ImageOps.exif_transpose(image) or image).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"Cannot read {item.source} as an image ({exc}).") from exc


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
        message = str(exc)
        if "Unsupported image file" in message:
            reason = "not an image format zoo reads"
        else:
            reason = message.rsplit(", ", 1)[-1].split(". ")[0].strip()
        raise InputError(f"Cannot decode {source} as an image ({reason}): pass a JPEG, PNG, GIF or WebP file.") from exc


def _decode_pil(path: Path, source: str) -> torch.Tensor:
    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            array = np.asarray(img.convert("RGB")).copy()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
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


def check_size(value: int | Sequence[int] | None, what: str) -> None:
    """Refuse a preprocessing size (resize, crop, letterbox) outside 1..`MAX_SIDE`, before anything is allocated.

    Raises:
        InputError: a side below 1 or above `MAX_SIDE`, or not an integer.
    """
    if value is None:
        return
    sides = [value] if isinstance(value, int) else list(value)
    if not sides or len(sides) > 2 or not all(isinstance(v, int) and 1 <= v <= MAX_SIDE for v in sides):
        raise InputError(f"{what}={value!r} is not a usable image size: use integers from 1 to {MAX_SIDE}.")


def resize_crop(image: torch.Tensor, spec: ImagePreprocess) -> torch.Tensor:
    """Resize and center-crop one CHW image as `spec` says: the geometric half of `preprocess_batch`.

    Fine-tuning validates through this function too, so validation accuracy is what predict gives.
    """
    from torchvision.transforms import functional as F1
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    check_size(spec.resize, "resize")
    check_size(spec.crop, "crop")
    if spec.resize is not None:
        size = [spec.resize] if isinstance(spec.resize, int) else list(spec.resize)
        interpolation = InterpolationMode(spec.interpolation)
        image = F1.resize(image, size, interpolation=interpolation, antialias=spec.antialias)
    if spec.crop is not None:
        image = F.center_crop(image, [spec.crop] if isinstance(spec.crop, int) else list(spec.crop))
    return image


def normalize_batch(batch: torch.Tensor, spec: ImagePreprocess) -> torch.Tensor:
    """Scale a uint8 (or [0, 1] float) NCHW batch to float and normalize it with `spec`'s mean and std."""
    import torch
    from torchvision.transforms.v2 import functional as F

    if batch.dtype == torch.uint8:
        batch = F.to_dtype(batch, torch.float32, scale=True)
    elif batch.dtype != torch.float32:
        batch = batch.float()
    return F.normalize(batch, mean=list(spec.mean), std=list(spec.std))


def preprocess_batch(images: Sequence[torch.Tensor], spec: ImagePreprocess, device: torch.device) -> torch.Tensor:
    """Resize, center-crop, scale and normalize images into one float NCHW batch on `device`.

    Matches torchvision's `ImageClassification` transform bit for bit: each image is resized with
    `torchvision.transforms.functional.resize` (the v2 uint8 fast path rounds differently, enough to
    move a top-1 score by 0.006) and cropped (`resize_crop`), then the stacked batch is converted and
    normalized (`normalize_batch`). A spec naming another pipeline (face2paint, timm) runs that one
    (`zoo.pipelines`).
    """
    if spec.pipeline != "torchvision":
        from zoo.pipelines import pipeline_batch

        return pipeline_batch(images, spec, device)
    import torch
    from torchvision.transforms.v2 import functional as F

    out = [resize_crop(image.to(device, non_blocking=True), spec) for image in images]
    shapes = {tuple(t.shape) for t in out}
    if len(shapes) > 1:
        raise InputError(
            f"Images of different sizes {sorted(shapes)} cannot be batched: this model's preprocessing has no crop; "
            f"use batch_size=1."
        )
    if all(t.dtype == torch.uint8 for t in out):  # one conversion for the batch: the same numbers, faster
        return normalize_batch(torch.stack(out), spec)
    batch = torch.stack([F.to_dtype(t, torch.float32, scale=True) for t in out])
    return normalize_batch(batch, spec)


def decode_each(
    items: Sequence[ImageItem],
    channels: int,
    *,
    on_error: str | None,
    is_batch: bool,
    skipped: list[Any],
    decoder: Any = None,
) -> list[tuple[ImageItem, torch.Tensor]]:
    """Decode `items`, skipping the unreadable ones that `on_error` lets go (recorded in `skipped`).

    Args:
        items: what to decode.
        channels: 1 or 3.
        on_error: "raise", "skip", or None (raise for named inputs, skip files a folder or glob found).
        is_batch: False for a single input, which always raises.
        skipped: receives a `SkippedInput` per skipped item.
        decoder: `decode`-like callable (item, channels) -> tensor; `decode` by default.

    Returns:
        `(item, image)` for every item that was decoded, in order.
    """
    from zoo.results.batch import SkippedInput, should_raise

    decoded = []
    for item in items:
        try:
            decoded.append((item, (decoder or decode)(item, channels)))
        except InputError as exc:
            if should_raise(on_error, item.found, is_batch):
                raise
            skipped.append(SkippedInput(item.source, str(exc)))
    return decoded
