"""Every bad input to the public API, the store and the CLI is a typed `ZooError`: never a bare built-in, never a
traceback."""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import zoo
from zoo.store import Store


def _tiny() -> zoo.Model:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", zoo.ZooWarning)
        return zoo.load("lenet5:none", device="cpu")


def _image() -> Any:
    import numpy as np

    return np.zeros((32, 32, 3), dtype=np.uint8)


#: (case, call, expected ZooError subclass). `tmp` is a folder holding bad.safetensors, bad.png, empty.pt, a_file.
CASES: list[tuple[str, Callable[[Path], Any], type[zoo.ZooError]]] = [
    # names and tags
    ("unknown model", lambda tmp: zoo.load("resnt18"), zoo.UnknownModelError),
    ("unknown tag", lambda tmp: zoo.load("resnet18:NOPE"), zoo.UnknownModelError),
    ("empty name", lambda tmp: zoo.load(""), zoo.ZooError),
    ("None name", lambda tmp: zoo.load(None), zoo.ZooError),  # type: ignore[arg-type]
    ("int name", lambda tmp: zoo.info(5), zoo.ZooError),  # type: ignore[arg-type]
    ("fetch random init", lambda tmp: zoo.fetch("lenet5:none"), zoo.UnsupportedError),
    # builder keywords and options
    ("unknown builder kwarg", lambda tmp: zoo.load("lenet5:none", nope=1, device="cpu"), zoo.ZooError),
    (
        "builder kwarg of the wrong type",
        lambda tmp: zoo.load("lenet5:none", num_classes="x", device="cpu"),
        zoo.ZooError,
    ),
    (
        "builder kwarg the builder rejects",
        lambda tmp: zoo.load("lenet5:none", num_classes=-1, device="cpu"),
        zoo.InputError,
    ),
    ("builder ValueError", lambda tmp: zoo.load("lenet5:none", in_channels=2, device="cpu"), zoo.InputError),
    ("labels not a list", lambda tmp: zoo.load("lenet5:none", labels=3, device="cpu"), zoo.InputError),
    ("bad device", lambda tmp: zoo.load("lenet5:none", device="potato"), zoo.UnsupportedError),
    ("unknown predict option", lambda tmp: _tiny().predict(_image(), nope=1), zoo.InputError),
    ("top_k of the wrong type", lambda tmp: _tiny().predict(_image(), top_k="x"), zoo.InputError),
    ("batch_size zero", lambda tmp: _tiny().predict(_image(), batch_size=0), zoo.InputError),
    # files
    ("damaged checkpoint", lambda tmp: zoo.load(str(tmp / "bad.safetensors")), zoo.ZooError),
    ("empty pickle", lambda tmp: zoo.load(str(tmp / "empty.pt")), zoo.ZooError),
    ("not an image", lambda tmp: _tiny().predict(str(tmp / "bad.png")), zoo.InputError),
    ("missing image", lambda tmp: _tiny().predict(str(tmp / "missing.png")), zoo.InputError),
    ("save under a file", lambda tmp: _tiny().save(tmp / "a_file" / "m.safetensors"), zoo.InputError),
    # declarations (the plugin API)
    ("unsafe artifact name", lambda tmp: zoo.Artifact("../x", urls=["https://x/y"]), zoo.InputError),
    ("bad sha256", lambda tmp: zoo.Artifact("x.bin", urls=["https://x/y"], sha256="zz"), zoo.InputError),
    ("short sha256", lambda tmp: zoo.Artifact("x.bin", urls=["https://x/y"], sha256="ab" * 8), zoo.InputError),
    ("bad format", lambda tmp: zoo.Artifact("x.bin", urls=["https://x/y"], format="exe"), zoo.InputError),
    ("weights without a source", lambda tmp: zoo.Weights(), zoo.InputError),
    ("weights URL not a string", lambda tmp: zoo.Weights(url=5), zoo.InputError),  # type: ignore[arg-type]
    ("plugin name", lambda tmp: zoo.Plugin("no spaces"), zoo.PluginError),
    ("plugin name not a string", lambda tmp: zoo.Plugin(None), zoo.PluginError),  # type: ignore[arg-type]
    ("model name not a string", lambda tmp: zoo.Plugin("p").model(5, task="t")(lambda: None), zoo.PluginError),  # type: ignore[arg-type]
    ("task target", lambda tmp: zoo.Plugin("p").task("t", "nocolon"), zoo.PluginError),
    ("source scheme", lambda tmp: zoo.Plugin("p").source("https"), zoo.PluginError),
    # the store: bad URLs, names, pins
    (
        "unknown URL scheme",
        lambda tmp: Store().fetch(zoo.Artifact("y.bin", urls=["nope://b/y.bin"])),
        zoo.ZooError,  # DownloadError online; offline, OfflineError
    ),
    ("malformed pkg: URL", lambda tmp: Store().fetch(zoo.Artifact("y.bin", urls=["pkg:../y"])), zoo.ZooError),
    ("malformed hf: URL", lambda tmp: Store().fetch(zoo.Artifact("y.bin", urls=["hf:nope"])), zoo.ZooError),
    ("missing file: URL", lambda tmp: Store().fetch(zoo.Artifact("y.bin", urls=[str(tmp / "nope.bin")])), zoo.ZooError),
    ("unsafe cache name", lambda tmp: Store().cached("../x"), zoo.InputError),
    ("cache name not a string", lambda tmp: Store().record(5), zoo.InputError),  # type: ignore[arg-type]
    ("unsafe quarantine name", lambda tmp: Store().quarantine("NUL.pth", "r"), zoo.InputError),
    (
        "unsafe GitHub ref",
        lambda tmp: __import__("zoo.store.github").store.github.archive_artifact("a", "b", "../x"),
        zoo.InputError,
    ),
    (
        "bad pin in a lockfile",
        lambda tmp: _lockfile(tmp, {"name": "m", "file": "m.bin", "sha256": "ab"}),
        zoo.InputError,
    ),
    ("bad entry in a lockfile", lambda tmp: _lockfile(tmp, {"bad": 1}), zoo.InputError),
]


def _lockfile(tmp: Path, entry: dict[str, Any]) -> Any:
    import json

    from zoo.store.lockfile import read_lock

    path = tmp / "zoo.lock"
    path.write_text(json.dumps({"version": 1, "models": [entry]}))
    return read_lock(path)


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("bad")
    (tmp / "bad.safetensors").write_bytes(b"garbage that is not a header")
    (tmp / "bad.png").write_bytes(b"not a png")
    (tmp / "empty.pt").write_bytes(b"")
    (tmp / "a_file").write_text("a file, not a folder")
    return tmp


@pytest.mark.parametrize(("case", "call", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_a_typed_zoo_error(
    case: str,
    call: Callable[[Path], Any],
    expected: type[zoo.ZooError],
    bad_files: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(zoo.ZooError) as info:
        call(bad_files)
    assert isinstance(info.value, expected), f"{case}: {type(info.value).__name__}: {info.value}"
    message = str(info.value)
    assert message and "\n" not in message.strip(), message


CLI_CASES = [
    ["info", "resnt18"],
    ["predict", "lenet5:none", "{tmp}/bad.png"],
    ["cache", "export", "{tmp}/a_file/out.tar"],
    ["fetch", "--locked", "{tmp}/bad.lock"],
]

#: One process runs every case through the CLI's own entry point, as `zoo ARGS` would.
CLI_SCRIPT = """
import contextlib, io, json, sys, traceback
from zoo.cli import cli
out = []
for args in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            cli.main(args, prog_name="zoo")
            code = 0
        except SystemExit as exc:
            code = exc.code
        except BaseException:
            traceback.print_exc()
            code = "escaped"
    out.append([args, code, err.getvalue()])
print(json.dumps(out))
"""


def test_the_cli_answers_bad_input_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    import json
    import os

    (tmp_path / "bad.png").write_bytes(b"not a png")
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "bad.lock").write_text('{"version": 1, "models": [{"bad": 1}]}')
    cases = [[a.format(tmp=tmp_path) for a in args] for args in CLI_CASES]
    proc = subprocess.run(
        [sys.executable, "-c", CLI_SCRIPT, json.dumps(cases)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "ZOO_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(results) == len(CLI_CASES)
    for args, code, stderr in results:
        errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
        assert code not in (0, None, "escaped"), (args, stderr)
        assert "Traceback" not in stderr, (args, stderr)
        assert len(errors) == 1, (args, stderr)


def test_errors_carry_what_happened(file_server, bad_files: Path) -> None:
    url = f"{file_server.url}/missing.safetensors"
    with pytest.raises(zoo.DownloadError) as download:
        Store().fetch(zoo.Artifact("missing.safetensors", urls=[url], sha256="ab" * 32))
    assert (download.value.url, download.value.status) == (url, 404)
    with pytest.raises(zoo.InputError) as missing:
        _tiny().predict(str(bad_files / "missing.png"))
    assert missing.value.path == str(bad_files / "missing.png")
    with pytest.raises(zoo.InputError) as lock:
        _lockfile(bad_files, {"bad": 1})
    assert lock.value.path == str(bad_files / "zoo.lock")
    with pytest.raises(zoo.PluginError) as plugin:
        zoo.Plugin("p").task("t", "nocolon")
    assert plugin.value.plugin == "p"
