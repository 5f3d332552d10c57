"""Writing a model as ONNX, a `torch.export` program (.pt2) or TorchScript, with zoo's metadata inside.

Each format stores `ExportInfo.to_json()` in its own metadata field: ONNX `metadata_props["zoo"]`, and an
extra file `zoo.json` in .pt2 and TorchScript archives. Every file is written beside its target and renamed
over it once complete.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import InputError, UnsupportedError
from zoo.export.metadata import MAX_METADATA_BYTES, METADATA_KEY, TASKS, ExportInfo

if TYPE_CHECKING:
    import torch

    from zoo.model import Model

__all__ = ["EXTRA_FILE", "FORMATS", "example_input", "export_model", "graph_module", "read_metadata_text"]

logger = logging.getLogger(__name__)

#: Export formats and the file suffix each is written with by default.
FORMATS = {"onnx": ".onnx", "torch.export": ".pt2", "torchscript": ".torchscript"}
#: Exporters of `format="onnx"`: "dynamo" (`torch.export`-based), "torchscript" (the tracing one) or "auto"
#: (dynamo, then the tracing one when dynamo cannot capture the model).
ONNX_EXPORTERS = ("auto", "dynamo", "torchscript")
#: The extra file holding zoo's metadata in .pt2 and TorchScript archives.
EXTRA_FILE = "zoo.json"
_DETECTION_SIZE = 640


def export_model(
    model: Model,
    path: str | os.PathLike[str],
    format: str = "onnx",
    *,
    dynamic_batch: bool = True,
    opset: int | None = None,
    include_preprocess: bool = False,
    exporter: str = "auto",
) -> Path:
    """Write `model` to `path` in `format`; see `zoo.Model.export`. Returns the path written."""
    from zoo.checkpoint.files import atomic_write

    if format not in FORMATS:
        raise InputError(f"Unknown export format {format!r}: use one of {', '.join(FORMATS)}.")
    if exporter not in ONNX_EXPORTERS:
        raise InputError(f"Unknown ONNX exporter {exporter!r}: use one of {', '.join(ONNX_EXPORTERS)}.")
    if opset is not None and (isinstance(opset, bool) or not isinstance(opset, int) or not 7 <= opset <= 30):
        raise InputError(f"opset={opset!r} is not an ONNX opset number (7 to 30).")
    target = Path(path).expanduser()
    if target.is_dir():
        raise InputError(f"{target} is a folder: export to a file such as {target / ('model' + FORMATS[format])}.")
    if type(model.task).exports_itself:  # a backend with an exporter of its own (declared by its task)
        target.parent.mkdir(parents=True, exist_ok=True)
        return model.task.export(target, format, dynamic_batch=dynamic_batch, opset=opset)
    _check_exportable(model, include_preprocess)
    info = ExportInfo.from_model(model, include_preprocess=include_preprocess, dynamic_batch=dynamic_batch)
    module = graph_module(model, include_preprocess)
    example = example_input(model, info)
    target.parent.mkdir(parents=True, exist_ok=True)
    writers: dict[str, Any] = {"onnx": _write_onnx, "torch.export": _write_pt2, "torchscript": _write_torchscript}
    atomic_write(target, lambda tmp: writers[format](module, example, info, tmp, opset=opset, exporter=exporter))
    return target


def _check_exportable(model: Model, include_preprocess: bool) -> None:
    task = model.spec.task
    if task not in TASKS:
        raise UnsupportedError(f"{model.spec.name} is a {task} model: zoo exports {', '.join(TASKS)} models only.")
    if task != "object-detection" and (model.preprocess is None or model.preprocess.input_size is None):
        raise UnsupportedError(
            f"{model.spec.name} has no fixed image input size (preprocessing with a crop or resize), so zoo cannot "
            f"make an example input to export it."
        )
    if include_preprocess and task == "object-detection":
        raise UnsupportedError("include_preprocess is for models with normalization; detection models take [0, 1].")


def example_input(model: Model, info: ExportInfo) -> torch.Tensor:
    """A float NCHW batch shaped like the model's input (batch 2 for a dynamic batch, so it is not fixed to 1)."""
    import torch

    batch = 2 if info.dynamic_batch else 1

    if info.task == "object-detection":
        side = info.image_size or _DETECTION_SIZE
        return torch.rand(batch, 3, side, side, generator=torch.Generator().manual_seed(0))
    size = model.preprocess.input_size if model.preprocess is not None else None
    if model.preprocess is None or size is None:  # _check_exportable refused it already
        raise UnsupportedError(f"{model.spec.name} has no fixed image input size.")
    height, width = size
    return torch.rand(batch, model.preprocess.channels, height, width, generator=torch.Generator().manual_seed(0))


def graph_module(model: Model, include_preprocess: bool) -> torch.nn.Module:
    """The module that is exported: the model's own (on the CPU, in eval mode), returning one tensor.

    A classifier returns its logits; a detector the first item of its output (boxes before NMS); with
    `include_preprocess`, normalization by the model's mean and std comes first.
    """
    import torch

    module = model.module
    if next(module.parameters(), torch.empty(0)).device.type != "cpu":
        module = copy.deepcopy(module).to("cpu")
    mean = std = None
    if include_preprocess and model.preprocess is not None:
        mean, std = model.preprocess.mean, model.preprocess.std
    return _Graph(module.eval(), model.spec.task, mean, std).eval()


def _graph_class() -> type:
    import torch

    class Graph(torch.nn.Module):
        """One tensor in, one tensor out: what an exported zoo model computes."""

        def __init__(self, module: torch.nn.Module, task: str, mean: Any, std: Any) -> None:
            super().__init__()
            self.module = module
            self.task = task
            self.normalize = mean is not None
            if mean is not None:
                self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
                self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.normalize:
                x = (x - self.get_buffer("mean")) / self.get_buffer("std")
            out = self.module(x)
            if self.task == "image-classification":
                from zoo.tasks.classification import logits_of

                return logits_of(out)
            if isinstance(out, (tuple, list)):
                return out[0]
            return out

    return Graph


def _Graph(module: Any, task: str, mean: Any, std: Any) -> torch.nn.Module:  # noqa: N802 (a class, built lazily)
    return _graph_class()(module, task, mean, std)


def _dynamic_dims(info: ExportInfo) -> dict[int, str]:
    dims = {0: "batch"} if info.dynamic_batch else {}
    if info.task in ("object-detection", "image-to-image"):
        dims.update({2: "height", 3: "width"})
    return dims


def _write_onnx(
    module: torch.nn.Module, example: torch.Tensor, info: ExportInfo, tmp: Path, *, opset: int | None, exporter: str
) -> None:
    import onnx
    import torch

    dims = _dynamic_dims(info)
    common: dict[str, Any] = {"input_names": [info.input_name], "output_names": ["output"]}
    if opset is not None:
        common["opset_version"] = opset
    errors = []
    for kind in ("dynamo", "torchscript") if exporter == "auto" else (exporter,):
        try:
            if kind == "dynamo":
                shapes = {i: torch.export.Dim.AUTO for i in dims}
                with contextlib.redirect_stdout(io.StringIO()):  # its progress lines are not the CLI's output
                    torch.onnx.export(module, (example,), str(tmp), dynamo=True, dynamic_shapes=(shapes,),
                                      verbose=False, **common)  # fmt: skip
            else:
                axes = {info.input_name: dims, "output": {0: "batch"} if info.dynamic_batch else {}}
                torch.onnx.export(module, (example,), str(tmp), dynamo=False, dynamic_axes=axes, **common)
            break
        except Exception as exc:  # the exporters raise many kinds; the last one's reason is reported
            logger.info("ONNX %s exporter failed: %s", kind, exc)
            errors.append(f"{kind}: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}")
    else:
        raise UnsupportedError(f"{info.name} cannot be exported to ONNX ({'; '.join(errors)}).")
    proto = onnx.load(str(tmp))
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, info.to_json()
    proto.producer_name = "zoo"
    onnx.save(proto, str(tmp))


def _write_pt2(module: torch.nn.Module, example: torch.Tensor, info: ExportInfo, tmp: Path, **_: Any) -> None:
    import torch

    shapes = {i: torch.export.Dim.AUTO for i in _dynamic_dims(info)}
    try:
        program = torch.export.export(module, (example,), dynamic_shapes=(shapes,))
    except Exception as exc:  # torch.export raises many kinds for code it cannot capture
        raise UnsupportedError(f"{info.name} cannot be captured by torch.export: {_first_line(exc)}") from exc
    with open(tmp, "wb") as f:
        torch.export.save(program, f, extra_files={EXTRA_FILE: info.to_json()})


def _write_torchscript(module: torch.nn.Module, example: torch.Tensor, info: ExportInfo, tmp: Path, **_: Any) -> None:
    import torch

    try:
        with torch.inference_mode(False), torch.no_grad():
            traced = torch.jit.trace(module, example, check_trace=False)
    except Exception as exc:  # tracing raises many kinds for code it cannot follow
        raise UnsupportedError(f"{info.name} cannot be traced to TorchScript: {_first_line(exc)}") from exc
    with open(tmp, "wb") as f:
        torch.jit.save(traced, f, _extra_files={EXTRA_FILE: info.to_json()})


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_metadata_text(path: Path, format: str) -> str:
    """The zoo metadata text stored in an exported file (without loading its graph)."""
    if format == "onnx":
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
        found = [p.value for p in proto.metadata_props if p.key == METADATA_KEY]
        if not found:
            raise InputError(f"{path} holds no zoo metadata: export it with `zoo export` (or run it with onnxruntime).")
        return found[0]
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith(f"extra/{EXTRA_FILE}") or n == EXTRA_FILE]
            if not names:
                raise InputError(f"{path} holds no zoo metadata: export it with `zoo export`.")
            if archive.getinfo(names[0]).file_size > MAX_METADATA_BYTES:
                raise InputError(f"{path}: zoo metadata is larger than {MAX_METADATA_BYTES} bytes; it is not zoo's.")
            data = archive.read(names[0])
    except zipfile.BadZipFile as exc:
        raise InputError(f"{path} is not a {format} archive: {exc}.") from exc
    return data.decode("utf-8", errors="replace")
