"""Fine-tuning ultralytics models with ultralytics' own trainer, its outputs in a folder zoo chooses.

zoo hands the trainer a copy of the loaded module (ultralytics transfers every weight whose shape fits,
so a new class count gets a new head), a copy of `data.yaml` whose dataset path is absolute (ultralytics
would resolve a relative one against the folder it froze at import), and an absolute output folder.
Afterwards it reads the trainer's `best.pt` with zoo's safe reader (no pickled code runs), loads it into
a model built from the same yaml, and saves it as `best.safetensors` beside ultralytics' files:
`zoo.load("<out>/best.safetensors")` restores it.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import InputError
from zoo.ext import cache_root
from zoo_yolo.build import Arch, build, fp32_hook, model_yaml, task_classes

if TYPE_CHECKING:
    from zoo import Model

__all__ = ["BEST_NAME", "finetune", "resolve_data"]

log = logging.getLogger(__name__)
#: The zoo checkpoint written beside ultralytics' `weights/best.pt`.
BEST_NAME = "best.safetensors"


def finetune(
    model: Model,
    data: Any,
    *,
    epochs: int = 3,
    imgsz: int | None = None,
    batch_size: int = 16,
    lr: float | None = None,
    out: str | os.PathLike[str] | None = None,
    device: str | None = None,
    seed: int = 0,
    **options: Any,
) -> Model:
    """Train `model` with ultralytics' trainer on `data` and return it, trained, labels set to the data's.

    Args:
        model: a loaded ultralytics model (`zoo.load("yolov8n")`).
        data: a dataset yaml (`data.yaml`; a relative `path:` in it is read against the yaml's folder,
            else the working directory), a dict of the same, or a dataset name ultralytics knows
            (`coco8.yaml`, downloaded by ultralytics into `<zoo root>/ultralytics/datasets`); for a
            classifier, a folder with `train/` and `val/` class folders.
        epochs: epochs to run.
        imgsz: training image size (default: the model's, 640; 224 for classifiers).
        batch_size: images per batch.
        lr: initial learning rate (ultralytics' `lr0`).
        out: folder for ultralytics' outputs (`weights/best.pt`, `results.csv`, plots) and zoo's
            `best.safetensors`; default `<zoo root>/ultralytics/runs/<task>/<model>-<time>`.
        device: "cpu", "cuda:0", ...; default the model's device.
        seed: ultralytics' random seed.
        **options: any other ultralytics train argument (`optimizer`, `patience`, `plots`, `workers`,
            `freeze`, `mosaic`, ...), passed as is.

    Returns:
        The same `Model`, trained, with a new `info` (labels, class count, `training`); `<out>/best.safetensors`
        holds it.

    Raises:
        InputError: no data given, or a data yaml that cannot be read.
    """
    if data is None:
        raise InputError('finetune() needs data: model.finetune(data="data.yaml", epochs=..., imgsz=...).')
    arch = _arch(model)
    folder = _out_folder(model, arch, out)
    data_arg = resolve_data(data, folder)
    size = int(imgsz or model.spec.meta.get("image_size", 640))
    args = {
        **options,
        "model": f"{model.spec.name}.yaml",
        "task": arch.task,
        "mode": "train",
        "data": data_arg,
        "epochs": epochs,
        "imgsz": size,
        "batch": batch_size,
        "device": str(device or model.device),
        "seed": seed,
        "project": str(folder.parent),
        "name": folder.name,
        "exist_ok": True,
    }
    if lr is not None:
        args["lr0"] = lr
    with _restored_torch_flags():
        trainer = task_classes(arch)["trainer"](overrides=args)
        trainer.model = trainer.get_model(cfg=model_yaml(arch), weights=_start_weights(model), verbose=False)
        trainer.train()
    labels = _adopt(model, arch, trainer)
    builder_kwargs = {**model.builder_kwargs, "num_classes": len(labels)}
    model.replace_info(labels=labels, builder_kwargs=builder_kwargs, training=_summary(trainer, data_arg, args, folder))
    model.save(folder / BEST_NAME)
    return model


def _arch(model: Model) -> Arch:
    meta = model.spec.meta
    return Arch(cfg=meta["yaml"], scale=meta["scale"], task=meta["ultralytics_task"], family=meta["family"])


def _out_folder(model: Model, arch: Arch, out: str | os.PathLike[str] | None) -> Path:
    if out is not None:
        folder = Path(out).expanduser().absolute()
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    runs = cache_root() / "ultralytics" / "runs" / arch.task
    runs.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{model.spec.name}-{time.strftime('%Y%m%d-%H%M%S')}-", dir=runs))


def resolve_data(data: Any, folder: Path) -> str:
    """The `data` argument for ultralytics: a yaml copy in `folder` whose `path:` is absolute.

    A folder (classification data) or a name ultralytics knows (`coco8.yaml`) is passed as is.

    Raises:
        InputError: the yaml cannot be read or is not a mapping.
    """
    import yaml

    if isinstance(data, Mapping):
        content, base = dict(data), Path.cwd()
    else:
        path = Path(os.fspath(data)).expanduser()
        if path.is_dir() or not path.is_file():
            return str(path.absolute()) if path.exists() else os.fspath(data)
        try:
            content = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"Cannot read the dataset yaml {path}: {exc}") from exc
        if not isinstance(content, dict):
            raise InputError(f"{path} is not a dataset yaml (a mapping with path, train, val and names).", path=path)
        base = path.absolute().parent
    root = Path(str(content.get("path") or ".")).expanduser()
    if not root.is_absolute():  # the yaml's folder first, then the working directory
        root = next((c for c in (base / root, Path.cwd() / root) if c.exists()), base / root)
    content["path"] = str(root.resolve())
    target = folder / "data.yaml"
    target.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
    return str(target)


def _start_weights(model: Model) -> Any:
    """A copy of the loaded module for ultralytics to transfer from, or None for a random-init model."""
    if model.weights is None and model.training_summary is None:
        return None
    return copy.deepcopy(model.module).float().cpu()


def _adopt(model: Model, arch: Arch, trainer: Any) -> tuple[str, ...]:
    """Load the trainer's best weights (read safely) into a fresh module with the data's classes; returns them."""
    from zoo.ext import load_state_dict_into, read_state_dict

    best = Path(trainer.best if Path(trainer.best).is_file() else trainer.last)
    state = fp32_hook(read_state_dict(best))
    names = trainer.data["names"]
    labels = tuple(str(names[i]) for i in sorted(names)) if isinstance(names, Mapping) else tuple(map(str, names))
    module = build(arch, num_classes=len(labels), channels=int(trainer.data.get("channels", 3)))
    load_state_dict_into(module, state, assign=False, source=best.name)
    module.eval()
    model.module = module.to(model.device)
    return labels


def _summary(trainer: Any, data: str, args: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    metrics = {str(k): round(float(v), 6) for k, v in (getattr(trainer, "metrics", None) or {}).items()}
    return {
        "trainer": "ultralytics",
        "data": data,
        "epochs": int(getattr(trainer, "epoch", args["epochs"] - 1)) + 1,
        "imgsz": args["imgsz"],
        "batch": args["batch"],
        "metrics": metrics,
        "out": str(folder),
    }


@contextlib.contextmanager
def _restored_torch_flags() -> Iterator[None]:
    """Undo the process-wide switches ultralytics' trainer flips (deterministic algorithms, cuDNN, env)."""
    import torch

    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    env = {k: os.environ.get(k) for k in ("CUBLAS_WORKSPACE_CONFIG", "PYTHONHASHSEED")}
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
