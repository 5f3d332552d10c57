"""Reading `torch.save` files (zip and legacy formats) with an unpickler that runs no pickled code."""

from __future__ import annotations

import _compat_pickle
import io
import lzma
import os
import pickle
import re
import struct
import sys
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from zoo.errors import InputError, UnsupportedError
from zoo.safe_pickle.allowlist import Storage, StorageType, allowed, check_ints
from zoo.safe_pickle.stub import Stub

__all__ = ["LEGACY_MAGIC", "LEGACY_PROTOCOL", "load", "sniff"]

#: First object of a legacy (non-zip) `torch.save` file, and its protocol number.
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
#: How much larger than the archive its (compressed) members may inflate; torch.save stores them uncompressed.
_MAX_INFLATION = 4
#: Bytes the tensors of one file may take once materialised (`.contiguous()`, a safetensors conversion):
#: `max(MATERIALISED_MIN, MATERIALISED_FACTOR x file size)`. A tensor view can repeat its storage (stride 0), so
#: a few bytes of storage could otherwise stand for gigabytes.
MATERIALISED_FACTOR = 4
MATERIALISED_MIN = 64 << 20


# -- the unpickler -------------------------------------------------------------------------------------------------


_PythonUnpickler: Any = pickle._Unpickler  # type: ignore[attr-defined]


class _Bounded:
    """A read-only view of a file that refuses any read longer than what is left of the input.

    Lengths in a pickle (BINBYTES8, BINUNICODE8, LONG4, FRAME, ...) are declared before their data: bounding
    every read by the bytes that remain keeps a 30-byte file from making the reader allocate gigabytes.
    """

    def __init__(self, file: IO[bytes], size: int) -> None:
        self._file, self.left = file, size

    def _take(self, n: int) -> None:
        if n < 0 or n > self.left:
            raise pickle.UnpicklingError(f"the pickle declares {n} bytes where only {self.left} remain")

    def read(self, n: int = -1) -> bytes:
        self._take(self.left if n < 0 else n)
        data = self._file.read(self.left if n < 0 else n)
        self.left -= len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        self._take(len(memoryview(buffer)))
        count = self._file.readinto(buffer)  # type: ignore[attr-defined]
        self.left -= count
        return count

    def readline(self) -> bytes:
        line = self._file.readline(self.left)
        self.left -= len(line)
        return line


class _Unpickler(_PythonUnpickler):
    """The pure-Python unpickler with `find_class`, `persistent_load` and BUILD made inert, reading a `_Bounded`."""

    def __init__(self, file: _Bounded, persistent_load: Callable[[Any], Any], views: Any = None) -> None:
        super().__init__(file, encoding="utf-8")
        self._persistent = persistent_load
        self._stubs: dict[str, type[Stub]] = {}
        self._views = views

    def find_class(self, module: str, name: str) -> Any:
        if self.proto < 3 and self.fix_imports:
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        qualname = f"{module}.{name}"
        target = allowed().get(qualname)
        if target is not None:
            return target
        if qualname not in self._stubs:
            self._stubs[qualname] = type(name.rpartition(".")[2] or "Stub", (Stub,), {"qualname": qualname})
        return self._stubs[qualname]

    def persistent_load(self, pid: Any) -> Any:
        return self._persistent(pid)

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, Stub):
            inst.__setstate__(state)
        elif isinstance(inst, OrderedDict) and isinstance(state, dict):  # a state_dict's `_metadata`
            for key, value in state.items():
                if isinstance(key, str) and not key.startswith("__"):
                    inst.__dict__[key] = value
        # any other object keeps its state unapplied: nothing of a real class may run

    def load_bytearray8(self) -> None:
        """BYTEARRAY8 reads its data before allocating (pickle's own allocates the declared length first)."""
        (size,) = struct.unpack("<Q", self.read(8))
        self.append(bytearray(self.read(size)))

    def _charge_reference(self) -> None:
        """A tensor fetched again from the memo is another copy once the tree is flattened: charge it again."""
        torch = sys.modules.get("torch")
        obj = self.stack[-1] if self.stack else None
        if self._views is not None and torch is not None and isinstance(obj, torch.Tensor):
            self._views.spend(obj.numel() * obj.element_size())

    def load_get(self) -> None:
        _PythonUnpickler.load_get(self)
        self._charge_reference()

    def load_binget(self) -> None:
        _PythonUnpickler.load_binget(self)
        self._charge_reference()

    def load_long_binget(self) -> None:
        _PythonUnpickler.load_long_binget(self)
        self._charge_reference()

    dispatch = dict(_PythonUnpickler.dispatch)
    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8
    dispatch[pickle.GET[0]] = load_get
    dispatch[pickle.BINGET[0]] = load_binget
    dispatch[pickle.LONG_BINGET[0]] = load_long_binget


def _refuse_persistent(pid: Any) -> Any:
    raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")


def _text(value: Any) -> Any:
    return value.decode("ascii") if isinstance(value, bytes) else value


# -- file formats --------------------------------------------------------------------------------------------------


def sniff(path: str | os.PathLike[str]) -> str:
    """The format of a checkpoint file, from its first bytes (and zip member names).

    Returns:
        One of `safetensors`, `torch-zip` (`torch.save` since 1.6), `torchscript`, `zip` (another zip
        archive), `pickle` (legacy `torch.save`, or a plain pickle), `tar` (pre-0.4 `torch.save`), `unknown`.

    Raises:
        InputError: the file cannot be read.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as exc:
        raise InputError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(path)
    if len(head) >= 10 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") <= 100_000_000:
        return "safetensors"
    if head[:1] == b"\x80" or head[:1] in (b"(", b"}", b"]", b"c"):
        return "pickle"
    if head[257:262] == b"ustar" or _is_tar_header(head):
        return "tar"
    return "unknown"


def _is_tar_header(block: bytes) -> bool:
    """True when `block` starts with a tar header (pre-POSIX too) whose checksum holds.

    `tarfile.is_tarfile` is not used: it reads the long-name and pax headers it meets with the length they
    declare, so a 1.5 KB file declaring a 1 TiB long name makes it allocate 1 TiB.
    """
    if len(block) < 512:
        return False
    try:
        checksum = int(block[148:156].replace(b"\0", b" ").strip() or b"-", 8)
    except ValueError:
        return False
    return checksum == 8 * 0x20 + sum(block[:148]) + sum(block[156:512])


def _zip_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as zf:
            records = [name.partition("/")[2] for name in zf.namelist()]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error, NotImplementedError, OverflowError):
        return "unknown"  # a damaged central directory (ValueError: a member name that is not UTF-8)
    if "constants.pkl" in records or any(r.startswith("code/") for r in records):
        return "torchscript"
    return "torch-zip" if "data.pkl" in records else "zip"


_REFUSALS = {
    "torchscript": "is a TorchScript archive (torch.jit.save): it holds code, not a checkpoint zoo reads. "
    "Load it with torch.jit.load if you trust it, or save its state_dict() with torch.save",
    "tar": "is a legacy tar archive (torch.save before PyTorch 0.4): zoo does not read it. Re-save it with a "
    "recent PyTorch as a state_dict",
    "zip": "is a zip archive but not a torch.save checkpoint (no data.pkl)",
    "safetensors": "is a safetensors file, not a pickle: read it with safetensors.torch.load_file",
    "unknown": "is not a torch checkpoint (neither the zip nor the legacy torch.save format)",
}


def load(path: str | os.PathLike[str]) -> Any:
    """Read a `torch.save` file without running any code from it.

    Args:
        path: a `torch.save` file, zip (PyTorch >= 1.6) or legacy format.

    Returns:
        The saved object tree: tensors as CPU `torch.Tensor` (parameters as `nn.Parameter`), containers
        as dicts / lists / tuples / `OrderedDict`, and every object of another class as a `Stub`.

    Raises:
        UnsupportedError: the file is a TorchScript or tar archive, not a torch checkpoint, or corrupt.
        InputError: the file cannot be read.
    """
    path = Path(path)
    kind = sniff(path)
    if kind not in ("torch-zip", "pickle"):
        raise UnsupportedError(f"{path.name} {_REFUSALS[kind]}.")
    try:
        if kind == "torch-zip":
            return _load_zip(path)
        with open(path, "rb") as f:
            return _load_legacy(f, path.stat().st_size)
    except (UnsupportedError, InputError):
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, KeyError, IndexError,
            RuntimeError, struct.error, zipfile.BadZipFile, OverflowError, RecursionError, OSError, zlib.error,
            lzma.LZMAError, NotImplementedError) as exc:  # fmt: skip
        # OSError: a damaged zip directory seeks before the file's start; NotImplementedError: a zip
        # compression method zipfile does not know (UnsupportedError, its subclass, was re-raised above)
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise UnsupportedError(f"{path.name} could not be read as a torch checkpoint: {detail}.") from exc


class _Budget:
    """Bytes a file may make the reader allocate: storages cannot hold more than the file carries."""

    def __init__(self, limit: int, name: str) -> None:
        self.left, self.name = limit, name

    def spend(self, nbytes: int) -> None:
        self.left -= nbytes
        if self.left < 0:
            raise pickle.UnpicklingError(f"{self.name} declares more tensor data than it holds")


class _ViewBudget:
    """Bytes the tensors (views of the storages) may take once materialised; see `MATERIALISED_FACTOR`."""

    def __init__(self, file_size: int) -> None:
        self.limit = max(MATERIALISED_MIN, MATERIALISED_FACTOR * file_size)
        self.left = self.limit

    def spend(self, nbytes: int) -> None:
        self.left -= nbytes
        if self.left < 0:
            raise pickle.UnpicklingError(
                f"its tensors would take over {self.limit} bytes once materialised, more than "
                f"{MATERIALISED_FACTOR}x the file size (or {MATERIALISED_MIN >> 20} MiB): a view repeats its storage"
            )


def _storage_dtype(storage_type: Any) -> Any:
    if not isinstance(storage_type, StorageType):
        raise pickle.UnpicklingError(f"{storage_type!r} is not a storage type zoo reads")
    return storage_type.dtype


def _itemsize(dtype: Any) -> int:
    return int(dtype.itemsize)


def _load_zip(path: Path) -> Any:
    import torch

    with zipfile.ZipFile(path) as zf:
        pkl = next(n for n in zf.namelist() if n.partition("/")[2] == "data.pkl")
        prefix = pkl[: -len("data.pkl")]
        if prefix + "byteorder" in zf.namelist() and zf.read(prefix + "byteorder").strip() != b"little":
            raise UnsupportedError(f"{path.name} was saved on a big-endian machine: zoo reads little-endian only.")
        storages: dict[str, Storage] = {}
        budget = _Budget(path.stat().st_size * _MAX_INFLATION + (1 << 20), path.name)
        views = _ViewBudget(path.stat().st_size)

        def persistent_load(pid: Any) -> Storage:
            if not isinstance(pid, tuple) or len(pid) != 5 or _text(pid[0]) != "storage":
                raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
            _, storage_type, key, _location, numel = pid
            key = _text(key)
            if key in storages:
                return storages[key]
            dtype = _storage_dtype(storage_type)
            if not isinstance(key, str) or not _KEY.match(key) or type(numel) is not int:
                raise pickle.UnpicklingError(f"bad storage record {pid!r}")
            info = zf.getinfo(f"{prefix}data/{key}")
            if info.file_size != numel * _itemsize(dtype):
                raise pickle.UnpicklingError(f"storage {key} has {info.file_size} bytes, expected {numel} elements")
            budget.spend(info.file_size)
            data = bytearray(zf.read(info))
            raw = torch.frombuffer(data, dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)
            storages[key] = Storage(raw.untyped_storage(), dtype, views=views)
            return storages[key]

        budget.spend(zf.getinfo(pkl).file_size)
        data_pkl = zf.read(pkl)
        return _Unpickler(_Bounded(io.BytesIO(data_pkl), len(data_pkl)), persistent_load, views).load()


def _load_legacy(file: IO[bytes], file_size: int) -> Any:
    import torch

    f = _Bounded(file, file_size)

    def small() -> Any:
        return _Unpickler(f, _refuse_persistent).load()

    if small() != LEGACY_MAGIC:
        raise UnsupportedError(f"{Path(getattr(file, 'name', 'the file')).name} {_REFUSALS['unknown']}.")
    if small() != LEGACY_PROTOCOL:
        raise UnsupportedError("This legacy torch checkpoint uses an unknown protocol version.")
    sys_info = small()
    if isinstance(sys_info, dict) and sys_info.get("little_endian") is False:
        raise UnsupportedError("This checkpoint was saved on a big-endian machine: zoo reads little-endian files only.")
    buffers: dict[str, tuple[torch.Tensor, Any]] = {}
    budget = _Budget(file_size, getattr(file, "name", "the file"))
    views = _ViewBudget(file_size)

    def persistent_load(pid: Any) -> Any:
        kind = _text(pid[0]) if isinstance(pid, tuple) and pid else None
        if kind == "module" and len(pid) >= 2:
            return pid[1]  # (module, class, source file, source): the class, a stand-in
        if kind != "storage" or len(pid) != 6:
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel, view = pid
        dtype, key = _storage_dtype(storage_type), _text(key)
        if not isinstance(key, str) or type(numel) is not int or numel < 0:
            raise pickle.UnpicklingError(f"bad storage record {pid!r}")
        if key not in buffers:
            budget.spend(numel * _itemsize(dtype))
            buffers[key] = (torch.empty(numel * _itemsize(dtype), dtype=torch.uint8), dtype)
        buffer, _ = buffers[key]
        offset = 0
        if view is not None:  # (view key, offset, size) in elements: pre-1.0 storage views
            check_ints(view[1], view[2])
            offset = view[1]
        return Storage(buffer.untyped_storage(), dtype, offset, views)

    result = _Unpickler(f, persistent_load, views).load()
    for key in small():
        buffer, dtype = buffers[_text(key)]
        (numel,) = struct.unpack("<q", _read_exact(f, 8))
        if numel * _itemsize(dtype) != buffer.numel():
            raise pickle.UnpicklingError(f"storage {key} holds {numel} elements, its record says otherwise")
        if numel:
            buffer.copy_(torch.frombuffer(bytearray(_read_exact(f, buffer.numel())), dtype=torch.uint8))
    return result


def _read_exact(f: _Bounded, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise EOFError("the file ends inside a storage")
    return data
