"""Every source scheme on real local servers and folders: hf:, GitHub archives, pkg:, file:, hostile names."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import re
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

import zoo
from zoo.store import Store, repo_snapshot
from zoo.store.maintenance import remove

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class Hub:
    """A Hugging Face Hub–compatible endpoint on 127.0.0.1: the routes `hf_hub_download` needs."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files, self.requests = files, []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                hub.serve(self, body=False)

            def do_GET(self) -> None:
                hub.serve(self, body=True)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def serve(self, handler: http.server.BaseHTTPRequestHandler, body: bool) -> None:
        path = unquote(urlsplit(handler.path).path)
        self.requests.append((handler.command, path))
        api = re.fullmatch(r"/api/models/(\w+/\w+)/revision/(\w+)", path)
        resolve = re.fullmatch(r"/(\w+/\w+)/resolve/(\w+)/(.+)", path)
        if api and api[2] in ("main", COMMIT):
            data = json.dumps(
                {"id": api[1], "sha": COMMIT, "siblings": [{"rfilename": f} for f in self.files]}
            ).encode()
            headers = {"Content-Type": "application/json"}
        elif resolve and resolve[2] in ("main", COMMIT) and resolve[3] in self.files:
            data = self.files[resolve[3]]
            headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}
        else:
            handler.send_response(404)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        handler.send_response(200)
        for key, value in {**headers, "Content-Length": str(len(data))}.items():
            handler.send_header(key, value)
        handler.end_headers()
        if body:
            handler.wfile.write(data)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    """A local Hub with one repo, `org/tiny`, and huggingface_hub pointed at it (online)."""
    constants = pytest.importorskip("huggingface_hub.constants")
    server = Hub({"model.safetensors": os.urandom(50_000), "sub/extra.bin": b"extra"})
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def test_hf_source_pins_the_revision_and_shares_the_hf_cache(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    data = hub.files["model.safetensors"]
    art = zoo.Artifact(
        "tiny.safetensors", urls=("hf:org/tiny@main/model.safetensors",), sha256=hashlib.sha256(data).hexdigest()
    )
    store = Store()
    entry = store.fetch_entry(art)
    assert entry.path.read_bytes() == data
    assert entry.revision == COMMIT and entry.source == f"hf:org/tiny@{COMMIT}/model.safetensors"
    assert ("GET", "/api/models/org/tiny/revision/main") in hub.requests
    assert any(path == f"/org/tiny/resolve/{COMMIT}/model.safetensors" for _, path in hub.requests)
    blob = store.root / "hf" / "hub" / "models--org--tiny" / "snapshots" / COMMIT / "model.safetensors"
    assert blob.resolve().stat().st_ino == entry.path.stat().st_ino  # one copy on disk, seen by both caches
    # offline, a file in the Hugging Face cache is found without any request
    seen = len(hub.requests)
    store.quarantine("tiny.safetensors", "test")
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert store.fetch_entry(art).revision == COMMIT
    assert len(hub.requests) == seen


def test_hf_source_errors_are_download_errors(hub: Hub) -> None:
    with pytest.raises(zoo.DownloadError, match="hf:org/tiny@main/nope.bin"):
        Store().fetch(zoo.Artifact("nope.bin", urls=("hf:org/tiny@main/nope.bin",)))


@pytest.mark.parametrize(
    "url", ["hf:org/tiny@main/../../x", "hf:org/tiny/../x", "hf:../x/y", "hf:org/tiny@main//etc/passwd"]
)
def test_hf_urls_with_traversal_are_refused(url: str) -> None:
    from zoo.store.hf import parse_hf

    with pytest.raises(ValueError, match="is not hf:"):
        parse_hf(url)


def _wheel_site(site: Path) -> None:
    """What `pip install acme-weights` leaves: a package with a weight file, and its RECORD."""
    (site / "acme_weights").mkdir(parents=True)
    (site / "acme_weights" / "w.safetensors").write_bytes(b"packaged weights")
    dist = site / "acme_weights-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-weights\nVersion: 1.0\n")
    (dist / "RECORD").write_text("acme_weights/w.safetensors,,16\nacme_weights-1.0.dist-info/METADATA,,\n")


def test_pkg_source_reads_installed_packages_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _wheel_site(tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    sha = hashlib.sha256(b"packaged weights").hexdigest()
    art = zoo.Artifact("acme.safetensors", urls=("pkg:acme-weights/acme_weights/w.safetensors",), sha256=sha)
    entry = Store().fetch_entry(art)
    assert entry.path.read_bytes() == b"packaged weights" and entry.source.startswith("pkg:acme-weights/")
    with pytest.raises(zoo.OfflineError):  # a file the package does not ship
        Store().fetch(zoo.Artifact("x.bin", urls=("pkg:acme-weights/acme_weights/other.bin",)))
    monkeypatch.delenv("ZOO_OFFLINE")
    with pytest.raises(zoo.DownloadError, match="pip install no-such-dist"):
        Store().fetch(zoo.Artifact("y.bin", urls=("pkg:no-such-dist/y.bin",)))
    with pytest.raises(ValueError, match="pkg:distribution"):
        Store().fetch(zoo.Artifact("z.bin", urls=("pkg:acme-weights/../../etc/passwd",)))


def test_file_source_copies_and_verifies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "w.bin"
    src.write_bytes(b"local")
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    good = zoo.Artifact("fw.bin", urls=(src.as_uri(),), sha256=hashlib.sha256(b"local").hexdigest())
    assert Store().fetch(good).read_bytes() == b"local"
    with pytest.raises(zoo.ChecksumError):
        Store().fetch(zoo.Artifact("fw2.bin", urls=(str(src),), sha256="0" * 64))


def _repo_archive(path: Path, commit: str, extra: list[tarfile.TarInfo] = ()) -> bytes:
    """A GitHub-style archive: pax header with the commit, one top folder, a hubconf.py, a symlink."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT, pax_headers={"comment": commit}) as tar:
        for name, data in {
            "repo-main/hubconf.py": b"dependencies = []\n",
            "repo-main/pkg/model.py": b"X = 1\n",
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("repo-main/escape")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
        for info in extra:
            tar.addfile(info, io.BytesIO(b"x" * info.size))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def test_repo_snapshot_extracts_safely_and_pins_the_commit(file_server, monkeypatch: pytest.MonkeyPatch) -> None:
    _repo_archive(file_server.root / "gh" / "owner" / "repo" / "archive" / "main.tar.gz", COMMIT)
    monkeypatch.setenv("ZOO_MIRRORS", f"https://github.com={file_server.url}/gh")
    folder = repo_snapshot("owner", "repo", "main")
    assert folder.name == COMMIT and (folder / "hubconf.py").read_text() == "dependencies = []\n"
    assert (folder / "pkg" / "model.py").is_file() and not (folder / "escape").exists()
    assert file_server.paths() == ["/gh/owner/repo/archive/main.tar.gz"]
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert repo_snapshot("owner", "repo", "main") == folder  # the ref stays pinned, offline too
    assert repo_snapshot("owner", "repo", COMMIT) == folder
    assert len(file_server.requests) == 1


def test_repo_snapshot_checks_the_commit_and_refuses_traversal(file_server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOO_MIRRORS", f"https://github.com={file_server.url}/gh")
    other = "f" * 40
    _repo_archive(file_server.root / "gh" / "o" / "r" / "archive" / f"{other}.tar.gz", COMMIT)
    with pytest.raises(zoo.ChecksumError, match=f"holds commit {COMMIT}"):
        repo_snapshot("o", "r", other)
    evil = tarfile.TarInfo("repo-main/../../evil.py")
    evil.size = 1
    _repo_archive(file_server.root / "gh" / "o" / "r" / "archive" / "main.tar.gz", COMMIT, [evil])
    with pytest.raises(zoo.InputError, match="unsafe member name"):
        repo_snapshot("o", "r", "main")
    assert not list(Store().root.rglob("evil.py"))


HOSTILE = ["../x", "/etc/passwd", "C:\\x", "a/../../b", "..", ".hidden", "a\x00b", "a\\..\\b"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused_before_any_filesystem_access(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "never-created"
    monkeypatch.setenv("ZOO_HOME", str(root))
    store = Store()
    with pytest.raises(ValueError, match="unsafe"):
        zoo.Artifact(name, urls=("https://example.invalid/x",))
    with pytest.raises(ValueError, match="unsafe"):
        store.cached(name)
    with pytest.raises(ValueError, match="unsafe"):
        remove(store, [name])
    with pytest.raises(ValueError, match="unsafe"):
        store.quarantine(name, "test")
    with pytest.raises(ValueError, match="unsafe"):
        repo_snapshot(name, "repo", "main")
    with pytest.raises(ValueError, match="unsafe"):
        repo_snapshot("owner", "repo", name)
    assert not root.exists()
