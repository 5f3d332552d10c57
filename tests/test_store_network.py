"""Downloads as users meet them: no network, servers that do not say how long a file is, progress bars,
lockfiles written through mirrors or from local files, and a cache that is not emptied by accident."""

from __future__ import annotations

import io
import json
import logging
import socket
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import zoo
from tests.store_helpers import publish, safetensors_bytes
from zoo.cli import cli
from zoo.store import Store, pins


def zoo_run(*args: str, code: int = 0, **kwargs) -> str:
    result = CliRunner().invoke(cli, list(args), **kwargs)
    assert result.exit_code == code, result.output
    return result.output


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Counting:
    """Counts the connections `urllib.request.urlopen` is asked to make."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import urllib.request

        self.calls = 0
        real = urllib.request.urlopen

        def urlopen(*args, **kwargs):
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(urllib.request, "urlopen", urlopen)


@pytest.mark.parametrize(
    "url",
    [f"http://127.0.0.1:{_closed_port()}/w.pth", "http://nonexistent.invalid/w.pth"],
    ids=["closed-port", "unresolvable-host"],  # stable ids: the port differs between pytest-xdist workers
)
def test_no_network_fails_at_once_and_says_what_to_do(url: str, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    counting = _Counting(monkeypatch)
    start = time.monotonic()
    with caplog.at_level(logging.WARNING), pytest.raises(zoo.DownloadError) as info:
        Store().fetch(zoo.Artifact("w.pth", urls=(url,)))
    assert time.monotonic() - start < 2.0 and counting.calls == 1  # one attempt, not five with backoff
    message = str(info.value)
    assert "\n" not in message and ("does not resolve" in message or "refused the connection" in message)
    for hint in ("ZOO_OFFLINE=1", "ZOO_MIRRORS", "ZOO_WEIGHTS_PATH", "zoo cache import"):
        assert hint in message
    assert "retry" not in caplog.text


def test_a_refusing_mirror_falls_back_to_the_next_source(file_server, monkeypatch: pytest.MonkeyPatch) -> None:
    sha = publish(file_server, "m.bin", b"upstream")
    monkeypatch.setenv("ZOO_MIRRORS", f"{file_server.url}=http://127.0.0.1:{_closed_port()}")
    art = zoo.Artifact("m.bin", urls=(f"{file_server.url}/m.bin",), sha256=sha)
    assert Store().fetch(art).read_bytes() == b"upstream"


def test_hashless_file_cut_short_without_content_length_is_not_installed_or_pinned(file_server) -> None:
    data = safetensors_bytes(b"\x01" * 200_000)
    publish(file_server, "nolen.safetensors", data)
    file_server.no_length.add("/nolen.safetensors")
    file_server.truncate["/nolen.safetensors"] = 120_000
    art = zoo.Artifact("nolen.safetensors", urls=(f"{file_server.url}/nolen.safetensors",), format="safetensors")
    store = Store()
    with pytest.raises(zoo.DownloadError, match="no Content-Length"):
        store.fetch(art)
    assert store.cached("nolen.safetensors") is None and pins.read_pins(store.root) == {}
    assert [p for p in store.weights_dir.iterdir() if p.name.endswith(".part")] == []
    file_server.truncate.clear()  # a whole body without Content-Length is still refused: it cannot be told apart
    with pytest.raises(zoo.DownloadError, match="no Content-Length"):
        store.fetch(art)
    sized = zoo.Artifact(art.name, urls=art.urls, format="safetensors", size=len(data))  # a size in the spec does
    assert store.fetch(sized).read_bytes() == data
    assert pins.read_pins(store.root)["nolen.safetensors"]["size"] == len(data)


def test_hashless_file_of_the_wrong_format_is_not_pinned(file_server, tiny_state_dict_file: Path) -> None:
    publish(file_server, "page.pt", b"<html>rate limited</html>" * 100)  # a 200 error page, with a length
    art = zoo.Artifact("page.pt", urls=(f"{file_server.url}/page.pt",), format="full-pickle")
    store = Store()
    with pytest.raises(zoo.DownloadError, match="not a complete full-pickle file"):
        store.fetch(art)
    assert store.cached("page.pt") is None and pins.read_pins(store.root) == {}
    whole = tiny_state_dict_file.read_bytes()  # a torch zip cut short, with a Content-Length that says so
    publish(file_server, "cut.pt", whole[: len(whole) // 2])
    with pytest.raises(zoo.DownloadError, match="not a complete"):
        store.fetch(zoo.Artifact("cut.pt", urls=(f"{file_server.url}/cut.pt",), format="full-pickle"))
    publish(file_server, "cut.pt", whole)
    assert store.fetch(zoo.Artifact("cut.pt", urls=(f"{file_server.url}/cut.pt",))).read_bytes() == whole


def test_a_first_use_pin_that_fails_to_load_is_quarantined_and_fetched_again(
    file_server, tiny_state_dict_file: Path
) -> None:
    from tests.conftest import tiny_cnn

    whole = tiny_state_dict_file.read_bytes()
    publish(file_server, "tofu.pth", whole)
    weights = zoo.Weights(url=f"{file_server.url}/tofu.pth")  # upstream publishes no hash
    zoo.register("tofu", task="image-classification", labels=["a", "b", "c"], weights={"v1": weights})(tiny_cnn)
    store = Store()
    cut = whole[: len(whole) // 2]  # what an older zoo installed and pinned from a server with no Content-Length
    (store.weights_dir / "tofu.pth").write_bytes(cut)
    import hashlib

    from zoo.store.cache import CacheRecord

    sha = hashlib.sha256(cut).hexdigest()
    CacheRecord("tofu.pth", sha, len(cut), "state_dict-pickle", "old", 0.0).write(store.weights_dir)
    pins.pin(store.root, "tofu.pth", sha, len(cut), "old", published=False)
    model = zoo.load("tofu", device="cpu")
    assert model.weights_sha256 is not None and len(file_server.requests) == 1
    assert pins.read_pins(store.root)["tofu.pth"]["sha256"] == hashlib.sha256(whole).hexdigest()
    assert len(list((store.root / "quarantine").glob("*-tofu.pth"))) == 1


def test_load_verify_notices_a_bit_flip_at_rest(file_server, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import tiny_cnn

    sha = publish(file_server, "flip.safetensors", _tiny_safetensors())
    weights = zoo.Weights(url=f"{file_server.url}/flip.safetensors", sha256=sha)
    zoo.register("flip", task="image-classification", labels=["a", "b", "c"], weights={"v1": weights})(tiny_cnn)
    assert zoo.load("flip", device="cpu").weights_sha256 == sha
    path = Store().weights_dir / "flip.safetensors"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x01  # one bit of one weight
    path.write_bytes(bytes(raw))
    assert zoo.load("flip", device="cpu").weights_sha256 == sha  # not asked to verify: the recorded hash
    assert len(file_server.requests) == 1
    assert zoo.load("flip", device="cpu", verify=True).weights_sha256 == sha
    assert len(file_server.requests) == 2 and path.read_bytes() != bytes(raw)  # quarantined and fetched again
    path.write_bytes(bytes(raw))
    monkeypatch.setenv("ZOO_VERIFY", "1")
    zoo.load("flip", device="cpu")
    assert len(file_server.requests) == 3


def _tiny_safetensors() -> bytes:
    import tempfile

    import torch
    from safetensors.torch import save_file

    from tests.conftest import tiny_cnn

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.safetensors"
        save_file(tiny_cnn().state_dict(), str(path))
        return path.read_bytes()


class _TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def _register_big(file_server, name: str) -> str:
    from tests.conftest import tiny_cnn

    sha = publish(file_server, f"{name}.bin", safetensors_bytes(b"\x07" * (3 << 20)))  # tensors the model lacks
    weights = zoo.Weights(url=f"{file_server.url}/{name}.bin", sha256=sha, format="safetensors")
    zoo.register(name, task="image-classification", labels=["a", "b", "c"], weights={"v1": weights})(tiny_cnn)
    return sha


def test_a_download_started_by_load_draws_a_bar_on_a_terminal(file_server, monkeypatch: pytest.MonkeyPatch) -> None:
    _register_big(file_server, "barw")
    file_server.failures["/barw.bin"] = [503]  # one retry warning, while the bar is drawn
    tty = _TTY()
    monkeypatch.setattr(sys, "stderr", tty)
    handler = logging.StreamHandler(tty)
    logging.getLogger().addHandler(handler)  # what `zoo -v` or an application's basicConfig sets up
    try:
        with pytest.raises(zoo.ZooError, match="do not fit"):  # not this model's: the download is what is tested
            zoo.load("barw", device="cpu")
    finally:
        logging.getLogger().removeHandler(handler)
    out = tty.getvalue()
    assert "barw.bin" in out and "3.1/3.1 MB" in out  # the bar, updated to the end by the download's callback
    # the bar's line is cleared ("\r" + erase line) before the warning is printed, then drawn again below it
    warning = [line.rsplit("\r\x1b[2K", 1)[-1] for line in out.split("\n") if "HTTP 503" in line]
    assert warning and all(w.startswith("http://") and "━" not in w for w in warning), warning


@pytest.mark.parametrize("case", ["not a terminal", "ZOO_PROGRESS=0"])
def test_no_bar_off_a_terminal_or_when_turned_off(case: str, file_server, monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo.store import progress

    _register_big(file_server, "quietw")
    stream = io.StringIO() if case == "not a terminal" else _TTY()
    monkeypatch.setattr(sys, "stderr", stream)
    if case == "ZOO_PROGRESS=0":
        monkeypatch.setenv("ZOO_PROGRESS", "0")
    assert progress.enabled() is False
    Store().fetch(zoo.info("quietw").weights["v1"].artifact)
    assert stream.getvalue() == ""


def test_fetch_quiet_draws_no_bar(file_server, monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo.store import progress

    _register_big(file_server, "cliw")
    monkeypatch.setattr(progress, "enabled", lambda: True)  # as on a terminal (CliRunner's stderr is not one)
    assert "MB" not in zoo_run("fetch", "cliw", "--quiet")
    zoo_run("cache", "rm", "--all", "--yes")
    out = zoo_run("fetch", "cliw")
    assert "cliw" in out and "3.1/3.1 MB" in out


def test_lockfile_names_upstream_never_the_mirror(file_server, tmp_path: Path, monkeypatch) -> None:
    from tests.conftest import tiny_cnn

    (file_server.root / "models").mkdir()
    sha = publish(file_server, "models/mir.safetensors", b"m" * 4000)
    upstream = "https://download.example.invalid/models/mir.safetensors"
    weights = zoo.Weights(url=upstream, hash_prefix=sha[:8])
    zoo.register("mir", task="image-classification", labels=["a", "b", "c"], weights={"v1": weights})(tiny_cnn)
    monkeypatch.setenv("ZOO_MIRRORS", f"https://download.example.invalid={file_server.url}")
    lock = tmp_path / "zoo.lock"
    zoo_run("fetch", "mir", "--lock", str(lock), "--quiet")
    text = lock.read_text()
    assert file_server.url not in text and "127.0.0.1" not in text
    (locked,) = json.loads(text)["models"]
    assert (locked["source"], locked["sha256"], locked["size"]) == (upstream, sha, 4000)
    zoo_run("cache", "rm", "--all", "--yes")
    zoo_run("fetch", "--locked", str(lock), "--quiet")  # the mirror, a local setting, is applied again
    assert Store().cached("mir.safetensors").sha256 == sha


def test_lockfile_size_from_weights_path_and_import(tiny_state_dict_file: Path, tmp_path: Path, monkeypatch) -> None:
    from tests.conftest import tiny_cnn

    data = tiny_state_dict_file.read_bytes()
    folder = tmp_path / "local"
    folder.mkdir()
    (folder / "loc-0000.pth").write_bytes(data)
    import hashlib

    sha = hashlib.sha256(data).hexdigest()
    weights = zoo.Weights(url="https://example.invalid/loc-0000.pth", hash_prefix=sha[:8])
    zoo.register("loc", task="image-classification", labels=["a", "b", "c"], weights={"v1": weights})(tiny_cnn)
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    for how in ("ZOO_WEIGHTS_PATH", "import"):
        if how == "ZOO_WEIGHTS_PATH":
            monkeypatch.setenv("ZOO_WEIGHTS_PATH", str(folder))
        else:
            monkeypatch.delenv("ZOO_WEIGHTS_PATH")
            zoo_run("cache", "rm", "--all", "--yes")
            zoo_run("cache", "import", str(folder / "loc-0000.pth"))
        lock = tmp_path / f"{how}.lock"
        zoo_run("fetch", "loc", "--lock", str(lock), "--quiet")
        (locked,) = json.loads(lock.read_text())["models"]
        assert (locked["source"], locked["sha256"], locked["size"]) == (
            "https://example.invalid/loc-0000.pth",
            sha,
            len(data),
        ), how


def test_rm_all_asks_on_a_terminal_and_needs_yes_elsewhere(file_server, monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo.cli import cache as cache_cli

    sha = publish(file_server, "keep.safetensors", b"k" * 100)
    Store().fetch(zoo.Artifact("keep.safetensors", urls=(f"{file_server.url}/keep.safetensors",), sha256=sha))
    out = zoo_run("cache", "rm", "--all", code=1)
    assert "--yes" in out and Store().cached("keep.safetensors") is not None
    monkeypatch.setattr(cache_cli, "_interactive", lambda: True)
    out = zoo_run("cache", "rm", "--all", input="n\n")
    assert "Delete the whole zoo cache" in out and "Nothing was deleted" in out
    assert Store().cached("keep.safetensors") is not None
    zoo_run("cache", "rm", "--all", input="y\n")
    assert Store().cached("keep.safetensors") is None
    Store().fetch(zoo.Artifact("keep.safetensors", urls=(f"{file_server.url}/keep.safetensors",), sha256=sha))
    zoo_run("cache", "rm", "--all", "-y")
    assert Store().cached("keep.safetensors") is None
