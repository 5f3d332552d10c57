"""Training throughput: `Model.finetune` against the PyTorch tutorials' plain loop (CPU) and a hand-written
AMP + channels_last loop (CUDA), same model, data, batch size and optimizer, interleaved in one run.

The data is an ImageFolder of photos (the shared photos when present, generated JPEGs otherwise) in two
classes; the model is a random-init resnet18 with a 2-class head; the optimizer SGD (lr 0.001, momentum
0.9) as in the transfer-learning tutorial. One case is one training epoch; images/s = images / wall time.
Goals: CPU finetune >= 1.0 x the tutorial loop; CUDA finetune >= 0.95 x the AMP + channels_last loop.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from _common import emit, environment, interleaved, isolate, median, paired_ratio, photos, print_table, verdict

CPU_GOAL = 1.0
CUDA_GOAL = 0.95
ZOO = "zoo finetune"
TUTORIAL = "tutorial loop"
HANDWRITTEN = "AMP + channels_last loop"


def image_folder(root: Path, count: int) -> Path:
    """`count` photos split over two class folders."""
    files = photos(root / "all", count, jpeg_only=True)
    for i, path in enumerate(files):
        target = root / "data" / ("a" if i % 2 else "b")
        target.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), target / path.name)
    return root / "data"


def tutorial_loader(data: Path, args: argparse.Namespace, size: int, pin: bool) -> Any:
    """The tutorial's data pipeline: torchvision ImageFolder, PIL transforms, shuffled DataLoader."""
    import torch
    from torchvision import datasets, transforms

    transform = transforms.Compose(
        [
            transforms.RandomResizedCrop(size),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    dataset = datasets.ImageFolder(str(data), transform)
    return torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers, pin_memory=pin
    )


def tutorial_epoch(model: Any, loader: Any, optimizer: Any) -> None:
    """One epoch of the transfer-learning tutorial's `train_model` loop (its training phase)."""
    import torch

    criterion = torch.nn.CrossEntropyLoss()
    model.train()
    running_loss, running_corrects = 0.0, 0
    for inputs, labels in loader:
        optimizer.zero_grad()
        with torch.set_grad_enabled(True):
            outputs = model(inputs)
            _, preds = torch.max(outputs, 1)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()
        running_loss += loss.item() * inputs.size(0)
        running_corrects += int(torch.sum(preds == labels.data))


def handwritten_amp_epoch(model: Any, loader: Any, optimizer: Any) -> None:
    """One epoch of a hand-tuned CUDA loop: bf16 autocast, channels_last, non-blocking copies."""
    import torch

    criterion = torch.nn.CrossEntropyLoss()
    model.train()
    for inputs, labels in loader:
        inputs = inputs.cuda(non_blocking=True).contiguous(memory_format=torch.channels_last)
        labels = labels.cuda(non_blocking=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = criterion(model(inputs), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    torch.cuda.synchronize()


def section(device: str, data: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Time zoo's finetune against the anchor loop on `device`; returns the figures."""
    import torch
    from torchvision.models import resnet18

    import zoo

    size = args.size
    model = zoo.load("resnet18:none", device=device, num_classes=2)
    anchor_model = resnet18(num_classes=2).to(device)
    if device == "cuda":
        anchor_model = anchor_model.to(memory_format=torch.channels_last)
    anchor_opt = torch.optim.SGD(anchor_model.parameters(), lr=0.001, momentum=0.9)
    loader = tutorial_loader(data, args, size, pin=device == "cuda")
    anchor_epoch = handwritten_amp_epoch if device == "cuda" else tutorial_epoch
    anchor = HANDWRITTEN if device == "cuda" else TUTORIAL
    options = dict(epochs=1, optimizer="sgd", lr=0.001, weight_decay=0.0, batch_size=args.batch_size)
    options |= dict(num_workers=args.workers, image_size=size, progress=False, seed=0)

    cases = {
        ZOO: lambda: model.finetune(data, **options),
        anchor: lambda: anchor_epoch(anchor_model, loader, anchor_opt),
    }
    times = interleaved(cases, repeat=args.repeat, warmup=1)
    images = sum(1 for p in data.rglob("*") if p.is_file())
    speed = {name: images / median(values) for name, values in times.items()}
    goal = CUDA_GOAL if device == "cuda" else CPU_GOAL
    result = paired_ratio(times, anchor, ZOO)  # anchor time / zoo time = zoo images/s / anchor images/s
    rows = [(name, f"{median(times[name]):.2f}", f"{speed[name]:.1f}") for name in (ZOO, anchor)]
    print_table(
        f"{device}: resnet18, {images} images, batch {args.batch_size}, {size}px", ["case", "s/epoch", "img/s"], rows
    )
    print(f"  ratio zoo / anchor images/s: {result:.3f} (goal >= {goal}): {verdict(result, goal, at_most=False)}")
    return {"images_per_s": {k: round(v, 2) for k, v in speed.items()}, "ratio": result, "goal": goal}


def main() -> None:
    """Measure, print the tables and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=96, help="training images (two classes)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--size", type=int, default=224, help="training crop size")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers, both sides")
    parser.add_argument("--repeat", type=int, default=5, help="timed epochs per case (median taken)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's own)")
    args = parser.parse_args()
    args.images = max(args.batch_size, args.images // args.batch_size * args.batch_size)  # full batches only
    tmp = isolate("train")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    data = image_folder(tmp, args.images)
    figures: dict[str, Any] = {"cpu": section("cpu", data, args)}
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
        figures["cuda"] = section("cuda", data, args)
    else:
        print("\ncuda: skipped (no CUDA device here)")
        figures["cuda"] = None
    emit("train", {**figures, "environment": environment()})


if __name__ == "__main__":
    main()
