"""`model.info`: one frozen `ModelInfo`, built by `build_model`, round-tripped whole by save/load, and replaced
(never edited) by training."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import zoo
from tests.conftest import tiny_cnn
from tests.test_finetune import colours
from zoo.build import build_model
from zoo.errors import ZooError
from zoo.train.heads import num_outputs

PRE = zoo.ImagePreprocess(resize=36, crop=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


@pytest.fixture
def tiny() -> zoo.Model:
    """`tiny:none`, a 3-class in-script CNN with labels and preprocessing, random weights."""
    zoo.register("tiny", task="image-classification", labels=["ant", "bee", "cat"], preprocess=PRE)(
        lambda num_classes=3, width=4: tiny_cnn(num_classes)
    )
    torch.manual_seed(0)
    return zoo.load("tiny:none", device="cpu")


def test_info_is_frozen_and_read_only_through_the_model(tiny: zoo.Model) -> None:
    info = tiny.info
    assert isinstance(info, zoo.ModelInfo) and info.random_init and info.labels == ("ant", "bee", "cat")
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.labels = ("x",)  # type: ignore[misc]
    with pytest.raises(AttributeError):
        tiny.info = info  # type: ignore[misc]
    for name in ("labels", "preprocess", "weights", "builder_kwargs", "weights_sha256", "training_summary"):
        with pytest.raises(AttributeError):
            setattr(tiny, name, None)
    with pytest.raises(TypeError, match="read-only"):
        tiny.builder_kwargs["num_classes"] = 9  # type: ignore[index]
    assert tiny.info is info and tiny.builder_kwargs == {}


def test_nested_values_are_read_only_copies_that_still_serialize() -> None:
    source = {"epochs": 2, "best": {"top1": 0.5}, "labels": ["a", "b"]}
    kwargs = {"num_classes": 2, "sizes": [1, 2]}
    info = zoo.ModelInfo(builder_kwargs=kwargs, training=source)
    source["best"]["top1"] = 0.0  # the caller's dicts are copied, not shared
    kwargs["sizes"].append(3)
    assert info.training == {"epochs": 2, "best": {"top1": 0.5}, "labels": ["a", "b"]}
    assert info.builder_kwargs == {"num_classes": 2, "sizes": [1, 2]}
    assert info.training is not None
    with pytest.raises(TypeError):
        info.training["best"]["top1"] = 1.0
    with pytest.raises(TypeError):
        info.training["labels"].append("c")
    with pytest.raises(TypeError):
        info.builder_kwargs["sizes"] += [4]
    assert json.loads(json.dumps(info.training)) == {"epochs": 2, "best": {"top1": 0.5}, "labels": ["a", "b"]}
    assert pickle.loads(pickle.dumps(info)) == info == copy.deepcopy(info)
    assert hash(info) == hash(copy.deepcopy(info))


def test_replace_info_gives_a_new_value_and_leaves_the_old_one(tiny: zoo.Model) -> None:
    before = tiny.info
    after = tiny.replace_info(labels=["x", "y", "z"], training={"epochs": 1})
    assert tiny.info is after is not before
    assert tiny.labels == ("x", "y", "z") and tiny.training_summary == {"epochs": 1}
    assert before.labels == ("ant", "bee", "cat") and before.training is None


def _every_field_set(model: zoo.Model) -> zoo.ModelInfo:
    info = model.replace_info(
        weights="v7",
        labels=["x", "y", "z"],
        preprocess=zoo.ImagePreprocess(resize=40, crop=32, mean=(0.4, 0.4, 0.4), std=(0.2, 0.2, 0.2)),
        builder_kwargs={"num_classes": 3, "width": 5},
        weights_sha256="ab" * 32,
        training={"epochs": 2, "best": {"top1": 0.75}, "labels": ["x", "y", "z"]},
        random_init=True,
    )
    defaults = zoo.ModelInfo()
    unset = [f.name for f in dataclasses.fields(info) if getattr(info, f.name) == getattr(defaults, f.name)]
    assert not unset, f"set these too, so the round trip checks them: {unset}"
    return info


@pytest.mark.parametrize("form", ["tiny.safetensors", "tiny-folder"])
def test_save_then_load_round_trips_every_field(tiny: zoo.Model, tmp_path: Path, form: str) -> None:
    info = _every_field_set(tiny)
    loaded = zoo.load(tiny.save(tmp_path / form), device="cpu")
    for field in dataclasses.fields(zoo.ModelInfo):
        assert getattr(loaded.info, field.name) == getattr(info, field.name), field.name
    assert loaded.info == info


def test_a_saved_random_model_still_warns_and_a_trained_one_does_not(tiny: zoo.Model, tmp_path: Path) -> None:
    with pytest.warns(zoo.RandomWeightsWarning):
        zoo.load(tiny.save(tmp_path / "random.safetensors"), device="cpu").predict(torch.rand(3, 32, 32))
    tiny.replace_info(random_init=False)  # e.g. weights loaded into model.module by hand
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", zoo.RandomWeightsWarning)
        zoo.load(tiny.save(tmp_path / "loaded.safetensors"), device="cpu").predict(torch.rand(3, 32, 32))


def test_finetune_replaces_the_info_and_leaves_the_previous_value(tiny: zoo.Model, tmp_path: Path) -> None:
    before = tiny.info
    during = []
    trained = tiny.finetune(
        colours(16, classes=2),
        epochs=1,
        batch_size=8,
        progress=False,
        out=tmp_path / "run",
        on_epoch=lambda metrics: during.append(tiny.info),
    )
    assert trained is tiny and during == [before]  # not edited while training: replaced when it ended
    assert before.training is None and before.labels == ("ant", "bee", "cat") and dict(before.builder_kwargs) == {}
    info = trained.info
    assert info is not before and info.training is not None and info.training["epochs"] == 1
    assert info.labels == ("0", "1") and info.builder_kwargs == {"num_classes": 2}
    assert zoo.load(tmp_path / "run" / "best.safetensors", device="cpu").info == info


def test_a_failed_finetune_leaves_the_info_matching_the_new_head(tiny: zoo.Model) -> None:
    def stop(metrics: object) -> None:
        raise RuntimeError("stopped by the caller")

    with pytest.raises(RuntimeError, match="stopped by the caller"):
        tiny.finetune(colours(16, classes=2), epochs=2, batch_size=8, progress=False, on_epoch=stop)
    assert num_outputs(tiny.module) == 2
    assert tiny.labels == ("0", "1") and tiny.builder_kwargs == {"num_classes": 2} and tiny.training_summary is None


def test_build_model_loads_strictly_places_and_keeps_the_info(tiny: zoo.Model, tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in tiny.module.state_dict().items()}, str(path))
    info = tiny.info.replace(weights="mine", random_init=False)
    model = build_model(tiny.spec, info=info, weights_file=path, device="cpu")
    assert model.info is info and model.device == torch.device("cpu") and not model.module.training
    assert all(torch.equal(a, b) for a, b in zip(model.module.state_dict().values(), tiny.module.state_dict().values()))
    assert build_model(tiny.spec, device="cpu").info == zoo.ModelInfo.for_spec(tiny.spec)
    with pytest.raises(ZooError, match="do not fit the model"):
        build_model(tiny.spec, info=info.replace(builder_kwargs={"num_classes": 5}), weights_file=path, device="cpu")
