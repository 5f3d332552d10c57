"""Training data in: ImageFolder directories, torch Datasets (torchvision's included), (x, y) arrays.

Everything becomes `Samples`: a map-style dataset of `(tensor, label)` pairs that decodes images with
`zoo.images` (torchvision.io), applies the transform, and yields None for an unreadable image, which
`collate` drops and counts.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import InputError
from zoo.images import IMAGE_SUFFIXES, ImageItem, decode

if TYPE_CHECKING:
    import torch

__all__ = ["DataSplit", "Samples", "collate", "load_data"]

log = logging.getLogger(__name__)
VAL_FOLDERS = ("val", "valid", "validation")


class FolderSource:
    """Images in `root/<class>/...`, classes sorted by folder name (torchvision's ImageFolder layout)."""

    def __init__(self, root: Path, classes: Sequence[str] | None = None) -> None:
        self.root = root
        found = _class_folders(root)
        self.classes = tuple(classes) if classes is not None else tuple(found)
        unknown = sorted(set(found) - set(self.classes))
        if unknown:
            raise InputError(f"{root} has classes {unknown} that the training data lacks: use the same class folders.")
        index = {name: i for i, name in enumerate(self.classes)}
        self.files = [(f, index[c]) for c, files in found.items() for f in files]
        if not self.files:
            raise InputError(f"No images in {root}: put them in one folder per class, {root}/<class>/<image>.")

    def __len__(self) -> int:
        return len(self.files)

    def get(self, i: int) -> tuple[Any, int, str]:
        path, target = self.files[i]
        return path, target, str(path)

    @property
    def targets(self) -> list[int]:
        return [t for _, t in self.files]


class ArraySource:
    """`(x, y)`: x a tensor (NCHW, NHW or N x features) or a numpy array (NHWC, NHW), y integer labels."""

    def __init__(self, x: Any, y: Any) -> None:
        import numpy as np

        if len(x) != len(y):
            raise InputError(f"x has {len(x)} samples but y has {len(y)} labels: pass one label per sample.")
        self.x = x
        self.y = np.asarray(y.cpu() if hasattr(y, "cpu") else y)
        if self.y.ndim != 1 or not np.issubdtype(self.y.dtype, np.integer):
            raise InputError(f"y must be a 1-D array of integer class indices, not {self.y.dtype} {self.y.shape}.")
        self.targets = self.y.tolist()

    def __len__(self) -> int:
        return len(self.x)

    def get(self, i: int) -> tuple[Any, int, str]:
        return self.x[i], int(self.y[i]), f"<sample {i}>"


class DatasetSource:
    """A map-style dataset returning `(image, label)`: a torch Dataset, or a torchvision dataset on disk."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset
        targets = getattr(dataset, "targets", None)
        self.targets = [int(t) for t in targets] if targets is not None else None

    def __len__(self) -> int:
        return len(self.dataset)

    def get(self, i: int) -> tuple[Any, int, str]:
        item = self.dataset[i]
        return item[0], int(item[1]), f"<sample {i}>"


class Samples:
    """Items `indices` of a source as `(tensor, label)`, transformed; None for an unreadable image.

    Args:
        source: a `FolderSource`, `ArraySource` or `DatasetSource`.
        indices: which items of the source this split holds.
        transform: per-sample transform of the decoded CHW tensor.
        channels: 1 or 3 to decode images with that many channels; None for non-image tensors.
    """

    def __init__(self, source: Any, indices: Sequence[int], transform: Callable[..., Any] | None, channels: int | None):
        self.source = source
        self.indices = list(indices)
        self.transform = transform
        self.channels = channels

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int] | None:
        import torch

        raw, target, name = self.source.get(self.indices[i])
        if self.channels is None:
            return torch.as_tensor(raw), target
        try:
            image = decode(ImageItem(raw if not isinstance(raw, str) else Path(raw), name), self.channels)
        except InputError as exc:
            log.debug("skipping %s", exc)
            return None
        return (self.transform(image) if self.transform is not None else image), target


def collate(batch: Sequence[tuple[torch.Tensor, int] | None]) -> tuple[torch.Tensor | None, torch.Tensor | None, int]:
    """Stack a batch, dropping unreadable images: `(x, y, skipped)`; x and y are None when all were."""
    import torch

    kept = [item for item in batch if item is not None]
    skipped = len(batch) - len(kept)
    if not kept:
        return None, None, skipped
    try:
        x = torch.stack([item[0] for item in kept])
    except RuntimeError as exc:
        shapes = sorted({tuple(item[0].shape) for item in kept})
        raise InputError(f"Samples of different shapes {shapes[:3]} cannot be batched: pass image_size=.") from exc
    return x, torch.tensor([item[1] for item in kept], dtype=torch.long), skipped


@dataclass(frozen=True)
class DataSplit:
    """Training and validation sources with the class labels.

    Attributes:
        train: `(source, indices)` to train on.
        val: `(source, indices)` to validate on, or None.
        labels: class names, index i for class i.
    """

    train: tuple[Any, list[int]]
    val: tuple[Any, list[int]] | None
    labels: tuple[str, ...]


def load_data(
    train: Any, val: Any = None, *, labels: Sequence[str] | None = None, val_split: float | None = None, seed: int = 0
) -> DataSplit:
    """Resolve what the user passed into sources, labels and a train/validation split.

    Args:
        train: an ImageFolder directory (one holding `train/` and `val/` is split by them), a Dataset,
            or `(x, y)`.
        val: the same kinds, a fraction of `train` to hold out, or None.
        labels: class names; inferred from folders, `dataset.classes` or the labels' range otherwise.
        val_split: fraction held out when `val` is None.
        seed: seeds the held-out split.

    Raises:
        InputError: empty data, a single class, labels outside the class range, mismatched folders.
    """
    if val is None and _is_path(train) and (nested := _train_val_folders(Path(train))):
        train, val = nested
    source = _source(train)
    names = _labels(source, labels)
    if isinstance(val, float) or (val is None and val_split):
        fraction = float(val if val is not None else val_split)  # type: ignore[arg-type]
        train_idx, val_idx = _split(len(source), fraction, seed)
        return DataSplit((source, train_idx), (source, val_idx), names)
    val_part = None
    if val is not None:
        val_source = _source(val, classes=names if isinstance(source, FolderSource) else None)
        _check_range(val_source, len(names), "val")
        val_part = (val_source, list(range(len(val_source))))
    return DataSplit((source, list(range(len(source)))), val_part, names)


def _is_path(obj: Any) -> bool:
    return isinstance(obj, (str, os.PathLike))


def _source(obj: Any, classes: Sequence[str] | None = None) -> Any:
    if _is_path(obj):
        root = Path(obj).expanduser()
        if not root.is_dir():
            raise InputError(f"No such folder: {root}. Pass an ImageFolder directory (one folder per class).")
        return FolderSource(root, classes)
    if isinstance(obj, tuple) and len(obj) == 2 and all(hasattr(v, "__len__") for v in obj):
        return ArraySource(*obj)
    if hasattr(obj, "__getitem__") and hasattr(obj, "__len__"):
        if len(obj) == 0:
            raise InputError("The dataset is empty: pass at least two classes of samples.")
        return DatasetSource(obj)
    raise InputError(
        f"Cannot train on a {type(obj).__name__}: pass an ImageFolder directory, a torch Dataset, or (x, y) arrays."
    )


def _class_folders(root: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            found[folder.name] = files
        else:
            log.warning("ignoring %s: it holds no images", folder)
    return found


def _train_val_folders(root: Path) -> tuple[Path, Path] | None:
    if not (root / "train").is_dir():
        return None
    val = next((root / name for name in VAL_FOLDERS if (root / name).is_dir()), None)
    return (root / "train", val) if val is not None else None


def _labels(source: Any, given: Sequence[str] | None) -> tuple[str, ...]:
    classes = getattr(source, "classes", None) or getattr(getattr(source, "dataset", None), "classes", None)
    targets = source.targets if source.targets is not None else _scan_targets(source)
    if not targets:
        raise InputError("The training data is empty: pass at least two classes of samples.")
    count = max(len(classes or ()), max(targets) + 1)
    names = tuple(str(c) for c in (given if given is not None else classes or range(count)))
    if given is not None and len(names) < count:
        raise InputError(f"labels= names {len(names)} classes but the data has class indices up to {count - 1}.")
    _check_range(source, len(names), "train", targets)
    if len(set(targets)) < 2:
        only = names[targets[0]] if targets[0] < len(names) else targets[0]
        raise InputError(f"The training data has a single class ({only!r}): fine-tuning needs at least two classes.")
    return names


def _scan_targets(source: Any) -> list[int]:
    log.info("reading every sample's label (the dataset has no .targets)")
    return [source.get(i)[1] for i in range(len(source))]


def _check_range(source: Any, count: int, what: str, targets: Sequence[int] | None = None) -> None:
    targets = targets if targets is not None else (source.targets or [])
    if targets and (min(targets) < 0 or max(targets) >= count):
        raise InputError(
            f"The {what} labels run from {min(targets)} to {max(targets)}; use class indices 0..{count - 1}."
        )


def _split(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    import torch

    if not 0 < fraction < 1:
        raise InputError(f"A validation fraction must be in (0, 1), not {fraction}.")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    k = min(max(1, round(n * fraction)), n - 1)
    return sorted(order[k:]), sorted(order[:k])
