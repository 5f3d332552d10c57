"""Quantized state_dicts (int8 models of `torch.ao.quantization`) in safetensors, and back, exactly.

safetensors holds plain tensors only, while a quantized module's state_dict holds quantized tensors (int8 values
with per-tensor or per-channel scales and zero points), a `torch.dtype` (`..._packed_params.dtype`) and, for
`Linear` layers, a `(weight, bias)` tuple (`..._packed_params._packed_params`). `encode` flattens those into
plain tensors under a fixed naming scheme with one JSON header entry; `decode` rebuilds them bit for bit.

Naming scheme, for a state_dict entry `K` (the header entry is the JSON `zoo.quantized`):

- a quantized tensor: `K` holds its `int_repr()` (int8 / uint8 / int32), `K.q_scale` its scale(s) (float64, shape
  `()` per tensor, `(C,)` per channel), `K.q_zero_point` its zero point(s) (int64, same shape); the header has
  `tensors[K] = {"dtype": "qint8", "qscheme": "per_tensor_affine"}`, or `"per_channel_affine"` with `"axis": 0`;
- a tuple of tensors or None (a `Linear`'s `_packed_params`): `K.0`, `K.1`, ... each as above, a None has no
  tensor; the header has `tuples[K] = [true, false]` (which elements are present);
- a `torch.dtype`: no tensor; the header has `dtypes[K] = "qint8"`.

The header entry is `{"version": 1, "tensors": {...}, "tuples": {...}, "dtypes": {...}}`. It selects no code: only
the quantized dtypes and the two affine schemes named above are understood, every name is looked up in a fixed
table, and every tensor it points to is checked (dtype, shape, finite positive scales, zero points in range) before
`torch._make_per_tensor_quantized_tensor` / `torch._make_per_channel_quantized_tensor` rebuild it.
A state_dict without quantized entries is written unchanged (no header entry), so other conversions keep their bytes.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from zoo.errors import InputError, UnsupportedError

if TYPE_CHECKING:
    import torch

__all__ = [
    "HEADER_KEY",
    "decode",
    "device_for",
    "encode",
    "is_quantized_file",
    "is_quantized_module",
    "is_quantized_state",
]

#: safetensors header key holding the quantized layout as JSON.
HEADER_KEY = "zoo.quantized"
VERSION = 1
SCALE, ZERO_POINT = ".q_scale", ".q_zero_point"
#: Quantized dtype name -> the dtype name of its `int_repr()` and its value range.
_QDTYPES = {"qint8": ("int8", -128, 127), "quint8": ("uint8", 0, 255), "qint32": ("int32", -(2**31), 2**31 - 1)}
_QSCHEMES = ("per_tensor_affine", "per_channel_affine")
#: dtypes a state_dict entry may hold as a value (`LinearPackedParams` saves its weight dtype).
_VALUE_DTYPES = ("qint8", "quint8", "qint32", "float16", "bfloat16", "float32")


def is_quantized_module(module: torch.nn.Module) -> bool:
    """True when `module` holds quantized layers (`torch.ao.nn.quantized`, static or dynamic): CPU-only kernels."""
    return any(type(m).__module__.startswith(("torch.ao.nn.quantized", "torch.nn.quantized")) for m in module.modules())


def is_quantized_file(path: str | os.PathLike[str]) -> bool:
    """True when a safetensors file holds a quantized state_dict (its header has the `zoo.quantized` entry);
    False for any other file, damaged ones included (their load says what is wrong)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return HEADER_KEY in (f.metadata() or {})
    except Exception:  # safetensors' own error type: not readable, reported by the load itself
        return False


def device_for(name: str, quantized: bool, asked: str | torch.device | None, target: torch.device) -> torch.device:
    """The device for a model, resolved from the request `asked` as `target`: the CPU for a quantized one, whose
    kernels PyTorch has only there ("auto" picks it).

    Args:
        name: the model, for the message.
        quantized: whether the model is quantized (`is_quantized_module`, `is_quantized_file`).
        asked: the device asked for ("auto", None, "cuda", ...).
        target: `asked` resolved on this machine.

    Raises:
        UnsupportedError: a quantized model and another device asked for explicitly.
    """
    import torch

    if target.type == "cpu" or not quantized:
        return target
    if asked is None or (isinstance(asked, str) and asked == "auto"):
        return torch.device("cpu")
    raise UnsupportedError(
        f"{name} is a quantized (int8) model and PyTorch runs those on the CPU only, not {str(target)!r}: "
        f"load it with device='cpu' (--device cpu)."
    )


def is_quantized_state(obj: Any) -> bool:
    """True when `obj` is a quantized module's state_dict: names mapped to tensors, `(tensor | None, ...)` tuples
    and dtypes, with at least one quantized tensor."""
    import torch

    if not isinstance(obj, Mapping) or not obj:
        return False
    found = False
    for key, value in obj.items():
        if not isinstance(key, str):
            return False
        items = value if isinstance(value, tuple) else (value,)
        if isinstance(value, torch.dtype):
            continue
        if not items or not all(v is None or isinstance(v, torch.Tensor) for v in items):
            return False
        found = found or any(isinstance(v, torch.Tensor) and v.is_quantized for v in items)
    return found


def encode(state: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Plain tensors for `state` and the header entry describing its quantized entries ({} when it has none).

    Raises:
        UnsupportedError: a quantization scheme or value this layout does not hold, or a name clash.
    """
    import torch

    if not any(_special(v) for v in state.values()):
        return dict(state), {}
    layout: dict[str, dict[str, Any]] = {"tensors": {}, "tuples": {}, "dtypes": {}}
    out: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, torch.dtype):
            layout["dtypes"][key] = _dtype_name(value, key)
        elif isinstance(value, tuple):
            layout["tuples"][key] = [v is not None for v in value]
            for i, item in enumerate(value):
                if item is not None:
                    _put(out, layout, f"{key}.{i}", item)
        else:
            _put(out, layout, key, value)
    header = {"version": VERSION, **{part: layout[part] for part in ("dtypes", "tensors", "tuples")}}
    return out, {HEADER_KEY: json.dumps(header, sort_keys=True)}


def _special(value: Any) -> bool:
    import torch

    if isinstance(value, (tuple, torch.dtype)):
        return True
    return isinstance(value, torch.Tensor) and value.is_quantized


def _dtype_name(dtype: torch.dtype, key: str) -> str:
    name = str(dtype).removeprefix("torch.")
    if name not in _VALUE_DTYPES:
        raise UnsupportedError(f"State entry {key!r} is the dtype {name}: zoo stores quantized state_dicts' own only.")
    return name


def _put(out: dict[str, Any], layout: dict[str, dict[str, Any]], key: str, tensor: Any) -> None:
    import torch

    if not isinstance(tensor, torch.Tensor):
        raise UnsupportedError(f"State entry {key!r} is a {type(tensor).__name__}: safetensors holds tensors only.")
    for name in (key, key + SCALE, key + ZERO_POINT):
        if name in out:
            raise UnsupportedError(f"State entry {name!r} clashes with zoo's names for quantized tensors.")
    tensor = tensor.detach().cpu()
    if not tensor.is_quantized:
        out[key] = tensor
        return
    qscheme, qdtype = str(tensor.qscheme()).removeprefix("torch."), str(tensor.dtype).removeprefix("torch.")
    if qscheme not in _QSCHEMES or qdtype not in _QDTYPES:
        raise UnsupportedError(f"State entry {key!r} is quantized {qdtype} {qscheme}: zoo stores affine ones only.")
    entry: dict[str, Any] = {"dtype": qdtype, "qscheme": qscheme}
    out[key] = tensor.int_repr()
    if qscheme == "per_tensor_affine":
        out[key + SCALE] = torch.tensor(tensor.q_scale(), dtype=torch.float64)
        out[key + ZERO_POINT] = torch.tensor(tensor.q_zero_point(), dtype=torch.int64)
    else:
        out[key + SCALE] = tensor.q_per_channel_scales().to(torch.float64)
        out[key + ZERO_POINT] = tensor.q_per_channel_zero_points().to(torch.int64)
        entry["axis"] = int(tensor.q_per_channel_axis())
    layout["tensors"][key] = entry


def decode(tensors: Mapping[str, torch.Tensor], header: Mapping[str, str], *, source: str) -> dict[str, Any]:
    """Rebuild the state_dict `encode` flattened, from the tensors and header of a safetensors file.

    Without a `zoo.quantized` header entry, `tensors` come back as they are (a plain state_dict).

    Raises:
        InputError: the header entry or the tensors it names are damaged or inconsistent.
    """
    if HEADER_KEY not in header:
        return dict(tensors)
    from zoo.arguments import check_json, parse_json

    what = f"{HEADER_KEY} metadata"
    layout = check_json(parse_json(header[HEADER_KEY], what=what, source=source), what=what, source=source)
    parts = _parts(layout, source)
    left = OrderedDict(tensors)
    rebuilt: dict[str, Any] = {}
    for key, entry in parts["tensors"].items():
        rebuilt[key] = _qtensor(left, key, entry, source)
    out: dict[str, Any] = OrderedDict()
    for key, value in left.items():
        out[key] = value
    out.update(rebuilt)
    for key, present in parts["tuples"].items():
        if key in out or not isinstance(present, list) or not all(isinstance(p, bool) for p in present):
            raise _damaged(source, f"tuple entry {key!r}")
        names = [f"{key}.{i}" for i in range(len(present))]
        if any(p != (name in out) for p, name in zip(present, names)):
            raise _damaged(source, f"the tensors of tuple entry {key!r}")
        out[key] = tuple(out.pop(name) if p else None for p, name in zip(present, names))
    for key, name in parts["dtypes"].items():
        if key in out or name not in _VALUE_DTYPES:
            raise _damaged(source, f"dtype entry {key!r}")
        out[key] = _torch_dtype(name)
    return out


def _parts(layout: Any, source: str) -> dict[str, dict[str, Any]]:
    parts = ("dtypes", "tensors", "tuples")
    if not isinstance(layout, dict) or layout.get("version") != VERSION or set(layout) != {"version", *parts}:
        raise InputError(f"The {HEADER_KEY} metadata of {source} is not zoo's quantized layout {VERSION}: damaged.")
    if not all(isinstance(layout[p], dict) for p in parts):
        raise _damaged(source, "its entries")
    return {p: layout[p] for p in parts}


def _qtensor(left: dict[str, torch.Tensor], key: str, entry: Any, source: str) -> torch.Tensor:
    """The quantized tensor `key`, rebuilt from (and removing) its int values, scales and zero points."""
    import torch

    if not isinstance(entry, dict) or entry.get("dtype") not in _QDTYPES or entry.get("qscheme") not in _QSCHEMES:
        raise _damaged(source, f"quantized entry {key!r}")
    names = (key, key + SCALE, key + ZERO_POINT)
    if not all(name in left for name in names):
        raise _damaged(source, f"quantized entry {key!r} (a tensor is missing)")
    values, scale, zero_point = (left.pop(name) for name in names)
    repr_name, low, high = _QDTYPES[entry["dtype"]]
    if values.dtype != _torch_dtype(repr_name) or scale.dtype != torch.float64 or zero_point.dtype != torch.int64:
        raise _damaged(source, f"the dtypes of quantized entry {key!r}")
    if not bool(torch.isfinite(scale).all()) or not bool((scale > 0).all()):
        raise _damaged(source, f"the scales of quantized entry {key!r}")
    if zero_point.numel() and not (low <= int(zero_point.min()) and int(zero_point.max()) <= high):
        raise _damaged(source, f"the zero points of quantized entry {key!r}")
    if entry["qscheme"] == "per_tensor_affine":
        if set(entry) != {"dtype", "qscheme"} or scale.dim() != 0 or zero_point.dim() != 0:
            raise _damaged(source, f"quantized entry {key!r}")
        return torch._make_per_tensor_quantized_tensor(values, float(scale), int(zero_point))
    axis = entry.get("axis")
    if set(entry) != {"dtype", "qscheme", "axis"} or type(axis) is not int or not 0 <= axis < values.dim():
        raise _damaged(source, f"the axis of quantized entry {key!r}")
    if scale.shape != (values.shape[axis],) or zero_point.shape != scale.shape:
        raise _damaged(source, f"the scales of quantized entry {key!r}")
    return torch._make_per_channel_quantized_tensor(values, scale, zero_point, axis)


def _torch_dtype(name: str) -> torch.dtype:
    """A dtype from the fixed tables above (never an attribute named by a file)."""
    import torch

    table = {
        "int8": torch.int8, "uint8": torch.uint8, "int32": torch.int32, "qint8": torch.qint8,
        "quint8": torch.quint8, "qint32": torch.qint32, "float16": torch.float16, "bfloat16": torch.bfloat16,
        "float32": torch.float32,
    }  # fmt: skip
    return table[name]


def _damaged(source: str, what: str) -> InputError:
    return InputError(f"The {HEADER_KEY} metadata of {source} does not match its tensors ({what}): it is damaged.")
