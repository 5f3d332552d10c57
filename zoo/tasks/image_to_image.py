"""The `image-to-image` task: images in, `ImageOutput` out (style transfer, restoration, super-resolution).

The model's preprocessing normalizes the input (`ImagePreprocess` mean and std); its output is read back
in the same normalized space (`x * std + mean`, clamped to [0, 1]), as a GAN ending in tanh produces it.
An input larger than the model's working size (the preprocessing's crop) is processed at full resolution
in overlapping tiles of that size, blended with linear ramps, instead of being cropped and shrunk.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from zoo.errors import InputError, UnsupportedError
from zoo.images import check_size, collect_images, decode_each, preprocess_batch
from zoo.progress import progress_bar
from zoo.results import ImageOutput
from zoo.results.batch import SkippedInput, check_on_error, finish
from zoo.specs import ImagePreprocess
from zoo.streaming import ResultStream, batched, collect, in_input_order, prefetch, worker_count
from zoo.tasks.base import Task

if TYPE_CHECKING:
    import torch

__all__ = ["ImageToImage", "tile_starts"]


class ImageToImage(Task):
    """Image-to-image generation with tiling for large inputs."""

    name = "image-to-image"
    options = frozenset({"tile", "overlap", "batch_size", "keep_input", "amp", "on_error", "stream", "num_workers"})
    plots = True
    warns_random_weights = True
    hub_pipeline = "image-to-image"

    def predict(
        self,
        inputs: Any,
        *,
        tile: bool | None = None,
        overlap: int = 32,
        batch_size: int = 4,
        keep_input: bool = True,
        amp: bool | None = None,
        on_error: str | None = None,
        stream: bool = False,
        num_workers: int | str = "auto",
    ) -> ImageOutput | list[ImageOutput] | ResultStream:
        """Turn images into images.

        Args:
            inputs: a path, folder, glob, bytes, PIL image, numpy HWC uint8 array, tensor, or a list of those.
            tile: True processes the whole image in tiles of the working size; False crops and resizes to
                the working size (upstream's face2paint); None (default) tiles only inputs larger than it.
            overlap: pixels shared by neighbouring tiles (blended).
            batch_size: tiles (or images) per forward pass.
            keep_input: keep the input image in the result, for `side_by_side()`.
            amp: bf16 autocast; default on for CUDA, off elsewhere.
            on_error: what an unreadable image of a batch does: "raise", or "skip" it (named in the
                result list's `skipped`, with a `SkippedInputsWarning`); None (default) raises for an
                input you named and skips files a folder or glob found. A single input always raises.
            stream: return a `ResultStream` (an iterator in input order) that decodes and runs one image at
                a time, so memory does not grow with the number of inputs.
            num_workers: threads decoding the next images while one runs ("auto", or 0).

        Returns:
            One `ImageOutput`, or a `ResultList` for list-like inputs; a `ResultStream` with `stream=True`.
        """
        check_on_error(on_error)
        spec = self.model.preprocess
        if spec is None:
            raise UnsupportedError(f"{self.model.name} declares no preprocessing: image-to-image needs mean and std.")
        if batch_size < 1 or overlap < 0:
            raise InputError(f"batch_size must be at least 1 and overlap at least 0, not {batch_size}, {overlap}.")
        check_size(spec.resize, "resize")
        check_size(spec.crop, "crop")
        items, is_batch = collect_images(inputs)
        work = spec.input_size
        workers = worker_count(num_workers)

        def prepare(chunk: list[Any]) -> tuple[list[Any], list[Any], list[SkippedInput]]:
            skipped: list[SkippedInput] = []
            return (
                chunk,
                decode_each(chunk, spec.channels, on_error=on_error, is_batch=is_batch, skipped=skipped),
                skipped,
            )

        def run(image: torch.Tensor, source: str) -> ImageOutput:
            big = work is not None and (image.shape[1] > work[0] or image.shape[2] > work[1])
            if tile or (tile is None and big) or work is None:
                return self._tiled(image, source, spec, work, overlap, batch_size, keep_input, amp)
            return self._whole(image, source, spec, keep_input, amp)

        def events() -> Any:
            with progress_bar(len(items) if is_batch else 0, "generating") as advance:
                for chunk, decoded, skipped in prefetch(batched(items, 1), prepare, workers):
                    found = [run(image, item.source) for item, image in decoded]
                    yield list(in_input_order(chunk, [item for item, _ in decoded], found, skipped))
                    advance(1)

        if stream:
            return ResultStream(events(), len(items))
        results, skipped = collect(events())
        return finish(results, skipped, is_batch)

    def _whole(
        self, image: torch.Tensor, source: str, spec: ImagePreprocess, keep: bool, amp: bool | None
    ) -> ImageOutput:
        batch = preprocess_batch([image], spec, self.model.device)
        out = self._forward(batch, amp)
        picture = _to_pil(_denormalize(out[0], spec))
        seen = _to_pil(_denormalize(batch[0], spec)) if keep else None
        return ImageOutput(picture, source, seen, 1)

    def _tiled(self, image: torch.Tensor, source: str, spec: ImagePreprocess, work: tuple[int, int] | None,
               overlap: int, batch_size: int, keep: bool, amp: bool | None) -> ImageOutput:  # fmt: skip
        import torch
        from torchvision.transforms.v2 import functional as F

        x = F.normalize(F.to_dtype(image, torch.float32, scale=True), mean=list(spec.mean), std=list(spec.std))
        x = x.to(self.model.device)
        _, h, w = x.shape
        th, tw = (min(work[0], h), min(work[1], w)) if work else (h, w)
        boxes = [(y, x0) for y in tile_starts(h, th, overlap) for x0 in tile_starts(w, tw, overlap)]
        blended = self._blend(x, boxes, (th, tw), overlap, batch_size, amp)
        picture = _to_pil(_denormalize(blended, spec))
        seen = _to_pil(image if image.is_floating_point() else image.float() / 255) if keep else None
        return ImageOutput(picture, source, seen, len(boxes))

    def _blend(self, x: torch.Tensor, boxes: list[tuple[int, int]], tile: tuple[int, int], overlap: int,
               batch_size: int, amp: bool | None) -> torch.Tensor:  # fmt: skip
        """The model's output over all tiles of `x`, blended; placed at the output's scale (super-resolution)."""
        import torch

        th, tw = tile
        chunks = [boxes[i : i + batch_size] for i in range(0, len(boxes), batch_size)]
        outs = (
            self._forward(torch.stack([x[:, y : y + th, x0 : x0 + tw] for y, x0 in chunk]), amp) for chunk in chunks
        )
        first = next(outs)
        scale = first.shape[-1] // tw
        acc = torch.zeros(first.shape[1], x.shape[1] * scale, x.shape[2] * scale, device=first.device)
        weight = torch.zeros(1, *acc.shape[1:], device=first.device)
        ramp = _ramp(th * scale, tw * scale, overlap * scale, first.device)
        for chunk, out in zip(chunks, (first, *outs)):
            for (y, x0), tile_out in zip(chunk, out):
                region = (slice(None), slice(y * scale, (y + th) * scale), slice(x0 * scale, (x0 + tw) * scale))
                acc[region] += tile_out * ramp
                weight[region] += ramp
        return acc / weight.clamp_min(1e-8)

    def _forward(self, batch: torch.Tensor, amp: bool | None) -> torch.Tensor:
        import torch

        module = self.model.module
        module.eval()
        device = self.model.device
        use_amp = (device.type == "cuda") if amp is None else amp
        autocast = torch.autocast(device.type, dtype=torch.bfloat16) if use_amp else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            out = module(batch.to(device))
        if isinstance(out, (tuple, list)):
            out = out[0]
        if not isinstance(out, torch.Tensor) or out.ndim != 4:
            raise UnsupportedError(
                f"{self.model.name} returned {type(out).__name__}; image-to-image needs NCHW images."
            )
        return out.float()


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size `tile` covering `length`, neighbours sharing at least `overlap` pixels."""
    if length <= tile:
        return [0]
    step = max(tile - overlap, 1)
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def _ramp(h: int, w: int, overlap: int, device: Any) -> torch.Tensor:
    """Blend weights of one tile: 1 inside, rising linearly across `overlap` pixels at each edge."""
    import torch

    def axis(n: int) -> torch.Tensor:
        i = torch.arange(n, device=device, dtype=torch.float32)
        edge = torch.minimum(i + 1, n - i)
        return (edge / max(overlap, 1)).clamp(max=1.0)

    return axis(h)[:, None] * axis(w)[None, :]


def _denormalize(x: torch.Tensor, spec: ImagePreprocess) -> torch.Tensor:
    import torch

    mean = torch.tensor(spec.mean, device=x.device).view(-1, 1, 1)
    std = torch.tensor(spec.std, device=x.device).view(-1, 1, 1)
    return (x * std + mean).clamp(0, 1)


def _to_pil(x: torch.Tensor) -> Any:
    """A float CHW image in [0, 1] as a PIL RGB image, rounded to the nearest uint8."""
    from PIL import Image

    array = x.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array if array.shape[2] == 3 else array[:, :, 0])
