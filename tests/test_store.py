"""The first fetch path on a real HTTP server: verify, atomic install, mirrors, local folders, offline."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import zoo
from zoo.store import Store
from zoo.store.sources import rewrite


def _publish(server, name: str, data: bytes) -> str:
    (server.root / name).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _leftovers(store: Store) -> list[str]:
    return sorted(p.name for p in store.weights_dir.iterdir() if p.name.endswith(".part"))


def test_download_verifies_records_and_is_reused(file_server) -> None:
    sha = _publish(file_server, "w.bin", b"x" * 300_000)
    art = zoo.Artifact("w.bin", urls=(f"{file_server.url}/w.bin",), sha256=sha, format="safetensors")
    store = Store()
    entry = store.fetch_entry(art)
    assert entry.path.read_bytes() == b"x" * 300_000
    assert (entry.sha256, entry.size, entry.source) == (sha, 300_000, f"{file_server.url}/w.bin")
    assert store.fetch(art) == entry.path
    assert file_server.paths() == ["/w.bin"]  # the second fetch came from the cache


def test_hash_prefix_is_checked(file_server) -> None:
    sha = _publish(file_server, "p-0.bin", b"payload")
    good = zoo.Artifact("p-0.bin", urls=(f"{file_server.url}/p-0.bin",), hash_prefix=sha[:8])
    assert Store().fetch(good).read_bytes() == b"payload"
    bad = zoo.Artifact("p-1.bin", urls=(f"{file_server.url}/p-0.bin",), hash_prefix="00000000")
    with pytest.raises(zoo.ChecksumError, match="nothing was installed"):
        Store().fetch(bad)


def test_wrong_bytes_install_nothing(file_server) -> None:
    sha = _publish(file_server, "c.bin", b"a" * 4096)
    file_server.corrupt.add("/c.bin")
    art = zoo.Artifact("c.bin", urls=(f"{file_server.url}/c.bin",), sha256=sha)
    store = Store()
    with pytest.raises(zoo.ChecksumError) as info:
        store.fetch(art)
    assert info.value.expected == sha
    assert not (store.weights_dir / "c.bin").exists()
    assert _leftovers(store) == []


def test_server_closing_early_installs_nothing(file_server) -> None:
    sha = _publish(file_server, "t.bin", b"z" * 200_000)
    file_server.truncate["/t.bin"] = 50_000
    art = zoo.Artifact("t.bin", urls=(f"{file_server.url}/t.bin",), sha256=sha)
    store = Store()
    with pytest.raises(zoo.DownloadError):
        store.fetch(art)
    assert not (store.weights_dir / "t.bin").exists()
    assert _leftovers(store) == []


def test_mirror_is_tried_before_the_original(file_server, monkeypatch: pytest.MonkeyPatch) -> None:
    (file_server.root / "models").mkdir()
    sha = _publish(file_server, "models/m.bin", b"mirrored")
    monkeypatch.setenv("ZOO_MIRRORS", f"https://download.invalid={file_server.url}")
    art = zoo.Artifact("m.bin", urls=("https://download.invalid/models/m.bin",), sha256=sha)
    assert Store().fetch(art).read_bytes() == b"mirrored"
    assert file_server.paths() == ["/models/m.bin"]


def test_rewrite_order() -> None:
    mirrors = [("https://a.org", "http://m1"), ("https://b.org", "http://x"), ("https://a.org/", "http://m2/")]
    assert rewrite("https://a.org/f.pth", mirrors) == ["http://m1/f.pth", "http://m2/f.pth", "https://a.org/f.pth"]


def test_weights_path_is_searched_and_hash_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong, right = tmp_path / "wrong", tmp_path / "right"
    wrong.mkdir()
    right.mkdir()
    (wrong / "l.bin").write_bytes(b"not it")
    (right / "l.bin").write_bytes(b"the weights")
    sha = hashlib.sha256(b"the weights").hexdigest()
    monkeypatch.setenv("ZOO_WEIGHTS_PATH", f"{wrong}:{right}")
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    entry = Store().fetch_entry(zoo.Artifact("l.bin", urls=("https://example.invalid/l.bin",), sha256=sha))
    assert entry.path == right / "l.bin"
    assert not entry.in_cache


def test_offline_makes_no_request(file_server, monkeypatch: pytest.MonkeyPatch) -> None:
    sha = _publish(file_server, "o.bin", b"offline")
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    art = zoo.Artifact("o.bin", urls=(f"{file_server.url}/o.bin",), sha256=sha)
    with pytest.raises(zoo.OfflineError, match="ZOO_WEIGHTS_PATH") as info:
        Store().fetch(art)
    assert "'o.bin'" in str(info.value)
    assert file_server.requests == []


def test_every_source_failing_names_them(file_server) -> None:
    art = zoo.Artifact("gone.bin", urls=(f"{file_server.url}/a/gone.bin", f"{file_server.url}/b/gone.bin"))
    with pytest.raises(zoo.DownloadError, match="HTTP 404.*HTTP 404"):
        Store().fetch(art)
    assert file_server.paths() == ["/a/gone.bin", "/b/gone.bin"]


def test_settings_reject_malformed_mirrors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOO_MIRRORS", "https://a.org")
    with pytest.raises(zoo.ZooError, match="prefix=replacement"):
        Store().fetch(zoo.Artifact("x.bin", urls=("https://a.org/x.bin",)))


def test_config_file_mirrors_and_env_precedence(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo import settings

    (isolated / "config.toml").write_text('offline = true\n[mirrors]\n"https://a.org" = "http://m"\n')
    assert settings.mirrors() == [("https://a.org", "http://m")]
    assert settings.offline() is True
    monkeypatch.setenv("ZOO_OFFLINE", "0")
    assert settings.offline() is False
