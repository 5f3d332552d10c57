"""`RNNClassifier`: an RNN, LSTM or GRU over a sequence, classified from its last valid hidden state.

The forward takes a batch-first `(N, T, F)` tensor of full-length sequences, or a `PackedSequence` of
variable-length ones, so no padding ever reaches the recurrence.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from zoo import InputError

__all__ = ["CELLS", "RNNClassifier"]

#: Recurrent layer of each cell name.
CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RNNClassifier(nn.Module):
    """Sequence classifier: a (stacked, optionally bidirectional) RNN, LSTM or GRU, then dropout and a linear head.

    The features are the last layer's final hidden state: for each direction, the state after the last valid
    step it read (the forward direction ends at each sequence's own last element, the backward one at its
    first), concatenated.

    Args:
        cell: "rnn", "lstm" or "gru".
        num_classes: number of output classes.
        input_size: features per time step.
        hidden_size: hidden units per direction and layer.
        num_layers: stacked recurrent layers.
        bidirectional: read each sequence both ways.
        dropout: dropout between stacked layers and before the head.
        nonlinearity: "tanh" or "relu" (plain RNN only).
    """

    def __init__(
        self,
        cell: str = "gru",
        num_classes: int = 2,
        input_size: int = 1,
        hidden_size: int = 64,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        nonlinearity: str = "tanh",
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise InputError(f"cell must be one of {', '.join(CELLS)}, not {cell!r}: pass one of them as cell=.")
        extra = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
        self.cell = cell
        self.input_size = input_size
        self.rnn = CELLS[cell](
            input_size,
            hidden_size,
            num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,  # torch warns about dropout on a single layer
            **extra,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), num_classes)

    def forward(self, x: torch.Tensor | PackedSequence) -> torch.Tensor:
        """Logits `(N, num_classes)` of a `(N, T, input_size)` tensor or a batch-first `PackedSequence`."""
        if isinstance(x, torch.Tensor) and (x.ndim != 3 or x.shape[-1] != self.input_size):
            raise InputError(
                f"{self.cell.upper()} classifier takes (N, T, {self.input_size}) sequences, not {tuple(x.shape)}: "
                f"pack variable-length ones with torch.nn.utils.rnn.pack_sequence."
            )
        _, hidden = self.rnn(x)
        if isinstance(hidden, tuple):  # LSTM: (h_n, c_n)
            hidden = hidden[0]
        directions = 2 if self.rnn.bidirectional else 1
        last = hidden[-directions:]  # (directions, N, hidden_size) of the last layer
        features = last.transpose(0, 1).reshape(last.shape[1], -1)
        return self.head(self.dropout(features))
