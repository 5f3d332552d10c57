"""A plugin from outside zoo registers through `zoo.plugins` entry points, and broken or clashing ones stay contained.

The example package in `examples/zoo-example-plugin` is made visible the way pip would make it visible, by a
`dist-info` folder with an `entry_points.txt` on the path, without installing anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import zoo
from zoo.registry import ENTRY_POINT_GROUP, Registry

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "zoo-example-plugin"
EXAMPLE_SRC = EXAMPLE / "src"
EXAMPLE_WEIGHTS = EXAMPLE / "weights"
EXAMPLE_EP = EntryPoint(name="example", value="zoo_example_plugin:plugin", group=ENTRY_POINT_GROUP)
#: Modules this file writes for the in-process registry tests; removed from sys.modules after each test.
TEST_MODULES = ("zoo_test_plugin_a", "zoo_test_plugin_b", "zoo_test_plugin_broken")


def write_dist_info(site: Path) -> Path:
    """What `pip install ./examples/zoo-example-plugin` leaves in site-packages, minus the code."""
    dist = site / "zoo_example_plugin-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: zoo-example-plugin\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[zoo.plugins]\nexample = zoo_example_plugin:plugin\n")
    return dist


def write_png(path: Path, rgb: tuple[int, int, int]) -> Path:
    """A real 100x120 PNG of one colour."""
    from PIL import Image

    Image.new("RGB", (120, 100), rgb).save(path)
    return path


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A folder holding the example's dist-info, to put on a path next to the example's sources."""
    folder = tmp_path / "site"
    write_dist_info(folder)
    return folder


def run(args: list[str], site: Path, **env: str) -> str:
    """Run Python with `args` in a fresh interpreter that sees the example plugin as installed; return stdout."""
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(EXAMPLE_SRC)]), **env}
    proc = subprocess.run([sys.executable, *args], env=environ, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def run_python(code: str, site: Path, **env: str) -> str:
    """Run the Python source `code` like `run` does."""
    return run(["-c", textwrap.dedent(code)], site, **env)


def test_installed_plugin_lists_shows_ok_and_predicts(site: Path, tmp_path: Path) -> None:
    image = write_png(tmp_path / "photo.png", (200, 40, 40))
    out = run_python(
        f"""
        import json, subprocess, sys
        import zoo

        names = zoo.list_models(plugin="example")
        plugins = json.loads(subprocess.run(
            [sys.executable, "-m", "zoo", "plugins", "--json"], capture_output=True, text=True, check=True
        ).stdout)
        result = zoo.load("example/tinynet:none", device="cpu").predict({str(image)!r}, top_k=2)
        print(json.dumps({{"names": names, "plugins": plugins, "result": result.to_dict()}}))
        """,
        site,
    )
    data = json.loads(out)
    assert data["names"] == ["tinynet"]
    example = next(p for p in data["plugins"] if p["name"] == "example")
    assert example["status"] == "ok", example
    assert example["models"] == 1
    assert example["version"] == "0.1.0"  # read from the dist-info's METADATA
    assert example["source"] == "zoo_example_plugin:plugin"
    top = data["result"]["top"]
    assert sorted(entry["label"] for entry in top) == ["cat", "dog"]
    assert data["result"]["source"] == str(image)
    assert sum(entry["score"] for entry in top) == pytest.approx(1.0, abs=1e-4)


def test_cli_predicts_with_the_plugins_weights_found_on_zoo_weights_path(site: Path, tmp_path: Path) -> None:
    red = write_png(tmp_path / "red.png", (220, 30, 30))
    blue = write_png(tmp_path / "blue.png", (30, 30, 220))
    out = run(
        ["-m", "zoo", "predict", "tinynet", str(red), str(blue), "--json", "--device", "cpu"],
        site,
        ZOO_WEIGHTS_PATH=str(EXAMPLE_WEIGHTS),
        ZOO_OFFLINE="1",
    )
    results = json.loads(out)["results"]
    assert [r["top"][0]["label"] for r in results] == ["cat", "dog"]  # the hand-set v1 weights, not random init


def test_listing_a_third_party_plugin_does_not_import_torch(site: Path) -> None:
    out = run_python(
        """
        import sys
        import zoo

        names = zoo.list_models()
        spec = zoo.info("tinynet:v1")
        print(names, spec.summary()["weights"]["v1"]["sha256"][:12], "torch" in sys.modules)
        """,
        site,
        ZOO_PLUGINS="example",  # other installed plugins are theirs to test
    )
    assert out.split() == ["['tinynet']", "24af3c6d887b", "False"]


@pytest.fixture
def example_installed(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The example plugin visible to this process's entry-point discovery."""
    monkeypatch.syspath_prepend(str(EXAMPLE_SRC))
    monkeypatch.syspath_prepend(str(site))


def colour(rgb: tuple[int, int, int]):
    """An HWC uint8 numpy image of one colour."""
    import numpy as np

    return np.full((90, 110, 3), rgb, dtype=np.uint8)


@pytest.mark.usefixtures("example_installed")
def test_weights_are_downloaded_from_a_mirror_and_verified(file_server, monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo_example_plugin import WEIGHTS_URL

    (file_server.root / "tinynet-v1.safetensors").write_bytes((EXAMPLE_WEIGHTS / "tinynet-v1.safetensors").read_bytes())
    monkeypatch.setenv("ZOO_MIRRORS", f"{WEIGHTS_URL.rsplit('/', 1)[0]}={file_server.url}")

    model = zoo.load("tinynet", device="cpu")

    assert file_server.paths() == ["/tinynet-v1.safetensors"]
    assert model.weights == "v1"
    assert model.weights_sha256 == zoo.info("tinynet").weights["v1"].sha256
    results = model.predict([colour((230, 20, 20)), colour((20, 20, 230))])
    assert [r.label for r in results] == ["cat", "dog"]
    zoo.load("example/tinynet:V1", device="cpu")  # cached now: no second request
    assert file_server.paths() == ["/tinynet-v1.safetensors"]


# -- the registry, fed entry points directly ----------------------------------------------------------


@pytest.fixture
def plugin_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, EntryPoint]]:
    """Entry points for: the example, two plugins that both declare `x`, and one whose import fails."""
    folder = tmp_path / "plugin_modules"
    folder.mkdir()
    for letter in "ab":
        (folder / f"zoo_test_plugin_{letter}.py").write_text(
            textwrap.dedent(
                f"""
                import zoo

                plugin = zoo.Plugin({letter!r}, description="test plugin {letter}")


                @plugin.model("x", task="image-classification", labels=["{letter}0", "{letter}1"])
                def x():
                    import torch.nn as nn
                    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))


                @plugin.model("only_{letter}", task="image-classification")
                def only():
                    import torch.nn as nn
                    return nn.Linear(2, 2)
                """
            )
        )
    (folder / "zoo_test_plugin_broken.py").write_text('raise ImportError("zoo-test-broken needs libfoo 2.0")\n')
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.syspath_prepend(str(EXAMPLE_SRC))
    for name in TEST_MODULES:
        sys.modules.pop(name, None)
    yield {
        "example": EXAMPLE_EP,
        "a": EntryPoint(name="a", value="zoo_test_plugin_a:plugin", group=ENTRY_POINT_GROUP),
        "b": EntryPoint(name="b", value="zoo_test_plugin_b:plugin", group=ENTRY_POINT_GROUP),
        "broken": EntryPoint(name="broken", value="zoo_test_plugin_broken:plugin", group=ENTRY_POINT_GROUP),
    }
    for name in TEST_MODULES:
        sys.modules.pop(name, None)


def test_a_broken_plugin_is_reported_and_the_others_load(plugin_modules: dict[str, EntryPoint]) -> None:
    registry = Registry.discover(entry_points=[plugin_modules["broken"], plugin_modules["example"]])

    broken = registry.infos["broken"]
    assert broken.status == "error"
    assert broken.reason == "ImportError: zoo-test-broken needs libfoo 2.0"
    assert broken.source == "zoo_test_plugin_broken:plugin"
    assert registry.infos["example"].status == "ok"
    spec, tag = registry.resolve("tinynet")
    assert (spec.qualified_name, tag) == ("example/tinynet", "v1")
    with pytest.raises(zoo.UnknownModelError, match=r"'broken'.*error: ImportError: zoo-test-broken needs libfoo"):
        registry.resolve("broken/x")


def test_a_clashing_name_names_both_owners_and_each_qualified_name_resolves(
    plugin_modules: dict[str, EntryPoint],
) -> None:
    registry = Registry.discover(entry_points=[plugin_modules["b"], plugin_modules["a"], plugin_modules["example"]])

    with pytest.raises(zoo.UnknownModelError, match=r"a/x, b/x") as excinfo:
        registry.resolve("x")
    assert excinfo.value.suggestions == ("a/x", "b/x")
    assert registry.resolve("a/x")[0].labels == ("a0", "a1")
    assert registry.resolve("b/x:none")[0].labels == ("b0", "b1")
    assert registry.resolve("only_b")[0].plugin == "b"  # the rest of a clashing plugin is untouched
    assert registry.resolve("tinynet")[0].plugin == "example"
    # `zoo plugins` shows the clash on both owners, still loaded
    assert (registry.infos["a"].status, registry.infos["a"].clashes) == ("ok", ("x",))
    assert (registry.infos["b"].status, registry.infos["b"].clashes) == ("ok", ("x",))
    assert registry.infos["a"].reason == "names also declared by b: x"
    assert registry.infos["b"].reason == "names also declared by a: x"
    assert registry.infos["example"].clashes == ()


def test_zoo_plugins_allowlist_disables_the_others(
    plugin_modules: dict[str, EntryPoint], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZOO_PLUGINS", "example")

    registry = Registry.discover(entry_points=list(plugin_modules.values()))

    assert {name: info.status for name, info in registry.infos.items()} == {
        "a": "disabled",
        "b": "disabled",
        "broken": "disabled",
        "example": "ok",
    }
    assert registry.infos["a"].reason == "not in ZOO_PLUGINS"
    assert "zoo_test_plugin_a" not in sys.modules  # a disabled plugin is never imported
    assert [spec.qualified_name for spec in registry.specs()] == ["example/tinynet"]
    assert registry.resolve("tinynet:none") == (registry.resolve("example/tinynet")[0], None)
    with pytest.raises(zoo.UnknownModelError, match=r"'a'.*disabled: not in ZOO_PLUGINS"):
        registry.resolve("a/x")
