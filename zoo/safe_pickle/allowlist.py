"""What the safe reader lets a pickle call: checked re-implementations of torch's tensor rebuilders, and
a few harmless containers, dtypes and values. Every name absent from `allowed()` becomes a `Stub`.
"""

from __future__ import annotations

import math
import pickle
from collections import OrderedDict
from functools import cache
from typing import TYPE_CHECKING, Any, NamedTuple

from zoo.safe_pickle.stub import Stub

if TYPE_CHECKING:
    import torch

__all__ = ["Marker", "Storage", "StorageType", "allowed", "check_ints"]

_TEXT_ENCODINGS = {"latin1", "latin-1", "utf-8", "utf8", "ascii"}


class Storage(NamedTuple):
    """A storage read from the checkpoint: raw bytes, the dtype it was saved as, an element offset (views), and
    the budget (an object with `spend(nbytes)`) that every tensor made from it is charged its full size to."""

    untyped: Any
    dtype: Any
    offset: int = 0
    views: Any = None


class StorageType(NamedTuple):
    """What a storage class named in a pickle (`torch.FloatStorage`) stands for: its dtype."""

    dtype: Any


class Marker(NamedTuple):
    """A torch class the reader recognises by identity but never calls (`torch.Tensor`, `Parameter`)."""

    qualname: str


# -- allowlisted callables: each checks its arguments, then does one harmless thing --------------------------------


def check_ints(*values: Any) -> None:
    """Refuse tensor geometry (offsets, sizes, strides) that is not plain integers."""
    for value in values:
        items = value if isinstance(value, tuple) else (value,)
        if not all(type(v) is int for v in items):
            raise pickle.UnpicklingError(f"tensor geometry must be integers, got {value!r}")


def _tensor(storage: Any, offset: Any, size: Any, stride: Any, dtype: Any = None) -> torch.Tensor:
    import torch

    if not isinstance(storage, Storage):
        raise pickle.UnpicklingError(f"a tensor needs a storage of the file, not {type(storage).__name__}")
    size, stride = tuple(size), tuple(stride)
    check_ints(offset, size, stride)
    dtype = storage.dtype if dtype is None else dtype
    if not isinstance(dtype, torch.dtype):
        raise pickle.UnpicklingError(f"{dtype!r} is not a dtype")
    offset += storage.offset
    _check_bounds(storage.untyped.nbytes(), dtype.itemsize, offset, size, stride)
    if storage.views is not None:  # what the tensor takes once materialised, not what its storage holds
        storage.views.spend(math.prod(size) * dtype.itemsize)
    return torch.empty((0,), dtype=dtype).set_(storage.untyped, offset, size, stride)


def _check_bounds(nbytes: int, itemsize: int, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> None:
    """Refuse a tensor reaching past its storage (`set_` would silently grow the storage instead)."""
    if len(size) != len(stride) or offset < 0 or min(size, default=0) < 0 or min(stride, default=0) < 0:
        raise pickle.UnpicklingError(f"bad tensor geometry: offset {offset}, size {size}, stride {stride}")
    if 0 in size:
        return
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if (last + 1) * itemsize > nbytes:
        raise pickle.UnpicklingError(f"a tensor of size {size} reaches past its storage of {nbytes} bytes")


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any) -> torch.Tensor:
    return _tensor(storage, offset, size, stride)


def _rebuild_tensor_v2(storage: Any, offset: Any, size: Any, stride: Any, *_grad_hooks_meta: Any) -> torch.Tensor:
    return _tensor(storage, offset, size, stride)


def _rebuild_tensor_v3(
    storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any, hooks: Any, dtype: Any, *_meta: Any
) -> torch.Tensor:
    return _tensor(storage, offset, size, stride, dtype)


def _rebuild_qtensor(
    storage: Any, offset: Any, size: Any, stride: Any, quantizer: Any, *_grad_hooks: Any
) -> torch.Tensor:
    """`torch._utils._rebuild_qtensor`: int values from the file's storage, with affine scales and zero points.

    Only `per_tensor_affine` (a float scale, an int zero point) and `per_channel_affine` (float64 scales and
    int64 zero points read from the file, an int axis) are rebuilt; the storage must be a quantized one.
    """
    import torch

    if not isinstance(storage, Storage) or storage.dtype not in _QUANTIZED:
        raise pickle.UnpicklingError("a quantized tensor needs a quantized storage of the file")
    values = _tensor(Storage(storage.untyped, _QUANTIZED[storage.dtype], storage.offset, storage.views), offset,
                     size, stride)  # fmt: skip
    if not isinstance(quantizer, tuple) or not quantizer:
        raise pickle.UnpicklingError(f"bad quantizer parameters {quantizer!r}")
    scheme = quantizer[0]
    if scheme is torch.per_tensor_affine and len(quantizer) == 3:
        _, scale, zero_point = quantizer
        if type(scale) is not float or not math.isfinite(scale) or scale <= 0 or type(zero_point) is not int:
            raise pickle.UnpicklingError(f"bad per-tensor scale or zero point {quantizer[1:]!r}")
        return torch._make_per_tensor_quantized_tensor(values, scale, zero_point)
    if scheme is torch.per_channel_affine and len(quantizer) == 4:
        _, scales, zero_points, axis = quantizer
        if not (isinstance(scales, torch.Tensor) and isinstance(zero_points, torch.Tensor) and type(axis) is int):
            raise pickle.UnpicklingError("per-channel scales and zero points must be tensors, the axis an int")
        if not 0 <= axis < values.dim() or scales.shape != (values.shape[axis],):
            raise pickle.UnpicklingError(f"per-channel scales of shape {tuple(scales.shape)} do not fit axis {axis}")
        if scales.shape != zero_points.shape or not bool(torch.isfinite(scales).all() & (scales > 0).all()):
            raise pickle.UnpicklingError("bad per-channel scales or zero points")
        return torch._make_per_channel_quantized_tensor(
            values, scales.to(torch.float64), zero_points.to(torch.int64), axis
        )
    raise pickle.UnpicklingError(f"refusing quantizer {scheme!r}: zoo reads per-tensor and per-channel affine only")


def _rebuild_parameter(data: Any, requires_grad: Any, *_hooks_state: Any) -> torch.Tensor:
    import torch

    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError(f"a parameter must wrap a tensor, not {type(data).__name__}")
    grad = requires_grad is True and (data.is_floating_point() or data.is_complex())
    return torch.nn.Parameter(data, requires_grad=grad)


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any) -> torch.Tensor:
    if not any(func is rebuild for rebuild in _REBUILDERS) or not isinstance(args, tuple):
        raise pickle.UnpicklingError(f"refusing to rebuild a tensor subclass with {func!r}")
    tensor = func(*args)
    if isinstance(new_type, Marker) and new_type.qualname == "torch.nn.parameter.Parameter":
        tensor = _rebuild_parameter(tensor, True)
    return tensor  # other subclasses come back as plain tensors; their state is dropped


def _reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """`copyreg._reconstructor` (protocol 0/1 objects): only ever makes a stand-in."""
    if isinstance(cls, type) and issubclass(cls, Stub):
        return cls.__new__(cls) if state is None else cls.__new__(cls, state)
    raise pickle.UnpicklingError(f"refusing copyreg._reconstructor for {cls!r}")


def _encode(text: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
    """`_codecs.encode`, which protocol-2 pickles use for bytes: text codecs only."""
    if not isinstance(text, str) or encoding not in _TEXT_ENCODINGS or errors != "strict":
        raise pickle.UnpicklingError("refusing _codecs.encode with anything but text and a text encoding")
    return text.encode(encoding)


def _bytearray(*args: Any) -> bytearray:
    if not args:
        return bytearray()
    if len(args) == 1 and isinstance(args[0], (bytes, bytearray)):
        return bytearray(args[0])
    return bytearray(_encode(*args))


def _device(*args: Any) -> Any:
    import torch

    if not args or not all(isinstance(a, (str, int)) and not isinstance(a, bool) for a in args):
        raise pickle.UnpicklingError(f"refusing torch.device{args!r}")
    return torch.device(*args)


_REBUILDERS = (_rebuild_tensor, _rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter, _rebuild_qtensor)
#: Quantized storage classes (`torch.QInt8Storage`) and the integer dtype of their bytes; set by `allowed()`.
_QUANTIZED: dict[Any, Any] = {}
_QUANTIZED_STORAGES = {"QInt8Storage": ("qint8", "int8"), "QUInt8Storage": ("quint8", "uint8"),
                       "QInt32Storage": ("qint32", "int32")}  # fmt: skip
#: Storage classes that name a storage's dtype in a pickle (also under `torch.cuda.`; read onto the CPU).
_STORAGE_TYPES = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16", "BFloat16Storage": "bfloat16",
    "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16", "CharStorage": "int8",
    "ByteStorage": "uint8", "BoolStorage": "bool", "ComplexDoubleStorage": "complex128",
    "ComplexFloatStorage": "complex64",
}  # fmt: skip
_DTYPE_NAMES = (*_STORAGE_TYPES.values(), "uint16", "uint32", "uint64", "float8_e4m3fn", "float8_e5m2")


@cache
def allowed() -> dict[str, Any]:
    """Qualified name -> what the reader hands the pickle for it. Anything absent becomes a `Stub`."""
    import torch

    table: dict[str, Any] = {
        "collections.OrderedDict": OrderedDict,
        "builtins.set": set,
        "builtins.frozenset": frozenset,
        "builtins.slice": slice,
        "builtins.complex": complex,
        "builtins.bytearray": _bytearray,
        "_codecs.encode": _encode,
        "copyreg._reconstructor": _reconstructor,
        "torch.Size": torch.Size,
        "torch.device": _device,
        "torch._utils._rebuild_tensor": _rebuild_tensor,
        "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
        "torch._utils._rebuild_tensor_v3": _rebuild_tensor_v3,
        "torch._utils._rebuild_parameter": _rebuild_parameter,
        "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
        "torch._tensor._rebuild_from_type_v2": _rebuild_from_type_v2,
        "torch.Tensor": Marker("torch.Tensor"),
        "torch.nn.parameter.Parameter": Marker("torch.nn.parameter.Parameter"),
        "torch.UntypedStorage": StorageType(torch.uint8),
        "torch.storage.UntypedStorage": StorageType(torch.uint8),
    }
    for name in _DTYPE_NAMES:
        dtype = getattr(torch, name, None)
        if isinstance(dtype, torch.dtype):
            table[f"torch.{name}"] = dtype
    for name, dtype_name in _STORAGE_TYPES.items():
        table[f"torch.{name}"] = table[f"torch.cuda.{name}"] = StorageType(getattr(torch, dtype_name))
    # quantized tensors (int8 models): their storages, dtypes and the two affine schemes, nothing callable else
    for name, (qdtype, int_dtype) in _QUANTIZED_STORAGES.items():
        _QUANTIZED[getattr(torch, qdtype)] = getattr(torch, int_dtype)
        table[f"torch.{name}"] = StorageType(getattr(torch, qdtype))
        table[f"torch.{qdtype}"] = getattr(torch, qdtype)
    table["torch._utils._rebuild_qtensor"] = _rebuild_qtensor
    table["torch.per_tensor_affine"] = torch.per_tensor_affine
    table["torch.per_channel_affine"] = torch.per_channel_affine
    return table
