"""Self-describing checkpoints (`Model.save` / `zoo.load(path)`) and `zoo convert`."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import zoo
from tests.conftest import tiny_cnn
from tests.test_safe_pickle import TinyNet, payloads, save, tiny_net
from zoo.cli import cli
from zoo.errors import InputError, UnknownModelError, UnsupportedError, ZooError
from zoo.registry import reset_registry

LABELS = ("ant", "bee", "cat")
PREPROCESS = zoo.ImagePreprocess(resize=40, crop=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def register_tiny() -> None:
    """`tiny` in-script, with a pretrained tag `v1` found through ZOO_WEIGHTS_PATH."""

    @zoo.register(
        "tiny",
        task="image-classification",
        labels=LABELS,
        preprocess=PREPROCESS,
        weights={"v1": zoo.Weights(filename="tiny-v1.pth")},
    )
    def build(num_classes: int = 3, width: int = 4):
        return tiny_cnn(num_classes)


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> zoo.Model:
    """`tiny:v1` loaded from a real state_dict file, then marked as fine-tuned."""
    folder = tmp_path / "weights"
    folder.mkdir()
    torch.manual_seed(0)
    module = tiny_cnn()
    module[1].running_mean.uniform_()
    torch.save(module.state_dict(), folder / "tiny-v1.pth")
    monkeypatch.setenv("ZOO_WEIGHTS_PATH", str(folder))
    register_tiny()
    model = zoo.load("tiny", device="cpu")
    model.replace_info(training={"epochs": 2, "best": {"top1": 0.75}, "strategy": "full"})
    return model


def _image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)


def _same_predictions(a: zoo.Model, b: zoo.Model, shape: tuple[int, ...] = (2, 3, 32, 32)) -> None:
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert (a(x) - b(x)).abs().max().item() == 0.0
    ra, rb = a.predict(_image(), top_k=3), b.predict(_image(), top_k=3)
    assert (ra.labels, ra.indices, ra.scores) == (rb.labels, rb.indices, rb.scores)


def test_file_round_trip_restores_everything(tiny: zoo.Model, tmp_path: Path) -> None:
    path = tiny.save(tmp_path / "out" / "tiny.safetensors")
    assert path == tmp_path / "out" / "tiny.safetensors"
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.safetensors"]  # no temp file left behind
    loaded = zoo.load(str(path), device="cpu")
    _same_predictions(tiny, loaded)
    assert loaded.spec is zoo.info("tiny")
    assert loaded.labels == LABELS and loaded.preprocess == PREPROCESS
    assert loaded.weights == "v1" and loaded.weights_sha256 == tiny.weights_sha256 is not None
    assert loaded.training_summary == {"epochs": 2, "best": {"top1": 0.75}, "strategy": "full"}
    assert loaded.builder_kwargs == {} and loaded.device == torch.device("cpu")
    assert not any(t.is_meta for t in loaded.module.state_dict().values())


def test_header_metadata_holds_the_zoo_fields(tiny: zoo.Model, tmp_path: Path) -> None:
    tiny.replace_info(builder_kwargs={"num_classes": 3})
    with safe_open(str(tiny.save(tmp_path / "t.safetensors")), framework="pt") as f:
        meta = f.metadata()
    assert all(isinstance(v, str) for v in meta.values())
    assert meta["format"] == "pt" and meta["zoo.checkpoint"] == "1"
    assert (meta["zoo.model"], meta["zoo.plugin"], meta["zoo.task"]) == ("tiny", "user", "image-classification")
    assert json.loads(meta["zoo.builder_kwargs"]) == {"num_classes": 3}
    assert json.loads(meta["zoo.labels"]) == list(LABELS)
    assert zoo.ImagePreprocess.from_dict(json.loads(meta["zoo.preprocess"])) == PREPROCESS
    assert meta["zoo.weights"] == "v1" and meta["zoo.base_sha256"] == tiny.weights_sha256
    assert json.loads(meta["zoo.training"])["best"] == {"top1": 0.75}
    assert meta["zoo.version"] == zoo.__version__ and meta["torch.version"] == str(torch.__version__)


def test_folder_form_uses_the_hub_mixin_layout(tiny: zoo.Model, tmp_path: Path) -> None:
    tiny.replace_info(builder_kwargs={"num_classes": 3})
    folder = tiny.save(tmp_path / "tiny-ckpt")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["num_classes"] == 3 and config["zoo"]["model"] == "tiny" and config["zoo"]["labels"] == list(LABELS)
    _same_predictions(tiny, zoo.load(str(folder), device="cpu"))
    _same_predictions(tiny, zoo.load(str(folder) + "/", device="cpu"))


def test_huggingface_hub_mixin_reads_the_folder_form(tiny: zoo.Model, tmp_path: Path) -> None:
    hub = pytest.importorskip("huggingface_hub")

    class TinyHub(nn.Sequential, hub.PyTorchModelHubMixin):
        def __init__(self, num_classes: int = 7) -> None:
            super().__init__(*tiny_cnn(num_classes))

    tiny.replace_info(builder_kwargs={"num_classes": 3})
    folder = tiny.save(tmp_path / "hub")
    restored = TinyHub.from_pretrained(folder, strict=True).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(restored(x), tiny(x))


def test_torchvision_resnet18_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = zoo.load("resnet18:none", num_classes=5, device="cpu")
    loaded = zoo.load(str(model.save(tmp_path / "r18.safetensors")), device="cpu")
    assert loaded.spec.plugin == "torchvision" and loaded.builder_kwargs == {"num_classes": 5}
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        assert (model(x) - loaded(x)).abs().max().item() == 0.0
    assert loaded.predict(_image(), top_k=2).indices == model.predict(_image(), top_k=2).indices


def test_half_precision_weights_stay_half(tiny: zoo.Model, tmp_path: Path) -> None:
    tiny.module.half()
    loaded = zoo.load(str(tiny.save(tmp_path / "half.safetensors")), device="cpu")
    assert {t.dtype for t in loaded.module.state_dict().values() if t.is_floating_point()} == {torch.float16}
    for key, tensor in tiny.module.state_dict().items():
        assert torch.equal(loaded.module.state_dict()[key], tensor), key


def test_device_is_honoured(tiny: zoo.Model, tmp_path: Path) -> None:
    path = str(tiny.save(tmp_path / "t.safetensors"))
    assert zoo.load(path, device="cpu").device == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(UnsupportedError, match="CUDA is not available"):
            zoo.load(path, device="cuda")
    else:
        gpu = zoo.load(path, device="cuda")
        assert all(p.is_cuda for p in gpu.module.parameters())


def _rewrite(path: Path, edit_tensors=None, edit_meta=None) -> None:
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    save_file(
        edit_tensors(tensors) if edit_tensors else tensors, str(path), metadata=edit_meta(meta) if edit_meta else meta
    )


def test_strict_load_names_missing_and_unexpected_keys(tiny: zoo.Model, tmp_path: Path) -> None:
    path = tiny.save(tmp_path / "t.safetensors")

    def edit(tensors: dict) -> dict:
        tensors.pop("5.bias")
        tensors["extra.weight"] = torch.zeros(1)
        return tensors

    _rewrite(path, edit_tensors=edit)
    with pytest.raises(ZooError, match=r"missing 5\.bias; unexpected extra\.weight"):
        zoo.load(str(path), device="cpu")


def test_changed_builder_arguments_are_refused(tiny: zoo.Model, tmp_path: Path) -> None:
    tiny.replace_info(builder_kwargs={"num_classes": 3})
    path = str(tiny.save(tmp_path / "t.safetensors"))
    with pytest.raises(UnsupportedError, match="saved with num_classes=3, not 5"):
        zoo.load(path, num_classes=5)
    assert zoo.load(path, device="cpu", labels=["x", "y", "z"]).labels == ("x", "y", "z")


def test_builder_arguments_that_are_not_json_are_refused_at_save(tmp_path: Path) -> None:
    @zoo.register("actnet", task="image-classification")
    def build(act: type = nn.ReLU):
        return nn.Sequential(nn.Flatten(), nn.Linear(3, 2), act())

    model = zoo.load("actnet", act=nn.GELU, device="cpu")
    with pytest.raises(ZooError, match="act=.* is not a JSON value"):
        model.save(tmp_path / "a.safetensors")
    assert not (tmp_path / "a.safetensors").exists()


def test_an_in_script_model_must_be_registered_again(tiny: zoo.Model, tmp_path: Path) -> None:
    path = str(tiny.save(tmp_path / "t.safetensors"))
    reset_registry()
    with pytest.raises(UnknownModelError, match=r"registered in-script: run its `@zoo.register\('tiny'"):
        zoo.load(path)
    register_tiny()
    _same_predictions(tiny, zoo.load(path, device="cpu"))


def test_a_model_of_a_missing_plugin_names_the_plugin(tiny: zoo.Model, tmp_path: Path) -> None:
    path = tiny.save(tmp_path / "t.safetensors")
    _rewrite(path, edit_meta=lambda meta: {**meta, "zoo.plugin": "nosuch"})
    with pytest.raises(UnknownModelError, match="'nosuch/tiny'.*install or enable plugin 'nosuch'"):
        zoo.load(str(path))
    _rewrite(path, edit_meta=lambda meta: {**meta, "zoo.plugin": "torchvision"})
    with pytest.raises(UnknownModelError, match="plugin 'torchvision' declares no model 'tiny'"):
        zoo.load(str(path))


def test_safetensors_without_zoo_metadata_gets_advice(tmp_path: Path) -> None:
    path = tmp_path / "bare.safetensors"
    save_file(tiny_cnn().state_dict(), str(path))
    with pytest.raises(UnsupportedError, match=r"no zoo metadata.*load_state_dict\(safetensors.torch.load_file"):
        zoo.load(str(path))


def test_a_pickle_path_is_refused_with_convert_advice(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    torch.save(tiny_cnn().state_dict(), path)
    with pytest.raises(UnsupportedError, match="zoo convert w.pth w.safetensors"):
        zoo.load(str(path))


@pytest.mark.parametrize("kind", ["exec", "os.system", "subprocess"])
def test_zoo_load_never_runs_a_payload(tmp_path: Path, kind: str) -> None:
    marker = tmp_path / "marker"
    evil = payloads(marker)[kind]
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "config.json").write_text('{"zoo": {"model": "tiny", "plugin": "user"}}')
    for path in (tmp_path / "evil.pt", tmp_path / "evil.safetensors", folder / "model.safetensors"):
        torch.save({"model": evil}, path)
        with pytest.raises(ZooError):
            zoo.load(str(path.parent if path.parent == folder else path))
    assert not marker.exists()


def test_save_refuses_to_replace_another_kind_of_file(tiny: zoo.Model, tmp_path: Path) -> None:
    notes = tmp_path / "notes.safetensors"
    notes.write_text("my notes")
    with pytest.raises(InputError, match="is not a safetensors file: zoo will not overwrite it"):
        tiny.save(notes)
    assert notes.read_text() == "my notes"
    with pytest.raises(InputError, match="not pickles"):
        tiny.save(tmp_path / "model.pt")
    (tmp_path / "plain").write_text("x")
    with pytest.raises(InputError, match="exists and is not a folder"):
        tiny.save(tmp_path / "plain")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("not json")
    with pytest.raises(InputError, match="is not a JSON config"):
        tiny.save(tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["config.json"]
    again = tiny.save(tiny.save(tmp_path / "ok.safetensors"))  # a safetensors file is replaced
    assert zoo.load(str(again), device="cpu").labels == LABELS


def test_a_failed_save_leaves_the_old_file(tiny: zoo.Model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tiny.save(tmp_path / "t.safetensors")
    before = path.read_bytes()

    def broken(tensors: dict, filename: str, metadata: dict) -> None:
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        tiny.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.safetensors", "weights"]


# -- zoo convert ---------------------------------------------------------------------------------------------------


def _convert(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["convert", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_convert_a_state_dict(tmp_path: Path) -> None:
    module = tiny_cnn()
    src = tmp_path / "w.pth"
    torch.save({"epoch": 3, "state_dict": module.state_dict()}, src)
    code, out = _convert(str(src), str(tmp_path / "w.safetensors"))
    assert code == 0 and "entry 'state_dict'" in out and "weights_only=True" in out and "wrote" in out
    got = load_file(str(tmp_path / "w.safetensors"))
    assert got.keys() == module.state_dict().keys()
    assert all(torch.equal(got[k], v) for k, v in module.state_dict().items())


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_convert_a_full_model_pickle_prefers_ema(tmp_path: Path, fmt: str) -> None:
    net, ema = tiny_net(), TinyNet()
    src = save({"model": net, "ema": ema, "opt": None}, tmp_path / "full.pt", fmt)
    code, out = _convert(str(src), str(tmp_path / "ema.safetensors"))
    assert code == 0 and "entry 'ema'" in out and "safe reader" in out
    assert torch.equal(load_file(str(tmp_path / "ema.safetensors"))["head.weight"], ema.head.weight.detach())
    code, out = _convert(str(src), str(tmp_path / "model.safetensors"), "--key", "model", "--dtype", "float16")
    got = load_file(str(tmp_path / "model.safetensors"))
    assert code == 0 and got.keys() == net.state_dict().keys() and got["head.weight"].dtype == torch.float16
    assert got["stem.1.num_batches_tracked"].dtype == torch.int64
    assert torch.equal(got["stem.0.weight"], net.stem[0].weight.detach().half())


@pytest.mark.parametrize("kind", ["exec", "os.system", "subprocess"])
def test_convert_never_runs_a_payload(tmp_path: Path, kind: str) -> None:
    marker = tmp_path / "marker"
    alone = save({"model": payloads(marker)[kind]}, tmp_path / "alone.pt")
    code, out = _convert(str(alone), str(tmp_path / "a.safetensors"))
    assert code == 1 and "holds no state_dict" in out and not (tmp_path / "a.safetensors").exists()
    mixed = save({"state_dict": {"w": torch.ones(2)}, "hook": payloads(marker)[kind]}, tmp_path / "mixed.pt", "legacy")
    code, out = _convert(str(mixed), str(tmp_path / "m.safetensors"))
    assert code == 0 and torch.equal(load_file(str(tmp_path / "m.safetensors"))["w"], torch.ones(2))
    assert not marker.exists()


def test_convert_refuses_torchscript_and_tar_by_name(tmp_path: Path) -> None:
    scripted = tmp_path / "scripted.pt"
    torch.jit.script(tiny_cnn()).save(str(scripted))
    code, out = _convert(str(scripted), str(tmp_path / "s.safetensors"))
    assert code == 1 and "is a TorchScript archive" in out
    old = tmp_path / "old.tar"
    with tarfile.open(old, "w") as tar:
        tar.add(scripted, arcname="storages")
    code, out = _convert(str(old), str(tmp_path / "t.safetensors"))
    assert code == 1 and "legacy tar archive" in out
    assert not list(tmp_path.glob("*.safetensors"))


def test_convert_checks_its_output(tmp_path: Path) -> None:
    src = tmp_path / "w.pth"
    torch.save(tiny_cnn().state_dict(), src)
    assert "must end in .safetensors" in _convert(str(src), str(tmp_path / "w.pt"))[1]
    (tmp_path / "taken.safetensors").write_text("keep me")
    assert "will not overwrite it" in _convert(str(src), str(tmp_path / "taken.safetensors"))[1]
    assert (tmp_path / "taken.safetensors").read_text() == "keep me"
    code, out = _convert(str(src), str(tmp_path / "w.safetensors"), "--key", "nope")
    assert code == 1 and "has no entry 'nope'" in out


def test_full_pickle_weights_load_through_the_safe_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    net = tiny_net()
    folder = tmp_path / "w"
    folder.mkdir()
    save({"model": net, "epoch": 9}, folder / "tinynet.pt")
    monkeypatch.setenv("ZOO_WEIGHTS_PATH", str(folder))
    sha = hashlib.sha256((folder / "tinynet.pt").read_bytes()).hexdigest()

    weights = zoo.Weights(filename="tinynet.pt", sha256=sha, format="full-pickle")

    @zoo.register("tinynet", task="image-classification", weights={"v1": weights})
    def build():
        return TinyNet()

    model = zoo.load("tinynet", device="cpu")
    x = torch.rand(1, 3, 8, 8)
    with torch.inference_mode():
        assert torch.equal(model(x), net.eval()(x))
    assert (Path(zoo.settings.cache_root()) / "weights" / "tinynet.safetensors").is_file()


@pytest.mark.assets
def test_convert_the_real_yolov5n_checkpoint(assets: Path, tmp_path: Path) -> None:
    code, out = _convert(str(assets / "weights" / "yolov5n.pt"), str(tmp_path / "y.safetensors"), "--json")
    report = json.loads(out)
    assert code == 0 and report["tensors"] == 349 and report["key"] == "model" and report["reader"] == "safe_pickle"
    assert load_file(str(tmp_path / "y.safetensors"))["model.24.anchors"].shape == (3, 3, 2)
