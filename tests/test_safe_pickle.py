"""`zoo.safe_pickle`: torch checkpoints read without running pickled code, in both torch.save formats."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import tarfile
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from zoo import safe_pickle
from zoo.errors import UnsupportedError
from zoo.safe_pickle import Stub

FORMATS = {"zip": True, "legacy": False}


class TinyNet(nn.Module):
    """A module pickled whole, as YOLOv5 checkpoints are (nested modules, a None bias, buffers, attributes)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
        self.head = nn.Linear(4, 2, bias=False)
        self.register_buffer("scale", torch.tensor([2.0]))
        self.register_buffer("cache", torch.zeros(3), persistent=False)
        self.yaml = {"nc": 2, "depth_multiple": 0.33}
        self.names = ["cat", "dog"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stem(x).mean((2, 3))) * self.scale


class Payload:
    """Pickles as a call of `func(*args)`: what a malicious checkpoint does to run code on load."""

    def __init__(self, func: object, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.func, self.args


class Registry(dict):
    """A dict subclass with an attribute: pickled with SETITEMS and BUILD."""


class Bag(list):
    """A list subclass: pickled with APPENDS."""


def payloads(marker: Path) -> dict[str, Payload]:
    """Three ways a pickle runs code, each of which would create `marker`."""
    return {
        "exec": Payload(exec, f"open({str(marker)!r}, 'w').write('pwned')"),
        "os.system": Payload(os.system, f"touch '{marker}'"),
        "subprocess": Payload(subprocess.call, ["touch", str(marker)]),
    }


def tiny_net() -> TinyNet:
    torch.manual_seed(0)
    net = TinyNet()
    net.stem[1].running_mean.uniform_()
    return net


def save(obj: object, path: Path, fmt: str = "zip") -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=FORMATS[fmt])
    return path


def _sample() -> dict[str, object]:
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    state = OrderedDict(w=base, row=base[1], col=base[:, 2], half=torch.ones(2, dtype=torch.float16))
    state._metadata = OrderedDict({"": {"version": 2}})  # type: ignore[attr-defined]
    return {
        "state": state,
        "param": nn.Parameter(torch.randn(2, 2)),
        "dtypes": [torch.tensor([1, 2], dtype=d) for d in (torch.bfloat16, torch.int64, torch.bool, torch.uint8)],
        "plain": {
            "set": {1, 2},
            "frozen": frozenset({3}),
            "slice": slice(1, 5, 2),
            "complex": 2 + 1j,
            "bytes": b"\x00x",
        },
        "size": torch.Size([2, 3]),
        "device": torch.device("cpu"),
        "tuple": (1, "a", None, 1.5),
    }


@pytest.mark.parametrize("fmt", FORMATS)
def test_reads_back_what_torch_save_wrote(tmp_path: Path, fmt: str) -> None:
    expected = _sample()
    got = safe_pickle.load(save(expected, tmp_path / "sample.pt", fmt))
    assert list(got["state"]) == list(expected["state"])
    for key, tensor in expected["state"].items():
        assert got["state"][key].dtype == tensor.dtype and torch.equal(got["state"][key], tensor), key
    assert got["state"]._metadata == {"": {"version": 2}}
    assert got["state"]["row"].untyped_storage().data_ptr() == got["state"]["w"].untyped_storage().data_ptr()
    assert got["state"]["col"].stride() == (4,) and got["state"]["col"].tolist() == [2.0, 6.0, 10.0]
    assert isinstance(got["param"], nn.Parameter) and torch.equal(got["param"], expected["param"])
    assert [t.dtype for t in got["dtypes"]] == [t.dtype for t in expected["dtypes"]]
    assert all(torch.equal(a, b) for a, b in zip(got["dtypes"], expected["dtypes"]))
    assert got["plain"] == expected["plain"]
    assert (
        got["size"] == torch.Size([2, 3])
        and got["device"] == torch.device("cpu")
        and got["tuple"] == (1, "a", None, 1.5)
    )


def test_reads_float8_and_uint16_tensors(tmp_path: Path) -> None:
    tensors = {
        "f8": torch.tensor([0.5, -2.0]).to(torch.float8_e4m3fn),
        "u16": torch.tensor([1, 65535], dtype=torch.uint16),
    }
    got = safe_pickle.load(save(tensors, tmp_path / "f8.pt"))
    assert got["f8"].dtype == torch.float8_e4m3fn and got["f8"].float().tolist() == [0.5, -2.0]
    assert got["u16"].dtype == torch.uint16 and got["u16"].to(torch.int64).tolist() == [1, 65535]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_whole_module_becomes_a_stub_with_its_state_dict(tmp_path: Path, fmt: str) -> None:
    net = tiny_net()
    ckpt = safe_pickle.load(save({"model": net, "epoch": 3}, tmp_path / "full.pt", fmt))
    stub = ckpt["model"]
    assert isinstance(stub, Stub) and stub.qualname == f"{__name__}.TinyNet"
    assert "TinyNet" not in {type(v).__name__ for v in ckpt.values() if not isinstance(v, Stub)}
    assert stub.state["yaml"] == {"nc": 2, "depth_multiple": 0.33} and stub.state["names"] == ["cat", "dog"]
    assert stub.state["_modules"]["stem"].qualname == "torch.nn.modules.container.Sequential"
    state = safe_pickle.module_state_dict(stub)
    expected = net.state_dict()
    assert list(state) == list(expected)  # same keys, same order; the non-persistent buffer is left out
    assert "cache" not in state and "head.bias" not in state
    for key, tensor in expected.items():
        assert torch.equal(state[key], tensor) and not isinstance(state[key], nn.Parameter), key
    assert ckpt["epoch"] == 3


def test_module_state_dict_refuses_what_is_not_a_module(tmp_path: Path) -> None:
    bag = safe_pickle.load(save({"bag": Bag([1, 2])}, tmp_path / "bag.pt"))["bag"]
    with pytest.raises(UnsupportedError, match="not a pickled torch.nn.Module"):
        safe_pickle.module_state_dict(bag)


def test_stubs_record_args_state_items_and_dictitems(tmp_path: Path) -> None:
    registry = Registry(a=1, b=torch.ones(1))
    registry.owner = "me"  # type: ignore[attr-defined]
    obj = safe_pickle.load(
        save({"reg": registry, "bag": Bag([1, "x"]), "call": Payload(len, "abc")}, tmp_path / "o.pt")
    )
    reg, bag, call = obj["reg"], obj["bag"], obj["call"]
    assert (
        reg.qualname.endswith("Registry") and reg.dictitems["a"] == 1 and torch.equal(reg.dictitems["b"], torch.ones(1))
    )
    assert reg.state == {"owner": "me"}
    assert bag.items == [1, "x"] and bag.dictitems == {}
    assert call.qualname == "builtins.len" and call.args == ("abc",) and call.state is None
    assert repr(call) == "<Stub builtins.len>"


def test_the_payloads_are_live_when_unpickled_unsafely(tmp_path: Path) -> None:
    """Guards the refusal tests below: the payload really runs under a plain unpickler."""
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(payloads(marker)["exec"]))
    assert marker.read_text() == "pwned"


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", ["exec", "os.system", "subprocess"])
def test_reduce_payloads_never_run(tmp_path: Path, fmt: str, kind: str) -> None:
    marker = tmp_path / "marker"
    path = save({"state_dict": {"w": torch.ones(2)}, "evil": payloads(marker)[kind]}, tmp_path / "evil.pt", fmt)
    obj = safe_pickle.load(path)
    assert not marker.exists()
    evil = obj["evil"]
    assert isinstance(evil, Stub) and evil.qualname in {"builtins.exec", "posix.system", "nt.system", "subprocess.call"}
    assert str(marker) in str(evil.args)
    assert torch.equal(obj["state_dict"]["w"], torch.ones(2))


def test_a_plain_pickle_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps(payloads(marker)["exec"], protocol=2))
    with pytest.raises(UnsupportedError, match="not a torch checkpoint"):
        safe_pickle.load(path)
    assert not marker.exists()


def test_torchscript_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.script(nn.Linear(2, 2)).save(str(path))
    assert safe_pickle.sniff(path) == "torchscript"
    with pytest.raises(UnsupportedError, match="TorchScript"):
        safe_pickle.load(path)


def test_tar_archives_are_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "old.pt"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("pickle")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    with pytest.raises(UnsupportedError, match="tar archive"):
        safe_pickle.load(path)


def test_a_storage_of_the_wrong_size_is_refused(tmp_path: Path) -> None:
    src = save({"w": torch.ones(4)}, tmp_path / "good.pt")
    bad = tmp_path / "bad.pt"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(bad, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            zout.writestr(item, data[:4] if item.filename.endswith("data/0") else data)
    with pytest.raises(UnsupportedError, match="could not be read"):
        safe_pickle.load(bad)


def test_truncated_legacy_file_is_refused(tmp_path: Path) -> None:
    path = save({"w": torch.ones(100)}, tmp_path / "legacy.pt", "legacy")
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(UnsupportedError, match="could not be read"):
        safe_pickle.load(path)


def test_importing_safe_pickle_does_not_import_torch() -> None:
    code = "import sys, zoo.safe_pickle, zoo.checkpoint; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


@pytest.mark.assets
def test_reads_the_real_yolov5n_checkpoint(assets: Path) -> None:
    ckpt = safe_pickle.load(assets / "weights" / "yolov5n.pt")
    model = ckpt["model"]
    assert isinstance(model, Stub) and model.qualname.startswith("models.yolo.")
    assert model.state["yaml"]["nc"] == 80 and len(model.state["yaml"]["backbone"]) == 10
    assert len(model.state["names"]) == 80 and model.state["names"][0] == "person"
    assert model.state["stride"].tolist() == [8.0, 16.0, 32.0]
    state = safe_pickle.module_state_dict(model)
    assert state["model.0.conv.weight"].dtype == torch.float16 and state["model.0.conv.weight"].shape == (16, 3, 6, 6)
    assert state["model.24.anchors"].shape == (3, 3, 2)
    stats = ("running_mean", "running_var", "num_batches_tracked", "anchors")
    params = sum(t.numel() for k, t in state.items() if not k.endswith(stats))
    assert 1_860_000 < params < 1_880_000


@pytest.mark.assets
def test_reads_the_real_legacy_mobilenet_file_like_torch(assets: Path) -> None:
    path = assets / "weights" / "mobilenet_v2-b0353104.pth"
    assert safe_pickle.sniff(path) == "pickle"
    got, expected = safe_pickle.load(path), torch.load(path, weights_only=True)
    assert list(got) == list(expected)
    assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_a_getattr_import_chain_stays_inert(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    chain = (  # getattr(__import__('os'), 'system')('touch marker'), in protocol-0 opcodes
        b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(S'os'\ntRS'system'\ntR(S'touch "
        + str(marker).encode()
        + b"'\ntR."
    )
    path = tmp_path / "chain.pt"
    path.write_bytes(chain)
    with pytest.raises(UnsupportedError, match="could not be read"):
        safe_pickle.load(path)
    assert not marker.exists()
    assert pickle.loads(chain) == 0 and marker.exists()  # the same bytes do run under a plain unpickler


class _Forged(pickle.Pickler):
    """Pickles `STORAGE` as a legacy storage record claiming `numel` float32 elements."""

    def __init__(self, file: io.BytesIO, numel: int) -> None:
        super().__init__(file, protocol=2)
        self.numel = numel

    def persistent_id(self, obj: object) -> object:
        return ("storage", torch.FloatStorage, "0", "cpu", self.numel, None) if obj is STORAGE else None


STORAGE = object()


class _Tensor:
    """Pickles as `_rebuild_tensor_v2(STORAGE, 0, size, (1,), ...)`."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return torch._utils._rebuild_tensor_v2, (STORAGE, 0, (self.size,), (1,), False, OrderedDict())


def forge_legacy(path: Path, obj: object, numel: int, data: bytes) -> Path:
    """A legacy-format torch file whose one storage record claims `numel` elements and carries `data`."""
    main = io.BytesIO()
    _Forged(main, numel).dump(obj)
    head = b"".join(pickle.dumps(x, protocol=2) for x in (safe_pickle.LEGACY_MAGIC, 1001, {"little_endian": True}))
    path.write_bytes(head + main.getvalue() + pickle.dumps(["0"], protocol=2) + numel.to_bytes(8, "little") + data)
    return path


def test_forged_files_are_refused_before_allocating(tmp_path: Path) -> None:
    good = forge_legacy(tmp_path / "good.pt", {"w": _Tensor(4)}, 4, torch.arange(4.0).numpy().tobytes())
    assert safe_pickle.load(good)["w"].tolist() == [0.0, 1.0, 2.0, 3.0]
    huge = forge_legacy(tmp_path / "huge.pt", {"w": _Tensor(4)}, 10**12, b"")
    with pytest.raises(UnsupportedError, match="declares more tensor data than it holds"):
        safe_pickle.load(huge)
    beyond = forge_legacy(tmp_path / "beyond.pt", {"w": _Tensor(1000)}, 4, bytes(16))
    with pytest.raises(UnsupportedError, match="could not be read"):
        safe_pickle.load(beyond)


# -- budgets: a small file never makes the reader (or what flattens its tensors) allocate gigabytes ----------------


class _View:
    """Pickles as `_rebuild_tensor_v2(STORAGE, offset, size, stride, ...)`: any view of the one storage."""

    def __init__(self, size: tuple[int, ...], stride: tuple[int, ...], offset: int = 0) -> None:
        self.size, self.stride, self.offset = size, stride, offset

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return torch._utils._rebuild_tensor_v2, (STORAGE, self.offset, self.size, self.stride, False, OrderedDict())


class _ZipForged(pickle.Pickler):
    """Pickles `STORAGE` as the zip format's storage record `data/0` of `numel` float32 elements."""

    def __init__(self, file: io.BytesIO, numel: int) -> None:
        super().__init__(file, protocol=2)
        self.numel = numel

    def persistent_id(self, obj: object) -> object:
        return ("storage", torch.FloatStorage, "0", "cpu", self.numel) if obj is STORAGE else None


def forge_zip(path: Path, data_pkl: bytes, storage: bytes = b"") -> Path:
    """A zip-format torch file, as `torch.save` lays it out, with `data_pkl` and one storage `data/0`."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", data_pkl)
        zf.writestr("archive/byteorder", "little")
        zf.writestr("archive/data/0", storage)
        zf.writestr("archive/version", "3\n")
    return path


def zip_of(path: Path, obj: object, storage: bytes) -> Path:
    """`obj` pickled the way torch.save does, its `STORAGE` records pointing at `storage` (float32 values)."""
    buffer = io.BytesIO()
    _ZipForged(buffer, len(storage) // 4).dump(obj)
    return forge_zip(path, buffer.getvalue(), storage)


def test_a_stride0_view_of_a_tiny_storage_is_refused(tmp_path: Path) -> None:
    # 4 bytes of storage, viewed as 32768 x 32768 floats: 4 GiB once `.contiguous()` or converted to safetensors
    bomb = zip_of(tmp_path / "bomb.pt", {"w": _View((1 << 15, 1 << 15), (0, 0))}, bytes(4))
    assert bomb.stat().st_size < 2048
    with pytest.raises(UnsupportedError, match=r"once materialised.*a view repeats its storage") as info:
        safe_pickle.load(bomb)
    assert "\n" not in str(info.value)


def test_views_within_the_budget_still_load(tmp_path: Path) -> None:
    # torch.save of an expanded tensor keeps the stride 0: small ones are fine (here 4 x 1000 floats of 1 value)
    ok = zip_of(tmp_path / "ok.pt", {"w": _View((4, 1000), (0, 0)), "b": _View((2,), (1,))}, bytes(8))
    state = safe_pickle.load(ok)
    assert state["w"].shape == (4, 1000)
    assert state["w"].contiguous().sum().item() == 0.0


def test_a_tensor_referenced_again_and_again_is_charged_each_time(tmp_path: Path) -> None:
    view = _View((1 << 12, 1 << 10), (0, 0))  # 16 MiB materialised, within the budget once
    once = zip_of(tmp_path / "once.pt", {"w": view}, bytes(4))
    assert safe_pickle.load(once)["w"].shape == (4096, 1024)
    # the pickler memoises the view: 8 more keys cost 2 bytes each and would flatten to 9 x 16 MiB
    many = zip_of(tmp_path / "many.pt", {f"w{i}": view for i in range(9)}, bytes(4))
    with pytest.raises(UnsupportedError, match="once materialised"):
        safe_pickle.load(many)


def test_shared_submodules_cannot_make_the_state_dict_walk_explode(tmp_path: Path) -> None:
    # 60 levels of a module whose two children are one shared module: 2**60 paths through 60 objects
    leaf = Stub.__new__(type("Leaf", (Stub,), {"qualname": "m.Leaf"}))
    leaf.state = {"_parameters": {}, "_buffers": {}, "_modules": {}}
    node = leaf
    for _ in range(60):
        parent = Stub.__new__(type("Node", (Stub,), {"qualname": "m.Node"}))
        parent.state = {"_parameters": {}, "_buffers": {}, "_modules": {"a": node, "b": node}}
        node = parent
    with pytest.raises(UnsupportedError, match="more than 100000 modules"):
        safe_pickle.module_state_dict(node)


def _declares(opcode: bytes, length: bytes) -> bytes:
    return b"\x80\x05" + opcode + length + b"x" * 16 + b"."


#: Opcodes that declare their length before their data, each declaring 4 GiB in a 30-byte pickle.
DECLARED = {
    "BYTEARRAY8": _declares(pickle.BYTEARRAY8, (4 << 30).to_bytes(8, "little")),
    "BINBYTES8": _declares(pickle.BINBYTES8, (4 << 30).to_bytes(8, "little")),
    "BINUNICODE8": _declares(pickle.BINUNICODE8, (4 << 30).to_bytes(8, "little")),
    "FRAME": _declares(pickle.FRAME, (4 << 30).to_bytes(8, "little")),
    "LONG4": _declares(pickle.LONG4, (2**31 - 1).to_bytes(4, "little")),
    "BINBYTES": _declares(pickle.BINBYTES, (2**32 - 1).to_bytes(4, "little")),
    "BINUNICODE": _declares(pickle.BINUNICODE, (2**32 - 1).to_bytes(4, "little")),
}

#: Loads each file given on the command line with the address space capped at 512 MiB above what torch and zoo
#: took to import, and prints one line per file: the error type and message, or "loaded".
LIMITED = """
import re, resource, sys
import torch
from zoo import safe_pickle
vm = int(re.search(r"VmSize:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + (512 << 20), vm + (512 << 20)))
for path in sys.argv[1:]:
    try:
        safe_pickle.load(path)
        print("loaded")
    except BaseException as exc:
        print(type(exc).__name__, " ".join(str(exc).split()))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc and caps RLIMIT_AS")
def test_declared_lengths_never_exceed_the_input_under_a_memory_cap(tmp_path: Path) -> None:
    files = []
    for name, data in DECLARED.items():
        files.append(forge_zip(tmp_path / f"{name}.pt", data))  # as data.pkl of a zip checkpoint
        files.append(tmp_path / f"{name}.pkl")  # as a plain (legacy-format) pickle
        files[-1].write_bytes(data)
    proc = subprocess.run(
        [sys.executable, "-c", LIMITED, *map(str, files)], capture_output=True, text=True, timeout=300, check=False
    )
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, proc.stderr
    assert len(lines) == len(files), proc.stderr
    for path, line in zip(files, lines):  # before the budget: MemoryError (or gigabytes allocated without a cap)
        assert line.startswith("UnsupportedError"), (path.name, line)
        assert "bytes where only" in line or "could not be read" in line, (path.name, line)


def test_a_tar_header_declaring_a_terabyte_is_sniffed_without_allocating(tmp_path: Path) -> None:
    # `tarfile.is_tarfile` reads a long-name header whole: MemoryError for this 1.5 KB file (pre-POSIX: no magic)
    from tests.test_fuzz_archive import long_header_bomb

    bomb = long_header_bomb(tmp_path / "bomb.pt", b"L", magic=False)
    assert safe_pickle.sniff(bomb) == "tar"
    with pytest.raises(UnsupportedError, match="legacy tar archive"):
        safe_pickle.load(bomb)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(bytes(range(256)) * 4)
    assert safe_pickle.sniff(garbage) == "unknown"
