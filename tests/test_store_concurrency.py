"""Many fetchers, one download: processes, threads, torchrun ranks, and a lock that names its holder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import zoo
from tests.store_helpers import install_plugin, plugin_env, publish, safetensors_bytes, zoo_cmd
from zoo.store import Store


def _gets(server, path: str) -> int:
    return sum(1 for method, p, _ in server.requests if method == "GET" and p == path)


def test_eight_zoo_fetch_processes_make_one_download(file_server, tmp_path: Path) -> None:
    data = safetensors_bytes(os.urandom(4 << 20))  # no published hash: must be a whole safetensors file
    sha = publish(file_server, "shared.safetensors", data)
    file_server.throttle["/shared.safetensors"] = 0.003
    env = plugin_env(install_plugin(tmp_path / "site"), {"sharedw": {"url": f"{file_server.url}/shared.safetensors"}})
    procs = [
        subprocess.Popen(zoo_cmd("fetch", "sharedw", "--json"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(8)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [err.decode()[-500:] for _, err in outputs]
    digests = {json.loads(out)[0]["cached_sha256"] for out, _ in outputs}
    assert digests == {sha}
    assert _gets(file_server, "/shared.safetensors") == 1


def test_threads_share_one_download(file_server) -> None:
    sha = publish(file_server, "t.bin", os.urandom(1 << 20))
    file_server.throttle["/t.bin"] = 0.005
    art = zoo.Artifact("t.bin", urls=(f"{file_server.url}/t.bin",), sha256=sha)
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(Store().fetch(art))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 6 and len(set(results)) == 1
    assert _gets(file_server, "/t.bin") == 1


HOLDER = """
import sys, time
from pathlib import Path
from zoo.store.locking import ArtifactLock
with ArtifactLock(Path(sys.argv[1]), "held.bin"):
    print("ready", flush=True)
    time.sleep(60)
"""


def test_lock_timeout_names_the_holder(file_server, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store()
    publish(file_server, "held.bin", b"h")
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER), str(store.weights_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        monkeypatch.setenv("ZOO_LOCK_TIMEOUT", "0.3")
        with pytest.raises(zoo.DownloadError, match=rf"held by pid {holder.pid} on .*ZOO_LOCK_TIMEOUT"):
            store.fetch(zoo.Artifact("held.bin", urls=(f"{file_server.url}/held.bin",)))
    finally:
        holder.kill()
        holder.wait()
    assert file_server.requests == []


def test_under_torchrun_only_local_rank_0_downloads(
    file_server, tmp_path: Path, tiny_state_dict_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zoo.checkpoint import weights_entry

    data = tiny_state_dict_file.read_bytes()
    sha = publish(file_server, "rank-0000.pth", data)
    weights = {"rankw": {"url": f"{file_server.url}/rank-0000.pth", "hash_prefix": sha[:8]}}
    env = plugin_env(install_plugin(tmp_path / "site"), weights, LOCAL_RANK="1", LOCAL_WORLD_SIZE="2")
    follower = subprocess.Popen(
        zoo_cmd("fetch", "rankw", "--json"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    time.sleep(1.5)
    assert follower.poll() is None and file_server.requests == []  # rank 1 waits, it never downloads
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    art = zoo.Artifact("rank-0000.pth", urls=(f"{file_server.url}/rank-0000.pth",), hash_prefix=sha[:8])
    entry = weights_entry(art)  # rank 0: downloads and converts to safetensors
    out, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err.decode()
    assert json.loads(out)[0]["cached_sha256"] == entry.sha256
    assert _gets(file_server, "/rank-0000.pth") == 1


def test_waiting_rank_hears_of_rank_0_failure(file_server, monkeypatch: pytest.MonkeyPatch) -> None:
    art = zoo.Artifact("missing.bin", urls=(f"{file_server.url}/missing.bin",))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(zoo.DownloadError, match="HTTP 404"):
        Store().fetch(art)
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(zoo.DownloadError, match="Local rank 0 failed to fetch 'missing.bin'.*HTTP 404"):
        Store().fetch(art)
    assert len(file_server.requests) == 1


def test_waiting_rank_gives_up_without_progress(file_server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setenv("ZOO_LOCK_TIMEOUT", "0.3")
    with pytest.raises(zoo.DownloadError, match="only rank 0 downloads"):
        Store().fetch(zoo.Artifact("never.bin", urls=(f"{file_server.url}/never.bin",)))
    assert file_server.requests == []
