"""Fuzzing archive extraction: tar files with random member names, types, sizes and damage.

Whatever the archive, `extract_tree` (hub repo snapshots) and `import_paths` (`zoo cache import FILE.tar`)
extract only regular files and folders, only under their destination, or raise a typed `ZooError` with one
line; `member_path` accepts only relative names without `..`, drive letters, backslashes or control characters.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz_settings import expect_zoo_errors, fuzz, memory_peak
from zoo.errors import InputError
from zoo.store.archive import archive_commit, extract_tree, member_path

pytestmark = pytest.mark.timeout(300)

#: Name parts an attacker reaches for, next to ordinary ones.
_PARTS = [
    "repo-main", "hubconf.py", "weights", "a", "b.pt", "..", ".", "", "~", "C:", "c:x", "\\", "..\\x", "x\\..",
    "CON", "nul.pth", "a\nb", "\x00", "\x7f", "é", "名前", " ", "x" * 120, "/", "//", "a/../..", ".git",
]  # fmt: skip
_TYPES = [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE, tarfile.CHRTYPE]

member_names = st.one_of(
    st.lists(st.sampled_from(_PARTS), min_size=1, max_size=5).map("/".join),
    st.text(max_size=40),
)


@st.composite
def members(draw: st.DrawFn) -> tuple[str, bytes, bytes, str, int]:
    """(name, type, data, link target, mode) of one member."""
    kind = draw(st.sampled_from(_TYPES))
    data = draw(st.binary(max_size=64)) if kind == tarfile.REGTYPE else b""
    link = draw(member_names) if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
    return draw(member_names), kind, data, link, draw(st.sampled_from([0o644, 0o755, 0o4755, 0o000]))


def build_tar(entries: list[tuple[str, bytes, bytes, str, int]], mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode, format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        for name, kind, data, link, perm in entries:
            info = tarfile.TarInfo(name)
            info.type, info.size, info.linkname, info.mode = kind, len(data), link, perm
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buffer.getvalue()


def _inside(root: Path) -> None:
    """Everything under `root` is a plain file or folder, and really under `root`."""
    real = root.resolve()
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            assert not path.is_symlink(), path
            assert path.is_file() or path.is_dir(), path
            assert path.resolve().is_relative_to(real), path


def check_extract(tmp_path: Path, data: bytes) -> None:
    """Extract `data` into a fresh folder next to a sentinel; nothing may land outside the folder."""
    work = tmp_path / f"w{len(list(tmp_path.iterdir()))}"
    work.mkdir()
    archive = work / "repo.tar"
    archive.write_bytes(data)
    dest = work / "out" / "dest"
    with memory_peak():
        expect_zoo_errors(lambda: extract_tree(archive, dest))
        commit = archive_commit(archive)
    assert commit is None or len(commit) == 40
    assert sorted(p.name for p in work.iterdir()) == ["out", "repo.tar"]
    assert [p.name for p in (work / "out").iterdir()] in (["dest"], [])
    if dest.exists():
        _inside(dest)


@fuzz(70)
@given(entries=st.lists(members(), max_size=8), compress=st.sampled_from(["w", "w:gz"]))
def test_extract_tree_random_members(tmp_path: Path, entries: list, compress: str) -> None:
    check_extract(tmp_path, build_tar(entries, compress))


@fuzz(40)
@given(entries=st.lists(members(), min_size=1, max_size=4), edits=st.data())
def test_extract_tree_damaged_archives(tmp_path: Path, entries: list, edits: st.DataObject) -> None:
    data = bytearray(build_tar(entries, edits.draw(st.sampled_from(["w", "w:gz", "w:bz2", "w:xz"]))))
    for _ in range(edits.draw(st.integers(1, 4))):
        at = edits.draw(st.integers(0, len(data) - 1))
        if edits.draw(st.booleans()):
            data[at] ^= 1 << edits.draw(st.integers(0, 7))
        else:
            del data[at:]
            break
    check_extract(tmp_path, bytes(data))


@fuzz(40)
@given(data=st.binary(max_size=2048))
def test_extract_tree_random_bytes(tmp_path: Path, data: bytes) -> None:
    check_extract(tmp_path, data)


@fuzz(300)
@given(name=member_names)
def test_member_path_accepts_only_relative_clean_names(name: str) -> None:
    try:
        path = member_path(name)
    except InputError as exc:
        error = str(exc)
        path = None
    if path is None:
        assert "\n" not in error
        return
    assert isinstance(path, PurePosixPath) and path.parts
    assert not path.is_absolute()
    assert ".." not in path.parts
    assert not any(ord(c) < 32 for c in str(path))
    assert "\\" not in str(path) and ":" not in path.parts[0][1:2]


@fuzz(40)
@given(entries=st.lists(members(), max_size=6))
def test_cache_import_of_random_archives(tmp_path: Path, entries: list) -> None:
    from zoo.store import Store
    from zoo.store.exchange import import_paths

    archive = tmp_path / "carry.tar"
    archive.write_bytes(build_tar(entries))
    store = Store(tmp_path / "home")
    with memory_peak():
        expect_zoo_errors(lambda: import_paths(store, [archive]))
    if (tmp_path / "home").exists():
        _inside(tmp_path / "home")


@pytest.mark.parametrize(
    "entries",
    [
        [("repo/../../evil", tarfile.REGTYPE, b"x", "", 0o644)],
        [("repo/link", tarfile.SYMTYPE, b"", "../../../etc/passwd", 0o644)],
        [("repo/a", tarfile.REGTYPE, b"x", "", 0o644), ("repo/a/b", tarfile.REGTYPE, b"y", "", 0o644)],
    ],
)
def test_known_bad_archives_are_refused_or_contained(tmp_path: Path, entries: list) -> None:
    check_extract(tmp_path, build_tar(entries))
    assert not (tmp_path / "evil").exists()


def long_header_bomb(path: Path, typeflag: bytes, *, magic: bool = True) -> Path:
    """A 1.5 KB tar whose first header is a long-name (`L`) or pax (`x`) record declaring 1 TiB of data."""
    block = bytearray(512)
    block[0:13] = b"././@LongLink"
    block[100:108], block[108:116], block[116:124] = b"0000644\0", b"0000000\0", b"0000000\0"
    block[124:136] = b"\x80" + (1 << 40).to_bytes(11, "big")  # base-256 size, as GNU tar writes large ones
    block[136:148] = b"00000000000\0"
    block[156:157] = typeflag
    if magic:
        block[257:265] = b"ustar\x0000"
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    path.write_bytes(bytes(block) + bytes(1024))
    return path


@pytest.mark.parametrize("typeflag", [b"L", b"K", b"x", b"g"])
def test_a_header_declaring_a_terabyte_is_refused_without_allocating(tmp_path: Path, typeflag: bytes) -> None:
    # tarfile.open / is_tarfile read such a header whole: MemoryError at best, gigabytes allocated at worst
    from zoo.store import Store
    from zoo.store.archive import is_tar
    from zoo.store.exchange import import_paths

    bomb = long_header_bomb(tmp_path / "bomb.tar", typeflag)
    with memory_peak():
        with pytest.raises(InputError) as info:
            extract_tree(bomb, tmp_path / "out")
        assert "\n" not in str(info.value)
        assert archive_commit(bomb) is None
        assert not is_tar(bomb)
        report = expect_zoo_errors(lambda: import_paths(Store(tmp_path / "home"), [bomb]))
    assert report is None or not report.imported
