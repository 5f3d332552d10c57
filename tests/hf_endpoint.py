"""A Hugging Face Hub–compatible HTTP endpoint on 127.0.0.1, for tests: the routes huggingface_hub uses to read
model repos (revision and tree APIs, file resolution) and to write them (create a repo, validate a model
card's metadata, preupload, commit).

Repos live in memory as commits of whole file sets. Files named like weights (`*.safetensors`, `*.bin`, `*.pt`)
are reported as LFS files (their sha256 in the tree and ETag), the others as git blobs. The preupload route
answers `regular` for every file, so uploads come inline in the commit payload: this server keeps no LFS or
Xet storage. Point huggingface_hub at it with `HF_ENDPOINT=server.url`.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["HubServer", "git_oid", "serving"]

_REPO = r"(?P<repo>[\w.-]+/[\w.-]+)"
_LFS = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")


def git_oid(data: bytes) -> str:
    """The git blob id of `data`."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    """A model repo: commits (sha -> files) and branches (name -> sha)."""

    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)

    def commit(self, files: dict[str, bytes], branch: str = "main", message: str = "") -> str:
        """Record a commit of `files` on top of `branch`; returns its sha."""
        parent = self.refs.get(branch, "")
        content = json.dumps([parent, message, sorted((k, git_oid(v)) for k, v in files.items())]).encode()
        sha = hashlib.sha1(content).hexdigest()
        self.commits[sha] = dict(files)
        self.refs[branch] = sha
        return sha

    def resolve(self, rev: str) -> str | None:
        """The commit sha of a branch or a sha, or None."""
        return self.refs.get(rev) or (rev if rev in self.commits else None)


class HubServer:
    """The endpoint (see the module docstring). `requests` records `(method, path)`; `tokens` the bearer tokens."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.tokens: list[str] = []
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def add(self, repo_id: str, files: dict[str, bytes], branch: str = "main") -> str:
        """Commit `files` to `repo_id` (created if needed); returns the commit sha."""
        return self.repos.setdefault(repo_id, Repo()).commit(files, branch)

    def stop(self) -> None:
        """Stop serving: later connections are refused."""
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- routes ------------------------------------------------------------------------------------

    def route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, dict, bytes]:
        if method == "POST" and path == "/api/repos/create":
            return self._create(json.loads(body or b"{}"))
        if method == "POST" and path == "/api/validate-yaml":  # the model card's metadata header
            return _json({"errors": [], "warnings": []})
        if m := re.fullmatch(rf"/api/models/{_REPO}(?:/revision/(?P<rev>[^/]+))?", path):
            return self._info(m["repo"], unquote(m["rev"] or "main"))
        if m := re.fullmatch(rf"/api/models/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<sub>.*))?", path):
            return self._tree(m["repo"], unquote(m["rev"]), m["sub"] or "")
        if method == "POST" and (m := re.fullmatch(rf"/api/models/{_REPO}/preupload/(?P<rev>[^/]+)", path)):
            files = json.loads(body)["files"]
            return _json(
                {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
            )
        if method == "POST" and (m := re.fullmatch(rf"/api/models/{_REPO}/commit/(?P<rev>[^/]+)", path)):
            return self._commit(m["repo"], unquote(m["rev"]), body)
        if m := re.fullmatch(rf"/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<file>.+)", path):
            return self._resolve(m["repo"], unquote(m["rev"]), m["file"])
        return _error(404, f"no route {method} {path}")

    def _files(self, repo_id: str, rev: str) -> tuple[str, dict[str, bytes]] | None:
        repo = self.repos.get(repo_id)
        sha = repo.resolve(rev) if repo else None
        return (sha, repo.commits[sha]) if repo and sha else None

    def _create(self, payload: dict[str, Any]) -> tuple[int, dict, bytes]:
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
        url = {"url": f"{self.url}/{repo_id}", "name": repo_id}
        if repo_id in self.repos:
            return _json({"error": "You already created this model repo", **url}, 409)
        self.repos[repo_id] = Repo()
        self.repos[repo_id].commit({".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"})
        return _json(url)

    def _info(self, repo_id: str, rev: str) -> tuple[int, dict, bytes]:
        found = self._files(repo_id, rev)
        if found is None:
            return _error(404, f"Repository {repo_id} or revision {rev} not found", "RepoNotFound")
        sha, files = found
        siblings = [{"rfilename": path, **_meta(data)} for path, data in sorted(files.items())]
        return _json({"_id": repo_id, "id": repo_id, "modelId": repo_id, "sha": sha, "private": False,
                      "lastModified": "2026-01-01T00:00:00.000Z", "tags": [], "siblings": siblings})  # fmt: skip

    def _tree(self, repo_id: str, rev: str, sub: str) -> tuple[int, dict, bytes]:
        found = self._files(repo_id, rev)
        if found is None:
            return _error(404, f"Repository {repo_id} or revision {rev} not found", "RepoNotFound")
        _, files = found
        entries = []
        for path, data in sorted(files.items()):
            if sub and not path.startswith(sub.rstrip("/") + "/"):
                continue
            entry: dict[str, Any] = {"type": "file", "oid": git_oid(data), "size": len(data), "path": path}
            if path.endswith(_LFS):
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            entries.append(entry)
        return _json(entries)

    def _commit(self, repo_id: str, rev: str, body: bytes) -> tuple[int, dict, bytes]:
        repo = self.repos.get(repo_id)
        if repo is None:
            return _error(404, f"Repository {repo_id} not found", "RepoNotFound")
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next(line["value"] for line in lines if line["key"] == "header")
        files = dict(repo.commits.get(repo.refs.get(rev, ""), {}))
        for line in lines:
            value = line["value"]
            if line["key"] == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif line["key"] == "deletedFile":
                files.pop(value["path"], None)
            elif line["key"] != "header":
                return _error(400, f"this test Hub does not take {line['key']!r} operations")
        sha = repo.commit(files, rev, header.get("summary", ""))
        return _json({"success": True, "commitOid": sha, "commitUrl": f"{self.url}/{repo_id}/commit/{sha}",
                      "pullRequestUrl": None})  # fmt: skip

    def _resolve(self, repo_id: str, rev: str, path: str) -> tuple[int, dict, bytes]:
        found = self._files(repo_id, rev)
        if found is None or unquote(path) not in found[1]:
            return _error(404, f"{path} not found in {repo_id}@{rev}", "EntryNotFound")
        sha, files = found
        data = files[unquote(path)]
        etag = hashlib.sha256(data).hexdigest() if path.endswith(_LFS) else git_oid(data)
        return 200, {"X-Repo-Commit": sha, "ETag": f'"{etag}"', "Content-Type": "application/octet-stream"}, data


def serving(monkeypatch: Any) -> Iterator[HubServer]:
    """A local Hub endpoint, with huggingface_hub (here and in subprocesses) pointed at it and online.

    The body of each test module's `hub` fixture: `yield from serving(monkeypatch)`.
    """
    from huggingface_hub import constants

    server = HubServer()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_TOKEN", "hf_zoo_test")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    yield server
    server.stop()


def _meta(data: bytes) -> dict[str, Any]:
    return {"size": len(data), "blobId": git_oid(data)}


def _json(obj: Any, status: int = 200) -> tuple[int, dict, bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(obj).encode()


def _error(status: int, message: str, code: str = "") -> tuple[int, dict, bytes]:
    headers = {"Content-Type": "application/json", "X-Error-Message": message}
    if code:
        headers["X-Error-Code"] = code
    return status, headers, json.dumps({"error": message}).encode()


def _handler(server: HubServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _serve(self, body: bool) -> None:
            url = urlsplit(self.path)
            server.requests.append((self.command, url.path))
            auth = self.headers.get("Authorization", "")
            if auth.startswith("Bearer "):
                server.tokens.append(auth[7:])
            length = int(self.headers.get("Content-Length") or 0)
            payload = self.rfile.read(length) if length else b""
            status, headers, data = server.route(self.command, url.path, parse_qs(url.query), payload)
            self.send_response(status)
            for key, value in {**headers, "Content-Length": str(len(data))}.items():
                self.send_header(key, value)
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve(body=True)

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_POST(self) -> None:
            self._serve(body=True)

    return Handler
