"""Fine-tune an ImageNet resnet18 on a new 10-class label set: the PyTorch transfer-learning tutorial, on zoo.

The tutorial loads torchvision's resnet18, swaps `model.fc` for a new `nn.Linear`, and trains it with SGD
(lr 0.001, momentum 0.9) in a hand-written loop over an ImageFolder. With zoo the head swap, the
augmentation (from the weights' own preprocessing), validation, the schedule, checkpoints and AMP on CUDA
are one call:

    python examples/finetune_resnet18.py DATA [--val VAL] [--epochs 3] [--out runs/resnet18]
    python examples/finetune_resnet18.py --cifar10 ~/data/cifar10      # torchvision's CIFAR-10 on disk

DATA is any ImageFolder (DATA/<class>/<image>; DATA/train + DATA/val are split by themselves). With
`--cifar10 ROOT`, torchvision's CIFAR-10, already downloaded to ROOT, is used as it is (no download
here). Offline, put `resnet18-f37072fd.pth` in a folder listed in ZOO_WEIGHTS_PATH. Under
`torchrun --nproc_per_node N examples/finetune_resnet18.py ...` the same script trains data-parallel.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import zoo


def datasets(args: argparse.Namespace) -> tuple[Any, Any]:
    """The training and validation data: an ImageFolder (and its val), or CIFAR-10's two splits."""
    if args.cifar10 is None:
        try:
            return args.data, float(args.val)  # a fraction of DATA held out
        except (TypeError, ValueError):
            return args.data, args.val  # a folder, or None
    from torchvision.datasets import CIFAR10

    return CIFAR10(args.cifar10, train=True, download=False), CIFAR10(args.cifar10, train=False, download=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", help="ImageFolder to train on")
    parser.add_argument("--val", help="validation ImageFolder, or a fraction of DATA such as 0.1")
    parser.add_argument("--cifar10", help="root of torchvision's CIFAR-10, already downloaded")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--strategy", default="full", help="full, linear or freeze_unfreeze (zoo checks the name)")
    parser.add_argument("--image-size", type=int, help="train at this size (e.g. 64 for CIFAR's 32px images)")
    parser.add_argument("--out", default="runs/resnet18")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default="resnet18:IMAGENET1K_V1", help="any zoo image classifier")
    args = parser.parse_args()
    if args.data is None and args.cifar10 is None:
        parser.error("pass DATA (an ImageFolder) or --cifar10 ROOT")

    train, val = datasets(args)
    model = zoo.load(args.model, device=args.device)  # ImageNet weights; finetune gives it the data's head
    model.finetune(
        train,
        val,
        epochs=args.epochs,
        batch_size=args.batch_size,
        strategy=args.strategy,
        optimizer="sgd",  # the tutorial's optimizer: SGD, lr 0.001, momentum 0.9
        lr=0.001,
        image_size=args.image_size,
        out=args.out,
        seed=0,
        on_epoch=print,
    )
    history = model.history
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun, rank 0 reports
    if history.best is not None:
        print(f"best epoch {history.best_epoch}: {history.best}")
    print(f"labels: {', '.join(model.labels or ())}")
    print(f"checkpoint: {history.checkpoint}  (reload with zoo.load({history.checkpoint!r}))")


if __name__ == "__main__":
    main()
