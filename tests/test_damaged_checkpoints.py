"""Damaged checkpoints give one-line typed errors: zoo metadata in `zoo.load` (deep nesting, wrong types, huge
numbers, sizes that would allocate gigabytes) and safetensors files of every damaged kind in `zoo convert`."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import zoo
from tests.conftest import ROOT
from zoo.cli import cli

torch = pytest.importorskip("torch")


def lenet_file(tmp_path: Path, **changes: str | None) -> Path:
    """A real lenet5 checkpoint whose zoo header fields are replaced (None removes one)."""
    from safetensors.torch import load_file, save_file

    good = zoo.load("lenet5:none", device="cpu").save(tmp_path / "good.safetensors")
    from safetensors import safe_open

    with safe_open(str(good), framework="pt") as f:
        meta = dict(f.metadata())
    for key, value in changes.items():
        key = key.replace("__", ".")
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    path = tmp_path / "damaged.safetensors"
    save_file(load_file(str(good)), str(path), metadata=meta)
    return path


DAMAGED_METADATA = {
    "deep-nesting": {"zoo__builder_kwargs": "[" * 100_000 + "]" * 100_000},
    "deep-dict": {"zoo__training": '{"a":' * 50_000 + "1" + "}" * 50_000},
    "not-json": {"zoo__builder_kwargs": "{num_classes: 10"},
    "not-a-dict": {"zoo__builder_kwargs": "[10, 1]"},
    "wrong-type-labels": {"zoo__labels": '{"0": "cat"}'},
    "labels-not-strings": {"zoo__labels": "[1, 2, 3]"},
    "huge-int-digits": {"zoo__builder_kwargs": '{"num_classes": ' + "9" * 5000 + "}"},
    "huge-int": {"zoo__builder_kwargs": '{"num_classes": 100000000000000000000000}'},
    "infinite": {"zoo__builder_kwargs": '{"num_classes": 1e999}'},
    "nan": {"zoo__builder_kwargs": '{"num_classes": NaN}'},
    "preprocess-not-dict": {"zoo__preprocess": '"resize"'},
    "preprocess-huge-resize": {"zoo__preprocess": '{"resize": 1000000, "crop": 1000000, "mean": [0.5], "std": [0.5]}'},
    "preprocess-negative": {"zoo__preprocess": '{"resize": -3, "crop": 2, "mean": [0.5], "std": [0.5]}'},
    "preprocess-float": {"zoo__preprocess": '{"resize": 32.5, "crop": 32, "mean": [0.5], "std": [0.5]}'},
    "preprocess-mean-scalar": {"zoo__preprocess": '{"resize": 32, "crop": 32, "mean": 5, "std": [0.5]}'},
    "preprocess-mean-text": {"zoo__preprocess": '{"resize": 32, "crop": 32, "mean": "abc", "std": [0.5]}'},
    "preprocess-interpolation": {"zoo__preprocess": '{"resize": 32, "crop": 32, "interpolation": 5}'},
    "bad-version": {"zoo__checkpoint": "one"},
    "model-path": {"zoo__model": "../../etc/passwd"},
    "model-huge": {"zoo__model": "m" * 10_000},
    "unknown-argument": {"zoo__builder_kwargs": '{"num_classes": 10, "in_channels": 1, "layers": 3}'},
    "state-versions": {"zoo__state_versions": '{"conv": 3}'},
    "state-versions-deep": {"zoo__state_versions": "[" * 100_000},
}


@pytest.mark.parametrize("case", sorted(DAMAGED_METADATA))
def test_damaged_zoo_metadata_is_one_line_error(tmp_path: Path, case: str) -> None:
    path = lenet_file(tmp_path, **DAMAGED_METADATA[case])
    with pytest.raises(zoo.ZooError) as caught:
        zoo.load(str(path), device="cpu")
    message = str(caught.value)
    assert "\n" not in message and len(message) < 600, message
    assert path.name in message or "lenet5" in message


def test_damaged_folder_config_json_is_one_line_error(tmp_path: Path) -> None:
    folder = tmp_path / "ckpt"
    zoo.load("lenet5:none", device="cpu").save(folder)
    config = json.loads((folder / "config.json").read_text())
    for text in ("[" * 100_000, "{not json", json.dumps({**config, "num_classes": "ten"})[:-1]):
        (folder / "config.json").write_text(text)
        with pytest.raises(zoo.InputError) as caught:
            zoo.load(str(folder), device="cpu")
        assert "\n" not in str(caught.value)
    (folder / "config.json").write_text(json.dumps({**config, "zoo": {**config["zoo"], "labels": {"a": 1}}}))
    with pytest.raises(zoo.InputError, match="labels"):
        zoo.load(str(folder), device="cpu")
    (folder / "config.json").write_text(json.dumps({**config, "zoo": {**config["zoo"], "preprocess": {"crop": 10**6}}}))
    with pytest.raises(zoo.InputError, match="8192"):
        zoo.load(str(folder), device="cpu")


def test_preprocess_sizes_are_bounded_everywhere() -> None:
    with pytest.raises(ValueError, match="8192"):
        zoo.ImagePreprocess(resize=10**6, crop=224)
    with pytest.raises(ValueError, match="size"):
        zoo.ImagePreprocess(resize=(224, 0), crop=None)
    assert zoo.ImagePreprocess(resize=8192, crop=(640, 480)).input_size == (640, 480)


def test_damaged_metadata_through_the_cli_has_no_traceback(tmp_path: Path, isolated: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZOO_")}
    env.update(PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "plugins")]), ZOO_HOME=str(isolated))
    for case in ("deep-nesting", "huge-int-digits", "preprocess-huge-resize"):
        path = lenet_file(tmp_path, **DAMAGED_METADATA[case])
        for args in (["predict", str(path), str(path)], ["info", str(path)]):
            out = subprocess.run(
                [sys.executable, "-m", "zoo", *args], env=env, capture_output=True, text=True, timeout=120
            )
            assert out.returncode == 1 and "Traceback" not in out.stderr, (case, out.stderr)
            assert out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1, (case, out.stderr)


# --- zoo convert on damaged safetensors ------------------------------------------------------------------------


def raw(header: object, data: bytes = b"", *, length: int | None = None) -> bytes:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + data


F32 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
DAMAGED_FILES = {
    "empty": b"",
    "short": b"\x10\x00\x00",
    "truncated-header": raw({"w": F32}, b"\0" * 8)[:20],
    "length-past-end": raw({"w": F32}, b"\0" * 8, length=5000),
    "length-huge": raw({"w": F32}, b"\0" * 8, length=2**63 - 1),
    "not-json": raw(b"{this is not json}", b"\0" * 8),
    "not-utf8": raw(b'{"w": "\xff\xfe"}', b"\0" * 8),
    "not-an-object": raw([1, 2, 3]),
    "wrong-dtype": raw({"w": {**F32, "dtype": "F99"}}, b"\0" * 8),
    "dtype-not-string": raw({"w": {**F32, "dtype": 7}}, b"\0" * 8),
    "offsets-out-of-range": raw({"w": {**F32, "data_offsets": [0, 800]}}, b"\0" * 8),
    "offsets-inverted": raw({"w": {**F32, "data_offsets": [8, 0]}}, b"\0" * 8),
    "shape-mismatch": raw({"w": {**F32, "shape": [3]}}, b"\0" * 8),
    "negative-shape": raw({"w": {**F32, "shape": [-2]}}, b"\0" * 8),
    "overlapping": raw({"a": F32, "b": {**F32, "data_offsets": [4, 12]}}, b"\0" * 12),
    "truncated-data": raw({"w": {**F32, "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8),
    "metadata-not-strings": raw({"__metadata__": {"a": 1}, "w": F32}, b"\0" * 8),
    "huge-shape": raw({"w": {**F32, "shape": [2**40, 2**40]}}, b"\0" * 8),
}


@pytest.mark.parametrize("case", sorted(DAMAGED_FILES))
def test_zoo_convert_on_damaged_safetensors_is_one_line_error(tmp_path: Path, case: str) -> None:
    src = tmp_path / f"{case}.safetensors"
    src.write_bytes(DAMAGED_FILES[case])
    result = CliRunner().invoke(cli, ["convert", str(src), str(tmp_path / "out.safetensors")])
    assert result.exit_code == 1, (case, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), (case, repr(result.exception))
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), (case, result.output)
    assert not (tmp_path / "out.safetensors").exists()
    with pytest.raises(zoo.ZooError):  # zoo.load of the same bytes: one typed error too
        zoo.load(str(src), device="cpu")


def test_zoo_convert_subprocess_prints_no_traceback(tmp_path: Path, isolated: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZOO_")}
    env.update(PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "plugins")]), ZOO_HOME=str(isolated))
    for case in ("not-json", "overlapping"):  # the CliRunner test above covers every kind
        src = tmp_path / f"{case}.safetensors"
        src.write_bytes(DAMAGED_FILES[case])
        out = subprocess.run(
            [sys.executable, "-m", "zoo", "convert", str(src), str(tmp_path / "out.safetensors")],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert out.returncode == 1 and "Traceback" not in out.stderr, (case, out.stderr)
        assert out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1, (case, out.stderr)
