"""Running exported models: `zoo.load("m.onnx")` (onnxruntime) and `zoo.load("m.pt2")` (`torch.export`).

The exported graph becomes the model's module; zoo's own task then decodes, preprocesses and postprocesses
exactly as for the PyTorch model, so `predict` and its results are the same. The metadata inside the file is
read as plain JSON and validated (`ExportInfo.from_json`); an ONNX file whose tensors live in external files
is refused unless those are plain file names beside it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import InputError, UnsupportedError
from zoo.export.metadata import ExportInfo

if TYPE_CHECKING:
    import torch

    from zoo.model import Model

__all__ = ["EXPORTED_SUFFIXES", "is_exported", "load_exported"]

#: Suffixes `zoo.load(path)` runs as exported graphs.
EXPORTED_SUFFIXES = {".onnx": "onnx", ".pt2": "torch.export"}


def is_exported(path: str | os.PathLike[str]) -> bool:
    """True when `path` names an exported model zoo can load (by its suffix)."""
    return Path(os.fspath(path)).suffix.lower() in EXPORTED_SUFFIXES


def load_exported(path: str | os.PathLike[str], *, device: Any = "auto", **kwargs: Any) -> Model:
    """Load an exported `.onnx` (onnxruntime) or `.pt2` (`torch.export`) model with zoo's `predict`.

    Raises:
        InputError: the file is missing, is not an export, or its zoo metadata is invalid.
        UnsupportedError: builder arguments were given (an exported graph is fixed), or onnxruntime is missing.
    """
    if kwargs:
        raise UnsupportedError(
            f"An exported model is a fixed graph: it takes no builder arguments ({', '.join(sorted(kwargs))})."
        )
    target = Path(path).expanduser()
    if not target.is_file():
        raise InputError(f"No such file: {target}. Check the path.")
    format = EXPORTED_SUFFIXES[target.suffix.lower()]
    from zoo.export.exporters import read_metadata_text

    if format == "onnx":
        _require_onnx()
        _check_external_data(target)
    info = ExportInfo.from_json(read_metadata_text(target, format), source=str(target))
    if format == "onnx":
        module, placed = _onnx_module(target, info, device)
    else:
        module, placed = _pt2_module(target, device)
    return _wrap(module, info, placed, target, format)


def _require_onnx() -> None:
    import importlib.util

    for name in ("onnx", "onnxruntime"):
        if importlib.util.find_spec(name) is None:
            raise UnsupportedError(f"Running .onnx models needs {name}: pip install 'zoo-sdk[onnx]'.")


def _check_external_data(path: Path) -> None:
    """Refuse external tensor data that is not a plain file name beside the model (no path from data)."""
    import onnx
    from onnx.external_data_helper import uses_external_data

    from zoo.specs import validate_filename

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise InputError(f"{path} is not an ONNX model ({type(exc).__name__}); export it with `zoo export`.") from exc
    for tensor in proto.graph.initializer:
        if uses_external_data(tensor):
            location = next((e.value for e in tensor.external_data if e.key == "location"), "")
            try:
                validate_filename(location)
            except ValueError as exc:
                raise InputError(f"{path}: external tensor data at {location!r} is refused ({exc}).") from exc


def _onnx_module(path: Path, info: ExportInfo, device: Any) -> tuple[torch.nn.Module, torch.device]:
    import onnxruntime as ort
    import torch

    from zoo.device import resolve_device

    wanted = resolve_device(device)
    providers = ["CPUExecutionProvider"]
    if wanted.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own Fail / InvalidGraph / ...
        raise InputError(f"onnxruntime cannot load {path}: {str(exc).strip().splitlines()[0]}") from exc
    inputs = [i.name for i in session.get_inputs()]
    if inputs != [info.input_name]:
        raise InputError(f"{path}: the graph's inputs {inputs} are not the one its zoo metadata names.")
    return _ort_module_class()(session, info.input_name), torch.device("cpu")


def _ort_module_class() -> type:
    import numpy as np
    import torch

    class OnnxRuntimeModule(torch.nn.Module):
        """An onnxruntime session as a module: float NCHW tensor in, the graph's first output as a tensor out."""

        def __init__(self, session: Any, input_name: str) -> None:
            super().__init__()
            self.session = session
            self.input_name = input_name

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            array = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
            return torch.from_numpy(self.session.run(None, {self.input_name: array})[0])

    return OnnxRuntimeModule


def _pt2_module(path: Path, device: Any) -> tuple[torch.nn.Module, torch.device]:
    import torch

    from zoo.device import resolve_device

    try:
        program = torch.export.load(str(path))
    except Exception as exc:  # a damaged or foreign archive
        raise InputError(f"{path} is not a torch.export program: {str(exc).strip().splitlines()[0]}") from exc
    target = resolve_device(device)
    graph = program.module()
    graph.to(target)
    return _program_module_class()(graph), target


def _program_module_class() -> type:
    import torch

    class ExportedProgramModule(torch.nn.Module):
        """A `torch.export` program's module, held outside the module tree (it refuses `eval()`/`train()`)."""

        def __init__(self, graph: torch.nn.Module) -> None:
            super().__init__()
            self._graph = [graph]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self._graph[0](x)

    return ExportedProgramModule


def _wrap(module: torch.nn.Module, info: ExportInfo, device: torch.device, path: Path, format: str) -> Model:
    """The `Model` around an exported graph (its spec says where it came from)."""
    from zoo.build import build_model
    from zoo.model import ModelInfo
    from zoo.specs import ModelSpec

    def builder() -> torch.nn.Module:
        return module

    meta: dict[str, Any] = {"exported": format, "path": str(path), "zoo_version": info.zoo_version}
    if info.image_size:
        meta["image_size"] = info.image_size
    spec = ModelSpec(
        name=info.name, task=info.task, builder=builder, plugin=f"export:{format}", labels=info.labels,
        preprocess=info.preprocess, description=f"exported {format} graph", meta=meta,
    )  # fmt: skip
    what = ModelInfo(
        weights=info.weights, labels=info.labels, preprocess=info.preprocess, weights_sha256=info.weights_sha256
    )
    model = build_model(spec, info=what, device=device)  # the one way a Model is made
    if info.stride:
        module.stride = _stride_tensor(info.stride)
    return model


def _stride_tensor(stride: int) -> Any:
    import torch

    return torch.tensor([float(stride)])
