"""`zoo fetch` and `zoo cache`: lockfiles, offline, verify and quarantine, export and import across an air gap."""

from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import zoo
from tests.store_helpers import publish
from zoo.cli import cli
from zoo.store import Store


def zoo_run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, result.output
    return result.output


def register(server, name: str, file: str, **weights) -> zoo.Artifact:
    """An in-script model whose weights are `file` on the server."""
    from tests.conftest import tiny_cnn

    w = zoo.Weights(url=f"{server.url}/{file}", **weights)
    zoo.register(name, task="image-classification", labels=["a", "b", "c"], weights={"v1": w})(tiny_cnn)
    return w.artifact


@pytest.fixture
def two_models(file_server) -> dict[str, str]:
    """Models `alpha` and `beta` with safetensors weights on the server; returns their sha256."""
    alpha = publish(file_server, "alpha.safetensors", b"a" * 3000)
    beta = publish(file_server, "beta.safetensors", b"b" * 5000)
    register(file_server, "alpha", "alpha.safetensors", sha256=alpha)
    register(file_server, "beta", "beta.safetensors", hash_prefix=beta[:8])
    return {"alpha": alpha, "beta": beta}


def test_fetch_json_quiet_and_cache_listing(two_models, file_server) -> None:
    fetched = json.loads(zoo_run("fetch", "alpha", "beta", "--json"))
    assert [f["cached_sha256"] for f in fetched] == [two_models["alpha"], two_models["beta"]]
    assert zoo_run("fetch", "alpha", "--quiet") == ""
    assert len(file_server.requests) == 2
    listed = {e["name"]: e for e in json.loads(zoo_run("cache", "ls", "--json"))}
    assert set(listed) == {"alpha.safetensors", "beta.safetensors"}
    assert listed["beta.safetensors"]["source"] == f"{file_server.url}/beta.safetensors"
    assert "alpha.safetensors" in zoo_run("cache", "ls")
    assert zoo_run("cache", "dir").strip() == str(Store().root)
    assert json.loads(zoo_run("cache", "du", "--json"))["weights"] >= 8000
    assert "beta.safetensors" in zoo_run("cache", "rm", "beta")  # a model name removes its files
    assert [e["name"] for e in json.loads(zoo_run("cache", "ls", "--json"))] == ["alpha.safetensors"]
    zoo_run("cache", "rm", "--all", "--yes")
    assert json.loads(zoo_run("cache", "ls", "--json")) == []
    assert "error:" in zoo_run("cache", "rm", "../x", code=1)


def test_lockfile_round_trip_and_locked_refuses_other_bytes(two_models, file_server, tmp_path: Path) -> None:
    lock = tmp_path / "zoo.lock"
    zoo_run("fetch", "alpha", "beta", "--lock", str(lock), "--quiet")
    models = {m["model"]: m for m in json.loads(lock.read_text())["models"]}
    assert models["beta"]["sha256"] == two_models["beta"]  # the full hash, though only a prefix is published
    assert models["beta"]["source"] == f"{file_server.url}/beta.safetensors" and models["beta"]["size"] == 5000
    zoo_run("cache", "rm", "--all", "--yes")
    zoo_run("fetch", "--locked", str(lock), "--quiet")
    assert Store().cached("beta.safetensors").sha256 == two_models["beta"]
    zoo_run("cache", "rm", "--all", "--yes")
    publish(file_server, "alpha.safetensors", b"A" * 3000)  # upstream changed under the same name
    out = zoo_run("fetch", "--locked", str(lock), "alpha", code=1)
    assert "nothing was installed" in out and Store().cached("alpha.safetensors") is None


def test_offline_cold_cache_fails_fast_and_warm_cache_loads(
    file_server, tiny_state_dict_file: Path, monkeypatch
) -> None:
    sha = publish(file_server, "tiny-0000.pth", tiny_state_dict_file.read_bytes())
    register(file_server, "tinyoff", "tiny-0000.pth", hash_prefix=sha[:8])
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(zoo.OfflineError, match="'tiny-0000.pth' is not cached.*zoo cache import") as info:
        zoo.load("tinyoff", device="cpu")
    assert time.monotonic() - start < 1.0 and "ZOO_WEIGHTS_PATH" in str(info.value)
    assert file_server.requests == []
    monkeypatch.setenv("ZOO_OFFLINE", "0")
    zoo.fetch("tinyoff")
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    model = zoo.load("tinyoff", device="cpu")
    assert model.weights_sha256 and len(file_server.requests) == 1


def test_verify_quarantines_corrupt_entries(two_models) -> None:
    zoo_run("fetch", "alpha", "beta", "--quiet")
    store = Store()
    path = store.weights_dir / "alpha.safetensors"
    path.write_bytes(b"A" + path.read_bytes()[1:])
    out = zoo_run("cache", "verify", code=1)
    assert "corrupt: alpha.safetensors" in out and "1 ok, 1 bad" in out
    assert not path.exists() and len(list((store.root / "quarantine").glob("*-alpha.safetensors"))) == 1
    assert zoo_run("cache", "verify").strip() == "1 ok, 0 bad"
    assert json.loads(zoo_run("cache", "ls", "--json"))[0]["verified"] is not None
    zoo_run("fetch", "alpha", "--quiet")  # the next fetch brings it back
    assert "1 quarantined files" in zoo_run("cache", "prune")


def test_corrupt_file_failing_to_load_is_quarantined_and_refetched(file_server, tiny_state_dict_file: Path) -> None:
    from zoo.checkpoint import build_module, weights_entry
    from zoo.store.cache import CacheRecord

    sha = publish(file_server, "heal-0000.pth", tiny_state_dict_file.read_bytes())
    art = register(file_server, "heal", "heal-0000.pth", hash_prefix=sha[:8])
    store = Store()
    entry = weights_entry(art)
    spec = zoo.info("heal")
    for round_ in (1, 2):
        entry.path.write_bytes(b"\x00" * entry.size)  # bit rot: same size, unreadable
        if round_ == 2:  # the origin is gone too (a cache of an older zoo): it is downloaded again
            store.quarantine("heal-0000.pth", "test")
        module = store.recovering(lambda: weights_entry(art), lambda e: build_module(spec.builder, {}, e.path))
        assert module is not None and len(file_server.requests) == round_  # round 1: made from the kept origin
        assert CacheRecord.read(store.weights_dir, entry.path.name).sha256 == entry.sha256  # byte-stable conversion
        assert len(list((store.root / "quarantine").glob(f"*-{entry.path.name}"))) == round_


def test_export_import_across_an_air_gap(two_models, file_server, tmp_path: Path, monkeypatch) -> None:
    zoo_run("fetch", "alpha", "beta", "--quiet")
    for dest in (tmp_path / "weights.tar.gz", tmp_path / "exported"):
        assert "exported 2 files" in zoo_run("cache", "export", str(dest), "alpha", "beta")
        zoo_run("cache", "rm", "--all", "--yes")
        monkeypatch.setenv("ZOO_OFFLINE", "1")
        assert "imported 2 files" in zoo_run("cache", "import", str(dest))
        assert Store().fetch(zoo.info("beta").weights["v1"].artifact).read_bytes() == b"b" * 5000
        monkeypatch.delenv("ZOO_OFFLINE")
    assert len(file_server.requests) == 2


def test_import_matches_plain_files_to_known_artifacts(two_models, tmp_path: Path) -> None:
    (tmp_path / "alpha.safetensors").write_bytes(b"a" * 3000)
    (tmp_path / "renamed.bin").write_bytes(b"b" * 5000)  # known by its hash prefix
    (tmp_path / "stranger.bin").write_bytes(b"who am I")
    (tmp_path / "wrong").mkdir()
    (tmp_path / "wrong" / "alpha.safetensors").write_bytes(b"x" * 3000)
    report = json.loads(
        zoo_run(
            "cache",
            "import",
            *(str(tmp_path / n) for n in ("alpha.safetensors", "renamed.bin", "stranger.bin")),
            "--json",
            code=1,
        )
    )
    assert report["imported"] == ["alpha.safetensors", "beta.safetensors"]
    assert [r["file"] for r in report["refused"]] == ["stranger.bin"]
    zoo_run("cache", "rm", "alpha")
    out = zoo_run("cache", "import", str(tmp_path / "wrong"), code=1)
    assert "refused alpha.safetensors" in out and Store().cached("alpha.safetensors") is None


def _tar(path: Path, *members: tarfile.TarInfo) -> Path:
    with tarfile.open(path, "w") as tar:
        for info in members:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, size: int = 4, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size if kind == tarfile.REGTYPE else 0, link
    return info


@pytest.mark.parametrize(
    "member",
    [
        _member("weights/../../escape.bin"),
        _member("/abs.bin"),
        _member("weights/link.bin", tarfile.SYMTYPE, link="/etc/passwd"),
        _member("weights/hard.bin", tarfile.LNKTYPE, link="weights/ok.bin"),
        _member("weights/dev.bin", tarfile.CHRTYPE),
        _member("weights/fifo.bin", tarfile.FIFOTYPE),
    ],
    ids=["traversal", "absolute", "symlink", "hardlink", "device", "fifo"],
)
def test_import_refuses_unsafe_archives_whole(member: tarfile.TarInfo, tmp_path: Path) -> None:
    archive = _tar(tmp_path / "evil.tar", _member("weights/ok.bin"), member)
    assert "refused" in zoo_run("cache", "import", str(archive), code=1)
    store = Store()
    assert [p.name for p in store.weights_dir.iterdir() if not p.name.startswith(".")] == []
    assert not (tmp_path.parent / "escape.bin").exists()


def test_prune_older_than_removes_unused_entries(two_models) -> None:
    import os

    from zoo.store.cache import CacheRecord

    zoo_run("fetch", "alpha", "beta", "--quiet")
    store = Store()
    old = CacheRecord.read(store.weights_dir, "alpha.safetensors")
    CacheRecord(**{**old.__dict__, "fetched": 0.0}).write(store.weights_dir)
    os.utime(store.weights_dir / "alpha.safetensors", (0, 0))
    assert "1 old entries" in zoo_run("cache", "prune", "--older-than", "30")
    assert [e["name"] for e in json.loads(zoo_run("cache", "ls", "--json"))] == ["beta.safetensors"]


def test_backends_are_pointed_under_the_zoo_root_and_switched_offline(isolated: Path, monkeypatch) -> None:
    import os

    from zoo.offline import configure_backends

    for var in ("HF_HOME", "TORCH_HOME", "YOLO_CONFIG_DIR", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "YOLO_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    assert configure_backends() == {
        "HF_HOME": str(isolated / "hf"),
        "TORCH_HOME": str(isolated / "torch"),
        "YOLO_CONFIG_DIR": str(isolated / "ultralytics"),
    }
    assert "HF_HUB_OFFLINE" not in os.environ
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert configure_backends() == {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "YOLO_OFFLINE": "1"}
    import torch.hub

    assert torch.hub.get_dir() == str(isolated / "torch" / "hub")
