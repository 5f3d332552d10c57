"""Fuzzing the safe pickle reader: random, generated and mutated `torch.save` files (zip and legacy formats).

Whatever the bytes, `safe_pickle.load` returns or raises a typed `ZooError` with one line; it never runs a
pickled callable (a marker file would appear), never allocates beyond a budget tied to the input, and what it
returns never materialises to more than `max(MATERIALISED_MIN, MATERIALISED_FACTOR x file size)`.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz_settings import expect_zoo_errors, fuzz, memory_peak
from zoo import safe_pickle
from zoo.safe_pickle.reader import MATERIALISED_FACTOR, MATERIALISED_MIN

pytestmark = pytest.mark.timeout(300)


def _materialised(obj: Any) -> int:
    """Bytes of every tensor reachable in `obj` once flattened, each container walked once."""
    total, seen, todo = 0, set(), [obj]
    while todo:
        item = todo.pop()
        if isinstance(item, torch.Tensor):
            total += item.numel() * item.element_size()
            continue
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, dict):
            todo.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            todo.extend(item)
        elif isinstance(item, safe_pickle.Stub):
            todo.extend([item.args, item.kwargs, item.state, item.items, item.dictitems])
    return total


def check_load(path: Path) -> None:
    """The properties every input must keep."""
    with memory_peak():
        result = expect_zoo_errors(lambda: safe_pickle.load(path))
    if result is not None:
        size = path.stat().st_size
        assert _materialised(result) <= max(MATERIALISED_MIN, MATERIALISED_FACTOR * size)
        expect_zoo_errors(lambda: _state_dict(result))


def _state_dict(result: Any) -> Any:
    return safe_pickle.module_state_dict(result) if isinstance(result, safe_pickle.Stub) else None


def _seeds() -> dict[str, bytes]:
    """Valid files written by torch.save: state_dicts with views, a parameter, a nested module, odd dtypes."""
    base = torch.arange(12, dtype=torch.float32)
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3))
    objects = {
        "state": OrderedDict(w=base.view(3, 4), t=base.view(3, 4).t(), b=base[2:5], e=base[:1].expand(6)),
        "mixed": {"p": torch.nn.Parameter(torch.ones(2)), "i": torch.tensor([1, 2]), "x": [1.5, "s"]},
        "module": net,
    }
    seeds = {}
    for name, obj in objects.items():
        for fmt in ("zip", "legacy"):
            buffer = io.BytesIO()
            torch.save(obj, buffer, _use_new_zipfile_serialization=fmt == "zip")
            seeds[f"{name}-{fmt}"] = buffer.getvalue()
    return seeds


SEEDS = _seeds()


def _write(tmp: Path, data: bytes) -> Path:
    path = tmp / "ckpt.pt"
    path.write_bytes(data)
    return path


def _rezip(data: bytes, pkl: bytes) -> bytes:
    """The zip checkpoint `data` with its data.pkl replaced by `pkl` (CRCs stay valid: the pickle is fuzzed)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, pkl if info.filename.endswith("/data.pkl") else src.read(info))
    return out.getvalue()


def _data_pkl(data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return zf.read(next(n for n in zf.namelist() if n.endswith("/data.pkl")))


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` with a few random edits: flipped, overwritten, inserted or deleted bytes, or cut short."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "int"]))
        at = draw(st.integers(0, max(len(buf) - 1, 0)))
        if op == "flip" and buf:
            buf[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and buf:
            buf[at] = draw(st.integers(0, 255))
        elif op == "insert":
            buf[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del buf[at : at + draw(st.integers(1, 16))]
        elif op == "truncate":
            del buf[at:]
        elif op == "int":  # a length or size field set to something large
            buf[at : at + 8] = struct.pack("<Q", draw(st.sampled_from([2**31 - 1, 2**32 - 1, 1 << 40, 2**63 - 1])))
    return bytes(buf)


#: Pieces of pickles built from the allowed globals, storage records, and length-declaring opcodes.
_GLOBALS = [
    b"ctorch._utils\n_rebuild_tensor_v2\n", b"ctorch._utils\n_rebuild_tensor\n", b"ctorch._utils\n_rebuild_parameter\n",
    b"ctorch._tensor\n_rebuild_from_type_v2\n", b"ccollections\nOrderedDict\n", b"ctorch\nFloatStorage\n",
    b"ctorch\nLongStorage\n", b"ctorch\nSize\n", b"cbuiltins\nset\n", b"cbuiltins\nbytearray\n", b"c_codecs\nencode\n",
    b"ccopyreg\n_reconstructor\n", b"ctorch\ndevice\n", b"cos\nsystem\n", b"cmodels.yolo\nModel\n",
]  # fmt: skip
_PIECES = [
    *_GLOBALS, b"(", b"t", b")", b"R", b"b", b"}", b"]", b"u", b"e", b"s", b"a", b"Q", b"\x85", b"\x86", b"\x87",
    b"\x81", b"0", b"2", b"N", b"\x88", b"\x89", b"q\x00", b"h\x00", b"q\x01", b"h\x01", b"r\x00\x00\x00\x00",
    b"j\x00\x00\x00\x00", b"X\x07\x00\x00\x00storage", b"X\x01\x00\x00\x000", b"X\x03\x00\x00\x00cpu",
    b"\x8c\x03cpu", b"\x94",
]  # fmt: skip


@st.composite
def opcodes(draw: st.DrawFn) -> bytes:
    """A protocol-2 pickle of random pieces, ints (tensor geometry) and declared lengths."""
    parts = [b"\x80\x02"]
    for _ in range(draw(st.integers(1, 40))):
        kind = draw(st.integers(0, 9))
        if kind < 6:
            parts.append(draw(st.sampled_from(_PIECES)))
        elif kind < 8:
            value = draw(st.one_of(st.integers(-2, 40), st.sampled_from([2**15, 2**20, 2**31 - 1, -(2**31)])))
            parts.append(b"J" + struct.pack("<i", value))
        else:
            op = draw(st.sampled_from([b"\x96", b"\x8e", b"\x8d", b"\x95", b"B", b"X", b"T", b"\x8b"]))
            wide = op in (b"\x96", b"\x8e", b"\x8d", b"\x95")
            length = draw(st.sampled_from([0, 1, 5, 2**31 - 1, 2**32 - 1] + ([1 << 40, 2**63] if wide else [])))
            parts.append(op + length.to_bytes(8 if wide else 4, "little") + draw(st.binary(max_size=8)))
    parts.append(b".")
    return b"".join(parts)


@fuzz(100)
@given(data=st.binary(max_size=2048), prefix=st.sampled_from([b"", b"\x80\x02", b"PK\x03\x04", b"\x80\x02\x8a\x0a"]))
def test_random_bytes(tmp_path: Path, data: bytes, prefix: bytes) -> None:
    check_load(_write(tmp_path, prefix + data))


@fuzz(150)
@given(seed=st.sampled_from(sorted(SEEDS)), data=st.data())
def test_mutated_files(tmp_path: Path, seed: str, data: st.DataObject) -> None:
    check_load(_write(tmp_path, data.draw(mutated(SEEDS[seed]))))


@fuzz(100)
@given(seed=st.sampled_from([s for s in sorted(SEEDS) if s.endswith("-zip")]), data=st.data())
def test_mutated_data_pkl_in_a_valid_zip(tmp_path: Path, seed: str, data: st.DataObject) -> None:
    pkl = data.draw(mutated(_data_pkl(SEEDS[seed])))
    check_load(_write(tmp_path, _rezip(SEEDS[seed], pkl)))


@fuzz(70)
@given(pkl=opcodes(), storage=st.binary(max_size=64))
def test_generated_pickles_over_a_storage(tmp_path: Path, pkl: bytes, storage: bytes) -> None:
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("archive/data.pkl", pkl)
        zf.writestr("archive/data/0", storage)
    check_load(_write(tmp_path, zipped.getvalue()))
    check_load(_write(tmp_path, pkl))  # the same pickle as a plain (legacy-looking) file


def test_seeds_are_read_as_torch_wrote_them(tmp_path: Path) -> None:
    # the fuzzers start from files the reader reads correctly, so mutations reach deep into the format
    for name, data in SEEDS.items():
        result = safe_pickle.load(_write(tmp_path, data))
        expected = torch.load(io.BytesIO(data), weights_only=False)
        if name.startswith("state"):
            assert all(torch.equal(result[k], expected[k]) for k in expected), name
        elif name.startswith("module"):
            assert safe_pickle.module_state_dict(result).keys() == expected.state_dict().keys(), name


def test_no_pickled_callable_ever_runs(tmp_path: Path) -> None:
    # `cos\nsystem\n` is among the generated pieces: a stand-in records it and nothing is called
    pkl = b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00trueq\x00\x85R."
    assert pickle.loads(pkl) == 0  # plain pickle runs it
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("archive/data.pkl", pkl)
    result = safe_pickle.load(_write(tmp_path, zipped.getvalue()))
    assert isinstance(result, safe_pickle.Stub)
    assert (result.qualname, result.args) == ("os.system", ("true",))
