"""torch.hub repos without the traps: trust first (pinned to commits), isolated imports, dependencies checked,
nothing installed, downloads through the store, archives through a mirror and offline afterwards."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import zoo
from zoo.cli import cli

SHA1 = "1" * 40
SHA2 = "2" * 40

TINY_HUBCONF = '''
"""A tiny hub repo written by the tests."""
dependencies = ["torch"]

from models.net import Net


def tiny(width=4, marker=None):
    """A tiny conv net.

    Args:
        width: channels of the hidden layer.
    """
    return Net(width)


def _private():
    return None
'''

NET = """
import torch.nn as nn


class Net(nn.Sequential):
    def __init__(self, width):
        super().__init__(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 2, 1))
        self.width = width
"""


def write_repo(root: Path, files: dict[str, str]) -> Path:
    """Write a repo folder from {relative path: source}; returns the folder."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def tiny_repo(root: Path, tag: str = "a") -> Path:
    """A repo with a `models` package whose module records which repo it came from."""
    return write_repo(
        root,
        {
            "hubconf.py": TINY_HUBCONF,
            "models/__init__.py": f"ORIGIN = {tag!r}\n",
            "models/net.py": NET,
        },
    )


def marker_repo(root: Path, marker: Path) -> Path:
    """A repo whose import writes `marker`: proof of whether its code ran."""
    return write_repo(
        root,
        {
            "hubconf.py": f"""
            from pathlib import Path
            Path({str(marker)!r}).write_text("hub code ran")

            def evil():
                '''Looks harmless.'''
                import torch.nn as nn
                return nn.Identity()
            """
        },
    )


def test_local_repo_loads_with_trust_and_passes_kwargs(tmp_path: Path) -> None:
    repo = tiny_repo(tmp_path / "repo")
    model = zoo.load(f"hub:{repo}/tiny", trust=True, width=6, device="cpu")
    assert model.module.width == 6
    out = model.predict(torch.rand(1, 3, 8, 8))
    assert out.shape == (1, 2, 8, 8)
    assert model.spec.task == "hub-module" and model.spec.plugin == "hub"


def test_untrusted_code_never_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "ran.txt"
    repo = marker_repo(tmp_path / "repo", marker)
    with pytest.raises(zoo.UntrustedCodeError, match="is not trusted, so none of its code ran") as info:
        zoo.load(f"hub:{repo}/evil")
    assert "zoo trust" in str(info.value) and "\n" not in str(info.value)
    assert zoo.info(f"hub:{repo}/evil").task == "hub-module"  # resolving runs nothing either
    ls = CliRunner().invoke(cli, ["hub", "ls", str(repo)])
    assert ls.exit_code == 0 and "evil" in ls.output
    helped = CliRunner().invoke(cli, ["hub", "help", str(repo), "evil"])
    assert "Looks harmless." in helped.output
    out = subprocess.run([sys.executable, "-m", "zoo", "predict", f"hub:{repo}/evil", "x.jpg"],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL)  # fmt: skip
    assert out.returncode == 1 and "is not trusted" in out.stderr and "Traceback" not in out.stderr
    monkeypatch.setenv("ZOO_TRUST", "someone/else")
    with pytest.raises(zoo.UntrustedCodeError):
        zoo.load(f"hub:{repo}/evil", trust=False)
    assert not marker.exists()
    zoo.load(f"hub:{repo}/evil", trust=True)
    assert marker.read_text() == "hub code ran"


def test_trust_pinned_to_a_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tiny_repo(tmp_path / "repo")
    write_repo(repo, {".git/HEAD": "ref: refs/heads/main\n", ".git/refs/heads/main": SHA1 + "\n"})
    monkeypatch.setenv("ZOO_TRUST", f"{repo}@{SHA1[:12]}")
    assert zoo.load(f"hub:{repo}/tiny").module.width == 4
    (repo / ".git/refs/heads/main").write_text(SHA2 + "\n")
    with pytest.raises(zoo.UntrustedCodeError, match=f"at commit {SHA2[:12]}"):
        zoo.load(f"hub:{repo}/tiny")


def test_trust_command_writes_lists_and_removes(tmp_path: Path) -> None:
    repo = tiny_repo(tmp_path / "repo")
    runner = CliRunner()
    added = runner.invoke(cli, ["trust", str(repo), f"octo/cat@{SHA1}"])
    assert added.exit_code == 0, added.output
    assert zoo.load(f"hub:{repo}/tiny").module.width == 4
    listed = runner.invoke(cli, ["trust", "--list"])
    assert f"octo/cat@{SHA1}" in listed.output and str(repo) in listed.output
    runner.invoke(cli, ["trust", "--remove", str(repo)])
    with pytest.raises(zoo.UntrustedCodeError):
        zoo.load(f"hub:{repo}/tiny")
    bad = runner.invoke(cli, ["trust", "octo/cat@nothex"])
    assert bad.exit_code == 1 and "not a commit sha" in bad.output


def test_config_file_trust(tmp_path: Path, isolated: Path) -> None:
    repo = tiny_repo(tmp_path / "repo")
    (isolated / "config.toml").write_text(f'trust = ["{repo}"]\n')
    assert zoo.load(f"hub:{repo}/tiny").module.width == 4


def test_two_repos_with_a_models_package_in_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = write_repo(tmp_path / "user", {"models/__init__.py": "ORIGIN = 'user'\n"})
    monkeypatch.syspath_prepend(str(mine))
    import models  # the user's own `models` package

    a = zoo.load(f"hub:{tiny_repo(tmp_path / 'a', 'a')}/tiny", trust=True)
    b = zoo.load(f"hub:{tiny_repo(tmp_path / 'b', 'b')}/tiny", trust=True)
    assert sys.modules["models"] is models and models.ORIGIN == "user"
    assert type(a.module).__module__ == type(b.module).__module__ == "models.net"
    assert type(a.module) is not type(b.module)  # each repo's own class
    assert sys.modules[type(a.module).__module__.replace(".net", "")] is models
    a.predict(torch.rand(1, 3, 4, 4))  # forward runs inside the repo's scope
    assert sys.modules["models"] is models
    del sys.modules["models"]


def test_missing_dependency_is_named_and_nothing_is_installed(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    repo = write_repo(
        tmp_path / "repo",
        {
            "hubconf.py": f"dependencies = ['torch', 'surely_not_installed_pkg']\nopen({str(marker)!r}, 'w')\n"
            "def net():\n    pass\n"
        },  # fmt: skip
    )
    with pytest.raises(zoo.ZooError, match="needs surely_not_installed_pkg, not installed") as info:
        zoo.load(f"hub:{repo}/net", trust=True)
    assert "install it yourself" in str(info.value)
    assert not marker.exists()


def test_hub_code_cannot_pip_install(tmp_path: Path) -> None:
    repo = write_repo(
        tmp_path / "repo",
        {
            "hubconf.py": """
            import subprocess, sys
            subprocess.check_call([sys.executable, "-m", "pip", "install", "surely-not-a-real-package"])

            def net():
                pass
            """
        },  # fmt: skip
    )
    with pytest.raises(zoo.UntrustedCodeError, match="never installs packages"):
        zoo.load(f"hub:{repo}/net", trust=True)


def test_unknown_entry_and_bad_names(tmp_path: Path) -> None:
    repo = tiny_repo(tmp_path / "repo")
    with pytest.raises(zoo.UnsupportedError, match="no entry point 'nope'. Entry points: Net, tiny"):
        zoo.load(f"hub:{repo}/nope", trust=True)
    with pytest.raises(zoo.UnknownModelError, match="not a hub name"):
        zoo.load("hub:just-a-word")


def test_hub_downloads_go_through_the_store_weights_only(tmp_path: Path, file_server, monkeypatch) -> None:
    torch.save({"w": torch.ones(2)}, file_server.root / "w.pth")
    (file_server.root / "evil.pth").write_bytes(_reduce_pickle(tmp_path / "pwned"))
    repo = write_repo(
        tmp_path / "repo",
        {
            "hubconf.py": """
            import torch

            def load(file):
                '''Weights from upstream.'''
                state = torch.hub.load_state_dict_from_url("https://weights.invalid/" + file)
                m = torch.nn.Linear(2, 1)
                m.state = state
                return m
            """
        },  # fmt: skip
    )
    monkeypatch.setenv("ZOO_MIRRORS", f"https://weights.invalid={file_server.url}")
    model = zoo.load(f"hub:{repo}/load", trust=True, file="w.pth")
    assert torch.equal(model.module.state["w"], torch.ones(2))
    assert file_server.paths() == ["/w.pth"]
    record = json.loads((zoo.settings.cache_root() / "weights" / "w.pth.record.json").read_text())
    assert len(record["sha256"]) == 64  # the full hash, recorded at first download
    with pytest.raises(Exception, match="(?i)weights_only|unpickl|unsupported"):
        zoo.load(f"hub:{repo}/load", trust=True, file="evil.pth")
    assert not (tmp_path / "pwned").exists()


def test_offline_hub_code_cannot_reach_the_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = write_repo(
        tmp_path / "repo",
        {
            "hubconf.py": """
            import socket

            def net():
                socket.create_connection(("127.0.0.1", 9), timeout=1)
            """
        },  # fmt: skip
    )
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(zoo.OfflineError, match="hub code tried to connect"):
        zoo.load(f"hub:{repo}/net", trust=True)


def test_github_archive_through_a_mirror_then_offline(tmp_path: Path, file_server, monkeypatch) -> None:
    src = tiny_repo(tmp_path / "src")
    archive = file_server.root / "octo" / "tiny" / "archive" / "main.tar.gz"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(_github_archive(src, "tiny-main", SHA1))
    monkeypatch.setenv("ZOO_MIRRORS", f"https://github.com={file_server.url}")
    monkeypatch.setenv("ZOO_TRUST", f"octo/tiny@{SHA2}")
    with pytest.raises(zoo.UntrustedCodeError, match=f"'octo/tiny' at commit {SHA1[:12]}"):
        zoo.load("hub:octo/tiny/tiny")
    monkeypatch.setenv("ZOO_TRUST", f"octo/tiny@{SHA1}")
    assert zoo.load("hub:octo/tiny/tiny").module.width == 4
    served = len(file_server.requests)
    ls = CliRunner().invoke(cli, ["hub", "ls", "octo/tiny", "--json"])
    assert json.loads(ls.output)["commit"] == SHA1
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert zoo.load("hub:octo/tiny:main/tiny", width=3).module.width == 3
    assert len(file_server.requests) == served  # cached: GitHub is never asked again


def _github_archive(src: Path, top: str, commit: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT, pax_headers={"comment": commit}) as tar:
        for path in sorted(src.rglob("*")):
            tar.add(path, arcname=f"{top}/{path.relative_to(src)}", recursive=False)
    return buf.getvalue()


def _reduce_pickle(marker: Path) -> bytes:
    class Payload:
        def __reduce__(self):
            return (Path.write_text, (marker, "pwned"))

    buf = io.BytesIO()
    torch.save({"w": Payload()}, buf)
    return buf.getvalue()


def test_a_vendored_copy_of_an_installed_library_is_not_imported(tmp_path: Path) -> None:
    """pytorch/vision ships `torchvision/` at its top: the installed torchvision (compiled ops) must stay."""
    import torchvision

    repo = write_repo(
        tmp_path / "vision",
        {
            "torchvision/__init__.py": "raise ImportError('the vendored copy was imported')\n",
            "hubconf.py": "import torchvision\nfrom torchvision.models import resnet18\n",
        },
    )
    model = zoo.load(f"hub:{repo}/resnet18", trust=True, num_classes=3)
    assert sys.modules["torchvision"] is torchvision
    assert model.predict(torch.rand(1, 3, 32, 32)).shape == (1, 3)
