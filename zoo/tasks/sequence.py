"""The `sequence-classification` task: sequences in (tensors, arrays, variable-length lists), `Classification` out.

Variable-length sequences are packed with `torch.nn.utils.rnn.pack_sequence`, never padded, so what a model
answers for a sequence does not depend on the other sequences of its batch. The model's forward must take a
batch-first `(N, T, F)` tensor or a `PackedSequence` and return logits `(N, C)`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from zoo.errors import InputError
from zoo.results import Classification
from zoo.streaming import ResultStream
from zoo.tasks.base import Task
from zoo.tasks.classification import _whole, logits_of, top_k

if TYPE_CHECKING:
    import torch
    from torch.nn.utils.rnn import PackedSequence

__all__ = ["SequenceClassification"]


class SequenceClassification(Task):
    """Sequence classification: collect sequences, pack variable lengths, forward, softmax, top-k."""

    name = "sequence-classification"
    options = frozenset({"top_k", "batch_size", "lengths", "stream"})
    plots = False
    warns_random_weights = True
    finetunes = True
    evaluates = True
    swaps_head = True

    def predict(
        self,
        inputs: Any,
        *,
        top_k: int = 5,
        batch_size: int = 64,
        lengths: Sequence[int] | None = None,
        stream: bool = False,
    ) -> Classification | list[Classification] | ResultStream:
        """Classify sequences.

        Args:
            inputs: one sequence `(T, F)` (or `(T,)` when the model takes one feature per step), a batch
                `(N, T, F)` of equal-length sequences, as tensors or numpy arrays; a list or tuple of
                sequences of any lengths (each `(T_i, F)` or `(T_i,)`; a list is always a batch); or a
                `PackedSequence`.
            top_k: number of classes per result.
            batch_size: sequences per forward pass.
            lengths: valid lengths of the rows of a zero-padded `(N, T, F)` batch; the padding is then
                packed away rather than read.
            stream: return a `ResultStream` (an iterator in input order) that runs one batch at a time;
                any iterable of sequences (a generator too) is then taken lazily, a batch at a time.

        Returns:
            One `Classification` for a single sequence, else a list in input order; a `ResultStream`
            with `stream=True`.
        """
        if not _whole(top_k) or top_k < 1:
            raise InputError(f"top_k must be at least 1, not {top_k!r}.")
        if not _whole(batch_size) or batch_size < 1:
            raise InputError(f"batch_size must be at least 1, not {batch_size!r}.")
        from torch.nn.utils.rnn import PackedSequence

        if isinstance(inputs, PackedSequence):
            found = list(self._results(self._forward(inputs), top_k, None))
            return ResultStream(iter([found]), len(found)) if stream else found
        if isinstance(inputs, (list, tuple)) and not inputs:
            raise InputError("The input list is empty: pass at least one sequence.")
        if stream and _lazy(inputs):
            return ResultStream(self._iter_list(inputs, top_k, batch_size), _length(inputs))
        if isinstance(inputs, (list, tuple)):
            return [result for batch in self._iter_list(inputs, top_k, batch_size) for result in batch]
        found = self._predict_array(inputs, top_k, batch_size, lengths)
        return ResultStream(iter([found if isinstance(found, list) else [found]])) if stream else found

    def _iter_list(self, inputs: Any, top_k: int, batch_size: int) -> Iterator[list[Classification]]:
        """Results for an iterable of sequences, a list per batch, packed and run `batch_size` at a time."""
        from torch.nn.utils.rnn import pack_sequence

        from zoo.streaming import batched

        start = 0
        for raw in batched(inputs, batch_size):
            chunk = [self._sequence(item, f"<input {start + i}>") for i, item in enumerate(raw)]
            logits = self._forward(pack_sequence(chunk, enforce_sorted=False))
            yield list(self._results(logits, top_k, [f"<input {i}>" for i in range(start, start + len(chunk))]))
            start += len(chunk)

    def _predict_array(self, inputs: Any, top_k: int, batch_size: int, lengths: Sequence[int] | None) -> Any:
        tensor = self._tensor(inputs, "the input")
        if tensor.ndim != 3:
            if lengths is not None:
                raise InputError("lengths= goes with a padded (N, T, F) batch; a single sequence has its own length.")
            return next(self._results(self._forward(self._sequence(tensor, "the input")[None]), top_k, None))
        self._check_features(tensor, "the input")
        if lengths is not None and len(lengths) != tensor.shape[0]:
            raise InputError(f"lengths has {len(lengths)} entries for {tensor.shape[0]} sequences: give one per row.")
        results: list[Classification] = []
        for start in range(0, tensor.shape[0], batch_size):
            batch: Any = tensor[start : start + batch_size]
            if lengths is not None:
                batch = _pack_padded(batch, lengths[start : start + batch_size])
            results.extend(self._results(self._forward(batch), top_k, None))
        return results

    def _tensor(self, data: Any, source: str) -> torch.Tensor:
        """`data` as a float tensor of the module's dtype, on the CPU."""
        import numpy as np
        import torch

        if not isinstance(data, torch.Tensor):
            try:
                data = torch.from_numpy(np.asarray(data))
            except (TypeError, ValueError) as exc:
                raise InputError(
                    f"Cannot use {source} ({type(data).__name__}) as a sequence: pass tensors, numpy arrays or lists "
                    f"of numbers shaped (T, F) or (T,)."
                ) from exc
        if not (data.is_floating_point() or str(data.dtype).startswith(("torch.int", "torch.uint"))):
            raise InputError(f"{source} has dtype {data.dtype}: a sequence holds real numbers.")
        return data.detach().to("cpu", _dtype(self.model.module))

    def _sequence(self, data: Any, source: str) -> torch.Tensor:
        """One sequence as a `(T, F)` tensor, checked against the model's features per step."""
        tensor = self._tensor(data, source)
        if tensor.ndim == 1:
            tensor = tensor[:, None]
        if tensor.ndim != 2:
            raise InputError(
                f"{source} has shape {tuple(tensor.shape)}: one sequence is (T, F) or (T,); a list holds one per item."
            )
        if tensor.shape[0] == 0:
            raise InputError(f"{source} is empty: a sequence needs at least one step.")
        self._check_features(tensor, source)
        return tensor

    def _check_features(self, tensor: torch.Tensor, source: str) -> None:
        expected = _input_size(self.model.module)
        if expected is not None and tensor.shape[-1] != expected:
            shape = f"(T, {expected})" + (" or (T,)" if expected == 1 else "")
            raise InputError(
                f"{source} has {tensor.shape[-1]} features per step (shape {tuple(tensor.shape)}); "
                f"{self.model.name} takes {expected}: pass each sequence as {shape}, a batch as (N, T, {expected})."
            )

    def _forward(self, batch: torch.Tensor | PackedSequence) -> torch.Tensor:
        import torch

        module = self.model.module
        module.eval()
        moved: Any = batch  # PackedSequence.to copies Tensor.to's overloads, which mypy misreads
        with torch.inference_mode():
            out = module(moved.to(self.model.device))
        return logits_of(out).float()

    def _results(self, logits: torch.Tensor, k: int, sources: Sequence[str | None] | None) -> Iterator[Classification]:
        scores, indices = top_k(logits, k)
        labels = self.model.labels
        sources = sources if sources is not None else [None] * logits.shape[0]
        for row_scores, row_indices, source in zip(scores.tolist(), indices.tolist(), sources):
            names = tuple(labels[i] if labels and i < len(labels) else str(i) for i in row_indices)
            yield Classification(names, tuple(row_scores), tuple(row_indices), source)


def _lazy(inputs: Any) -> bool:
    """True for an iterable of sequences taken one batch at a time: a list, tuple, generator or iterator."""
    return isinstance(inputs, (list, tuple)) or (hasattr(inputs, "__next__") and hasattr(inputs, "__iter__"))


def _length(inputs: Any) -> int | None:
    return len(inputs) if isinstance(inputs, (list, tuple)) else None


def _pack_padded(batch: torch.Tensor, lengths: Sequence[int]) -> PackedSequence:
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence

    sizes = torch.as_tensor(list(lengths), dtype=torch.int64)
    if sizes.ndim != 1 or bool((sizes < 1).any()) or bool((sizes > batch.shape[1]).any()):
        raise InputError(f"lengths must be between 1 and the padded length {batch.shape[1]}, not {sizes.tolist()}.")
    return pack_padded_sequence(batch, sizes, batch_first=True, enforce_sorted=False)


def _input_size(module: torch.nn.Module) -> int | None:
    """Features per step the module takes: its `input_size`, else its first recurrent layer's, else None."""
    import torch

    size = getattr(module, "input_size", None)
    if isinstance(size, int):
        return size
    rnn = next((m for m in module.modules() if isinstance(m, torch.nn.RNNBase)), None)
    return rnn.input_size if rnn is not None else None


def _dtype(module: torch.nn.Module) -> torch.dtype:
    import torch

    param = next(module.parameters(), None)
    return param.dtype if param is not None and param.is_floating_point() else torch.float32
