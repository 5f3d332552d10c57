"""`zoo finetune`: fine-tune a classifier on an ImageFolder and save the best checkpoint (DDP under torchrun)."""

from __future__ import annotations

import re
from pathlib import Path

import click

from zoo.cli.checks import require_capability


def _val(value: str | None) -> str | float | None:
    """`--val` is a folder, or a fraction of the training data such as 0.2."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return value


def _chosen(**options: object) -> dict[str, object]:
    """The recipe options given on the command line (the others keep the recipe's defaults)."""
    return {name: value for name, value in options.items() if value is not None}


@click.command("finetune")
@click.argument("name")
@click.argument("data")
@click.option("--val", "val", help="Validation data of DATA's kind, or a fraction of DATA to hold out (e.g. 0.2).")
@click.option("--epochs", default=3, show_default=True, help="Epochs to train (in total, when resuming).")
@click.option("--lr", type=float, help="Learning rate [default: by strategy, see the fine-tuning guide].")
@click.option("-b", "--batch-size", default=32, show_default=True, help="Images per step and process.")
@click.option(
    "--strategy",
    type=click.Choice(["full", "linear", "freeze_unfreeze"]),
    default="full",
    show_default=True,
    help="Train everything, the head only, or the head first then everything.",
)
@click.option("--out", type=click.Path(path_type=Path), help="Run folder for best.safetensors and last.pt [runs/NAME].")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--resume", type=click.Path(path_type=Path), help="Continue from a last.pt (or its run folder).")
@click.option("--log-dir", type=click.Path(path_type=Path), help="Write TensorBoard scalars there.")
@click.option("--seed", type=int, help="Seed for a repeatable run.")
@click.option("--image-size", type=int, help="Train and predict at this size instead of the weights' crop.")
@click.option("--workers", "num_workers", type=int, help="DataLoader worker processes.")
@click.option(
    "--optimizer",
    type=click.Choice(["adamw", "sgd"]),
    help="AdamW, or SGD with Nesterov momentum 0.9 [default: the recipe's, see the fine-tuning guide].",
)
@click.option("--weight-decay", type=float, help="AdamW's decoupled decay, SGD's L2 [default: the recipe's].")
@click.option("--label-smoothing", type=float, help="Cross-entropy label smoothing in [0, 1) [default: none].")
@click.option(
    "--augment/--no-augment",
    default=None,
    help="Random crops and flips of training images [default: on from 5 epochs].",
)
@click.option("--patience", type=int, help="Stop after this many epochs without improvement [default: 5].")
def finetune_cmd(
    name: str,
    data: str,
    val: str | None,
    epochs: int,
    lr: float | None,
    batch_size: int,
    strategy: str,
    out: Path | None,
    device: str,
    resume: Path | None,
    log_dir: Path | None,
    seed: int | None,
    image_size: int | None,
    num_workers: int | None,
    optimizer: str | None,
    weight_decay: float | None,
    label_smoothing: float | None,
    augment: bool | None,
    patience: int | None,
) -> None:
    """Fine-tune model NAME on DATA (an ImageFolder: DATA/<class>/<image>) and save the best checkpoint.

    A torchvision detector trains on boxes instead: DATA is a COCO annotations .json file or a YOLO folder
    (images/ and labels/, or their train/ and val/ subfolders, with data.yaml naming the classes).

    Prints each epoch's metrics and the checkpoint's path. The same command under
    `torchrun --nproc_per_node N -m zoo finetune ...` trains data-parallel.
    """
    from zoo import api
    from zoo.device import resolve_device
    from zoo.train import distributed as dist

    require_capability(name, "finetune")  # refused before any download
    out = out if out is not None else Path("runs") / re.sub(r"[^A-Za-z0-9._-]+", "-", name)
    with dist.session(resolve_device(device)) as (info, target):
        with dist.rank_zero_first():
            model = api.load(name, device=target)
        model.finetune(
            data,
            _val(val),
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            strategy=strategy,
            out=out,
            resume=resume,
            log_dir=log_dir,
            seed=seed,
            image_size=image_size,
            num_workers=num_workers,
            **_chosen(
                optimizer=optimizer,
                weight_decay=weight_decay,
                label_smoothing=label_smoothing,
                augment=augment,
                patience=patience,
            ),
            on_epoch=lambda metrics: click.echo(str(metrics)),
        )
        history = model.history
        if info.is_main and history is not None:
            if history.best is not None and history.monitor != "epoch":
                monitor = history.monitor
                click.echo(f"best: epoch {history.best.epoch} ({monitor} {history.best.value(monitor):.4f})")
            click.echo(f"saved {history.checkpoint}")
