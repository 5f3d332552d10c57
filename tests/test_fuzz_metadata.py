"""Fuzzing the safetensors / zoo-metadata readers: random bytes, headers, metadata and builder arguments give a
result or a `ZooError`, never another exception, never a hang. `ZOO_FUZZ_EXAMPLES` sets the examples per test."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import struct
from pathlib import Path
from typing import Any

import pytest

from zoo.arguments import MAX_DEPTH, file_kwargs, parse_json
from zoo.checkpoint.metadata import CheckpointInfo
from zoo.errors import ZooError
from zoo.specs import ImagePreprocess

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

EXAMPLES = settings(
    max_examples=int(os.environ.get("ZOO_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
ZOO_KEYS = ["zoo.model", "zoo.plugin", "zoo.task", "zoo.checkpoint", "zoo.builder_kwargs", "zoo.labels",
            "zoo.preprocess", "zoo.training", "zoo.weights", "zoo.state_versions", "format"]  # fmt: skip

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)  # fmt: skip


def json_text(value: Any) -> str:
    return json.dumps(value, allow_nan=True)


field_text = (
    json_values.map(json_text)
    | st.text(max_size=60)
    | st.integers(1, 3000).map(lambda n: "[" * n)
    | st.sampled_from(["custom", "lenet5", "mixin", "hf", "hub", "yolov5n", "1", "2", "../x", "NaN", "1e999"])
)
metadata = st.dictionaries(st.sampled_from(ZOO_KEYS) | st.text(max_size=10), field_text, max_size=8).map(
    lambda meta: {"zoo.model": "lenet5", "zoo.plugin": "custom", **meta} if meta.get("zoo.model") is None else meta
)


@functools.cache
def lenet5_spec() -> Any:
    from zoo.registry import get_registry

    return get_registry().resolve("lenet5")[0]


@EXAMPLES
@given(meta=metadata)
def test_header_metadata_gives_info_or_zoo_error(meta: dict[str, str]) -> None:
    try:
        info = CheckpointInfo.from_metadata(meta, source="fuzz.safetensors")
    except ZooError:
        return
    if info is not None:  # what a loader does next with it: check the arguments against the builder
        if info.preprocess is not None:
            assert all(1 <= s <= 8192 for s in (info.preprocess.input_size or (1, 1)))
        with contextlib.suppress(ZooError):
            file_kwargs(lenet5_spec(), info.builder_kwargs, source="fuzz.safetensors")


@EXAMPLES
@given(config=st.dictionaries(st.text(max_size=10), json_values, max_size=6), zoo_fields=json_values)
def test_config_json_gives_info_or_zoo_error(config: dict[str, Any], zoo_fields: Any) -> None:
    for candidate in (config, {**config, "zoo": zoo_fields}, {**config, "zoo": {"model": "lenet5", "x": zoo_fields}}):
        with contextlib.suppress(ZooError):
            CheckpointInfo.from_config(candidate, source="config.json")


@EXAMPLES
@given(kwargs=json_values)
def test_builder_arguments_are_accepted_only_as_declared_json(kwargs: Any) -> None:
    spec = lenet5_spec()
    try:
        accepted = file_kwargs(spec, kwargs, source="fuzz")
    except ZooError:
        return
    assert set(accepted) <= {"num_classes", "in_channels"}


@EXAMPLES
@given(text=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_json_text_parses_or_gives_zoo_error(text: bytes) -> None:
    with contextlib.suppress(ZooError):
        parse_json(text, what="fuzz", source="fuzz")


@EXAMPLES
@given(data=json_values)
def test_preprocess_from_files_is_checked(data: Any) -> None:
    from zoo.checkpoint.metadata import _preprocess

    try:
        pre = _preprocess(data if not isinstance(data, dict) else {"resize": 32, **data}, "fuzz")
    except ZooError:
        return
    assert pre is None or isinstance(pre, ImagePreprocess)


def header_bytes(draw: Any) -> bytes:
    entries: dict[str, Any] = {}
    for name in draw(st.lists(st.text(max_size=5), max_size=3)):
        entries[name] = {
            "dtype": draw(st.sampled_from(["F32", "F16", "BF16", "I64", "U8", "BOOL", "F99", 3])),
            "shape": draw(st.lists(st.integers(-2, 6), max_size=3)),
            "data_offsets": draw(st.lists(st.integers(-1, 80), min_size=0, max_size=3)),
        }
    if draw(st.booleans()):
        entries["__metadata__"] = draw(st.dictionaries(st.sampled_from(ZOO_KEYS), field_text, max_size=4))
    text = json.dumps(entries).encode() if draw(st.booleans()) else draw(st.binary(max_size=80))
    data = draw(st.binary(max_size=96))
    length = len(text) if draw(st.booleans()) else draw(st.integers(0, 2**64 - 1))
    blob = struct.pack("<Q", length) + text + data
    return blob[: draw(st.integers(0, len(blob)))] if draw(st.booleans()) else blob


@EXAMPLES
@given(blob=st.composite(header_bytes)())
def test_safetensors_reader_gives_tensors_or_zoo_error(blob: bytes, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from zoo.checkpoint.files import read_info
    from zoo.checkpoint.reader import load_safetensors

    path = tmp_path / "fuzz.safetensors"  # one file, rewritten for each example
    path.write_bytes(blob)
    for read in (read_info, load_safetensors):
        with contextlib.suppress(ZooError):
            read(path)


def test_depth_bound_is_enforced_below_the_parsers_recursion() -> None:
    deep: Any = 1
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(ZooError, match="nests deeper"):
        file_kwargs(lenet5_spec(), {"num_classes": deep}, source="fuzz")
