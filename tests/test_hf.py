"""`hf:org/repo` models against a local Hugging Face Hub–compatible endpoint: push_to_hub round trips that predict
exactly like the original, revisions pinned to commits, offline use of a warm cache, timm and mixin repos."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import zoo
from tests.hf_endpoint import HubServer, serving

torch = pytest.importorskip("torch")
pytest.importorskip("huggingface_hub")


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    """A local Hub, with huggingface_hub pointed at it and online."""
    yield from serving(monkeypatch)


def go_offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """ZOO_OFFLINE=1 with every DNS lookup and connection refused (and recorded)."""
    attempts: list[str] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(repr(args[:2]))
        raise OSError("network refused by the test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    return attempts


def fine_tuned(seed: int = 0) -> zoo.Model:
    """A tiny zoo classifier whose weights differ from any init (as after fine-tuning), with labels and a summary."""
    torch.manual_seed(seed)
    model = zoo.load("lenet5:none", num_classes=3, labels=["cat", "dog", "fox"], device="cpu")
    with torch.no_grad():
        for p in model.module.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.replace_info(training={"epochs": 2, "data": "pets", "best": {"val_acc": 0.75}})
    return model


def logits(model: zoo.Model, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.module.eval()(x)


def test_push_to_hub_round_trip_predicts_exactly_and_again_offline(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    original = fine_tuned()
    upload = original.push_to_hub("org/pets")
    assert upload.repo_id == "org/pets" and upload.name == f"hf:org/pets@{upload.commit}"
    files = hub.repos["org/pets"].commits[upload.commit]
    assert {"model.safetensors", "config.json", "README.md"} <= set(files)
    assert "hf_zoo_test" in hub.tokens  # the token reached the write routes
    card = files["README.md"].decode()
    for fact in (
        "library_name: zoo",
        "image-classification",
        "cat, dog, fox",
        "lenet5 (random init)",
        '"val_acc": 0.75',
    ):
        assert fact in card
    assert json.loads(files["config.json"])["zoo"]["model"] == "lenet5"

    x = torch.rand(4, 1, 32, 32)
    loaded = zoo.load("hf:org/pets", device="cpu")
    assert (logits(loaded, x) - logits(original, x)).abs().max().item() <= 1e-5
    assert loaded.labels == ("cat", "dog", "fox") and loaded.builder_kwargs == {"num_classes": 3}
    assert (
        loaded.spec.plugin == "custom" and loaded.spec.name == "lenet5" and loaded.weights == f"hf-{upload.commit[:12]}"
    )
    assert ("GET", "/api/models/org/pets/revision/main") in hub.requests
    assert ("GET", f"/api/models/org/pets/tree/{upload.commit}") in hub.requests
    assert loaded.predict(x[0]).labels == original.predict(x[0]).labels

    hub.stop()
    attempts = go_offline(monkeypatch)
    again = zoo.load("hf:org/pets", device="cpu")
    assert (logits(again, x) - logits(original, x)).abs().max().item() <= 1e-5
    assert attempts == []
    again.save(tmp_path / "copy")  # the loaded model is the saved one: it saves and reloads by path
    assert zoo.load(str(tmp_path / "copy"), device="cpu").labels == ("cat", "dog", "fox")


def test_revisions_are_pinned_to_commits_and_a_warm_cache_serves_offline(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = fine_tuned(1), fine_tuned(2)
    old = first.push_to_hub("org/pets").commit
    new = second.push_to_hub("org/pets", commit_message="v2").commit
    assert old != new
    x = torch.rand(2, 1, 32, 32)
    latest = zoo.load("hf:org/pets", device="cpu")
    pinned = zoo.load(f"hf:org/pets@{old}", device="cpu")
    assert torch.equal(logits(latest, x), logits(second, x)) and torch.equal(logits(pinned, x), logits(first, x))
    assert latest.weights == f"hf-{new[:12]}" and pinned.weights == f"hf-{old[:12]}"
    seen = len(hub.requests)
    zoo.load(f"hf:org/pets@{old}", device="cpu")  # a commit needs no revision lookup, its files are cached
    assert ("GET", f"/api/models/org/pets/revision/{old}") not in hub.requests[seen:]
    assert not [r for r in hub.requests[seen:] if "/resolve/" in r[1]]

    attempts = go_offline(monkeypatch)
    assert torch.equal(logits(zoo.load("hf:org/pets", device="cpu"), x), logits(second, x))  # main -> last commit seen
    assert torch.equal(logits(zoo.load(f"hf:org/pets@{old}", device="cpu"), x), logits(first, x))
    assert attempts == []


def test_an_exported_cache_loads_offline_on_another_machine(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from zoo.store import Store
    from zoo.store.exchange import export, import_paths

    model = fine_tuned()
    model.push_to_hub("org/pets")
    zoo.load("hf:org/pets", device="cpu")
    export(Store(), tmp_path / "carry.tar")
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "air-gapped"))  # a fresh cache: no huggingface_hub refs in it
    attempts = go_offline(monkeypatch)
    report = import_paths(Store(), [tmp_path / "carry.tar"])
    assert not report.refused and any(name.startswith("hf--org--pets--") for name in report.imported)
    x = torch.rand(1, 1, 32, 32)
    assert torch.equal(logits(zoo.load("hf:org/pets", device="cpu"), x), logits(model, x))
    assert attempts == []


def test_unreachable_hub_falls_back_to_the_cached_commit(hub: HubServer) -> None:
    model = fine_tuned()
    model.push_to_hub("org/pets")
    zoo.load("hf:org/pets", device="cpu")
    hub.stop()  # not offline: the revision lookup fails, the cached commit is used
    x = torch.rand(1, 1, 32, 32)
    assert torch.equal(logits(zoo.load("hf:org/pets", device="cpu"), x), logits(model, x))


def test_missing_repos_and_uncached_offline_names_are_clear_errors(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(zoo.UnknownModelError, match="does not exist"):
        zoo.load("hf:org/nothing-here")
    with pytest.raises(zoo.UnknownModelError, match="hf:org/repo"):
        zoo.load("hf:not a repo")
    seen = len(hub.requests)
    go_offline(monkeypatch)
    with pytest.raises(zoo.OfflineError, match="not cached"):
        zoo.load("hf:org/never-seen")
    with pytest.raises(zoo.OfflineError, match="cannot push"):
        fine_tuned().push_to_hub("org/pets")
    assert len(hub.requests) == seen


def test_a_checkpoint_of_a_model_no_plugin_declares_names_the_plugin(hub: HubServer) -> None:
    config = {"num_classes": 2, "zoo": {"checkpoint": 1, "model": "ghost", "plugin": "nowhere", "task": "x"}}
    hub.add("org/ghost", {"config.json": json.dumps(config).encode(), "model.safetensors": b"{}"})
    with pytest.raises(zoo.UnknownModelError, match="plugin 'nowhere'"):
        zoo.load("hf:org/ghost")


# -- timm and PyTorchModelHubMixin repos ---------------------------------------------------------------


@pytest.mark.parametrize("serialization", [True, False], ids=["safetensors", "pickle-only"])
def test_timm_repo_loads_with_its_preprocessing_and_labels(
    hub: HubServer, serialization: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    timm = pytest.importorskip("timm")
    from timm.models import save_for_hf

    torch.manual_seed(0)
    reference = timm.create_model("test_resnet", num_classes=3).eval()
    names = ["ant", "bee", "cow"]
    save_for_hf(reference, tmp_path / "repo", model_config={"label_names": names}, safe_serialization=serialization)
    hub.add("timm/test-resnet", {p.name: p.read_bytes() for p in (tmp_path / "repo").iterdir()})

    model = zoo.load("hf:timm/test-resnet", device="cpu")
    assert model.spec.name == "timm" and model.labels == tuple(names)
    assert model.builder_kwargs["architecture"] == "test_resnet" and model.builder_kwargs["num_classes"] == 3
    size = reference.pretrained_cfg["input_size"][-1]
    assert model.preprocess.input_size == (size, size) and model.preprocess.interpolation in {"bicubic", "bilinear"}
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        assert (model.module(x) - reference(x)).abs().max().item() <= 1e-5
    result = model.predict(torch.rand(3, 100, 120), top_k=2)
    assert set(result.labels) <= set(names) and len(result.labels) == 2
    model.save(tmp_path / "tuned")  # reloads by path through the plugin's `timm` spec, with no Hub at all
    go_offline(monkeypatch)
    again = zoo.load(str(tmp_path / "tuned"), device="cpu")
    with torch.no_grad():
        assert torch.equal(again.module(x), model.module(x))


class TinyMixinNet(torch.nn.Module):
    """A PyTorchModelHubMixin-style model: its config.json holds its __init__ arguments."""

    def __init__(self, width: int = 4, outputs: int = 2) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(3, width), torch.nn.ReLU(), torch.nn.Linear(width, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def test_mixin_repo_loads_with_the_class_passed(hub: HubServer, tmp_path: Path) -> None:
    from huggingface_hub import PyTorchModelHubMixin

    class Net(TinyMixinNet, PyTorchModelHubMixin):
        pass

    torch.manual_seed(0)
    reference = Net(width=5, outputs=2)
    reference.save_pretrained(tmp_path / "repo")
    hub.add("org/mixin", {p.name: p.read_bytes() for p in (tmp_path / "repo").iterdir() if p.is_file()})
    with pytest.raises(zoo.UnsupportedError, match="model_class="):
        zoo.load("hf:org/mixin")
    x = torch.rand(4, 3)
    for cls in (Net, "tests.test_hf:TinyMixinNet"):
        model = zoo.load("hf:org/mixin", model_class=cls, device="cpu")
        assert model.spec.task == "pytorch-module"
        assert torch.equal(model.predict(x), reference(x).detach())
    with pytest.raises(zoo.InputError, match="not a torch.nn.Module"):
        zoo.load("hf:org/mixin", model_class="json:dumps")


def test_without_huggingface_hub_the_error_names_the_extra() -> None:
    import os
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['huggingface_hub'] = None\n"
        "import zoo\n"
        "try:\n    zoo.load('hf:org/repo')\nexcept zoo.UnsupportedError as exc:\n    print(exc)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "0"}  # online: the library is needed to reach the Hub
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    assert 'pip install "zoo-sdk[hf]"' in out.stdout
