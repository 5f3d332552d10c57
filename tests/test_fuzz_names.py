"""Fuzzing name parsing: model names, registry resolution (with the installed plugins' schemes) and file names.

Whatever the text, `parse_name` and `Registry.resolve` give a result or a typed `ZooError` with one line; what is
accepted never carries a control character (a trailing newline included) into a model, plugin, tag or target;
`validate_filename` accepts only plain names that are safe on every platform (no separators, no `..`, no
device names Windows reserves).
"""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz_settings import expect_zoo_errors, fuzz, memory_peak
from zoo.names import is_reserved_name, parse_name
from zoo.registry import get_registry
from zoo.specs import validate_filename

pytestmark = pytest.mark.timeout(300)

_PIECES = [
    "resnet18", "torchvision", "hf", "hub", ":", "/", "@", "..", ".", "-", "_", "+", "v1", "none", "DEFAULT",
    "IMAGENET1K_V1", "org", "repo", "main", "refs/pull/1/head", "\n", "\r", "\t", " ", "\x00", "\x7f", "\u2028",
    "CON", "nul.pth", "com1", "é", "ß", "İ", "１", "x" * 300, "~", "./", "C:", "\\", "%2e%2e", "yolov5n", "animegan2",
]  # fmt: skip
names = st.one_of(st.text(max_size=60), st.lists(st.sampled_from(_PIECES), max_size=8).map("".join))
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@fuzz(250)
@given(text=names, schemes=st.sets(st.sampled_from(["hub", "hf", "resnet18", "x"])))
def test_parse_name(text: str, schemes: set[str]) -> None:
    parsed = expect_zoo_errors(lambda: parse_name(text, frozenset(schemes)))
    if parsed is None:
        return
    for value in (parsed.model, parsed.plugin or "", parsed.tag or "", parsed.scheme or "", parsed.target):
        assert not _CONTROL.search(value), parsed
    if parsed.scheme is None:
        assert parsed.model == parsed.model.lower() and parsed.model
        assert re.fullmatch(r"[a-z0-9][a-z0-9._+-]*", parsed.model), parsed


@fuzz(150)
@given(text=names)
def test_registry_resolve_with_the_installed_plugins(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOO_OFFLINE", "1")  # an `hf:` name never reaches the network
    registry = get_registry()
    with memory_peak():
        found = expect_zoo_errors(lambda: registry.resolve(text))
    if found is not None:
        spec, tag = found
        assert tag is None or tag in spec.weights


def _reference_reserved(name: str) -> bool:
    stem = name.rstrip(" .").split(".")[0].upper()
    return stem in {"CON", "PRN", "AUX", "NUL"} or (
        len(stem) == 4 and stem[:3] in {"COM", "LPT"} and stem[3] in "123456789¹²³"
    )


@fuzz(200)
@given(name=st.one_of(st.text(max_size=12), st.lists(st.sampled_from(["con", "AUX", "Nul", "com", "LPT", "1", "9",
       "0", ".", "txt", " ", "x", "²"]), max_size=4).map("".join)))  # fmt: skip
def test_is_reserved_name_matches_windows_rules(name: str) -> None:
    assert is_reserved_name(name) == _reference_reserved(name), name


@fuzz(400)
@given(name=names)
def test_validate_filename_accepts_only_safe_names(name: str) -> None:
    try:
        accepted = validate_filename(name)
    except ValueError as exc:  # the documented refusal (a ZooError where it reaches users)
        refusal = str(exc)
        accepted = None
    if accepted is None:
        assert "\n" not in refusal
        return
    assert accepted == name
    assert not _CONTROL.search(name) and "/" not in name and "\\" not in name
    assert not name.startswith(".") and ".." not in name
    assert unicodedata.is_normalized("NFC", name)
    assert not is_reserved_name(name), name
