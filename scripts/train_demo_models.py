"""Train the offline demo weights that ship in plugins/zoo_custom/weights, and print their held-out accuracy.

- `lenet5:digits`: LeNet5 on scikit-learn's bundled handwritten digits (8x8, upscaled to 32x32 by zoo's own
  preprocessing, so training sees exactly what `predict` feeds the model), 25% held out, stratified.
- `gru_classifier:waveforms`: a bidirectional GRU telling sine, square, sawtooth and triangle waves apart in
  noisy 1-D signals of 16 to 48 steps, with random period, phase, amplitude and offset, generated here.

Plain training loops (Adam), seeded, single-threaded and deterministic: two runs on one machine write
bit-identical files. Usage:

    python scripts/train_demo_models.py [--out DIR] [--seed 0]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_sequence

import zoo
from zoo.images import preprocess_batch
from zoo_custom import GRU_WAVEFORMS, LENET5_DIGITS, WAVEFORMS_LABELS, gru_classifier, lenet5

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT / "plugins" / "zoo_custom" / "weights"
WAVEFORMS = WAVEFORMS_LABELS  # sine, square, sawtooth, triangle


@dataclass(frozen=True)
class Trained:
    """One trained demo model: where it was written and how well it does on held-out data."""

    tag: str
    path: Path
    correct: int
    total: int
    notes: str = ""

    @property
    def accuracy(self) -> float:
        return self.correct / self.total


def digits_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's digits as uint8 8x8 images (ink bright on black, 0..16 scaled to 0..255), split 75/25.

    Returns:
        `(train_images, train_labels, test_images, test_labels)`.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=0.25, stratify=digits.target, random_state=seed
    )
    return x_train, y_train, x_test, y_test


def waveforms(n: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """`n` noisy 1-D waveforms of 16..48 steps and their class (an index into `WAVEFORMS`).

    Each has a random period (8..16 steps), phase, amplitude (0.7..1.3), offset (-0.3..0.3) and Gaussian
    noise (std 0.1).
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(WAVEFORMS), n)
    signals = []
    for label in labels:
        steps = np.arange(rng.integers(16, 49))
        u = (steps / rng.uniform(8, 16) + rng.uniform()) % 1.0  # position within the period, 0..1
        shape = {
            0: np.sin(2 * np.pi * u),
            1: np.where(u < 0.5, 1.0, -1.0),
            2: 2 * u - 1,
            3: 2 * np.abs(2 * u - 1) - 1,
        }[int(label)]
        signal = rng.uniform(0.7, 1.3) * shape + rng.uniform(-0.3, 0.3) + rng.normal(0, 0.1, steps.size)
        signals.append(signal.astype(np.float32))
    return signals, labels.astype(np.int64)


def _batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    yield from order.split(batch_size)


def train(
    module: torch.nn.Module, step: Callable[[torch.Tensor], torch.Tensor], n: int, *, epochs: int, lr: float, seed: int
) -> None:
    """A plain loop: Adam, shuffled mini-batches of 64; `step(indices)` returns the batch loss."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(module.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    module.train()
    for _ in range(epochs):
        for indices in _batches(n, 64, generator):
            optimizer.zero_grad()
            step(indices).backward()
            optimizer.step()
        scheduler.step()
    module.eval()


def train_lenet5(out: Path, seed: int) -> Trained:
    """LeNet5 on the digits; the inputs go through zoo's preprocessing with the training set's mean and std."""
    x_train, y_train, x_test, y_test = digits_split(seed)
    raw = zoo.ImagePreprocess(resize=32, crop=32, mean=(0.0,), std=(1.0,), channels=1)
    scaled = _lenet_input(x_train, raw)
    pre = zoo.ImagePreprocess(
        resize=32, crop=32, mean=(round(scaled.mean().item(), 4),), std=(round(scaled.std().item(), 4),), channels=1
    )
    inputs, targets = _lenet_input(x_train, pre), torch.from_numpy(y_train)
    torch.manual_seed(seed)
    module = lenet5(**LENET5_DIGITS.builder_kwargs)
    train(module, lambda i: F.cross_entropy(module(inputs[i]), targets[i]), len(targets), epochs=30, lr=2e-3, seed=seed)
    with torch.inference_mode():
        predicted = module(_lenet_input(x_test, pre)).argmax(1).numpy()
    path = _save(module, out / "lenet5-digits.safetensors")
    same = "matches the catalog" if pre == LENET5_DIGITS.preprocess else "DIFFERS from plugins/zoo_custom/__init__.py"
    notes = f"preprocess mean {pre.mean} std {pre.std} ({same})"
    return Trained("lenet5:digits", path, int((predicted == y_test).sum()), len(y_test), notes)


def _lenet_input(images: np.ndarray, pre: zoo.ImagePreprocess) -> torch.Tensor:
    return preprocess_batch([torch.from_numpy(image)[None] for image in images], pre, torch.device("cpu"))


def train_gru(out: Path, seed: int) -> Trained:
    """The bidirectional GRU on 2000 generated waveforms, tested on 1000 others (another seed)."""
    signals, labels = waveforms(2000, seed)
    sequences, targets = [torch.from_numpy(s)[:, None] for s in signals], torch.from_numpy(labels)
    torch.manual_seed(seed)
    module = gru_classifier(**GRU_WAVEFORMS.builder_kwargs)  # the architecture the catalog declares

    def loss(indices: torch.Tensor) -> torch.Tensor:
        batch = pack_sequence([sequences[i] for i in indices.tolist()], enforce_sorted=False)
        return F.cross_entropy(module(batch), targets[indices])

    train(module, loss, len(targets), epochs=15, lr=1e-2, seed=seed)
    test_signals, test_labels = waveforms(1000, seed + 1)
    with torch.inference_mode():
        logits = module(pack_sequence([torch.from_numpy(s)[:, None] for s in test_signals], enforce_sorted=False))
    path = _save(module, out / "gru-waveforms.safetensors")
    return Trained(
        "gru_classifier:waveforms", path, int((logits.argmax(1).numpy() == test_labels).sum()), len(test_labels)
    )


def _save(module: torch.nn.Module, path: Path) -> Path:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {key: tensor.detach().contiguous() for key, tensor in module.state_dict().items()}
    # one metadata key: safetensors writes the metadata map in a per-process hash order
    save_file(state, str(path), metadata={"format": "pt"})
    return path


def report(result: Trained, declared: zoo.Weights) -> None:
    """Print accuracy, file facts, and whether the file is the one the catalog declares."""
    data = result.path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    same = "matches the catalog" if sha == declared.sha256 else "DIFFERS from plugins/zoo_custom/__init__.py"
    print(f"{result.tag}: held-out accuracy {result.accuracy:.4f} ({result.correct}/{result.total})")
    print(f"  {result.path} {len(data)} bytes sha256 {sha} ({same})")
    if result.notes:
        print(f"  {result.notes}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=WEIGHTS, help=f"folder for the weight files (default {WEIGHTS})")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the order of float reductions must not depend on the machine's cores
    torch.use_deterministic_algorithms(True)
    report(train_lenet5(args.out, args.seed), LENET5_DIGITS)
    report(train_gru(args.out, args.seed), GRU_WAVEFORMS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
