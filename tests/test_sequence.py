"""The `sequence-classification` task: tensors, arrays and variable-length lists in, packed (never padded)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_sequence, pad_sequence

import zoo

CELLS = ["rnn_classifier", "lstm_classifier", "gru_classifier"]
LENGTHS = (7, 2, 11, 1, 5)


def _model(name: str = "gru_classifier", **kwargs: object) -> zoo.Model:
    torch.manual_seed(0)
    options = {"input_size": 3, "num_classes": 5, **kwargs}
    return zoo.load(f"{name}:none", device="cpu", **options)


def _sequences(features: int = 3) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(length, features, generator=generator) for length in LENGTHS]


def _probs(results: list[zoo.Classification], num_classes: int) -> torch.Tensor:
    """The full probability rows back from top-k results (needs top_k == num_classes)."""
    out = torch.zeros(len(results), num_classes)
    for row, result in enumerate(results):
        out[row, list(result.indices)] = torch.tensor(result.scores)
    return out


def _assert_same(a: list[zoo.Classification], b: list[zoo.Classification]) -> None:
    assert [r.indices for r in a] == [r.indices for r in b]
    for x, y in zip(a, b):
        assert x.scores == pytest.approx(y.scores, abs=1e-5)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("name", CELLS)
def test_a_ragged_list_answers_each_sequence_as_if_it_were_alone(name: str, bidirectional: bool) -> None:
    model = _model(name, num_layers=2, bidirectional=bidirectional)
    sequences = _sequences()
    together = model.predict(sequences, top_k=5)
    alone = [model.predict(sequence, top_k=5) for sequence in sequences]
    _assert_same(together, alone)
    assert [r.source for r in together] == [f"<input {i}>" for i in range(len(LENGTHS))]
    # the check above has teeth: reading zero padding changes the answers of the shorter sequences
    with torch.inference_mode():
        padded = model.module(pad_sequence(sequences, batch_first=True)).softmax(-1)
    gaps = (padded - _probs(together, 5)).abs().amax(dim=1)
    assert gaps[LENGTHS.index(11)] < 1e-5  # the longest has no padding
    assert all(gap > 1e-4 for gap, length in zip(gaps.tolist(), LENGTHS) if length < 11)


def test_tensors_arrays_and_padded_batches_agree() -> None:
    model = _model()
    sequences = _sequences()
    expected = model.predict(sequences, top_k=5)
    batch = torch.stack([torch.randn(6, 3) for _ in range(3)])
    as_tensor = model.predict(batch, top_k=5)
    assert isinstance(as_tensor, list) and len(as_tensor) == 3
    _assert_same(model.predict(batch.numpy().astype(np.float64), top_k=5), as_tensor)
    _assert_same(model.predict([s.numpy() for s in sequences], top_k=5), expected)
    padded = pad_sequence(sequences, batch_first=True)
    _assert_same(model.predict(padded, lengths=LENGTHS, top_k=5), expected)
    _assert_same(model.predict(padded.numpy(), lengths=list(LENGTHS), batch_size=2, top_k=5), expected)
    _assert_same(model.predict(pack_sequence(sequences, enforce_sorted=False), top_k=5), expected)
    _assert_same(model.predict(sequences, batch_size=2, top_k=5), expected)


def test_one_sequence_gives_one_result() -> None:
    model = _model()
    sequence = _sequences()[2]
    single = model.predict(sequence, top_k=2)
    assert isinstance(single, zoo.Classification) and len(single) == 2
    assert single.indices == model.predict(sequence.numpy(), top_k=2).indices
    assert single.labels == tuple(str(i) for i in single.indices)  # no labels: indices as text
    assert single.source is None


def test_one_feature_sequences_may_be_flat() -> None:
    model = _model(input_size=1, num_classes=3)
    flat = [[0.1, 0.5, -0.2], [1.0, 0.0], np.arange(6, dtype=np.int64)]
    results = model.predict(flat, top_k=3)
    shaped = model.predict([torch.tensor(s, dtype=torch.float32)[:, None] for s in flat], top_k=3)
    _assert_same(results, shaped)
    assert (
        model.predict(np.sin(np.arange(20.0)), top_k=1).indices
        == model.predict(np.sin(np.arange(20.0))[:, None], top_k=1).indices
    )


@pytest.mark.parametrize(
    ("inputs", "options", "message"),
    [
        ([], {}, "empty"),
        ([torch.randn(4, 2)], {}, "takes 3"),
        (torch.randn(2, 5, 4), {}, "takes 3"),
        ([torch.zeros(0, 3)], {}, "at least one step"),
        (torch.randn(2, 2, 2, 3), {}, "shape"),
        (["abc"], {}, "sequence"),
        ([torch.zeros(3, 3, dtype=torch.bool)], {}, "dtype"),
        (torch.randn(2, 4, 3), {"lengths": [4]}, "one per row"),
        (torch.randn(2, 4, 3), {"lengths": [4, 5]}, "between 1 and"),
        (torch.randn(4, 3), {"lengths": [4]}, "padded"),
        (torch.randn(4, 3), {"top_k": 0}, "top_k"),
        (torch.randn(4, 3), {"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_inputs_are_input_errors(inputs: object, options: dict, message: str) -> None:
    with pytest.raises(zoo.InputError, match=message):
        _model().predict(inputs, **options)


def test_the_task_serves_any_module_that_takes_packed_sequences() -> None:
    class Tagger(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(2, 4, batch_first=True)
            self.out = torch.nn.Linear(4, 2)

        def forward(self, x):  # a third party's plain module, untyped
            _, (hidden, _) = self.lstm(x)
            return self.out(hidden[-1])

    @zoo.register("tagger", task="sequence-classification", labels=["no", "yes"])
    def tagger() -> torch.nn.Module:
        return Tagger()

    model = zoo.load("tagger", device="cpu")
    assert model.task.name == "sequence-classification"
    results = model.predict([torch.randn(3, 2), torch.randn(6, 2)])
    assert [set(r.labels) for r in results] == [{"no", "yes"}] * 2
    with pytest.raises(zoo.InputError, match="takes 2"):  # the feature count comes from its LSTM
        model.predict(torch.randn(3, 5))
