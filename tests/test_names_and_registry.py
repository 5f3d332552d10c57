"""Name parsing and resolution: tags, random init, qualified names, suggestions, clashes, in-script models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import zoo
from zoo.names import is_path, parse_name
from zoo.registry import Registry


def _plugin(name: str, *models: str) -> zoo.Plugin:
    plugin = zoo.Plugin(name)
    for model in models:
        plugin.model(
            model,
            task="image-classification",
            weights={
                "v1": zoo.Weights(url=f"https://example.org/{model}-v1.pth"),
                "V2": zoo.Weights(url=f"https://example.org/{model}-v2.pth"),
            },
            default_weights="V2",
        )(lambda num_classes=3: None)
    return plugin


@pytest.fixture
def registry() -> Registry:
    reg = Registry()
    reg.add_plugin(_plugin("alpha", "resnet18", "shared"))
    reg.add_plugin(_plugin("beta", "shared", "mobilenet"))
    return reg


@pytest.mark.parametrize(
    ("text", "model", "plugin", "tag"),
    [
        ("resnet18", "resnet18", None, None),
        ("ResNet18:IMAGENET1K_V1", "resnet18", None, "IMAGENET1K_V1"),
        ("torchvision/resnet18", "resnet18", "torchvision", None),
        ("torchvision/resnet18:none", "resnet18", "torchvision", "none"),
        ("animegan2:face_paint_512_v2", "animegan2", None, "face_paint_512_v2"),
    ],
)
def test_parse_plain_names(text: str, model: str, plugin: str | None, tag: str | None) -> None:
    parsed = parse_name(text)
    assert (parsed.model, parsed.plugin, parsed.tag, parsed.scheme) == (model, plugin, tag, None)


def test_scheme_names_need_a_known_scheme() -> None:
    assert parse_name("hub:owner/repo:main/entry", frozenset({"hub"})).target == "owner/repo:main/entry"
    assert parse_name("hf:org/repo@abc").scheme == "hf"  # no plain reading exists
    assert parse_name("hub:thing").scheme is None  # a tag unless a plugin registered `hub`


def test_paths_are_recognised() -> None:
    assert is_path("./lenet5.safetensors")
    assert is_path("/tmp/x.pt")
    assert not is_path("resnet18")
    assert not is_path("torchvision/resnet18")


def test_tags_are_case_insensitive_and_default_applies(registry: Registry) -> None:
    spec, tag = registry.resolve("resnet18")
    assert tag == "V2"
    assert registry.resolve("resnet18:v1")[1] == "v1"
    assert registry.resolve("resnet18:V2")[1] == "V2"
    assert registry.resolve("resnet18:none")[1] is None
    assert registry.resolve("resnet18:DEFAULT")[1] == "V2"


def test_unknown_tag_lists_known_tags(registry: Registry) -> None:
    with pytest.raises(zoo.UnknownModelError, match="Known tags: v1, V2") as info:
        registry.resolve("resnet18:v9")
    assert "\n" not in str(info.value)


def test_unknown_model_suggests_close_names(registry: Registry) -> None:
    with pytest.raises(zoo.UnknownModelError, match="Did you mean 'resnet18'") as info:
        registry.resolve("resnt18")
    assert info.value.suggestions == ("resnet18",)
    assert isinstance(info.value, LookupError)


def test_clash_names_both_owners_and_qualified_names_resolve(registry: Registry) -> None:
    with pytest.raises(zoo.UnknownModelError, match="alpha/shared, beta/shared"):
        registry.resolve("shared")
    assert registry.resolve("alpha/shared")[0].plugin == "alpha"
    assert registry.resolve("beta/shared")[0].plugin == "beta"
    assert registry.infos["alpha"].clashes == ("shared",)
    assert "beta" in registry.infos["alpha"].reason


def test_unknown_plugin_in_qualified_name(registry: Registry) -> None:
    with pytest.raises(zoo.UnknownModelError, match="Unknown plugin 'gamma'"):
        registry.resolve("gamma/resnet18")


def test_listing_filters(registry: Registry) -> None:
    assert [s.qualified_name for s in registry.specs("res*")] == ["alpha/resnet18"]
    assert [s.name for s in registry.specs(plugin="beta")] == ["mobilenet", "shared"]
    assert registry.specs(task="object-detection") == []


def test_register_in_script_model() -> None:
    @zoo.register("mynet", task="image-classification", labels=["cat", "dog"])
    def mynet(num_classes: int = 2):
        """A two-class net."""
        import torch.nn as nn

        return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, num_classes))

    assert "mynet" in zoo.list_models()
    spec = zoo.info("mynet")
    assert (spec.plugin, spec.description, spec.defaults["num_classes"]) == ("user", "A two-class net.", 2)
    model = zoo.load("mynet", device="cpu")
    assert model.weights is None
    assert model.labels == ("cat", "dog")


def test_invalid_declarations_fail_at_declaration() -> None:
    with pytest.raises(zoo.PluginError):
        zoo.ModelSpec(name="a/b", task="image-classification", builder=lambda: None)
    with pytest.raises(zoo.PluginError):
        zoo.ModelSpec(name="a", task="t", builder=lambda: None, weights={}, default_weights="v1")
    for hostile in ("../x", "/etc/passwd", "C:\\x", "a/../../b", ".hidden"):
        with pytest.raises(ValueError, match="unsafe file name"):
            zoo.Weights(url="https://example.org/a.pth", filename=hostile)
    with pytest.raises(ValueError, match="unsafe file name"):
        zoo.Weights(url="https://example.org/..%2F..%2Fetc%2Fpasswd")
    with pytest.raises(ValueError, match="sha256"):
        zoo.Weights(url="https://example.org/a.pth", sha256="abc")


@pytest.mark.parametrize(
    "text",
    ["resnet18\n", "resnet18:v1\n", "alpha/resnet18\n", "hub:owner/repo\n", "res\nnet18", "resnet18\r", "\x00x"],
)
def test_names_with_a_newline_or_control_character_are_refused(text: str) -> None:
    with pytest.raises(zoo.UnknownModelError) as info:
        parse_name(text, frozenset({"hub"}))
    assert "\n" not in str(info.value)


def test_names_with_surrounding_spaces_still_parse() -> None:
    assert parse_name("  resnet18:v1 ").model == "resnet18"


@pytest.mark.parametrize(
    "name", ["CON", "con", "aux", "Nul", "NUL.pth", "nul.tar.gz", "com1", "COM9.txt", "lpt3.bin", "con.", "AUX "]
)
def test_windows_reserved_names_are_recognised(name: str) -> None:
    from zoo.names import is_reserved_name

    assert is_reserved_name(name)


@pytest.mark.parametrize("name", ["console", "con_x", "com0", "com10", "lpt", "nul_weights.pth", "icon", "auxiliary"])
def test_ordinary_names_are_not_reserved(name: str) -> None:
    from zoo.names import is_reserved_name

    assert not is_reserved_name(name)


@pytest.mark.parametrize("name", ["mine\n", "a b", "-x", ""])
def test_plugin_and_command_names_use_full_matches(name: str) -> None:
    with pytest.raises(zoo.PluginError):
        zoo.Plugin(name)
    with pytest.raises(zoo.PluginError):
        zoo.Plugin("ok").command(name, "pkg.cli:main")


# -- ZOO_PLUGINS selects distributions; clashes between distributions are shown with both owners ----------------

EVIL_MODULE = """
import os, pathlib
pathlib.Path(os.environ["ZOO_TEST_MARKER"]).write_text("imported")
import click
import zoo

plugin = zoo.Plugin("evil", description="declares an entry point named torchvision")

@plugin.scheme("hf")
def _resolve(target):
    raise zoo.UnsupportedError("the evil hf: resolver ran")

plugin.command("hub", "zoo_evil_tv:cmd")

@click.command()
def cmd():
    click.echo("evil hub command ran")
"""


def _fake_distribution(site: Path, dist: str, entry_points: str, modules: dict[str, str]) -> None:
    """What pip leaves in site-packages for a distribution: a dist-info with METADATA and entry_points.txt."""
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[zoo.plugins]\n{entry_points}\n")
    for name, source in modules.items():
        (site / f"{name}.py").write_text(source)


@pytest.fixture
def evil_site(tmp_path: Path) -> Path:
    """A second distribution, `evil-dist`, whose entry point is named `torchvision` and claims `hf:` and `zoo hub`."""
    site = tmp_path / "site"
    _fake_distribution(site, "evil-dist", "torchvision = zoo_evil_tv:plugin", {"zoo_evil_tv": EVIL_MODULE})
    return site


def _zoo(site: Path, marker: Path, *args: str, plugins: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ZOO_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    env["ZOO_TEST_MARKER"] = str(marker)
    if plugins is not None:
        env["ZOO_PLUGINS"] = plugins
    return subprocess.run(
        [sys.executable, "-m", "zoo", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _plugins(site: Path, marker: Path, plugins: str | None) -> dict[tuple[str | None, str], dict[str, object]]:
    proc = _zoo(site, marker, "plugins", "--json", plugins=plugins)
    assert proc.returncode == 0, proc.stderr
    return {(p["distribution"], p["name"]): p for p in json.loads(proc.stdout)}


@pytest.mark.parametrize("selection", ["zoo-sdk", "zoo_sdk", "ZOO.SDK", "zoo-sdk:torchvision,zoo-sdk:hf"])
def test_zoo_plugins_names_distributions_and_another_distribution_is_never_imported(
    evil_site: Path, tmp_path: Path, selection: str
) -> None:
    marker = tmp_path / "imported"
    rows = _plugins(evil_site, marker, selection)

    assert not marker.exists()  # evil-dist's module was never imported
    evil = rows[("evil-dist", "torchvision")]  # shown, not hidden behind zoo-sdk's entry point of the same name
    assert evil["status"] == "disabled"
    assert "not in ZOO_PLUGINS" in str(evil["reason"])
    assert "also declared by zoo-sdk" in str(evil["reason"])
    core = rows[("zoo-sdk", "torchvision")]
    assert core["status"] == "ok"
    assert core["models"] > 10
    assert "also declared by evil-dist" in str(core["reason"])


def test_a_bare_entry_point_name_two_distributions_declare_selects_neither(evil_site: Path, tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    rows = _plugins(evil_site, marker, "torchvision,hf")  # the entry-point form of zoo 0.1

    assert not marker.exists()
    for key in [("evil-dist", "torchvision"), ("zoo-sdk", "torchvision")]:
        assert rows[key]["status"] == "disabled"
        assert "'torchvision' is ambiguous" in str(rows[key]["reason"])
        assert "evil-dist, zoo-sdk" in str(rows[key]["reason"])
    assert rows[("zoo-sdk", "hf")]["status"] == "ok"  # an entry-point name only one distribution declares still works


def test_a_second_distribution_cannot_take_over_a_scheme_or_a_command(evil_site: Path, tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    rows = _plugins(evil_site, marker, None)  # every installed plugin loads

    assert marker.exists()
    evil = rows[("evil-dist", "torchvision")]
    assert evil["status"] == "ok"
    assert "scheme 'hf:' is also claimed by hf (distribution zoo-sdk) (hf (distribution zoo-sdk) resolves it)" in str(
        evil["conflicts"]
    )
    assert any("zoo hub" in c and "hub (distribution zoo-sdk)" in c for c in evil["conflicts"])  # type: ignore[attr-defined]
    hf = rows[("zoo-sdk", "hf")]
    assert "scheme 'hf:' is also claimed by torchvision (distribution evil-dist) (it resolves it)" in str(hf["reason"])
    hub = rows[("zoo-sdk", "hub")]
    assert "'zoo hub' is also claimed by torchvision (distribution evil-dist)" in str(hub["reason"])
    # zoo's own plugins keep what they declared
    proc = _zoo(evil_site, marker, "info", "hf:org/repo", plugins=None)
    assert "evil hf: resolver ran" not in proc.stdout + proc.stderr
    proc = _zoo(evil_site, marker, "hub", "--help", plugins=None)
    assert "evil hub command ran" not in proc.stdout
    assert proc.returncode == 0, proc.stderr


def test_a_distribution_qualified_entry_point_loads_only_that_one(evil_site: Path, tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    rows = _plugins(evil_site, marker, "evil-dist:torchvision")

    assert marker.exists()
    assert rows[("evil-dist", "torchvision")]["status"] == "ok"
    assert rows[("zoo-sdk", "torchvision")]["status"] == "disabled"
    assert rows[("zoo-sdk", "hf")]["status"] == "disabled"


def test_zoo_plugins_text_output_names_both_distributions(evil_site: Path, tmp_path: Path) -> None:
    proc = _zoo(evil_site, tmp_path / "imported", "plugins", plugins="zoo-sdk")

    assert proc.returncode == 0, proc.stderr
    lines = [line.split("\t") for line in proc.stdout.splitlines()]
    assert lines[0][:3] == ["plugin", "distribution", "status"]
    assert ["torchvision", "evil-dist", "disabled"] in [line[:3] for line in lines]
    assert ["torchvision", "zoo-sdk", "ok"] in [line[:3] for line in lines]
