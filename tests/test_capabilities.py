"""What plugins declare drives the core: task capabilities (CLI, `Model.finetune`, model cards), heads on the spec,
backends' folders and offline switches, and `zoo.register` declaring exactly as `Plugin.model` does."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import zoo
from zoo.cli import cli
from zoo.registry import get_registry

ROOT = Path(__file__).resolve().parent.parent


class Untrainable(zoo.Task):
    """Has a `finetune` method but declares no `finetune` capability: nothing may call it."""

    name = "untrainable"
    plots = False

    def predict(self, inputs: Any, **options: Any) -> Any:
        return inputs

    def finetune(self, train: Any = None, val: Any = None, **options: Any) -> Any:
        raise AssertionError("an undeclared finetune hook was called")


class OwnTrainer(zoo.Task):
    """Trains its own way: declares `finetunes` and overrides the hook."""

    name = "own-trainer"
    finetunes = True

    def predict(self, inputs: Any, **options: Any) -> Any:
        return inputs

    def finetune(self, train: Any = None, val: Any = None, **options: Any) -> Any:
        self.model.trained_with = (train, val, options)  # type: ignore[attr-defined]
        return self.model


def _never_built() -> Any:
    raise AssertionError("capabilities must not build the model")


@pytest.fixture
def tasks() -> zoo.Plugin:
    """A plugin adding the two tasks above, and one model of each, in the registry."""
    plugin = zoo.Plugin("captest")
    plugin.task("untrainable", f"{__name__}:Untrainable")
    plugin.task("own-trainer", f"{__name__}:OwnTrainer")
    plugin.model("frozen-net", task="untrainable")(_never_built)
    plugin.model("own-net", task="own-trainer")(_never_built)
    get_registry().add_plugin(plugin)
    return plugin


def test_capabilities_are_read_from_the_task_class_without_building_the_model(tasks: zoo.Plugin) -> None:
    frozen = zoo.capabilities("frozen-net")
    assert isinstance(frozen, zoo.TaskCapabilities)
    assert (frozen.task, frozen.predict, frozen.finetune, frozen.plot, frozen.head) == (
        "untrainable",
        True,
        False,
        False,
        False,
    )
    assert zoo.capabilities("own-net").finetune is True
    classifier = zoo.capabilities("lenet5")
    assert classifier.finetune and classifier.head and classifier.plot and "top_k" in (classifier.options or ())
    assert classifier.hub_pipeline == "image-classification"
    detector = zoo.capabilities("yolov5s")
    assert not detector.finetune and not detector.head and detector.hub_pipeline == "object-detection"
    assert zoo.capabilities("yolov8n-cls").hub_pipeline == "image-classification"  # one class, several tasks
    assert zoo.capabilities("yolov8n-pose").hub_pipeline is None
    with pytest.raises(zoo.InputError, match="unknown capability"):
        frozen.has("fly")


def test_cli_refuses_a_capability_the_task_does_not_declare_before_any_download(tmp_path: Path) -> None:
    (tmp_path / "data" / "a").mkdir(parents=True)
    result = CliRunner().invoke(cli, ["finetune", "animegan2", str(tmp_path / "data"), "--device", "cpu"])
    assert result.exit_code == 1, result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert result.output.startswith("error: animegan2 (image-to-image): its task declares no 'finetune' capability")
    assert not list(zoo.settings.cache_root().rglob("*.safetensors"))  # refused before fetching the weights


def test_model_finetune_calls_only_the_declared_hook(tasks: zoo.Plugin) -> None:
    torch = pytest.importorskip("torch")
    plugin = zoo.Plugin("captest-models")
    plugin.model("frozen-real", task="untrainable")(lambda: torch.nn.Linear(2, 2))
    plugin.model("own-real", task="own-trainer")(lambda: torch.nn.Linear(2, 2))
    get_registry().add_plugin(plugin)

    with pytest.raises(zoo.UnsupportedError, match="declares no 'finetune' capability"):
        zoo.load("frozen-real", device="cpu").finetune("data/")
    model = zoo.load("own-real", device="cpu")
    assert model.finetune("data.yaml", epochs=2) is model
    assert model.trained_with == ("data.yaml", None, {"epochs": 2})  # type: ignore[attr-defined]
    from zoo.train import finetune

    with pytest.raises(zoo.UnsupportedError, match="declares no 'head' capability"):
        finetune(model, (torch.rand(4, 2), torch.tensor([0, 1, 0, 1])))


def test_model_card_pipeline_tag_is_the_declared_one() -> None:
    hub = pytest.importorskip("huggingface_hub")
    pytest.importorskip("torch")
    from zoo.hub_upload import model_card

    card = hub.ModelCard(model_card(zoo.load("lenet5:none", device="cpu"), "org/digits"))
    assert card.data.library_name == "zoo" and card.data.pipeline_tag == "image-classification"
    assert "zoo" in card.data.tags and "custom/lenet5" in card.text
    sequence = hub.ModelCard(model_card(zoo.load("gru_classifier:none", device="cpu"), "org/waves"))
    assert sequence.data.pipeline_tag is None  # the sequence task declares no Hub pipeline


class OddNet:
    """A classifier whose head is `scorer`, followed by an `embed` Linear the generic rule would take."""

    @staticmethod
    def build(num_classes: int = 3) -> Any:
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU())
                self.scorer = nn.Linear(8, num_classes)
                self.embed = nn.Linear(8, 16)  # a feature projection, registered last

            def forward(self, x: Any) -> Any:
                return self.scorer(self.trunk(x))

        return Net()


def _legacy_names(state: dict[str, Any]) -> dict[str, Any]:
    """The hook: the published file calls the trunk `body`."""
    return {key.replace("body.", "trunk.", 1): value for key, value in state.items()}


def test_register_keeps_the_state_dict_hook_and_the_declared_head_is_swapped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    state = OddNet.build(3).state_dict()
    folder = tmp_path / "weights"
    folder.mkdir()
    torch.save({key.replace("trunk.", "body.", 1): value for key, value in state.items()}, folder / "odd-1.pth")
    digest = hashlib.sha256((folder / "odd-1.pth").read_bytes()).hexdigest()
    monkeypatch.setenv("ZOO_WEIGHTS_PATH", str(folder))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    zoo.register(
        "oddnet",
        task="image-classification",
        weights={"v1": zoo.Weights(url="https://weights.invalid/odd-1.pth", sha256=digest)},
        state_dict_hook=_legacy_names,
        head="scorer",
    )(OddNet.build)
    assert zoo.info("oddnet").state_dict_hook is _legacy_names and zoo.info("oddnet").head == "scorer"

    model = zoo.load("oddnet", device="cpu", num_classes=5)
    got = model.module.state_dict()
    assert torch.equal(got["trunk.1.weight"], state["trunk.1.weight"])  # the hook renamed the file's keys
    assert torch.equal(got["embed.weight"], state["embed.weight"])  # not the head, though it is the last Linear
    assert tuple(got["scorer.weight"].shape) == (5, 8)
    from zoo.train.heads import find_head

    assert find_head(model.module, model.spec.head).path == "scorer"
    assert find_head(model.module).path == "embed"  # what the generic rule would have taken


def test_a_declared_head_that_is_not_there_is_a_clear_error() -> None:
    torch = pytest.importorskip("torch")
    from zoo.train.heads import find_head

    with pytest.raises(zoo.UnsupportedError, match="declared classification head 'fc' of Linear has no such module"):
        find_head(torch.nn.Linear(2, 2), "fc")
    with pytest.raises(zoo.PluginError, match="not a dotted module path"):
        zoo.ModelSpec(name="x", task="image-classification", builder=_never_built, head="fc; rm")


def test_a_plugin_declared_offline_switch_is_set_by_zoo_offline_mode(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zoo.offline import backend_dirs, configure_backends

    for var in ("MYLIB_HOME", "MYLIB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    seen: list[tuple[bool, dict[str, str]]] = []
    plugin = zoo.Plugin("mylib-models")
    plugin.backend("mylib", home_env="MYLIB_HOME", offline_env=["MYLIB_OFFLINE"],
                   refresh=lambda offline, changed: seen.append((offline, dict(changed))))  # fmt: skip
    get_registry().add_plugin(plugin)

    assert configure_backends()["MYLIB_HOME"] == str(isolated / "mylib")
    assert "MYLIB_OFFLINE" not in os.environ and backend_dirs()["mylib"] == isolated / "mylib"
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert configure_backends()["MYLIB_OFFLINE"] == "1"
    assert os.environ["MYLIB_OFFLINE"] == "1"
    assert seen == [(False, {"MYLIB_HOME": str(isolated / "mylib")}), (True, {"MYLIB_OFFLINE": "1"})]
    with pytest.raises(zoo.PluginError, match="not an environment variable name"):
        plugin.backend("other", offline_env=["X=1; rm"])
    with pytest.raises(zoo.PluginError, match="declares backend 'mylib' twice"):
        plugin.backend("mylib")


def test_core_names_no_backend_library_nor_model_family() -> None:
    """What plugins declare is not hard-coded in the core any more."""
    offline = (ROOT / "zoo" / "offline.py").read_text()
    for word in ("HF_", "huggingface", "YOLO", "ultralytics", "TORCH_HOME"):
        assert word not in offline, word
    heads = (ROOT / "zoo" / "train" / "heads.py").read_text()
    for word in ("AuxLogits", "aux1", "heads.head", "timm", "torchvision", "Inception", "classifier.1"):
        assert word not in heads, word
    for path in (ROOT / "zoo").rglob("*.py"):
        source = path.read_text()
        assert 'endswith("classification")' not in source and 'getattr(self.task, "finetune"' not in source, path
