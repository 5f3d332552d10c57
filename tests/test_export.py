"""Export (ONNX, .pt2, TorchScript) with zoo metadata, parity checks, and `zoo.load` of exported graphs."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import zoo
from tests.test_animegan2 import served  # noqa: F401, F811 (a fixture)
from zoo.errors import InputError, UnsupportedError

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

PHOTOS = ("chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg", "grace_hopper.jpg", "bus.jpg", "zidane.jpg")


def _cli(*args: str) -> tuple[int, str]:
    from zoo.cli import cli

    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_mobilenet_v2_onnx_export_check_and_load(assets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The must-hold: `zoo export mobilenet_v2 m.onnx --check` <= 1e-4 and the same top-5 through onnxruntime."""
    monkeypatch.setenv("ZOO_WEIGHTS_PATH", str(assets / "weights"))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    photos = [assets / "images" / name for name in PHOTOS]
    out = tmp_path / "m.onnx"
    images = [arg for p in photos for arg in ("--images", str(p))]
    code, text = _cli("export", "mobilenet_v2", str(out), "--exporter", "torchscript", *images)
    assert code == 0, text
    diff, tolerance = map(float, re.search(r"max abs diff (\S+) <= tolerance (\S+) on 7 images", text).groups())
    assert diff <= 1e-4
    assert tolerance == 1e-4
    # the metadata is zoo's, as plain JSON
    proto = onnx.load(str(out), load_external_data=False)
    meta = json.loads({p.key: p.value for p in proto.metadata_props}["zoo"])
    torch_model = zoo.load("mobilenet_v2", device="cpu")
    assert meta["labels"] == list(torch_model.labels)
    assert meta["weights_sha256"] == torch_model.weights_sha256
    assert len(meta["weights_sha256"]) == 64
    assert meta["task"] == "image-classification"
    assert meta["preprocess"] == torch_model.preprocess.to_dict()
    assert meta["zoo_version"] == zoo.__version__
    # zoo.load runs it through onnxruntime, with the same predict and results
    exported = zoo.load(out)
    assert type(exported.module).__name__ == "OnnxRuntimeModule"
    assert exported.labels == torch_model.labels
    expected = torch_model.predict(photos, top_k=5)
    got = exported.predict(photos, top_k=5)
    for mine, theirs in zip(got, expected):
        assert mine.labels == theirs.labels
        assert mine.scores == pytest.approx(theirs.scores, abs=1e-5)
    assert exported.predict(photos[0]).label == "Egyptian cat"
    code, text = _cli("predict", str(out), str(photos[1]), "--json")
    assert code == 0, text
    assert json.loads(text)["results"][0]["top"][0]["label"] == "espresso"


def _tiny_export(tmp_path: Path, suffix: str, format: str, **options) -> tuple[zoo.Model, Path]:
    import torch

    torch.manual_seed(0)
    model = zoo.load("lenet5:none", device="cpu")
    path = model.export(tmp_path / f"lenet{suffix}", format, exporter="torchscript", **options)
    return model, path


def test_torchscript_and_static_batch_parity(tmp_path: Path) -> None:
    import torch

    model, path = _tiny_export(tmp_path, ".torchscript", "torchscript")
    parity = zoo.export.check_export(model, path)
    assert parity.ok
    assert parity.max_abs_diff <= 1e-5
    assert parity.inputs == ("<synthetic 0>", "<synthetic 1>", "<synthetic 2>")
    extra = {"zoo.json": ""}
    torch.jit.load(str(path), _extra_files=extra)
    assert json.loads(extra["zoo.json"])["name"] == "lenet5"
    _, static = _tiny_export(tmp_path, ".onnx", "onnx", dynamic_batch=False)
    session_shape = onnx.load(str(static)).graph.input[0].type.tensor_type.shape.dim[0].dim_value
    assert session_shape == 1  # fixed
    assert zoo.export.check_export(model, static).ok  # compared one image at a time


def test_include_preprocess_normalizes_inside_the_graph(tmp_path: Path) -> None:
    import torch

    model, path = _tiny_export(tmp_path, ".onnx", "onnx", include_preprocess=True)
    exported = zoo.load(path)
    assert exported.preprocess.mean == (0.0,)
    assert exported.preprocess.std == (1.0,)
    assert zoo.export.check_export(model, path).ok
    image = (torch.rand(1, 40, 50) * 255).to(torch.uint8)
    assert exported.predict(image).scores == pytest.approx(model.predict(image).scores, abs=1e-5)


def test_a_wrong_export_fails_the_check(tmp_path: Path) -> None:
    import torch

    model, path = _tiny_export(tmp_path, ".onnx", "onnx")
    with torch.no_grad():  # the model changes after its export: the file no longer follows it
        next(model.module.parameters()).add_(0.5)
    with pytest.raises(zoo.export.ParityError, match="max abs diff"):
        zoo.export.check_export(model, path)


def test_pt2_round_trip(tmp_path: Path) -> None:
    import torch

    model, path = _tiny_export(tmp_path, ".pt2", "torch.export")
    loaded = zoo.load(path, device="cpu")
    image = (torch.rand(1, 32, 32) * 255).to(torch.uint8)
    assert loaded.predict(image).scores == pytest.approx(model.predict(image).scores, abs=1e-5)
    assert loaded.spec.plugin == "export:torch.export"


@pytest.mark.parametrize(("suffix", "format"), [(".onnx", "onnx"), (".pt2", "torch.export")])
def test_an_exported_graph_only_predicts(tmp_path: Path, suffix: str, format: str) -> None:
    _, path = _tiny_export(tmp_path, suffix, format)
    loaded = zoo.load(path, device="cpu")
    before = sorted(tmp_path.iterdir())
    actions = {
        "save": lambda: loaded.save(tmp_path / "again.safetensors"),  # would write a checkpoint without weights
        "export": lambda: loaded.export(tmp_path / f"again{suffix}", format),
        "finetune": lambda: loaded.finetune(tmp_path, epochs=1),
    }
    for action, call in actions.items():
        with pytest.raises(UnsupportedError, match=rf"exported {re.escape(format)} graph .* {action} the original"):
            call()
    assert sorted(tmp_path.iterdir()) == before  # nothing written


def test_models_that_cannot_export_say_so_in_one_line(tmp_path: Path) -> None:
    code, text = _cli("export", "rnn_classifier:none", str(tmp_path / "x.onnx"))
    assert code == 1
    assert text.startswith("error: ") and text.count("\n") == 1, text
    assert "sequence-classification" in text
    model = zoo.load("lenet5:none", device="cpu")
    with pytest.raises(InputError, match="Unknown export format"):
        model.export(tmp_path / "x.bin", "keras")
    with pytest.raises(InputError, match="is a folder"):
        model.export(tmp_path, "onnx")
    with pytest.raises(UnsupportedError, match="builder arguments"):
        zoo.load(tmp_path / "none.onnx", num_classes=3)


# --- exported files are data: metadata is parsed as plain JSON and validated -------------------------------


def _onnx_with(tmp_path: Path, metadata: str | None, *, external: str | None = None) -> Path:
    """A tiny real ONNX graph (identity-like Flatten) carrying `metadata` as zoo's."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((1,), np.float32), "w")
    if external is not None:
        weight.data_location = TensorProto.EXTERNAL
        weight.ClearField("raw_data")
        entry = weight.external_data.add()
        entry.key, entry.value = "location", external
    graph = helper.make_graph(
        [helper.make_node("Mul", ["input", "w"], ["m"]), helper.make_node("Flatten", ["m"], ["output"])],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 4, 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 16])],
        [weight],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    if metadata is not None:
        entry = proto.metadata_props.add()
        entry.key, entry.value = "zoo", metadata
    path = tmp_path / "evil.onnx"
    path.write_bytes(proto.SerializeToString())
    return path


GOOD = {
    "schema": 1, "name": "tiny", "task": "image-classification", "labels": [str(i) for i in range(16)],
    "preprocess": {"resize": 4, "crop": 4, "mean": [0.5], "std": [0.5], "channels": 1}, "input_name": "input",
}  # fmt: skip


def test_a_valid_handmade_onnx_runs(tmp_path: Path) -> None:
    import torch

    model = zoo.load(_onnx_with(tmp_path, json.dumps(GOOD)))
    result = model.predict(torch.full((1, 8, 8), 255, dtype=torch.uint8), top_k=3)
    assert len(result.labels) == 3
    assert result.scores[0] == pytest.approx(1 / 16)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"task": "sequence-classification"}, "cannot run in zoo"),
        ({"task": "zoo.model:Model"}, "cannot run in zoo"),
        ({"labels": "cat"}, "labels"),
        ({"labels": [1, 2]}, "labels"),
        ({"preprocess": {"resize": 10**9}}, "preprocess"),
        ({"preprocess": {"pipeline": "os:system"}}, "preprocess"),
        ({"preprocess": None}, "preprocess"),
        ({"weights_sha256": "../../etc/passwd"}, "weights_sha256"),
        ({"name": "../../x"}, "name"),
        ({"schema": 99}, "newer zoo"),
        ({"input_name": "other"}, "inputs"),
        ({"dynamic_batch": "yes"}, "dynamic_batch"),
    ],
)
def test_bad_metadata_is_refused(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        zoo.load(_onnx_with(tmp_path, json.dumps({**GOOD, **change})))


@pytest.mark.parametrize(
    ("metadata", "message"),
    [(None, "no zoo metadata"), ("{not json", "not valid JSON"), ("[1]", "not a JSON object"),
     (" " * (5 * 2**20), "larger than")],
)  # fmt: skip
def test_missing_or_damaged_metadata_is_refused(tmp_path: Path, metadata: str | None, message: str) -> None:
    with pytest.raises(InputError, match=message):
        zoo.load(_onnx_with(tmp_path, metadata))


def test_external_data_outside_the_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="external tensor data"):
        zoo.load(_onnx_with(tmp_path, json.dumps(GOOD), external="../../etc/passwd"))


def test_not_an_onnx_file(tmp_path: Path) -> None:
    path = tmp_path / "x.onnx"
    path.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(InputError):
        zoo.load(path)


def test_import_zoo_export_and_serve_stay_light() -> None:
    import subprocess

    code = (
        "import sys, zoo, zoo.export, zoo.serve, zoo.cli.export, zoo.cli.serve; "
        "heavy = [m for m in ('torch', 'onnx', 'onnxruntime', 'fastapi', 'uvicorn') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- detection (YOLOv5 native) and image-to-image ------------------------------------------------------------


def test_yolov5_onnx_gives_the_same_boxes_as_pytorch(
    assets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real yolov5n: the raw head output in the graph (dynamic height and width), NMS outside it in zoo's task."""
    import numpy as np
    import torch

    weights = assets / "weights" / "yolov5n.pt"
    if not weights.is_file():
        pytest.skip("yolov5n.pt is not in ../shared/assets")
    monkeypatch.setenv("ZOO_WEIGHTS_PATH", str(weights.parent))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    photos = [assets / "images" / "bus.jpg", assets / "images" / "zidane.jpg"]  # 640x480 and 384x640 letterboxed
    model = zoo.load("yolov5n", device="cpu")
    model.predict(torch.zeros(3, 640, 640, dtype=torch.uint8))  # grids cached at the export example's size
    path = model.export(tmp_path / "y.onnx", exporter="torchscript")
    graph_input = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in graph_input] == ["batch", "", "height", "width"]
    parity = zoo.export.check_export(model, path, photos)
    assert parity.ok and parity.max_abs_diff <= 1e-2
    exported = zoo.load(path)
    assert type(exported.module).__name__ == "OnnxRuntimeModule"
    for photo in photos:
        want, got = model.predict(photo), exported.predict(photo)
        assert len(want.boxes) >= 3
        assert list(got.class_ids) == list(want.class_ids)
        assert got.labels == want.labels
        np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-2)
        np.testing.assert_allclose(got.scores, want.scores, atol=1e-4)


def test_yolov5_torch_export_does_not_bake_in_cached_grids(tmp_path: Path) -> None:
    """torch.export after a predict at the example's size: the grids follow the input's shape (`:none` weights).

    check_export's synthetic images letterbox to 480x640, 544x640 and 608x640, none the example's 640x640.
    """
    import torch

    torch.manual_seed(0)
    model = zoo.load("yolov5n:none", device="cpu")
    model.predict(torch.zeros(3, 640, 640, dtype=torch.uint8))
    path = model.export(tmp_path / "y.pt2", "torch.export")
    parity = zoo.export.check_export(model, path, tolerance=1e-3)
    assert parity.ok and len(parity.inputs) == 3


def test_image_to_image_onnx_gives_the_same_image(served: dict, tmp_path: Path) -> None:  # noqa: F811
    """An AnimeGAN2-shaped generator (test_animegan2's tiny one): export, parity, and the same output image."""
    import numpy as np
    import torch

    model = zoo.load("animegan2:paprika", repo=str(served["repo"]), trust=True, device="cpu")
    path = model.export(tmp_path / "g.onnx", exporter="torchscript")
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "", "height", "width"]
    parity = zoo.export.check_export(model, path)
    assert parity.ok and parity.max_abs_diff <= 1e-4
    exported = zoo.load(path)
    assert exported.spec.task == "image-to-image"
    image = (torch.rand(3, 300, 400, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8)
    for tile in (False, True):  # face2paint's crop to 512, and tiles of the working size
        want, got = model.predict(image, tile=tile), exported.predict(image, tile=tile)
        assert got.image.size == want.image.size
        diff = np.abs(np.asarray(got.image, np.int16) - np.asarray(want.image, np.int16))
        assert diff.max() <= 1  # uint8 pixels: at most a rounding apart


def test_ultralytics_exports_through_its_own_exporter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """yolov8n (`:none`): `model.export` delegates to `YOLO(...).export(format="onnx")`, offline, no installs."""
    import torch

    pytest.importorskip("ultralytics")
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ultralytics"))
    torch.manual_seed(0)
    model = zoo.load("yolov8n:none", device="cpu")
    path = model.export(tmp_path / "v8.onnx")
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert "zoo" not in props and "Ultralytics" in props.get("author", "")  # ultralytics' file, not zoo's
    parity = zoo.export.check_export(model, path)  # synthetic images, letterboxed to three shapes
    assert parity.ok and parity.max_abs_diff <= 1e-2
    with pytest.raises(UnsupportedError, match="onnx only"):
        model.export(tmp_path / "v8.pt2", "torch.export")
