"""Hub repo archives from a mirror: trust in a commit is bound to the archive bytes first trusted (same cache, fresh
cache, lockfile on another machine), the default branch is main then master, and hostile layouts are refused."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import zoo
from tests.test_hub import SHA1, _github_archive, marker_repo, tiny_repo
from zoo.store import repo_snapshot


def _serve(file_server, ref: str, data: bytes, repo: str = "octo/tiny") -> str:
    path = f"/{repo}/archive/{ref}.tar.gz"
    target = file_server.root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return path


@pytest.fixture
def archives(tmp_path: Path, file_server, monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """A good and an evil archive of octo/tiny that both claim commit SHA1 (the evil one's import writes a marker)."""
    monkeypatch.setenv("ZOO_MIRRORS", f"https://github.com={file_server.url}")
    monkeypatch.setenv("ZOO_RETRIES", "1")
    good = _github_archive(tiny_repo(tmp_path / "good"), "tiny-main", SHA1)
    evil_repo = marker_repo(tmp_path / "evil", tmp_path / "pwned")
    (evil_repo / "hubconf.py").write_text((evil_repo / "hubconf.py").read_text() + "\ntiny = evil\n")
    evil = _github_archive(evil_repo, "tiny-main", SHA1)
    assert good != evil
    return {"good": good, "evil": evil}


def _zoo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)  # fmt: skip


def test_other_bytes_under_a_trusted_commit_are_refused_same_and_fresh_cache(
    archives, file_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    _serve(file_server, "main", archives["good"])
    assert _zoo("trust", f"octo/tiny@{SHA1}").returncode == 0
    assert zoo.load("hub:octo/tiny/tiny").module.width == 4  # first use: the archive's sha256 is bound
    bindings = zoo.trust.archive_bindings()
    assert list(bindings) == [f"octo/tiny@{SHA1}"] and len(bindings[f"octo/tiny@{SHA1}"]) == 64
    assert bindings[f"octo/tiny@{SHA1}"][:16] in _zoo("trust", "--list").stdout
    _serve(file_server, "main", archives["evil"])
    _serve(file_server, SHA1, archives["evil"])
    # same cache: the commit's snapshot is reused without a fetch; a refresh of the branch is refused
    assert zoo.load(f"hub:octo/tiny:{SHA1}/tiny").module.width == 4
    with pytest.raises(zoo.ChecksumError, match=f"for commit {SHA1[:12]} has sha256 .* not the .* first recorded"):
        repo_snapshot("octo", "tiny", "main", refresh=True)
    # a fresh cache (same user): the trust file's binding refuses it
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "fresh-cache"))
    with pytest.raises(zoo.UntrustedCodeError, match=f"at commit {SHA1[:12]} was trusted with archive sha256") as info:
        zoo.load("hub:octo/tiny/tiny")
    assert "\n" not in str(info.value)
    out = _zoo("predict", "hub:octo/tiny/tiny", "x.jpg", env={"ZOO_HOME": str(tmp_path / "fresh-cache-2")})
    assert out.returncode == 1 and "was trusted with archive sha256" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "pwned").exists()
    # removing the commit's trust removes its binding: trusting the new bytes is an explicit act
    assert _zoo("trust", "--remove", f"octo/tiny@{SHA1}").returncode == 0
    assert zoo.trust.archive_bindings() == {}


def test_the_good_archive_after_a_hostile_one_still_loads(archives, file_server) -> None:
    """Refused bytes are not kept in the cache nor recorded: the next fetch can get the right ones."""
    _serve(file_server, "main", archives["good"])
    zoo.load("hub:octo/tiny/tiny", trust=True)
    _serve(file_server, "main", archives["evil"])
    with pytest.raises(zoo.ChecksumError):
        repo_snapshot("octo", "tiny", "main", refresh=True)
    assert not (zoo.settings.cache_root() / "weights" / "github-octo-tiny-main.tar.gz").exists()
    _serve(file_server, "main", archives["good"])
    zoo.settings.cache_root().joinpath("repos/octo/tiny/refs/main").unlink()
    assert (repo_snapshot("octo", "tiny", "main") / "hubconf.py").is_file()
    assert zoo.load("hub:octo/tiny/tiny", trust=True).module.width == 4


def test_a_lockfile_holds_the_archive_on_another_machine(
    archives, file_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _serve(file_server, "main", archives["good"])
    lock = tmp_path / "zoo.lock"
    env = {"ZOO_TRUST": f"octo/tiny@{SHA1}"}
    out = _zoo("fetch", "hub:octo/tiny/tiny", "--lock", str(lock), env=env)
    assert out.returncode == 0, out.stderr
    (locked,) = json.loads(lock.read_text())["models"]
    assert locked["tag"] == "code" and locked["format"] == "repo" and locked["revision"] == SHA1
    assert len(locked["sha256"]) == 64
    # another machine: fresh cache, fresh config; the mirror now serves other code under the same commit
    other = {**env, "ZOO_HOME": str(tmp_path / "m2"), "ZOO_CONFIG": str(tmp_path / "m2cfg" / "config.toml")}
    _serve(file_server, "main", archives["evil"])
    refused = _zoo("fetch", "--locked", str(lock), env=other)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert locked["sha256"][:16] in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert _zoo("predict", "hub:octo/tiny/tiny", "x.jpg", env={**other, "ZOO_OFFLINE": "1"}).returncode == 1
    assert not (tmp_path / "pwned").exists()
    # with the right bytes available the lockfile installs them, and loads use them whatever the mirror says
    _serve(file_server, "main", archives["good"])
    assert _zoo("fetch", "--locked", str(lock), env=other).returncode == 0
    _serve(file_server, "main", archives["evil"])
    monkeypatch.setenv("ZOO_HOME", other["ZOO_HOME"])
    monkeypatch.setenv("ZOO_CONFIG", other["ZOO_CONFIG"])
    monkeypatch.setenv("ZOO_TRUST", env["ZOO_TRUST"])
    assert zoo.load("hub:octo/tiny/tiny").module.width == 4
    assert not (tmp_path / "pwned").exists()


def test_no_ref_means_main_then_master(tmp_path: Path, file_server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOO_MIRRORS", f"https://github.com={file_server.url}")
    monkeypatch.setenv("ZOO_RETRIES", "1")
    master = _serve(file_server, "master", _github_archive(tiny_repo(tmp_path / "src"), "tiny-master", SHA1))
    assert zoo.load("hub:octo/tiny/tiny", trust=True).module.width == 4
    assert file_server.paths() == ["/octo/tiny/archive/main.tar.gz", master]  # main is a 404 here
    assert zoo.load("hub:octo/tiny/tiny", trust=True).module.width == 4
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert zoo.load("hub:octo/tiny/tiny", trust=True).module.width == 4
    assert len(file_server.requests) == 2  # the cached default branch is found without asking again
    monkeypatch.delenv("ZOO_OFFLINE")
    with pytest.raises(zoo.DownloadError, match="neither a main nor a master branch"):
        zoo.load("hub:octo/nothing/tiny", trust=True)


def _hostile(members: list[tuple[str, str, bytes]]) -> bytes:
    """A GitHub-style archive from (name, kind, data) with kind file, dir, sym, hard, fifo or char."""
    kinds = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE,
             "fifo": tarfile.FIFOTYPE, "char": tarfile.CHRTYPE}  # fmt: skip
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT, pax_headers={"comment": SHA1}) as tar:
        for name, kind, data in [("tiny-main/hubconf.py", "file", b"def tiny():\n    pass\n"), *members]:
            info = tarfile.TarInfo(name)
            info.type = kinds[kind]
            if kind in {"sym", "hard"}:
                info.linkname = data.decode()
                data = b""
            info.size = len(data) if kind == "file" else 0
            tar.addfile(info, io.BytesIO(data) if kind == "file" else None)
    return buf.getvalue()


HOSTILE = {
    "file then folder": [("tiny-main/x", "file", b"1"), ("tiny-main/x/y.py", "file", b"2")],
    "folder then file": [("tiny-main/x/y.py", "file", b"1"), ("tiny-main/x", "file", b"2")],
    "file then dir member": [("tiny-main/x", "file", b"1"), ("tiny-main/x", "dir", b"")],
    "a file twice": [("tiny-main/x.py", "file", b"1"), ("tiny-main/x.py", "file", b"2")],
    "absolute": [("/tmp/zoo-evil.py", "file", b"1")],
    "dot dot": [("tiny-main/../../zoo-evil.py", "file", b"1")],
    "trailing newline": [("tiny-main/x.py\n", "file", b"1")],
    "fifo": [("tiny-main/pipe", "fifo", b"")],
    "device": [("tiny-main/dev", "char", b"")],
}


@pytest.mark.parametrize("layout", sorted(HOSTILE))
def test_hostile_archive_layouts_are_one_line_errors(layout: str, file_server, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ZOO_MIRRORS", f"https://github.com={file_server.url}")
    _serve(file_server, "main", _hostile(HOSTILE[layout]))
    with pytest.raises(zoo.InputError) as info:
        zoo.load("hub:octo/tiny:main/tiny", trust=True)
    assert "\n" not in str(info.value) and "refused" in str(info.value)
    root = zoo.settings.cache_root()
    assert not (root / "repos" / "octo" / "tiny" / SHA1).exists()
    assert not list((root / "repos").rglob("*.py")) and not Path("/tmp/zoo-evil.py").exists()
    assert not (root / "weights" / "github-octo-tiny-main.tar.gz").exists()  # not kept: the next try refetches
    if layout != "file then folder":
        return
    out = _zoo("predict", "hub:octo/tiny:main/tiny", "x.jpg", env={"ZOO_TRUST": "octo/tiny"})
    assert out.returncode == 1 and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_links_in_a_repo_archive_are_never_created(file_server, monkeypatch) -> None:
    """yolov5's master archive holds `CLAUDE.md -> AGENTS.md`: links are skipped, never followed or made."""
    monkeypatch.setenv("ZOO_MIRRORS", f"https://github.com={file_server.url}")
    members = [("tiny-main/in", "sym", b"hubconf.py"), ("tiny-main/out", "sym", b"/etc/passwd"),
               ("tiny-main/hard", "hard", b"/etc/passwd")]  # fmt: skip
    _serve(file_server, "main", _hostile(members))
    folder = repo_snapshot("octo", "tiny", "main")
    assert sorted(p.name for p in folder.iterdir()) == [".zoo-snapshot.json", "hubconf.py"]
