"""`zoo.load(...).predict(...)` end to end on a tiny real model served by a local HTTP server."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from tests.conftest import tiny_cnn

LABELS = ("ant", "bee", "cat")


@pytest.fixture
def tiny(file_server, tiny_state_dict_file: Path, monkeypatch: pytest.MonkeyPatch) -> zoo.Model:
    """`tiny` registered in-script, its weights served through a mirror of a fake upstream."""
    data = tiny_state_dict_file.read_bytes()
    (file_server.root / tiny_state_dict_file.name).write_bytes(data)
    monkeypatch.setenv("ZOO_MIRRORS", f"https://weights.invalid={file_server.url}")

    @zoo.register(
        "tiny",
        task="image-classification",
        labels=LABELS,
        weights={
            "v1": zoo.Weights(
                url=f"https://weights.invalid/{tiny_state_dict_file.name}",
                hash_prefix=hashlib.sha256(data).hexdigest()[:8],
            )
        },
        preprocess=zoo.ImagePreprocess(resize=40, crop=32),
    )
    def build(num_classes: int = 3):
        return tiny_cnn(num_classes)

    return zoo.load("tiny", device="cpu")


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(path)
    return path


def test_load_converts_once_and_matches_the_state_dict(tiny: zoo.Model, tiny_state_dict_file: Path) -> None:
    expected = torch.load(tiny_state_dict_file, weights_only=True)
    got = tiny.module.state_dict()
    assert set(got) == set(expected)
    for key, tensor in expected.items():
        assert torch.equal(got[key], tensor), key
    assert not any(p.is_meta for p in tiny.module.parameters())
    cached = sorted(p.name for p in Path(zoo.settings.cache_root(), "weights").iterdir() if not p.name.startswith("."))
    assert cached == [  # the pickle stays beside its conversion, which can be made again from it and compared
        "tiny-0000.pth",
        "tiny-0000.pth.record.json",
        "tiny-0000.safetensors",
        "tiny-0000.safetensors.record.json",
    ]


def test_predict_matches_torchvisions_own_transform(tiny: zoo.Model, photo: Path) -> None:
    from torchvision.transforms._presets import ImageClassification

    result = tiny.predict(photo, top_k=3)
    image = torch.from_numpy(np.array(Image.open(photo))).permute(2, 0, 1)
    pipeline = ImageClassification(crop_size=32, resize_size=40)  # what torchvision's weights.transforms() builds
    with torch.inference_mode():
        probs = tiny.module(pipeline(image)[None]).softmax(-1)[0]
    order = probs.argsort(descending=True)
    assert result.indices == tuple(order.tolist())
    assert result.labels == tuple(LABELS[i] for i in order)
    assert result.scores == pytest.approx(probs[order].tolist(), abs=1e-6)
    assert result.label == result.labels[0] and result.score == max(result.scores)
    assert result.source == str(photo)


def test_every_input_kind_gives_the_same_answer(tiny: zoo.Model, photo: Path, tmp_path: Path) -> None:
    array = np.array(Image.open(photo).convert("RGB"))
    tensor = torch.from_numpy(array).permute(2, 0, 1).contiguous()
    copy = tmp_path / "dir" / "copy.png"
    copy.parent.mkdir()
    copy.write_bytes(photo.read_bytes())
    reference = tiny.predict(photo).scores
    singles = [photo, str(photo), photo.read_bytes(), Image.open(photo), array, tensor, tensor.float() / 255]
    for each in singles:
        assert tiny.predict(each).scores == pytest.approx(reference, abs=1e-4), type(each)  # float resize differs ~1e-5
    batch = tiny.predict([photo, tensor[None].expand(2, -1, -1, -1), str(copy.parent), str(tmp_path / "d*" / "*.png")])
    assert len(batch) == 5
    for result in batch:
        assert result.scores == pytest.approx(reference, abs=1e-5)
    assert [r.source for r in batch][-2:] == [str(copy), str(copy)]


def test_batches_and_lists(tiny: zoo.Model, photo: Path) -> None:
    out = tiny.predict([photo] * 7, batch_size=3, top_k=2)
    assert isinstance(out, list) and len(out) == 7
    assert all(len(r) == 2 for r in out)
    assert isinstance(tiny.predict(photo), zoo.Classification)


def test_preprocessed_tensor_path_is_the_raw_forward(tiny: zoo.Model) -> None:
    x = torch.randn(4, 3, 32, 32)
    results = tiny.predict(x, preprocess=False, top_k=1)
    with torch.inference_mode():
        expected = tiny(x).argmax(-1).tolist()
    assert [r.index for r in results] == expected


def test_results_serialise(tiny: zoo.Model, photo: Path) -> None:
    result = tiny.predict(photo, top_k=2)
    data = json.loads(result.to_json())
    assert data["source"] == str(photo)
    assert [t["label"] for t in data["top"]] == list(result.labels)
    assert repr(result).startswith("Classification(")
    assert result.labels[0] in repr(result)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda d: d / "missing.jpg", "No such file or folder"),
        (lambda d: _write(d / "notes.jpg", b"hello, I am text"), "Cannot decode"),
        (lambda d: _write(d / "cut.jpg", _jpeg()[:700]), "Cannot decode .*cut.jpg"),
        (lambda d: torch.zeros(2, 16, 16, dtype=torch.uint8), "2 channels"),
        (lambda d: _mkdir(d / "empty"), "No images in folder"),
        (lambda d: str(d / "nothing*.png"), "No files match"),
        (lambda d: 42, "Cannot use a int"),
    ],
)
def test_bad_input_gives_one_line_errors(tiny: zoo.Model, tmp_path: Path, make, match: str) -> None:
    with pytest.raises(zoo.InputError, match=match) as info:
        tiny.predict(make(tmp_path))
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_random_init_and_num_classes(tiny: zoo.Model) -> None:
    model = zoo.load("tiny:none", device="cpu", num_classes=5)
    assert model.weights is None and model.labels is None
    result = model.predict(torch.rand(3, 32, 32))
    assert len(result) == 5 and all(label.isdigit() for label in result.labels)


def test_unknown_weights_tag_is_one_line() -> None:
    zoo.register("t2", task="image-classification", weights={"v1": zoo.Weights(url="https://x.invalid/t2.pth")})(
        tiny_cnn
    )
    with pytest.raises(zoo.UnknownModelError, match="Unknown weights tag 'v7' for 't2'. Known tags: v1"):
        zoo.load("t2:v7")


def test_offline_cold_cache_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    zoo.register("t3", task="image-classification", weights={"v1": zoo.Weights(url="https://x.invalid/t3.pth")})(
        tiny_cnn
    )
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(zoo.OfflineError, match="'t3.pth' is not cached"):
        zoo.load("t3")


def test_device_errors_are_actionable() -> None:
    from zoo.device import resolve_device

    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(zoo.UnsupportedError, match="use --device cpu"):
            resolve_device("cuda")
    with pytest.raises(zoo.UnsupportedError, match="is not a device"):
        resolve_device("quantum")


def test_zoo_device_env_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo.device import resolve_device

    monkeypatch.setenv("ZOO_DEVICE", "cpu")
    assert resolve_device("auto").type == "cpu"


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()
