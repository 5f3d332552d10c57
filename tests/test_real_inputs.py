"""Real inputs: phone photos stored sideways (EXIF orientation), folders with bad files, decompression bombs,
absurd preprocessing sizes, random weights said out loud, CLI options checked against the task, and
validation through predict's own preprocessing."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import warnings
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

import zoo
from zoo.images import ImageItem, decode, orient, preprocess_batch

PHOTOS = ("bus.jpg", "chelsea.png", "coffee.png", "grace_hopper.jpg", "zidane.jpg")


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zoo", *args], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )


def _sideways(image: Image.Image, path: Path, orientation: int = 6, **save: object) -> Path:
    """`image` stored so that applying EXIF `orientation` gives it back (a phone photo's layout)."""
    undo = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_90,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_270,
    }
    stored = image.transpose(undo[orientation]) if orientation in undo else image.copy()
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(path, exif=exif, **save)
    return path


@pytest.fixture
def bus(assets: Path) -> Path:
    return assets / "images" / "bus.jpg"


@pytest.fixture
def exif_bus(bus: Path, tmp_path: Path) -> Path:
    """bus.jpg with its pixels turned 90 degrees and EXIF Orientation=6, as a phone stores a portrait photo."""
    path = _sideways(Image.open(bus).convert("RGB"), tmp_path / "bus_exif6.jpg", 6, quality=95)
    with Image.open(path) as stored:
        assert stored.size == (1080, 810)  # stored sideways
        assert stored.getexif()[0x0112] == 6
        assert ImageOps.exif_transpose(stored).size == (810, 1080)  # upright again
    return path


@pytest.fixture
def yolov5n(assets: Path, monkeypatch: pytest.MonkeyPatch) -> zoo.Model:
    path = assets / "weights" / "yolov5n.pt"
    if not path.is_file():
        pytest.skip("yolov5n.pt is not in ../shared/assets")
    monkeypatch.setenv("ZOO_WEIGHTS_PATH", str(path.parent))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    return zoo.load("yolov5n", device="cpu")


@pytest.fixture
def mobilenet(assets: Path, monkeypatch: pytest.MonkeyPatch) -> zoo.Model:
    monkeypatch.setenv("ZOO_WEIGHTS_PATH", str(assets / "weights"))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    return zoo.load("mobilenet_v2", device="cpu")


# -- EXIF orientation --------------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_decodes_as_pil_exif_transpose(orientation: int, tmp_path: Path) -> None:
    rng = np.random.default_rng(orientation)
    upright = Image.fromarray(rng.integers(0, 256, (5, 7, 3), dtype=np.uint8))
    path = _sideways(upright, tmp_path / "x.png", orientation)  # PNG: lossless, EXIF in an eXIf chunk
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    np.testing.assert_array_equal(expected, np.asarray(upright))
    for data in (path, path.read_bytes(), Image.open(path)):
        got = decode(ImageItem(data, "x")).permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(got, expected)


def test_orient_on_tensors_matches_pil(tmp_path: Path) -> None:
    chw = torch.arange(2 * 3 * 4, dtype=torch.uint8).view(2, 3, 4)
    for orientation in range(1, 9):
        pil = Image.fromarray(chw[0].numpy())
        exif = Image.Exif()
        exif[0x0112] = orientation
        pil.info["exif"] = exif.tobytes()
        expected = np.asarray(ImageOps.exif_transpose(pil))
        assert np.array_equal(orient(chw, orientation)[0].numpy(), expected), orientation


@pytest.mark.assets
def test_exif6_bus_gives_the_upright_detections(yolov5n: zoo.Model, bus: Path, exif_bus: Path) -> None:
    upright = yolov5n.predict(bus)
    turned = yolov5n.predict(exif_bus)
    assert Counter(turned.labels) == Counter({"person": 4, "bus": 1}) == Counter(upright.labels)
    assert turned.size == upright.size == (810, 1080)
    order = np.lexsort(turned.boxes.T[::-1]), np.lexsort(upright.boxes.T[::-1])
    np.testing.assert_allclose(turned.boxes[order[0]], upright.boxes[order[1]], atol=6)  # re-encoded JPEG
    for data in (exif_bus.read_bytes(), Image.open(exif_bus)):  # bytes and PIL images are turned too
        assert Counter(yolov5n.predict(data).labels) == Counter({"person": 4, "bus": 1})


@pytest.mark.assets
def test_saved_pictures_of_an_exif6_photo_are_upright(
    yolov5n: zoo.Model, mobilenet: zoo.Model, exif_bus: Path, tmp_path: Path
) -> None:
    detections = yolov5n.predict(exif_bus)
    drawn = detections.save(tmp_path / "det")
    classified = mobilenet.predict(exif_bus, top_k=3).save(tmp_path / "cls")
    for path in (drawn, classified):
        with Image.open(path) as picture:
            assert picture.size == (810, 1080), path  # portrait, as bus.jpg: not the stored 1080x810
    # the boxes are drawn where the bus is: the picture's pixels inside the bus box are the upright photo's
    assert detections.plot().size == (810, 1080)


@pytest.mark.assets
def test_exif6_bus_gives_the_upright_top1_from_mobilenet(mobilenet: zoo.Model, bus: Path, exif_bus: Path) -> None:
    upright, turned = mobilenet.predict(bus), mobilenet.predict(exif_bus)
    assert upright.label == "minibus"
    assert turned.label == upright.label
    assert turned.score == pytest.approx(upright.score, abs=0.05)


def test_finetune_data_is_decoded_upright(tmp_path: Path) -> None:
    from zoo.train.data import FolderSource, Samples

    upright = Image.fromarray(np.random.default_rng(0).integers(0, 256, (6, 4, 3), dtype=np.uint8))
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        _sideways(upright, tmp_path / name / "x.png", 6)
    source = FolderSource(tmp_path)
    image, label = Samples(source, [0], None, 3)[0]
    assert tuple(image.shape) == (3, 6, 4)
    np.testing.assert_array_equal(image.permute(1, 2, 0).numpy(), np.asarray(upright))


# -- unreadable inputs in folders and lists ------------------------------------------------------------------


@pytest.fixture
def photo_folder(assets: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in PHOTOS:
        (folder / name).write_bytes((assets / "images" / name).read_bytes())
    (folder / "broken.jpg").write_bytes((assets / "images" / "bus.jpg").read_bytes()[:20000])  # truncated
    (folder / "notes.jpg").write_text("these are my holiday notes, not a picture\n")
    return folder


@pytest.mark.assets
def test_cli_folder_with_bad_files_gives_every_good_result(photo_folder: Path, assets: Path) -> None:
    env = {"ZOO_WEIGHTS_PATH": str(assets / "weights"), "ZOO_OFFLINE": "1"}
    out = _run("predict", "mobilenet_v2", str(photo_folder), "-k", "1", "--device", "cpu", env=env)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    lines = out.stdout.strip().splitlines()
    assert sorted(Path(line.split(":")[0]).name for line in lines) == sorted(PHOTOS)
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2
    assert any("broken.jpg" in e and "truncated" in e for e in errors)
    assert any("notes.jpg" in e and "not an image format" in e for e in errors)
    as_json = _run("predict", "mobilenet_v2", str(photo_folder), "-k", "1", "--json", "--device", "cpu", env=env)
    assert as_json.returncode == 1
    data = json.loads(as_json.stdout)
    assert len(data["results"]) == 5 and all("top" in d for d in data["results"])
    assert sorted(Path(d["source"]).name for d in data["errors"]) == ["broken.jpg", "notes.jpg"]


@pytest.fixture
def lenet() -> zoo.Model:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", zoo.RandomWeightsWarning)
        model = zoo.load("lenet5", device="cpu")
        model.predict(np.zeros((32, 32), dtype=np.uint8))
    return model


def test_python_folder_skips_and_reports(lenet: zoo.Model, photo_folder: Path) -> None:
    with pytest.warns(zoo.SkippedInputsWarning, match="skipped 2"):
        results = lenet.predict(photo_folder)
    assert isinstance(results, zoo.ResultList) and isinstance(results, list)
    assert sorted(Path(r.source).name for r in results) == sorted(PHOTOS)
    assert [Path(s.source).name for s in results.skipped] == ["broken.jpg", "notes.jpg"]
    assert all("\n" not in s.error for s in results.skipped)
    with pytest.raises(zoo.InputError, match="broken.jpg"):
        lenet.predict(photo_folder, on_error="raise")


def test_python_named_bad_file_raises_unless_skip(lenet: zoo.Model, photo_folder: Path) -> None:
    files = [photo_folder / "bus.jpg", photo_folder / "notes.jpg"]
    with pytest.raises(zoo.InputError, match="notes.jpg"):
        lenet.predict(files)
    with pytest.raises(zoo.InputError, match="notes.jpg"):
        lenet.predict(files[1], on_error="skip")  # a single input has no list to skip it from
    with pytest.warns(zoo.SkippedInputsWarning):
        results = lenet.predict(files, on_error="skip")
    assert [Path(r.source).name for r in results] == ["bus.jpg"]
    with pytest.raises(zoo.InputError, match="on_error"):
        lenet.predict(files, on_error="ignore")


@pytest.mark.assets
def test_detector_folder_skips_bad_files(yolov5n: zoo.Model, photo_folder: Path) -> None:
    with pytest.warns(zoo.SkippedInputsWarning):
        results = yolov5n.predict(photo_folder)
    assert len(results) == 5 and len(results.skipped) == 2


# -- pixel limit and preprocessing sizes ------------------------------------------------------------------


def _png_bomb(path: Path, width: int = 16000, height: int = 14000) -> Path:
    """A black RGB PNG of width x height pixels, written row by row (small on disk, 672 MB decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    packer = zlib.compressobj(9)
    row = b"\0" * (1 + 3 * width)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    bomb = _png_bomb(tmp_path / "bomb.png")
    assert 600_000 < bomb.stat().st_size < 800_000
    code = (
        "import resource, sys, torch, torchvision, PIL.Image, zoo; from pathlib import Path\n"
        "from zoo.images import ImageItem, decode\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n    decode(ImageItem(Path(sys.argv[1]), sys.argv[1]))\n"
        "except zoo.InputError as e:\n    print(e)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(bomb)], capture_output=True, text=True, check=True)
    message, grown_mb = out.stdout.strip().splitlines()
    assert "16000x14000" in message and "ZOO_MAX_PIXELS" in message
    assert int(grown_mb) < 100  # decoding it would take 672 MB
    with pytest.raises(zoo.InputError, match="16000x14000"):
        decode(ImageItem(bomb.read_bytes(), "bytes"))


def test_pixel_limit_follows_zoo_max_pixels(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    Image.new("RGB", (40, 30)).save(path)
    assert decode(ImageItem(path, "small")).shape == (3, 30, 40)
    monkeypatch.setenv("ZOO_MAX_PIXELS", "1000")
    with pytest.raises(zoo.InputError, match=r"40x30 pixels .* over the limit"):
        decode(ImageItem(path, "small"))
    with pytest.raises(zoo.InputError, match="over the limit"):
        decode(ImageItem(Image.open(path), "pil"))
    monkeypatch.setenv("ZOO_MAX_PIXELS", "lots")
    with pytest.raises(zoo.ZooError, match="ZOO_MAX_PIXELS"):
        decode(ImageItem(path, "small"))
    monkeypatch.setenv("ZOO_MAX_PIXELS", "0")
    assert decode(ImageItem(path, "small")).shape == (3, 30, 40)


def test_cli_refuses_a_bomb_in_one_line(tmp_path: Path) -> None:
    bomb = _png_bomb(tmp_path / "bomb.png", 20000, 10000)
    out = _run("predict", "lenet5:none", str(bomb), "--device", "cpu")
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert [line for line in out.stderr.splitlines() if line.startswith("error:")] == [
        line for line in out.stderr.splitlines() if "20000x10000" in line
    ]


def test_absurd_preprocessing_sizes_are_refused_before_allocating(lenet: zoo.Model) -> None:
    image = torch.zeros(3, 8, 8, dtype=torch.uint8)
    for sizes in ({"resize": 10**6, "crop": None}, {"resize": 32, "crop": (10**6, 4)}):
        with pytest.raises(zoo.InputError, match="not a size in pixels from 1 to 8192"):
            zoo.ImagePreprocess(**sizes)  # refused when the spec is made, long before a batch is allocated
    from zoo.tasks.detection import ObjectDetection

    with pytest.raises(zoo.InputError, match="size=1000000"):
        ObjectDetection(lenet).predict(image, size=10**6)
    with pytest.raises(zoo.InputError, match="image_size"):
        lenet.finetune((torch.zeros(4, 1, 32, 32), torch.tensor([0, 1, 0, 1])), image_size=10**6)


# -- random weights ----------------------------------------------------------------------------------------


def test_random_weights_warn_once() -> None:
    model = zoo.load("lenet5", device="cpu")
    image = np.zeros((32, 32), dtype=np.uint8)
    with pytest.warns(zoo.RandomWeightsWarning, match="random weights.*lenet5:digits"):
        model.predict(image)
    with warnings.catch_warnings():
        warnings.simplefilter("error", zoo.RandomWeightsWarning)
        model.predict(image)  # once per model
        zoo.load("lenet5:digits", device="cpu").predict(image)  # pretrained: no warning
    with pytest.warns(zoo.RandomWeightsWarning):
        zoo.load("mlp:none", device="cpu").predict(torch.zeros(784), preprocess=False)


def test_fine_tuned_model_does_not_warn() -> None:
    model = zoo.load("lenet5:none", device="cpu", num_classes=2)
    x, y = torch.rand(16, 1, 32, 32), torch.tensor([0, 1] * 8)
    model.finetune((x, y), epochs=1, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", zoo.RandomWeightsWarning)
        model.predict(torch.zeros(1, 32, 32))


def test_cli_says_weights_are_random_and_catalog_marks_them(tmp_path: Path) -> None:
    path = tmp_path / "digit.png"
    Image.new("L", (28, 28)).save(path)
    out = _run("predict", "lenet5", str(path), "--device", "cpu")
    assert out.returncode == 0
    assert "warning: lenet5 has random weights" in out.stderr
    listed = {m["name"]: m for m in json.loads(_run("list", "--json").stdout)}
    assert listed["mlp"]["pretrained"] is False and listed["lenet5"]["pretrained"] is True
    assert listed["resnet18"]["pretrained"] is True
    assert "no pretrained weights" in _run("info", "mlp").stdout
    assert "random init (tags: digits)" in _run("info", "lenet5").stdout


# -- CLI options that do not apply ---------------------------------------------------------------------------


def test_cli_refuses_options_the_task_does_not_take(tmp_path: Path) -> None:
    path = tmp_path / "digit.png"
    Image.new("L", (28, 28)).save(path)
    out = _run("predict", "lenet5:none", str(path), "--conf", "0.5", "--device", "cpu")
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "error: --conf does not apply to lenet5:none (image-classification): its options are --top-k, "
        "--batch-size, --memory-format, --save."
    ]


@pytest.mark.assets
def test_cli_refuses_top_k_on_a_detector(assets: Path) -> None:
    env = {"ZOO_WEIGHTS_PATH": str(assets / "weights"), "ZOO_OFFLINE": "1"}
    out = _run("predict", "yolov5n", str(assets / "images" / "bus.jpg"), "--top-k", "3", "--device", "cpu", env=env)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].startswith("error: --top-k does not apply to yolov5n")
    assert "Traceback" not in out.stderr


def test_cli_save_writes_a_classification_picture(tmp_path: Path) -> None:
    path = tmp_path / "digit.png"
    Image.new("L", (64, 48), color=200).save(path)
    out = _run("predict", "lenet5:digits", str(path), "-k", "3", "--save", str(tmp_path / "out"), "--device", "cpu")
    assert out.returncode == 0, out.stderr
    saved = tmp_path / "out" / "digit.jpg"
    assert f"saved {saved}" in out.stderr
    with Image.open(saved) as picture:
        assert picture.size == (64, 48)
        pixels = np.asarray(picture.convert("L"))
    assert (pixels < 100).any()  # the label box is drawn over the uniform grey


def test_classification_plot_needs_an_image() -> None:
    result = zoo.Classification(("a",), (1.0,), (0,), "<input 0>")
    with pytest.raises(zoo.UnsupportedError, match="no image"):
        result.plot()
    assert result.plot(Image.new("RGB", (50, 40))).size == (50, 40)


def test_task_options_match_predict_signatures() -> None:
    import inspect

    from zoo.tasks.classification import ImageClassification
    from zoo.tasks.detection import ObjectDetection
    from zoo.tasks.image_to_image import ImageToImage
    from zoo.tasks.sequence import SequenceClassification

    for task in (ImageClassification, ObjectDetection, ImageToImage, SequenceClassification):
        params = inspect.signature(task.predict).parameters.values()
        assert task.options == {p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}, task


# -- progress ----------------------------------------------------------------------------------------------


def test_progress_only_on_a_terminal_and_off_with_zoo_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo import progress

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert progress.progress_enabled()
    monkeypatch.setenv("ZOO_PROGRESS", "0")
    assert not progress.progress_enabled()
    monkeypatch.delenv("ZOO_PROGRESS")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert not progress.progress_enabled()
    assert progress.log_handler().console is progress.console()  # log lines print above the bar


def test_log_lines_print_above_a_running_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    from rich.console import Console

    from zoo import progress

    buffer = io.StringIO()
    shared = Console(file=buffer, force_terminal=True, width=80)
    monkeypatch.setattr(progress, "console", lambda: shared)
    monkeypatch.setattr(progress, "progress_enabled", lambda: True)
    logger = logging.getLogger("zoo.test.progress")
    logger.addHandler(progress.log_handler())
    try:
        with progress.progress_bar(3, "classifying") as advance:
            advance(1)
            logger.warning("a line in the middle")
            advance(2)
    finally:
        logger.handlers.clear()
    text = buffer.getvalue()
    assert "a line in the middle" in text and "classifying" in text
    line = next(line for line in text.splitlines() if "a line in the middle" in line)
    assert "classifying" not in line  # not glued onto the bar


# -- validation through predict's preprocessing -----------------------------------------------------------


def test_validation_batch_is_predicts_batch_bit_for_bit() -> None:
    from zoo.train.augment import BatchNormalizer, eval_transform

    rng = np.random.default_rng(0)
    images = [torch.from_numpy(rng.integers(0, 256, (3, h, w), dtype=np.uint8)) for h, w in ((37, 53), (300, 211))]
    spec = zoo.ImagePreprocess(resize=64, crop=56)
    normalizer = BatchNormalizer(spec, torch.device("cpu"), channels_last=False)
    val = normalizer(torch.stack([eval_transform(spec)(image) for image in images]))
    assert torch.equal(val, preprocess_batch(images, spec, torch.device("cpu")))


def _digits_folder(root: Path) -> Path:
    from sklearn.datasets import load_digits

    digits = load_digits()
    for split, rows in (("train", range(0, 400)), ("val", range(400, 520))):
        for i in rows:
            folder = root / split / str(digits.target[i])
            folder.mkdir(parents=True, exist_ok=True)
            pixels = (digits.images[i] * 255 / 16).round().astype(np.uint8)
            Image.fromarray(pixels).resize((11, 13), Image.Resampling.BILINEAR).save(folder / f"{i}.png")
    return root


def test_saved_val_top1_is_what_predict_gives_on_the_val_folder(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    data = _digits_folder(tmp_path / "digits")
    model = zoo.load("lenet5:digits", device="cpu")
    model.finetune(data, epochs=1, batch_size=32, progress=False, seed=0)
    saved = zoo.load(str(model.save(tmp_path / "lenet5.safetensors")), device="cpu")
    epoch = model.history.epochs[-1]
    results = saved.predict(data / "val", top_k=10)
    truth = [int(Path(r.source).parent.name) for r in results]
    labels = [int(r.label) for r in results]
    accuracy = sum(t == p for t, p in zip(truth, labels)) / len(truth)
    assert epoch.val_top1 == accuracy
    assert 0.5 < accuracy < 1  # a model that has learnt something, on images where the pipelines' rounding matters
    nll = [-np.log(r.scores[r.labels.index(str(t))]) for r, t in zip(results, truth)]
    assert epoch.val_loss == pytest.approx(float(np.mean(nll)), abs=1e-5)


def test_undeclared_tasks_accept_only_named_options() -> None:
    class Raw(zoo.Task):
        def predict(self, inputs: object, *, top_k: int = 5, **kwargs: object) -> object:
            return inputs

    task = Raw(None)  # type: ignore[arg-type]
    assert task.accepts("top_k")
    assert not task.accepts("conf")  # **kwargs would hand it to a module's forward
    assert task.plots is None


def test_batched_jpeg_decoding_path_turns_and_skips(tmp_path: Path) -> None:
    """The GPU path of classification (nvjpeg on a batch of JPEG files), run with the CPU decoder."""
    from zoo.tasks.classification import _decode_on_gpu

    rng = np.random.default_rng(1)
    upright = Image.fromarray(rng.integers(0, 256, (40, 24, 3), dtype=np.uint8))
    turned = _sideways(upright, tmp_path / "turned.jpg", 6, quality=95)
    plain = tmp_path / "plain.png"
    upright.save(plain)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(turned.read_bytes()[:300])
    chunk = [ImageItem(p, p.name, found=True) for p in (turned, broken, plain)]
    skipped: list = []
    kept = _decode_on_gpu(chunk, torch.device("cpu"), None, True, skipped)
    assert [item.source for item, _ in kept] == ["turned.jpg", "plain.png"]
    assert [tuple(image.shape) for _, image in kept] == [(3, 40, 24), (3, 40, 24)]
    assert [s.source for s in skipped] == ["broken.jpg"]
    with pytest.raises(zoo.InputError, match="broken.jpg"):
        _decode_on_gpu(chunk, torch.device("cpu"), "raise", True, [])
    good = _decode_on_gpu([chunk[0], chunk[2]], torch.device("cpu"), None, True, [])  # one batch, decoded together
    assert [tuple(image.shape) for _, image in good] == [(3, 40, 24), (3, 40, 24)]
    assert torch.equal(good[0][1], decode(chunk[0]))


def test_training_bar_is_off_with_zoo_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo.train.progress import Reporter

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.setenv("ZOO_PROGRESS", "0")
    reporter = Reporter(enabled=True, progress=None, log_dir=None)
    assert reporter._bar is None
    reporter.close()


def test_skipped_inputs_warning_points_at_the_caller(lenet: zoo.Model, photo_folder: Path) -> None:
    with pytest.warns(zoo.SkippedInputsWarning) as caught:
        lenet.predict(photo_folder)
    assert [w.filename for w in caught if w.category is zoo.SkippedInputsWarning] == [__file__]
