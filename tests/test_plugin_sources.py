"""`Plugin.source`: a plugin adds a download scheme; the store uses it, verifies its bytes, and refuses a clash."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import zoo
from tests.store_helpers import publish, safetensors_bytes
from zoo import registry
from zoo.store import Store


def _plugin(name: str, scheme: str, fetch: object, files: dict[str, bytes]) -> zoo.Plugin:
    plugin = zoo.Plugin(name)
    plugin.source(scheme)(fetch)
    for model, data in files.items():
        url = f"{scheme}://bucket/{model}.safetensors"
        weights = {"v1": zoo.Weights(url=url, sha256=hashlib.sha256(data).hexdigest())}
        plugin.model(model, task="image-classification", weights=weights)(lambda: None)
    return plugin


def _use(monkeypatch: pytest.MonkeyPatch, *plugins: zoo.Plugin) -> registry.Registry:
    reg = registry.Registry()
    for plugin in plugins:
        reg.add_plugin(plugin)
    monkeypatch.setattr(registry, "_registry", reg)
    return reg


def test_a_plugin_declared_source_serves_zoo_fetch(
    tmp_path: Path, file_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    local, served = safetensors_bytes(b"local bytes"), safetensors_bytes(b"served bytes")
    (tmp_path / "vault").mkdir()
    (tmp_path / "vault" / "alpha.safetensors").write_bytes(local)
    publish(file_server, "beta.safetensors", served)
    seen: list[str] = []

    def vault(url: str, ctx: object) -> Path:  # a local file, copied into the cache
        seen.append(url)
        return tmp_path / "vault" / url.rpartition("/")[2]

    def mirror(url: str, ctx: object) -> str:  # another URL, fetched by zoo's HTTP source
        seen.append(url)
        return f"{file_server.url}/{url.rpartition('/')[2]}"

    _use(
        monkeypatch,
        _plugin("vaults", "vault", vault, {"alpha": local}),
        _plugin("mirrors", "mirror", mirror, {"beta": served}),
    )
    assert zoo.fetch("alpha").read_bytes() == local
    assert zoo.fetch("beta").read_bytes() == served
    assert seen == ["vault://bucket/alpha.safetensors", "mirror://bucket/beta.safetensors"]
    assert Store().cached("alpha.safetensors").source == "vault://bucket/alpha.safetensors"

    from zoo.store.sources import SOURCES

    assert "vault" not in SOURCES and "mirror" not in SOURCES  # nothing module-global was edited


def test_a_plugin_source_is_held_to_the_declared_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "evil.safetensors").write_bytes(safetensors_bytes(b"not what was declared"))
    _use(
        monkeypatch,
        _plugin("v", "vault", lambda url, ctx: tmp_path / "evil.safetensors", {"evil": safetensors_bytes(b"x")}),
    )
    with pytest.raises(zoo.ChecksumError):
        zoo.fetch("evil")
    assert Store().cached("evil.safetensors") is None


def test_a_failing_plugin_source_is_a_download_error_with_its_url(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(url: str, ctx: object) -> Path:
        raise KeyError("no such bucket")

    _use(monkeypatch, _plugin("v", "vault", broken, {"gone": b"x"}))
    with pytest.raises(zoo.DownloadError, match="'v' plugin's 'vault:' source failed: KeyError") as info:
        zoo.fetch("gone")
    assert info.value.url == "vault://bucket/gone.safetensors"


def test_two_plugins_declaring_one_scheme_is_a_plugin_error_naming_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.safetensors").write_bytes(safetensors_bytes(b"a"))
    reg = _use(
        monkeypatch,
        _plugin("first-s3", "s3", lambda url, ctx: tmp_path / "a.safetensors", {"a": safetensors_bytes(b"a")}),
        _plugin("second-s3", "s3", lambda url, ctx: tmp_path / "a.safetensors", {}),
    )
    with pytest.raises(zoo.PluginError, match="first-s3 and second-s3") as info:
        zoo.fetch("a")
    assert info.value.plugin == "second-s3"
    assert any("source 's3:'" in c for c in reg.infos["first-s3"].conflicts)  # `zoo plugins` shows it too


@pytest.mark.parametrize("scheme", ["https", "hf", "file", "not a scheme", "3d", ""])
def test_a_plugin_cannot_take_a_core_or_malformed_scheme(scheme: str) -> None:
    plugin = zoo.Plugin("p")
    with pytest.raises(zoo.PluginError) as info:
        plugin.source(scheme)
    assert info.value.plugin == "p"


def test_an_unknown_scheme_names_the_known_ones_and_how_to_add_one(monkeypatch: pytest.MonkeyPatch) -> None:
    _use(monkeypatch, _plugin("v", "vault", lambda url, ctx: url, {}))
    with pytest.raises(zoo.DownloadError, match=r"known schemes are .*vault:.*Plugin.source") as info:
        Store().fetch(zoo.Artifact("y.bin", urls=["s3://bucket/y.bin"]))
    assert info.value.url is not None
