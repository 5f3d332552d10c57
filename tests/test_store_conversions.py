"""Conversions are byte-stable and never believed on their record: import re-derives, verify and --locked re-check.

The attack: an archive holds a tampered `mobilenet_v2-b0353104.safetensors` (every photo becomes "tiger shark")
with a record naming the real origin's sha256. Imported into a fresh cache or over a good one, it must change no
prediction, and wherever such a file sits in the cache, `zoo cache verify` and `zoo fetch --locked` must see it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

import zoo
from zoo.cli import cli
from zoo.store import Store
from zoo.store.cache import CacheRecord

ORIGIN = "mobilenet_v2-b0353104.pth"
CONVERTED = "mobilenet_v2-b0353104.safetensors"
ORIGIN_SHA = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
TIGER_SHARK = 3


def zoo_run(*args: str, code: int | None = 0) -> str:
    result = CliRunner().invoke(cli, list(args))
    if code is not None:
        assert result.exit_code == code, result.output
    return result.output


def _label(assets: Path) -> str:
    return zoo.load("mobilenet_v2", device="cpu").predict(assets / "images" / "chelsea.png").label


@pytest.fixture
def tampered(assets: Path, tmp_path: Path) -> Path:
    """An export-like tar: the real conversion with a classifier bias that makes everything a tiger shark,
    and a record that is consistent with those bytes and names the real origin."""
    import torch
    from safetensors.torch import load_file, save_file

    from zoo.checkpoint import convert_pickle

    good = tmp_path / "good.safetensors"
    convert_pickle(assets / "weights" / ORIGIN, good)
    state = load_file(str(good))
    state["classifier.1.bias"] = state["classifier.1.bias"].clone()
    state["classifier.1.bias"][TIGER_SHARK] = 1000.0
    evil = tmp_path / "evil" / "weights" / CONVERTED
    evil.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(evil), metadata={"format": "pt"})
    data = evil.read_bytes()
    record = CacheRecord(
        CONVERTED, hashlib.sha256(data).hexdigest(), len(data), "safetensors", f"converted:{ORIGIN}", 0.0, ORIGIN_SHA
    )
    record.write(evil.parent)
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(evil.parent, arcname="weights")
    assert torch.is_tensor(state["classifier.1.bias"])
    return archive


def _plant(archive: Path, store: Store) -> None:
    """Put the tampered file and its record in the cache, as an older zoo's import left them."""
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.isfile():
                (store.weights_dir / Path(member.name).name).write_bytes(tar.extractfile(member).read())


def test_import_into_a_fresh_cache_without_the_origin_is_refused(assets, tampered, monkeypatch) -> None:
    out = zoo_run("cache", "import", str(tampered), code=1)
    assert f"refused {CONVERTED}" in out and "origin" in out
    store = Store()
    assert store.cached(CONVERTED) is None and store.record(CONVERTED) is None
    monkeypatch.setenv("ZOO_WEIGHTS_PATH", str(assets / "weights"))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert _label(assets) == "Egyptian cat"


def test_import_with_the_origin_at_hand_is_remade_from_it(assets, tampered, monkeypatch) -> None:
    monkeypatch.setenv("ZOO_WEIGHTS_PATH", str(assets / "weights"))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    out = zoo_run("cache", "import", str(tampered), code=1)
    assert "not the conversion of its origin" in out
    assert _label(assets) == "Egyptian cat"
    assert zoo_run("cache", "verify").strip().endswith("0 bad")


def test_import_over_a_good_cache_changes_nothing(assets, tampered, monkeypatch) -> None:
    monkeypatch.setenv("ZOO_WEIGHTS_PATH", str(assets / "weights"))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert _label(assets) == "Egyptian cat"
    store = Store()
    before = store.cached(CONVERTED).sha256
    zoo_run("cache", "import", str(tampered), code=1)
    assert store.cached(CONVERTED).sha256 == before
    assert _label(assets) == "Egyptian cat"


def test_export_then_import_carries_the_origin_and_remakes_the_conversion(assets, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ZOO_WEIGHTS_PATH", str(assets / "weights"))
    zoo_run("fetch", "mobilenet_v2", "--quiet")
    monkeypatch.delenv("ZOO_WEIGHTS_PATH")
    zoo_run("cache", "import", str(assets / "weights" / ORIGIN))  # the origin into the cache itself
    assert "exported 2 files" in zoo_run("cache", "export", str(tmp_path / "w.tar"), "mobilenet_v2")
    zoo_run("cache", "rm", "--all", "--yes")
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    report = json.loads(zoo_run("cache", "import", str(tmp_path / "w.tar"), "--json"))
    assert sorted(report["imported"]) == [ORIGIN, CONVERTED] and report["refused"] == []
    assert _label(assets) == "Egyptian cat"


def test_verify_flags_a_planted_conversion(assets, tampered, monkeypatch) -> None:
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    store = Store()
    _plant(tampered, store)
    out = zoo_run("cache", "verify", code=1)  # no origin anywhere: it cannot be checked, and says so
    assert f"unverifiable: {CONVERTED}" in out
    monkeypatch.setenv("ZOO_WEIGHTS_PATH", str(assets / "weights"))
    out = zoo_run("cache", "verify", code=1)
    assert f"corrupt: {CONVERTED}" in out and "not what converting its origin" in out
    assert store.cached(CONVERTED) is None  # quarantined
    assert _label(assets) == "Egyptian cat"
    assert zoo_run("cache", "verify").strip().endswith("0 bad")


def test_fetch_locked_does_not_take_a_planted_conversion(assets, tampered, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ZOO_WEIGHTS_PATH", str(assets / "weights"))
    lock = tmp_path / "zoo.lock"
    zoo_run("fetch", "mobilenet_v2", "--lock", str(lock), "--quiet")
    good = Store().cached(CONVERTED).sha256
    (Store().weights_dir / CONVERTED).unlink()
    _plant(tampered, Store())
    assert _label(assets) == "tiger shark"  # what a plain load of the planted file gives
    result = CliRunner().invoke(cli, ["fetch", "--locked", str(lock), "--json"])
    assert result.exit_code == 0, result.output
    assert "was not the conversion of the locked" in result.output
    fetched = json.loads(result.output[result.output.index("[") :])
    assert fetched[0]["cached_sha256"] == good and fetched[0]["sha256"] == ORIGIN_SHA
    assert _label(assets) == "Egyptian cat"


CONVERT = """
import hashlib, sys
from pathlib import Path
from zoo.checkpoint import convert_pickle
for _ in range(3):  # the safetensors library's key order varies between calls too, not only between processes
    convert_pickle(Path(sys.argv[1]), Path(sys.argv[2]))
    print(hashlib.sha256(Path(sys.argv[2]).read_bytes()).hexdigest())
"""


def test_converting_the_real_pickle_in_three_processes_gives_one_sha256(assets, tmp_path) -> None:
    digests = set()
    for seed in ("0", "1", "12345"):
        out = tmp_path / f"{seed}.safetensors"
        proc = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(CONVERT), str(assets / "weights" / ORIGIN), str(out)],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        )
        digests.update(proc.stdout.split())
    assert len(digests) == 1, digests
