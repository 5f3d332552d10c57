"""The image classifiers of PyTorch's tutorials: LeNet5 (and the CIFAR-10 CNN, its RGB form) and an MLP.

Parameter names follow the tutorials (`conv1`, `conv2`, `fc1`, `fc2`, `fc3`), so a state_dict saved by the
tutorials' `Net` loads into `LeNet5` as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from zoo import InputError

__all__ = ["MLP", "LeNet5"]


class LeNet5(nn.Module):
    """LeNet-5 as written in PyTorch's tutorials: two 5x5 conv + 2x2 max-pool stages, then 120 -> 84 -> classes.

    Takes `(N, in_channels, 32, 32)` input, LeCun's input size (28x28 MNIST is padded by 2 pixels to 32x32).

    Args:
        num_classes: number of output classes.
        in_channels: 1 for grayscale input, 3 for RGB (the CIFAR-10 tutorial's `Net`).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise InputError(f"in_channels must be 1 or 3, not {in_channels}: pass in_channels=1 or in_channels=3.")
        self.in_channels = in_channels
        self.conv1 = nn.Conv2d(in_channels, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits `(N, num_classes)` of a `(N, C, 32, 32)` batch."""
        if x.ndim != 4 or x.shape[1] != self.in_channels or tuple(x.shape[-2:]) != (32, 32):
            raise InputError(
                f"LeNet5 takes (N, {self.in_channels}, 32, 32) input, not {tuple(x.shape)}: pad 28x28 images by 2 "
                f"pixels (torch.nn.functional.pad(x, (2, 2, 2, 2))) or let predict() preprocess them."
            )
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class MLP(nn.Module):
    """A multilayer perceptron on flat feature vectors: `in_features -> hidden... -> num_classes`, ReLU between.

    Any input `(N, ...)` whose trailing dimensions hold `in_features` values is flattened first, so MNIST
    batches work shaped `(N, 784)`, `(N, 28, 28)` or `(N, 1, 28, 28)`.

    Args:
        num_classes: number of output classes.
        in_features: length of one flattened input.
        hidden_sizes: widths of the hidden layers, in order (empty for a linear classifier).
        dropout: dropout probability after each hidden layer.
    """

    def __init__(
        self, num_classes: int = 10, in_features: int = 784, hidden_sizes: Sequence[int] = (128,), dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.flatten = nn.Flatten()
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden_sizes:
            layers += [nn.Linear(width, int(size)), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = int(size)
        self.hidden = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits `(N, num_classes)` of a batch of `in_features` values per row."""
        x = self.flatten(x) if x.ndim > 2 else x
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise InputError(
                f"This MLP takes {self.in_features} features per input, batched as (N, {self.in_features}) "
                f"(or (N, 1, 28, 28) for 784), not {tuple(x.shape)}."
            )
        return self.head(self.hidden(x))
