"""The hub sandbox: hub code cannot start a package installer by any route (a fake `pip` and `python` first on
PATH record every call), cannot reach the network through subprocesses when offline, and leaves nothing patched."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import zoo
from tests.test_hub import write_repo

FAKES = ("pip", "pip3", "python", "python3", "uv", "curl", "wget", "git")

ROUTES = {
    "shell string": 'subprocess.check_output("pip install x", shell=True)',
    "os.system python -m pip": 'os.system("python -m pip install x")',
    "sh -c nested": 'subprocess.run(["/bin/sh", "-c", "cd . && sh -c \'python3 -m pip install x\'"])',
    "os.popen": 'os.popen("pip3 install x").read()',
    "argument list": 'subprocess.call(["pip", "install", "x"])',
    "sys.executable -m pip": 'subprocess.call([sys.executable, "-m", "pip", "install", "x"])',
    "-mpip": 'subprocess.call(["python3", "-mpip", "install", "x"])',
    "uv pip": 'subprocess.call(["uv", "pip", "install", "x"])',
    "ensurepip": 'subprocess.call(["python", "-m", "ensurepip"])',
    "$(...)": 'subprocess.call("echo $(pip install x)", shell=True)',
    "os.spawnlp": 'os.spawnlp(os.P_WAIT, "pip", "pip", "install", "x")',
    "os.posix_spawnp": 'os.waitpid(os.posix_spawnp("pip", ["pip", "install", "x"], dict(os.environ)), 0)',
    "os.execvp": 'os.execvp("pip", ["pip", "install", "x"])',
    "pty.spawn": 'pty.spawn(["pip", "install", "x"])',
    "fork_exec": '_posixsubprocess.fork_exec(["pip", "install", "x"], *([None] * 22))',
    "import pip": '__import__("pip")',
    "ctypes libc system": 'ctypes.CDLL(None).system(b"pip install x")',
}

HUBCONF = '''
import _posixsubprocess, ctypes, logging, os, pty, subprocess, sys

LOGGER = logging.getLogger("hubconf")


def net(route=None):
    """Try to install something the way yolov5's check_requirements does: errors are logged, loading goes on."""
    import torch.nn as nn

    model = nn.Identity()
    model.refused = []
    try:
        {code}
    except Exception as exc:
        LOGGER.warning("requirements: %s", exc)
        model.refused.append(type(exc).__name__)
    return model
'''


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Executables named like installers and network tools, first on PATH; each call appends to `calls.txt`."""
    folder = tmp_path / "fakebin"
    folder.mkdir()
    calls = tmp_path / "calls.txt"
    for name in FAKES:
        path = folder / name
        path.write_text(f'#!/bin/sh\necho "{name} $*" >> "{calls}"\n')
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return calls


def _originals() -> dict[str, object]:
    import _posixsubprocess
    import pty

    return {
        "subprocess.Popen": subprocess.Popen,
        "os.system": os.system,
        "os.popen": os.popen,
        "os.execv": os.execv,
        "os.posix_spawn": os.posix_spawn,
        "pty.spawn": pty.spawn,
        "fork_exec": _posixsubprocess.fork_exec,
        "os._spawnvef": os._spawnvef,
        "os.spawnlp": os.spawnlp,
    }


def test_the_fake_installers_do_run_outside_hub_code(fake_bin: Path) -> None:
    """The control: without the sandbox, the routes below reach the fake pip (so its silence means something)."""
    subprocess.check_output("pip install x", shell=True)
    os.system("python -m pip install x")
    assert fake_bin.read_text().splitlines() == ["pip install x", "python -m pip install x"]


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_hub_code_starts_no_installer(route: str, fake_bin: Path, tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo", {"hubconf.py": HUBCONF.replace("{code}", ROUTES[route])})
    before = _originals()
    model = zoo.load(f"hub:{repo}/net", trust=True, route=route)
    assert model.module.refused == ["SandboxError"]
    assert not fake_bin.exists(), fake_bin.read_text()
    assert _originals() == before
    subprocess.check_output("pip install after", shell=True)  # the guard ends with the hub call
    assert fake_bin.read_text() == "pip install after\n"


def test_refusal_is_typed_one_line_and_everything_is_restored_after_an_error(fake_bin: Path, tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo", {"hubconf.py": "import os\nos.system('pip install x')\ndef net():\n  pass\n"})
    before = _originals()
    with pytest.raises(zoo.UntrustedCodeError, match="never installs packages") as info:
        zoo.load(f"hub:{repo}/net", trust=True)
    assert isinstance(info.value, PermissionError) and "\n" not in str(info.value)
    assert _originals() == before and not fake_bin.exists()
    env = {**os.environ, "ZOO_TRUST": str(repo)}
    out = subprocess.run([sys.executable, "-m", "zoo", "predict", f"hub:{repo}/net", "x.jpg"],
                         capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)  # fmt: skip
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "never installs packages" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not fake_bin.exists()


NETWORK = {
    "curl": 'subprocess.run("curl -s http://example.com", shell=True)',
    "wget": 'subprocess.run(["wget", "http://example.com"])',
    "git clone": 'subprocess.run(["git", "clone", "https://github.com/a/b"])',
    "git fetch in a shell": 'os.system("cd . && git -C . fetch origin")',
    "git ls-remote": 'subprocess.check_output("git ls-remote https://github.com/a/b", shell=True)',
    "git pull": 'subprocess.run(["git", "pull"])',
}


@pytest.mark.parametrize("route", sorted(NETWORK))
def test_offline_hub_code_starts_nothing_that_reaches_the_network(
    route: str, fake_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = f"{NETWORK[route]}\n        subprocess.run(['git', 'status'])"
    repo = write_repo(tmp_path / "repo", {"hubconf.py": HUBCONF.replace("{code}", code)})
    assert zoo.load(f"hub:{repo}/net", trust=True, route=route).module.refused == []  # online: allowed
    assert route.split()[0] in fake_bin.read_text()
    fake_bin.unlink()
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert zoo.load(f"hub:{repo}/net", trust=True, route=route).module.refused == ["SandboxError"]
    assert not fake_bin.exists()  # refused before `git status` (local) ran too: the first refusal stops the entry


def test_offline_local_git_still_runs(fake_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = 'subprocess.run("git status && git describe --tags", shell=True)'
    repo = write_repo(tmp_path / "repo", {"hubconf.py": HUBCONF.replace("{code}", code)})
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert zoo.load(f"hub:{repo}/net", trust=True).module.refused == []
    assert fake_bin.read_text().splitlines() == ["git status", "git describe --tags"]


@pytest.mark.parametrize(
    ("command", "refused"),
    [
        (["/bin/sh", "-c", 'pip install "torch>=1.7.0" "numpy"'], True),  # yolov5 v7.0's check_requirements
        ("cd /x && /usr/bin/python3.11 -m pip install y", True),
        ("python -c \"__import__('pip').main(['install', 'x'])\"", True),
        ("`pip install x`", True),
        ("conda install -y x", True),
        (["pipx", "run", "x"], True),
        ("git status", False),
        (["echo", "pipeline"], False),
        ("python -c 'import sys; print(sys.version)'", False),
        ("echo 'unbalanced", False),
        ("nvidia-smi", False),
    ],
)
def test_command_lines_are_read_like_a_shell(command: object, refused: bool) -> None:
    from zoo_hub.sandbox import refusal

    assert (refusal(command) is not None) is refused


def test_offline_hub_code_cannot_even_resolve_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = 'socket.getaddrinfo("example.com", 443)'
    repo = write_repo(tmp_path / "repo", {"hubconf.py": "import socket\n" + HUBCONF.replace("{code}", code)})
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert zoo.load(f"hub:{repo}/net", trust=True).module.refused == ["OfflineError"]


def test_the_executable_of_a_popen_counts() -> None:
    from zoo_hub.sandbox import guarded

    with guarded(), pytest.raises(zoo.UntrustedCodeError, match="never installs packages"):
        subprocess.run(["harmless", "install", "x"], executable="pip")
