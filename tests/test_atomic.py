"""The one atomic-write helper: all or nothing, no temporary file left, the user's umask, a full disk is one line."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from zoo._atomic import atomic_path, atomic_write, atomic_write_bytes, atomic_write_text
from zoo.errors import DiskFullError, ZooError


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _write_then_fail(target: Path, error: BaseException) -> None:
    with atomic_write(target, mode="w") as f:
        f.write("half of the new")
        raise error


def _write_path_then_fail(target: Path, error: BaseException) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise error


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_an_error_mid_write_leaves_the_old_file_and_no_temporary(tmp_path: Path, error: BaseException) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    with pytest.raises(type(error)):
        _write_then_fail(target, error)
    assert target.read_text() == "old"
    assert _names(tmp_path) == ["state.json"]
    with pytest.raises(type(error)):
        _write_path_then_fail(tmp_path / "new.pt", error)
    assert _names(tmp_path) == ["state.json"]


def test_the_target_is_replaced_whole_and_only_at_the_end(tmp_path: Path) -> None:
    target = tmp_path / "w.bin"
    target.write_bytes(b"old")
    with atomic_write(target) as f:
        f.write(b"new bytes")
        assert target.read_bytes() == b"old"  # readers see the old file until the rename
        assert len(_names(tmp_path)) == 2
    assert target.read_bytes() == b"new bytes"
    atomic_write_text(tmp_path / "t.txt", "héllo")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo"
    atomic_write_bytes(target, b"again")
    assert target.read_bytes() == b"again"
    assert _names(tmp_path) == ["t.txt", "w.bin"]


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_new_files_get_the_users_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        with atomic_path(tmp_path / "b.bin") as tmp:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)  # like tempfile.mkstemp or safetensors
            os.close(fd)
    finally:
        os.umask(old)
    for name in ("a.txt", "b.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name


def test_a_full_disk_is_one_typed_line_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "big.bin"

    with pytest.raises(DiskFullError) as info:
        _write_path_then_fail(target, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    assert isinstance(info.value, ZooError) and isinstance(info.value, OSError)
    assert info.value.errno == errno.ENOSPC and info.value.path == str(target)
    assert "full" in str(info.value) and "\n" not in str(info.value)
    assert _names(tmp_path) == []


def test_only_new_file_modes_are_accepted(tmp_path: Path) -> None:
    with pytest.raises(ZooError, match="mode must be"), atomic_write(tmp_path / "x", mode="ab"):
        pass
    assert _names(tmp_path) == []
