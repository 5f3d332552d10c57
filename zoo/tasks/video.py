"""The `video-classification` task: a video in (a file read with PyAV, a folder of frames, or a T x H x W x C
tensor), `VideoClassification` out: top-k of the softmax averaged over consecutive clips.

Each frame goes through torchvision's `VideoClassification` preset, from the model's `ImagePreprocess`:
resize (no antialias, as torchvision's preset hard-codes), center crop, scale to [0, 1], normalize; a clip
is (C, T, H, W).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import InputError, UnsupportedError
from zoo.results.video import VideoClassification
from zoo.tasks.base import Task

if TYPE_CHECKING:
    import torch

    from zoo.specs import ImagePreprocess

__all__ = ["VideoClassifier", "clip_input", "read_frames"]

#: Frames per clip when the model does not say (`min_temporal_size` in its weights' metadata).
CLIP_FRAMES = 16
_FRAME_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class VideoClassifier(Task):
    """Video classification: frames, clips, preset, forward, softmax averaged over clips, top-k."""

    name = "video-classification"
    options = frozenset({"top_k", "clip_len", "batch_size"})
    plots = False
    hub_pipeline = "video-classification"
    warns_random_weights = True

    def predict(
        self, inputs: Any, *, top_k: int = 5, clip_len: int | None = None, batch_size: int = 4
    ) -> VideoClassification:
        """Classify one video.

        Args:
            inputs: a video file (read with PyAV), a folder of frame images (sorted by name), or a uint8
                tensor / array of shape (T, H, W, C).
            top_k: number of classes in the result.
            clip_len: frames per clip; default the model's (its weights' `min_temporal_size`, else 16). A
                video shorter than a clip is padded by repeating its last frame.
            batch_size: clips per forward pass.
        """
        import torch

        if top_k < 1 or batch_size < 1:
            raise InputError(f"top_k and batch_size must be at least 1, not {top_k} and {batch_size}.")
        spec = self.model.preprocess
        if spec is None:
            raise UnsupportedError(f"{self.model.name} declares no preprocessing: video-classification needs it.")
        frames, source = read_frames(inputs)
        length = int(clip_len or _model_clip_len(self.model))
        if length < 1:
            raise InputError(f"clip_len must be at least 1, not {length}.")
        clips = _clips(frames, length)
        module = self.model.module.eval()
        probs = []
        with torch.inference_mode():
            for start in range(0, len(clips), batch_size):
                batch = torch.stack([clip_input(c, spec) for c in clips[start : start + batch_size]])
                probs.append(module(batch.to(self.model.device)).float().softmax(-1).cpu())
        mean = torch.cat(probs).mean(0)
        scores, indices = mean.topk(min(top_k, mean.numel()))
        labels = self.model.labels
        ids = tuple(int(i) for i in indices.tolist())
        names = tuple(labels[i] if labels and i < len(labels) else str(i) for i in ids)
        return VideoClassification(names, tuple(scores.tolist()), ids, source, len(clips), int(frames.shape[0]))


def _model_clip_len(model: Any) -> int:
    weights = model.spec.weights.get(model.weights) if model.weights else None
    return int((weights.meta.get("min_temporal_size") if weights else None) or CLIP_FRAMES)


def _clips(frames: torch.Tensor, length: int) -> list[torch.Tensor]:
    """Consecutive clips of `length` frames; the last frame repeated to fill the last clip."""
    import torch

    count = -(-frames.shape[0] // length)
    missing = count * length - frames.shape[0]
    if missing:
        frames = torch.cat([frames, frames[-1:].expand(missing, *frames.shape[1:])])
    return list(frames.split(length))


def read_frames(inputs: Any) -> tuple[torch.Tensor, str | None]:
    """The frames of `inputs` as a uint8 (T, H, W, C) tensor, and the source's name.

    Raises:
        InputError: not a video, folder of frames, or (T, H, W, 3) array; no frames.
    """
    import numpy as np
    import torch

    if isinstance(inputs, (str, Path)):
        path = Path(inputs)
        if path.is_dir():
            return _read_folder(path), str(path)
        if path.is_file():
            return _read_video(path), str(path)
        raise InputError(f"{path} is not a video file or a folder of frames.")
    if isinstance(inputs, np.ndarray):
        inputs = torch.from_numpy(inputs)
    if isinstance(inputs, torch.Tensor) and inputs.ndim == 4 and inputs.shape[-1] == 3 and inputs.shape[0] > 0:
        if inputs.is_floating_point():
            inputs = inputs.mul(255).round().clamp(0, 255)
        return inputs.to(torch.uint8), None
    raise InputError("video-classification takes a video file, a folder of frames, or a (T, H, W, 3) tensor.")


def _read_video(path: Path) -> torch.Tensor:
    import torch

    try:
        import av
    except ImportError:
        raise UnsupportedError("Reading video files needs PyAV: pip install av.") from None
    try:
        with av.open(str(path)) as container:
            frames = [torch.from_numpy(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    except (av.FFmpegError, ValueError, IndexError) as exc:
        raise InputError(f"{path} is not a readable video: {exc}") from None
    if not frames:
        raise InputError(f"{path} holds no video frames.")
    return torch.stack(frames)


def _read_folder(path: Path) -> torch.Tensor:
    import torch

    from zoo.images import collect_images, decode

    files = sorted(p for p in path.iterdir() if p.suffix.lower() in _FRAME_SUFFIXES)
    if not files:
        raise InputError(f"{path} holds no frame images ({', '.join(sorted(_FRAME_SUFFIXES))}).")
    items, _ = collect_images([str(p) for p in files])
    frames = [decode(item, 3).permute(1, 2, 0) for item in items]
    if len({tuple(f.shape) for f in frames}) > 1:
        raise InputError(f"The frames in {path} do not all have the same size.")
    return torch.stack(frames)


def clip_input(clip: torch.Tensor, spec: ImagePreprocess) -> torch.Tensor:
    """torchvision's `VideoClassification` preset on a uint8 (T, H, W, C) clip: a float (C, T, H, W) tensor."""
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as F

    frames = clip.permute(0, 3, 1, 2)
    if spec.resize is not None:
        size = [spec.resize] if isinstance(spec.resize, int) else list(spec.resize)
        frames = F.resize(frames, size, interpolation=InterpolationMode(spec.interpolation), antialias=False)
    if spec.crop is not None:
        frames = F.center_crop(frames, [spec.crop] * 2 if isinstance(spec.crop, int) else list(spec.crop))
    frames = F.normalize(F.convert_image_dtype(frames, torch.float), mean=list(spec.mean), std=list(spec.std))
    return frames.permute(1, 0, 2, 3)
