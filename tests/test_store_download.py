"""Downloads that survive the real world: resume, restart, retries, timeouts, pinned hashes, full disks."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import zoo
from tests.store_helpers import install_plugin, parts, plugin_env, publish, zoo_cmd
from zoo.store import Store
from zoo.store.cache import CacheRecord, host_tag


def _art(server, name: str, **kw) -> zoo.Artifact:
    return zoo.Artifact(name, urls=(f"{server.url}/{name}",), **kw)


def _once(server, path: str):
    """A progress callback that lifts the server's truncation of `path` once bytes arrive."""
    return lambda done, total: server.truncate.pop(path, None)


def test_kill_9_mid_body_then_resume_with_range(file_server, tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    sha = publish(file_server, "big.safetensors", data)
    file_server.throttle["/big.safetensors"] = 0.01
    weights = {"bigw": {"url": f"{file_server.url}/big.safetensors", "sha256": sha}}
    env = plugin_env(install_plugin(tmp_path / "site"), weights)
    store = Store()
    target = store.weights_dir / "big.safetensors"
    kept = [0]
    for _ in range(2):  # killed twice, each time after more bytes arrived
        proc = subprocess.Popen(zoo_cmd("fetch", "bigw", "--quiet"), env=env, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while sum(p.stat().st_size for p in parts(store.weights_dir)) <= kept[-1]:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not target.exists()  # never unverified bytes at the final path
        assert len(parts(store.weights_dir)) == 1  # the partial file was adopted, then left again
        kept.append(parts(store.weights_dir)[0].stat().st_size)
    file_server.throttle.clear()
    entry = store.fetch_entry(_art(file_server, "big.safetensors", sha256=sha, format="safetensors"))
    assert entry.sha256 == sha and target.read_bytes() == data
    ranges = [headers.get("Range") for _, _, headers in file_server.requests]
    assert ranges == [None, f"bytes={kept[1]}-", f"bytes={kept[2]}-"]  # each fetch resumed where the last stopped
    assert parts(store.weights_dir) == []
    assert CacheRecord.read(store.weights_dir, "big.safetensors").sha256 == sha


def test_early_close_is_retried_with_range(file_server) -> None:
    data = os.urandom(300_000)
    sha = publish(file_server, "r.bin", data)
    file_server.truncate["/r.bin"] = 100_000
    entry = Store().fetch_entry(_art(file_server, "r.bin", sha256=sha), progress=_once(file_server, "/r.bin"))
    assert entry.path.read_bytes() == data
    assert [h.get("Range") for _, _, h in file_server.requests] == [None, "bytes=100000-"]


def test_server_ignoring_range_restarts_from_zero(file_server) -> None:
    data = os.urandom(300_000)
    sha = publish(file_server, "i.bin", data)
    file_server.truncate["/i.bin"] = 100_000
    file_server.ignore_range.add("/i.bin")
    entry = Store().fetch_entry(_art(file_server, "i.bin", sha256=sha), progress=_once(file_server, "/i.bin"))
    assert entry.path.read_bytes() == data
    assert file_server.requests[1][2].get("Range") == "bytes=100000-"  # asked, got the whole file, restarted


def test_changed_file_restarts_instead_of_splicing(file_server) -> None:
    old, new = b"o" * 300_000, b"n" * 300_000
    publish(file_server, "v.bin", old)
    file_server.truncate["/v.bin"] = 100_000

    def new_version(done: int, total: int | None) -> None:
        if file_server.truncate.pop("/v.bin", None) is not None:
            publish(file_server, "v.bin", new)  # a new ETag: If-Range no longer matches

    entry = Store().fetch_entry(_art(file_server, "v.bin", format="file"), progress=new_version)
    assert entry.path.read_bytes() == new
    assert file_server.requests[1][2].get("If-Range")


def test_5xx_and_429_are_retried_with_logs(file_server, caplog: pytest.LogCaptureFixture) -> None:
    sha = publish(file_server, "f.bin", b"flaky")
    file_server.failures["/f.bin"] = [503, 429]
    with caplog.at_level(logging.WARNING, logger="zoo.store.http"):
        assert Store().fetch(_art(file_server, "f.bin", sha256=sha)).read_bytes() == b"flaky"
    assert len(file_server.requests) == 3
    assert "HTTP 503" in caplog.text and "retry 2 of 4" in caplog.text


def test_retries_are_bounded(file_server, monkeypatch: pytest.MonkeyPatch) -> None:
    publish(file_server, "down.bin", b"x")
    file_server.failures["/down.bin"] = [500] * 10
    monkeypatch.setenv("ZOO_RETRIES", "2")
    with pytest.raises(zoo.DownloadError, match="after 3 attempts: HTTP 500"):
        Store().fetch(_art(file_server, "down.bin"))
    assert len(file_server.requests) == 3


def test_timeout(file_server, monkeypatch: pytest.MonkeyPatch) -> None:
    publish(file_server, "slow.bin", b"s")
    file_server.delay["/slow.bin"] = 2.0
    monkeypatch.setenv("ZOO_TIMEOUT", "0.2")
    monkeypatch.setenv("ZOO_RETRIES", "1")
    start = time.monotonic()
    with pytest.raises(zoo.DownloadError, match="timed out"):
        Store().fetch(_art(file_server, "slow.bin"))
    assert time.monotonic() - start < 1.5


def test_close_early_without_content_length(file_server) -> None:
    sha = publish(file_server, "n.bin", os.urandom(200_000))
    file_server.no_length.add("/n.bin")
    file_server.truncate["/n.bin"] = 50_000
    store = Store()
    with pytest.raises(zoo.ChecksumError, match="nothing was installed"):
        store.fetch(_art(file_server, "n.bin", sha256=sha))
    assert not (store.weights_dir / "n.bin").exists()
    assert parts(store.weights_dir) == []


def test_wrong_bytes_never_replace_a_good_entry(file_server) -> None:
    good = b"g" * 5000
    sha = publish(file_server, "keep.bin", good)
    store = Store()
    art = _art(file_server, "keep.bin", sha256=sha)
    store.fetch(art)
    store.quarantine("keep.bin", "test")  # gone from the cache, so the next fetch downloads
    store.fetch(art)
    file_server.corrupt.add("/keep.bin")
    (store.weights_dir / "keep.bin.record.json").unlink()  # force a new download over the good file
    with pytest.raises(zoo.ChecksumError):
        store.fetch(art)
    assert (store.weights_dir / "keep.bin").read_bytes() == good


def _same_first_digit(sha: str) -> bytes:
    for i in range(1000):
        candidate = f"other {i}".encode()
        if hashlib.sha256(candidate).hexdigest()[0] == sha[0]:
            return candidate
    raise AssertionError("no candidate")  # pragma: no cover


def test_prefix_only_gets_full_hash_pinned_and_enforced(file_server) -> None:
    sha = publish(file_server, "p.bin", b"first")
    art = _art(file_server, "p.bin", hash_prefix=sha[:1])
    store = Store()
    store.fetch(art)
    assert json.loads((store.root / "pins.json").read_text())["p.bin"]["sha256"] == sha
    store.quarantine("p.bin", "test")
    publish(file_server, "p.bin", _same_first_digit(sha))  # upstream's prefix still matches, the file does not
    with pytest.raises(zoo.ChecksumError, match="recorded at its first download"):
        store.fetch(art)
    publish(file_server, "p.bin", b"first")
    assert store.fetch(art).read_bytes() == b"first"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_files_of_dead_processes_are_cleaned(file_server) -> None:
    from zoo.store.maintenance import prune

    store = Store()
    dead, host = _dead_pid(), host_tag()
    mine = store.weights_dir / f".c.bin.{host}-{os.getpid()}-0000abcd.part"
    stale = [
        store.weights_dir / f".c.bin.{host}-{dead}-0000abcd.part",
        store.weights_dir / f".o.bin.{host}-{dead}-0000abcd.part",
    ]
    for path in [mine, *stale]:
        path.write_bytes(b"partial")
    sha = publish(file_server, "c.bin", b"clean")
    store.fetch(_art(file_server, "c.bin", sha256=sha))
    assert not stale[0].exists() and stale[1].exists() and mine.exists()
    assert prune(store)["partial"] == [stale[1].name]
    assert mine.exists()  # a live writer's file is never touched


CHILD = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit then fail with EFBIG, like a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))
import zoo
from zoo.store import Store
try:
    Store().fetch(zoo.Artifact("big.bin", urls=[sys.argv[1]], sha256=sys.argv[2]))
except zoo.DownloadError as exc:
    print(exc)
    sys.exit(3)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE semantics")
def test_full_disk_is_a_clear_error_and_leaves_the_cache_alone(file_server) -> None:
    store = Store()
    small = publish(file_server, "small.bin", b"s" * 1000)
    store.fetch(_art(file_server, "small.bin", sha256=small))
    before = sorted(p.name for p in store.weights_dir.iterdir() if not p.name.endswith(".lock"))
    big = publish(file_server, "big.bin", os.urandom(2 << 20))
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD), f"{file_server.url}/big.bin", big],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 3, proc.stderr
    assert "full" in proc.stdout and "nothing was installed" in proc.stdout
    after = sorted(p.name for p in store.weights_dir.iterdir() if not p.name.endswith(".lock"))
    assert after == before
    assert store.cached("small.bin").sha256 == small
