"""`predict(..., stream=True)`: results in input order, one batch at a time, memory bounded by the batch."""

from __future__ import annotations

import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import zoo
import zoo.images
from tests.conftest import tiny_cnn
from zoo.streaming import ResultStream, prefetch, worker_count

LABELS = ("ant", "bee", "cat")


@pytest.fixture
def tiny() -> zoo.Model:
    @zoo.register("tinystream", task="image-classification", labels=LABELS, preprocess=zoo.ImagePreprocess(crop=32))
    def build(num_classes: int = 3):
        torch.manual_seed(0)
        return tiny_cnn(num_classes)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", zoo.RandomWeightsWarning)
        model = zoo.load("tinystream", device="cpu")
        model.predict(torch.zeros(3, 32, 32))
    return model


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Nine small photos, the fifth one broken (a truncated PNG)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(9):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(root / f"{i:02d}.png")
    broken = root / "04.png"
    broken.write_bytes(broken.read_bytes()[:60])
    return root


def test_stream_gives_the_list_results_in_input_order(tiny: zoo.Model, folder: Path) -> None:
    listed = tiny.predict(folder, batch_size=2)
    for workers in (0, 2):
        stream = tiny.predict(folder, batch_size=2, stream=True, num_workers=workers)
        assert isinstance(stream, ResultStream) and stream.total == 9
        got = list(stream)
        assert [r.to_dict() for r in got] == [r.to_dict() for r in listed]
        assert [s.source for s in stream.skipped] == [str(folder / "04.png")]
    batches = list(tiny.predict(folder, batch_size=2, stream=True).batches())
    sources = [getattr(e, "source", None) for batch in batches for e in batch]
    assert sources == [str(p) for p in sorted(folder.iterdir())]  # the skipped input in its place
    assert [len(b) for b in batches] == [2, 2, 2, 2, 1]
    assert isinstance(batches[2][0], zoo.SkippedInput)


def test_stream_decodes_lazily_a_batch_at_a_time(
    tiny: zoo.Model, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[str] = []
    real = zoo.images.decode

    def counting(item: zoo.images.ImageItem, channels: int = 3) -> torch.Tensor:
        decoded.append(item.source)
        return real(item, channels)

    monkeypatch.setattr(zoo.images, "decode", counting)
    stream = tiny.predict(folder, batch_size=2, stream=True, num_workers=0)
    assert decoded == []  # nothing runs before the first result is asked for
    next(stream)
    assert len(decoded) == 2
    stream = tiny.predict(folder, batch_size=2, stream=True, num_workers=1)
    decoded.clear()
    next(stream)
    assert len(decoded) <= 4  # the batch being run and one decoded ahead
    stream.close()


def test_sequences_stream_lazily() -> None:
    seqs = [torch.randn(n, 1) for n in (3, 5, 2, 7, 4)]

    @zoo.register("seqstream", task="sequence-classification", labels=("a", "b"))
    def build():
        torch.manual_seed(0)
        return _Rnn()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", zoo.RandomWeightsWarning)
        model = zoo.load("seqstream", device="cpu")
        listed = model.predict(seqs, batch_size=2)
        taken: list[int] = []

        def lazily():
            for i, s in enumerate(seqs):
                taken.append(i)
                yield s

        stream = model.predict(lazily(), batch_size=2, stream=True)
        first = next(stream)
        assert taken == [0, 1]  # a generator is taken one batch at a time
        assert [r.to_dict() for r in [first, *stream]] == [r.to_dict() for r in listed]


class _Rnn(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = torch.nn.GRU(1, 4, batch_first=True)
        self.head = torch.nn.Linear(4, 2)

    def forward(self, x):  # noqa: ANN001, ANN201
        _, h = self.rnn(x)
        return self.head(h[-1])


def test_prefetch_keeps_order_bounds_work_in_flight_and_raises_in_turn() -> None:
    started: list[int] = []
    lock = threading.Lock()
    release = threading.Event()

    def work(i: int) -> int:
        with lock:
            started.append(i)
        if i == 0:
            release.wait(5)
        if i == 6:
            raise zoo.InputError("bad six")
        return i * 10

    out = prefetch(iter(range(8)), work, workers=2)
    threading.Timer(0.3, release.set).start()
    assert [next(out) for _ in range(6)] == [0, 10, 20, 30, 40, 50]
    assert max(started) <= 8
    with pytest.raises(zoo.InputError, match="bad six"):
        next(out)
    assert list(prefetch(range(3), lambda i: -i, workers=0)) == [0, -1, -2]


def test_worker_count() -> None:
    assert worker_count(3) == 3
    assert worker_count(0) == 0
    assert worker_count("auto") >= 0
    for bad in (-1, "many", 1.5, True):
        with pytest.raises(zoo.InputError, match="num_workers"):
            worker_count(bad)  # type: ignore[arg-type]


def _large_photos(assets: Path, folder: Path, count: int, side: int) -> list[str]:
    """`count` large JPEGs made by upscaling the shared photos (the same few files, linked)."""
    folder.mkdir(exist_ok=True)
    made = []
    for name in ("bus.jpg", "zidane.jpg"):
        image = Image.open(assets / "images" / name).convert("RGB")
        scale = side / max(image.size)
        big = folder / f"big-{name}"
        image.resize((round(image.width * scale), round(image.height * scale))).save(big, quality=90)
        made.append(big)
    paths = []
    for i in range(count):
        link = folder / f"{i:04d}.jpg"
        link.symlink_to(made[i % len(made)])
        paths.append(str(link))
    return paths


def peak_rss_of_predict(args: list[str], env: dict[str, str]) -> int:
    """Peak RSS (bytes) of `zoo predict ARGS` run in a fresh child process (RUSAGE_CHILDREN of a new parent)."""
    code = (
        "import resource, subprocess, sys; "
        "p = subprocess.run([sys.executable, '-m', 'zoo', 'predict', *sys.argv[1:]], capture_output=True, text=True); "
        "assert p.returncode == 0, p.stderr[-2000:]; "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return int(out.stdout.split()[-1]) * 1024


@pytest.mark.assets
def test_detection_peak_memory_does_not_grow_with_the_number_of_photos(assets: Path, tmp_path: Path) -> None:
    import os

    env = {**os.environ, "ZOO_WEIGHTS_PATH": str(assets / "weights"), "ZOO_OFFLINE": "1"}
    photos = _large_photos(assets, tmp_path / "big", 48, 2400)  # about 3.5 Mpx each
    common = ["--device", "cpu", "-b", "4", "--conf", "0.5", "--num-workers", "1"]
    few = peak_rss_of_predict(["yolov5n", *photos[:4], *common], env)
    many = peak_rss_of_predict(["yolov5n", *photos, *common], env)
    # before streaming every decoded photo was kept: 44 more photos were 44 x 17 MB more (about 1.5x)
    assert many <= 1.15 * few, (few, many)


def test_detection_holds_one_full_size_photo_per_decoding_thread(tmp_path: Path, monkeypatch) -> None:
    """Each photo is letterboxed as soon as it is decoded: a batch of 8 never holds 8 full-size photos at once
    (it did: peak RSS over 200 photos of 12 Mpx was 2.7x the peak over 10, with the CLI's batch of 32)."""
    import weakref

    import zoo.tasks.detection

    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    alive, peak = [0], [0]
    real = zoo.images.decode

    def counted(item, channels=3):
        image = real(item, channels)
        alive[0] += 1
        peak[0] = max(peak[0], alive[0])
        weakref.finalize(image, lambda: alive.__setitem__(0, alive[0] - 1))
        return image

    monkeypatch.setattr(zoo.images, "decode", counted)
    monkeypatch.setattr(zoo.tasks.detection, "decode", counted, raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", zoo.RandomWeightsWarning)
        model = zoo.load("yolov5n:none", device="cpu")
    found = model.predict(sorted(tmp_path.glob("*.png")), batch_size=8, size=64, num_workers=0)
    assert len(found) == 8
    assert peak[0] == 1, peak[0]
