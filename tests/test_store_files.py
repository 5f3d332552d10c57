"""Files zoo writes: the user's umask, nothing half-written on a full disk, a read-only cache, safe names."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import zoo
from tests.store_helpers import install_plugin, plugin_env, publish
from zoo.cli import cli
from zoo.store import Store

WRITE_EVERYTHING = """
import os, sys
from pathlib import Path
os.umask(int(sys.argv[1], 8))
out = Path(sys.argv[2])
import torch
import zoo
from zoo.cli import cli

def zoo_cli(*args):
    try:
        cli.main(list(args), prog_name="zoo", standalone_mode=False)
    except SystemExit as exc:
        assert not exc.code, exc.code

zoo_cli("fetch", "umaskw", "--lock", str(out / "zoo.lock"), "--quiet")
model = zoo.load("umaskw", device="cpu")
model.save(out / "saved.safetensors")
model.save(out / "saved_folder")
x, y = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 0, 1, 2])
model.finetune((x, y), epochs=1, batch_size=4, out=str(out / "run"), progress=False)
zoo_cli("convert", sys.argv[3], str(out / "converted.safetensors"))
"""


def _files(*roots: Path, skip: Path | None = None) -> dict[str, int]:
    modes = {}
    for root in roots:
        for folder, _, names in os.walk(root):
            for name in names:
                path = Path(folder) / name
                if skip is not None and path.is_relative_to(skip):
                    continue
                modes[str(path.relative_to(root.parent))] = stat.S_IMODE(path.stat().st_mode)
    return modes


@pytest.mark.parametrize("umask", ["022", "002"])
def test_every_file_zoo_writes_has_the_umask_mode(
    umask: str, file_server, tiny_state_dict_file: Path, tmp_path: Path, isolated: Path
) -> None:
    publish(file_server, "umask-0000.pth", tiny_state_dict_file.read_bytes())
    weights = {"umaskw": {"url": f"{file_server.url}/umask-0000.pth"}}
    env = plugin_env(install_plugin(tmp_path / "site"), weights, ZOO_PROGRESS="0")
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(WRITE_EVERYTHING), umask, str(out), str(tiny_state_dict_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    modes = _files(isolated, out)
    expected = 0o666 & ~int(umask, 8)
    written = {"weights/umask-0000.safetensors", "weights/umask-0000.pth", "out/zoo.lock", "out/converted.safetensors"}
    assert {f"{Path(p).parent.name}/{Path(p).name}" for p in modes} >= written
    assert any(p.endswith("best.safetensors") for p in modes) and any(p.endswith("last.pt") for p in modes)
    wrong = {path: oct(mode) for path, mode in modes.items() if mode != expected}
    assert wrong == {}, f"umask {umask}: expected {oct(expected)}"


@contextlib.contextmanager
def _small_disk(path: Path, size: str) -> Iterator[bool]:
    """A real tmpfs of `size` mounted at `path` when this process may mount one (root), else nothing."""
    path.mkdir(parents=True, exist_ok=True)
    if (
        os.geteuid() != 0
        or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)]).returncode
    ):
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


CONVERT_LIMITED = """
import resource, signal, sys
if sys.argv[3] == "rlimit":  # no tmpfs to fill: file writes past the limit fail with EFBIG, like a full disk
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
from zoo.cli import main
sys.argv = ["zoo", "convert", sys.argv[1], sys.argv[2]]
main()
"""


def test_a_full_disk_during_conversion_is_one_line_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    src = tmp_path / "big.pth"
    torch.save({"w": torch.zeros(400_000)}, src)  # 1.6 MB of tensors, for a 1 MB disk
    disk = tmp_path / "disk"
    with _small_disk(disk, "1m") as mounted:
        dst = disk / "big.safetensors"
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                textwrap.dedent(CONVERT_LIMITED),
                str(src),
                str(dst),
                "tmpfs" if mounted else "rlimit",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        _assert_one_line_disk_full(proc)
        assert "Traceback" not in proc.stderr
        assert sorted(os.listdir(disk)) == []  # no temporary file left


def _assert_one_line_disk_full(proc: subprocess.CompletedProcess[str]) -> None:
    """The process failed with exit 1 and one `error:` line saying the disk is full."""
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "full" in lines[0], proc.stderr


def test_a_full_disk_during_a_cache_conversion_leaves_the_cache_clean(tmp_path: Path) -> None:
    import torch

    folder = tmp_path / "weights_path"
    folder.mkdir()
    origin = folder / "fullw-0000.pth"
    torch.save({"w": torch.zeros(400_000)}, origin)  # its conversion (1.6 MB) cannot fit the 1 MB disk
    env = plugin_env(install_plugin(tmp_path / "site"), {"fullw": {"url": "https://example.invalid/fullw-0000.pth"}})
    disk = tmp_path / "disk"
    with _small_disk(disk, "1m") as mounted:
        env.update(ZOO_HOME=str(disk / "home"), ZOO_WEIGHTS_PATH=str(folder), ZOO_OFFLINE="1")
        script = CONVERT_LIMITED.replace('"convert", sys.argv[1], sys.argv[2]', '"fetch", "fullw"')
        proc = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(script), "-", "-", "tmpfs" if mounted else "rlimit"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        _assert_one_line_disk_full(proc)
        weights = disk / "home" / "weights"
        assert [p.name for p in weights.iterdir() if not p.name.endswith((".lock", ".lock.holder"))] == []


@contextlib.contextmanager
def _read_only(folder: Path) -> Iterator[None]:
    """`folder` read-only: a read-only bind mount as root (who ignores modes), else its modes."""
    if os.geteuid() == 0:
        subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
            yield
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=False)
        return
    paths = [folder, *folder.rglob("*")]
    for path in paths:
        path.chmod(path.stat().st_mode & ~0o222)
    try:
        yield
    finally:
        for path in paths:
            path.chmod(path.stat().st_mode | 0o200)


def test_verify_on_a_read_only_cache_reports_without_a_traceback(file_server, isolated: Path) -> None:
    sha = publish(file_server, "ro.safetensors", b"r" * 1000)
    publish(file_server, "bad.safetensors", b"b" * 1000)
    store = Store()
    store.fetch(zoo.Artifact("ro.safetensors", urls=(f"{file_server.url}/ro.safetensors",), sha256=sha))
    bad = zoo.Artifact("bad.safetensors", urls=(f"{file_server.url}/bad.safetensors",), format="file")
    store.fetch(bad)
    (store.weights_dir / "bad.safetensors").write_bytes(b"B" * 1000)  # bit rot
    try:
        with _read_only(isolated):
            result = CliRunner().invoke(cli, ["cache", "verify"])
    except subprocess.CalledProcessError:
        pytest.skip("cannot make a read-only mount here")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "corrupt: bad.safetensors" in result.output and "not quarantined" in result.output
    assert "1 ok, 1 bad" in result.output
    assert (store.weights_dir / "bad.safetensors").exists()


@pytest.mark.parametrize(
    "name", ["w.pth\n", "CON", "aux", "NUL.pth", "com1", "Lpt3.safetensors", "con.", "a/b.pth", "..pth", ".hidden"]
)
def test_unsafe_file_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="unsafe file name"):
        zoo.Artifact(name, urls=("https://example.invalid/x",))
    assert "error:" in CliRunner().invoke(cli, ["cache", "rm", name]).output


@pytest.mark.parametrize("name", ["console.pth", "com10.pth", "auxiliary.safetensors", "nullable.bin"])
def test_names_that_only_look_reserved_are_fine(name: str) -> None:
    assert zoo.Artifact(name, urls=("https://example.invalid/x",)).name == name


def test_lockfile_sha256_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    from zoo.store.lockfile import read_lock

    lock = tmp_path / "zoo.lock"
    entry = {"model": "m", "tag": "v1", "file": "m.pth", "format": "state_dict-pickle", "source": "https://e/m.pth"}
    lock.write_text(json.dumps({"version": 1, "models": [{**entry, "sha256": "a" * 64 + "\n"}]}))
    with pytest.raises(zoo.InputError, match="not a full sha256"):
        read_lock(lock)
