"""Export models to ONNX, `torch.export` (.pt2) and TorchScript with zoo's metadata, check parity, run them.

- `exporters`: `export_model` (what `Model.export` does), one writer per format.
- `metadata`: `ExportInfo`, the JSON the exported file carries, parsed and validated on the way in.
- `parity`: `check_export`, the exported file against its original on the same images.
- `runtime`: `load_exported`, what `zoo.load("m.onnx")` / `zoo.load("m.pt2")` does.

Importing this package imports neither torch nor onnx.
"""

from zoo.export.exporters import FORMATS, export_model
from zoo.export.metadata import ExportInfo
from zoo.export.parity import DEFAULT_TOLERANCE, Parity, ParityError, check_export
from zoo.export.runtime import EXPORTED_SUFFIXES, is_exported, load_exported

__all__ = [
    "DEFAULT_TOLERANCE",
    "EXPORTED_SUFFIXES",
    "FORMATS",
    "ExportInfo",
    "Parity",
    "ParityError",
    "check_export",
    "export_model",
    "is_exported",
    "load_exported",
]
