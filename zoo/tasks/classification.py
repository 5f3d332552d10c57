"""The `image-classification` task: images in, top-k `Classification` results out."""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from zoo.errors import InputError, UnsupportedError
from zoo.images import ImageItem, check_header, collect_images, decode, decode_each, orient, preprocess_batch
from zoo.progress import progress_bar
from zoo.results import Classification
from zoo.results.batch import SkippedInput, check_on_error, finish
from zoo.streaming import ResultStream, batched, collect, in_input_order, prefetch, worker_count
from zoo.tasks.base import Task

if TYPE_CHECKING:
    import torch

__all__ = ["ImageClassification", "logits_of", "memory_format_name", "top_k"]


class ImageClassification(Task):
    """Image classification: decode, resize, crop, normalize, forward, softmax, top-k."""

    name = "image-classification"
    options = frozenset(
        {"top_k", "batch_size", "preprocess", "amp", "on_error", "stream", "num_workers", "memory_format"}
    )
    plots = True
    warns_random_weights = True
    finetunes = True
    evaluates = True
    swaps_head = True
    hub_pipeline = "image-classification"
    _channels_last: bool | None = None  # CPU: whether channels_last input gives the same logits (checked once)

    def predict(
        self,
        inputs: Any,
        *,
        top_k: int = 5,
        batch_size: int = 32,
        preprocess: bool = True,
        amp: bool | None = None,
        on_error: str | None = None,
        stream: bool = False,
        num_workers: int | str = "auto",
        memory_format: str | None = None,
    ) -> Classification | list[Classification] | ResultStream:
        """Classify images.

        Args:
            inputs: a path, folder, glob, bytes, PIL image, numpy HWC uint8 array, tensor (CHW or NCHW,
                uint8 or float in [0, 1]), or a list of those.
            top_k: number of classes per result.
            batch_size: images per forward pass.
            preprocess: False when `inputs` is already a normalized NCHW/CHW float tensor of model input.
            amp: bf16 autocast; default on for CUDA, off elsewhere.
            on_error: what an unreadable image of a batch does: "raise", or "skip" it (named in the
                result list's `skipped`, with a `SkippedInputsWarning`); None (default) raises for an
                input you named and skips files a folder or glob found. A single input always raises.
            stream: return a `ResultStream` (an iterator in input order) that decodes and runs one batch at
                a time, so memory does not grow with the number of inputs.
            num_workers: threads decoding and preprocessing the next batches while one runs ("auto", or
                0 to do it all in the calling thread). The tensors are the same either way.
            memory_format: the layout of the batch the model gets: "channels_last" (NHWC; on the CPU
                often 1.5x faster for convnets, with logits that may differ in the last bits, about 1e-5
                for mobilenet_v2: an opt-in), "contiguous_format" (NCHW), or None (default): channels_last
                on CUDA; on the CPU, NCHW unless channels_last gives the same logits bit for bit (checked
                once on the first batch). `torch.channels_last` and `torch.contiguous_format` work too.

        Returns:
            One `Classification`, or a `ResultList` for list-like inputs (lists, folders, globs, NCHW);
            a `ResultStream` with `stream=True`.
        """
        check_on_error(on_error)
        if not _whole(top_k) or top_k < 1:
            raise InputError(f"top_k must be at least 1, not {top_k!r}.")
        if not _whole(batch_size) or batch_size < 1:
            raise InputError(f"batch_size must be at least 1, not {batch_size!r}.")
        workers = worker_count(num_workers)
        layout = memory_format_name(memory_format)
        if not preprocess:
            found = self._predict_tensor(inputs, top_k, batch_size, amp, layout)
            return ResultStream(iter([found if isinstance(found, list) else [found]])) if stream else found
        items, is_batch = collect_images(inputs)
        spec = self.model.preprocess
        if spec is None:
            raise UnsupportedError(f"{self.model.name} has no image preprocessing: pass preprocess=False and a tensor.")

        def prepare(chunk: list[ImageItem]) -> tuple[list[ImageItem], list[Any], list[SkippedInput], Any]:
            skipped: list[SkippedInput] = []
            decoded = self._decode(chunk, spec.channels, on_error, is_batch, skipped)
            images = [image for _, image in decoded]
            batch = preprocess_batch(images, spec, self.model.device) if images else None
            return chunk, [item for item, _ in decoded], skipped, batch

        def events() -> Iterator[Any]:
            with progress_bar(len(items) if is_batch else 0, "classifying") as advance:
                for chunk, kept, skipped, batch in prefetch(batched(items, batch_size), prepare, workers):
                    sources = [i.source for i in kept]
                    found = self._results(self._forward(batch, amp, layout), top_k, sources) if kept else ()
                    yield list(in_input_order(chunk, kept, found, skipped))
                    advance(len(chunk))

        if stream:
            return ResultStream(events(), len(items))
        results, skipped = collect(events())
        return finish(results, skipped, is_batch)

    def _predict_tensor(self, inputs: Any, top_k: int, batch_size: int, amp: bool | None, layout: str | None) -> Any:
        import torch

        if not isinstance(inputs, torch.Tensor) or inputs.ndim not in (1, 2, 3, 4) or not inputs.is_floating_point():
            raise InputError(
                "preprocess=False takes a float tensor of model input: CHW or NCHW, or (F,) / (N, F) features."
            )
        single = inputs.ndim in (1, 3)  # one CHW image or one feature vector
        batch = inputs.unsqueeze(0) if single else inputs
        results: list[Classification] = []
        for start in range(0, batch.shape[0], batch_size):
            logits = self._forward(batch[start : start + batch_size], amp, layout)
            results.extend(self._results(logits, top_k, [None] * logits.shape[0]))
        return results[0] if single else results

    def _decode(
        self, chunk: Sequence[ImageItem], channels: int, on_error: str | None, is_batch: bool, skipped: list[Any]
    ) -> list[tuple[ImageItem, torch.Tensor]]:
        device = self.model.device
        if device.type == "cuda" and channels == 3:
            return _decode_on_gpu(chunk, device, on_error, is_batch, skipped)
        return decode_each(chunk, channels, on_error=on_error, is_batch=is_batch, skipped=skipped)

    def _forward(self, batch: torch.Tensor, amp: bool | None, layout: str | None = None) -> torch.Tensor:
        import torch

        module = self.model.module
        device = self.model.device
        module.eval()
        batch = batch.to(device, non_blocking=True)
        use_amp = (device.type == "cuda") if amp is None else amp
        nhwc = (device.type == "cuda" or bool(self._channels_last)) if layout is None else layout == "channels_last"
        if batch.ndim == 4 and nhwc:
            batch = batch.contiguous(memory_format=torch.channels_last)
        autocast = torch.autocast(device.type, dtype=torch.bfloat16) if use_amp else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            out = logits_of(module(batch)).float()
            if (
                layout is None
                and self._channels_last is None
                and device.type == "cpu"
                and batch.ndim == 4
                and batch.shape[0] > 1
            ):
                # channels_last is faster on the CPU for most convnets, but used only when the logits are the same bits
                fast = logits_of(module(batch.contiguous(memory_format=torch.channels_last))).float()
                self._channels_last = bool(torch.equal(out, fast))
        return out

    def _results(self, logits: torch.Tensor, k: int, sources: Sequence[str | None]) -> Iterator[Classification]:
        scores, indices = top_k(logits, k)
        labels = self.model.labels
        for row_scores, row_indices, source in zip(scores.tolist(), indices.tolist(), sources):
            names = tuple(labels[i] if labels and i < len(labels) else str(i) for i in row_indices)
            yield Classification(names, tuple(row_scores), tuple(row_indices), source)


def memory_format_name(value: Any) -> str | None:
    """The layout named by `memory_format=`: "channels_last", "contiguous_format", or None (the default's choice).

    Raises:
        InputError: anything else (a string or a `torch.memory_format` such as `torch.preserve_format`).
    """
    if value is None:
        return None
    name = str(value).removeprefix("torch.")
    if name not in ("channels_last", "contiguous_format"):
        raise InputError(f"memory_format={value!r} is not valid: use 'channels_last', 'contiguous_format' or None.")
    return name


def logits_of(out: Any) -> torch.Tensor:
    """The logits tensor of a classifier's output (plain tensor, `.logits`, or first of a tuple)."""
    import torch

    if isinstance(out, torch.Tensor):
        return out
    if hasattr(out, "logits"):
        return out.logits
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise UnsupportedError(f"The model returned {type(out).__name__}; a classifier must return a logits tensor.")


def top_k(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities and indices of the `k` best classes per row, on the CPU."""
    probs = logits.softmax(dim=-1)
    scores, indices = probs.topk(min(k, probs.shape[-1]), dim=-1)
    return scores.cpu(), indices.cpu()


def _whole(value: Any) -> bool:
    """True for an integer (numpy's too), not a bool: what counts and sizes must be."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _decode_on_gpu(
    chunk: Sequence[ImageItem], device: torch.device, on_error: str | None, is_batch: bool, skipped: list[Any]
) -> list[tuple[ImageItem, torch.Tensor]]:
    """JPEG files decoded together on the GPU (nvjpeg), upright; anything else decoded on the CPU.

    Headers are checked first (pixel limit, EXIF orientation); if the GPU batch fails, every JPEG is decoded
    on the CPU, which names the bad file.
    """
    from torchvision.io import ImageReadMode, decode_jpeg, read_file

    images: dict[int, torch.Tensor] = {}
    orientations: dict[int, int] = {}
    for i, item in enumerate(chunk):
        if item.is_jpeg_file:
            with contextlib.suppress(InputError):  # decode_each below raises or skips it
                orientations[i] = check_header(item)
    jpegs = list(orientations)
    if jpegs:
        try:
            data = [read_file(str(chunk[i].data)) for i in jpegs]
            decoded = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
        except RuntimeError:
            decoded = None  # the CPU decoder names the bad file
        if decoded is not None:
            images = {i: orient(image, orientations[i]) for i, image in zip(jpegs, decoded)}
    position = {id(item): i for i, item in enumerate(chunk)}

    def decoder(item: ImageItem, channels: int) -> torch.Tensor:
        i = position[id(item)]
        return images[i] if i in images else decode(item, channels)

    return decode_each(chunk, 3, on_error=on_error, is_batch=is_batch, skipped=skipped, decoder=decoder)
