"""`Model.finetune` on tiny real models: learning, strategies, seeds, resume, early stopping, data kinds, errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from tests.conftest import tiny_cnn

PRE = zoo.ImagePreprocess(resize=36, crop=32)


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: tiny models train faster, and identically, without thread contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, torch.Tensor]:
    """`tiny`: a 3-class CNN with pretrained weights found offline through ZOO_WEIGHTS_PATH."""
    torch.manual_seed(0)
    state = tiny_cnn(3).state_dict()
    folder = tmp_path / "weights"
    folder.mkdir()
    torch.save(state, folder / "tiny-1234.pth")
    digest = hashlib.sha256((folder / "tiny-1234.pth").read_bytes()).hexdigest()
    monkeypatch.setenv("ZOO_WEIGHTS_PATH", str(folder))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    zoo.register(
        "tiny",
        task="image-classification",
        labels=["ant", "bee", "cat"],
        weights={"v1": zoo.Weights(url="https://weights.invalid/tiny-1234.pth", sha256=digest)},
        preprocess=PRE,
    )(lambda num_classes=3: tiny_cnn(num_classes))
    return state


def colours(n: int, classes: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy 40x40 uint8 images whose class is the brightest channel: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = torch.randint(0, 120, (n, 3, 40, 40), dtype=torch.uint8, generator=g)
    x[torch.arange(n), y % 3] += 120
    return x, y


def folder(root: Path, x: torch.Tensor, y: torch.Tensor, names: list[str]) -> Path:
    """Write (x, y) as PNG files in root/<class name>/."""
    for i, (image, label) in enumerate(zip(x, y.tolist())):
        (root / names[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(root / names[label] / f"{i}.png")
    return root


def weights(model: zoo.Model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.module.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], keys: list[str] | None = None) -> bool:
    return all(torch.equal(a[k], b[k]) for k in (keys or a))


def test_finetune_learns_and_returns_the_model_with_its_history(tiny: dict) -> None:
    model = zoo.load("tiny", device="cpu")
    x, y = colours(120)
    seen = []
    out = model.finetune((x, y), 0.25, epochs=3, lr=0.05, batch_size=16, seed=0, on_epoch=seen.append)
    assert out is model
    history = model.history
    assert [e.epoch for e in history] == [1, 2, 3] and seen == list(history.epochs)
    assert history[-1].val_top1 >= 0.9 > history[0].train_top1 - 0.5
    assert history.best_epoch is not None and history.monitor == "val_top1"
    assert all(e.val_top5 == 1.0 for e in history)  # 3 classes: top-3 always hits
    assert model.labels == ("0", "1", "2") and not model.module.training
    summary = model.training_summary
    assert summary["train_samples"] == 90 and summary["val_samples"] == 30 and summary["strategy"] == "full"
    assert summary["labels"] == ["0", "1", "2"] and summary["best_epoch"] == history.best_epoch
    assert model.predict(x[0]).label == "0"


def test_same_seed_same_weights(tiny: dict, tmp_path: Path) -> None:
    data = folder(tmp_path / "data", *colours(48), ["red", "green", "blue"])
    runs = [weights(zoo.load("tiny", device="cpu").finetune(data, epochs=2, batch_size=8, seed=s)) for s in (7, 7, 8)]
    assert same(runs[0], runs[1])
    assert not same(runs[0], runs[2])


def test_new_class_count_replaces_the_head_and_keeps_the_trunk(tiny: dict, tmp_path: Path) -> None:
    data = folder(tmp_path / "data", *colours(32, classes=4), ["a", "b", "c", "d"])
    model = zoo.load("tiny", device="cpu").finetune(data, epochs=1, batch_size=8, strategy="linear")
    assert model.module[5].out_features == 4 and model.builder_kwargs["num_classes"] == 4
    assert model.labels == ("a", "b", "c", "d")
    trunk = [k for k in tiny if not k.startswith("5.")]
    assert same(weights(model), tiny, trunk)  # linear: backbone and its BatchNorm statistics untouched


def test_freeze_unfreeze_trains_the_head_first(tiny: dict) -> None:
    model = zoo.load("tiny", device="cpu")
    after: list[dict[str, torch.Tensor]] = []
    model.finetune(
        colours(48), epochs=2, batch_size=8, strategy="freeze_unfreeze", on_epoch=lambda m: after.append(weights(model))
    )
    trunk = [k for k in tiny if not k.startswith("5.")]
    assert [e.phase for e in model.history] == ["head", "all"]
    assert same(after[0], tiny, trunk) and not same(after[0], tiny, ["5.weight"])
    assert not same(after[1], tiny, ["0.weight"])


def test_resume_continues_exactly_where_it_stopped(tiny: dict, tmp_path: Path) -> None:
    options = dict(batch_size=8, seed=1, augment=False, val=0.25, patience=None)
    straight = zoo.load("tiny", device="cpu").finetune(colours(64), epochs=3, **options)

    def crash_after_epoch_2(metrics) -> None:
        if metrics.epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        zoo.load("tiny", device="cpu").finetune(
            colours(64), epochs=3, out=tmp_path / "run", on_epoch=crash_after_epoch_2, **options
        )
    reports = ["confusion_matrix.png", "curves.png", "per_class.csv", "results.csv"]  # zoo.train.reports
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == sorted(["best.safetensors", "last.pt", *reports])
    resumed = zoo.load("tiny", device="cpu").finetune(colours(64), epochs=3, resume=tmp_path / "run", **options)
    assert len(resumed.history) == 3
    assert resumed.history.to_dict()["epochs"][2]["lr"] == straight.history.to_dict()["epochs"][2]["lr"]
    assert resumed.history[2].val_loss == straight.history[2].val_loss
    assert same(weights(resumed), weights(straight))


def test_resume_refuses_another_label_set(tiny: dict, tmp_path: Path) -> None:
    zoo.load("tiny", device="cpu").finetune(colours(24), epochs=1, batch_size=8, out=tmp_path / "run")
    with pytest.raises(zoo.InputError, match="labels differ from the data's") as info:
        zoo.load("tiny", device="cpu").finetune(colours(24), epochs=2, labels=["x", "y", "z"], resume=tmp_path / "run")
    assert "\n" not in str(info.value)
    with pytest.raises(zoo.InputError, match="does not exist"):
        zoo.load("tiny", device="cpu").finetune(colours(24), resume=tmp_path / "nothing")


def test_early_stopping_and_the_best_weights_are_kept(tiny: dict) -> None:
    model = zoo.load("tiny", device="cpu")
    model.finetune(colours(48), 0.25, epochs=10, lr=1e-12, strategy="linear", patience=2, batch_size=8)
    assert len(model.history) == 3 and model.history.stopped_early and model.history.best_epoch == 1

    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    x, _ = colours(64)
    noise = torch.randint(0, 3, (64,), generator=torch.Generator().manual_seed(1))  # nothing to learn: val wobbles
    torch.manual_seed(0)
    model = zoo.load("tiny:none", device="cpu")
    model.finetune((x, noise), 0.5, epochs=4, lr=0.05, batch_size=8, seed=0, patience=None, monitor="val_loss",
                   augment=True, label_smoothing=0.1,  # the settings this scenario was built with
                   on_epoch=lambda m: snapshots.__setitem__(m.epoch, weights(model)))  # fmt: skip
    best = model.history.best_epoch
    assert best != 4, "the scenario must end on a worse epoch to show the best one is restored"
    assert same(weights(model), snapshots[best])


def test_checkpoint_reloads_with_labels_and_summary(tiny: dict, tmp_path: Path) -> None:
    data = folder(tmp_path / "data", *colours(24), ["red", "green", "blue"])
    model = zoo.load("tiny", device="cpu").finetune(data, 0.25, epochs=1, batch_size=8, out=tmp_path / "run")
    path = Path(model.history.checkpoint)
    assert path == tmp_path / "run" / "best.safetensors"
    again = zoo.load(str(path), device="cpu")
    assert again.labels == ("blue", "green", "red")  # folders sort by name
    assert again.training_summary == model.training_summary
    x = torch.rand(2, 3, 32, 32)
    with torch.inference_mode():
        assert torch.allclose(again(x), model(x), atol=1e-6)
    assert model.save(tmp_path / "chained.safetensors").is_file()


def test_every_data_kind(tiny: dict, tmp_path: Path) -> None:
    from torchvision.datasets import ImageFolder

    x, y = colours(24)
    names = ["red", "green", "blue"]
    root = folder(tmp_path / "split" / "train", x, y, names)
    folder(tmp_path / "split" / "val", x[:6], y[:6], names)
    kinds = {
        "train/ and val/ folders": (tmp_path / "split",),
        "torchvision dataset on disk": (ImageFolder(str(root)),),
        "numpy NHWC": ((x.permute(0, 2, 3, 1).numpy(), y.numpy()),),
        "float tensors": ((x.float() / 255, y), x[:6].float() / 255),
    }
    for kind, args in kinds.items():
        data, val = args[0], (args[1] if len(args) > 1 else None)
        if kind == "float tensors":
            val = (val, y[:6])
        model = zoo.load("tiny", device="cpu").finetune(data, val, epochs=1, batch_size=8)
        assert model.history[0].train_loss > 0, kind
        expect_val = kind in ("train/ and val/ folders", "float tensors")
        assert (model.history[0].val_top1 is not None) == expect_val, kind
        assert model.labels == (tuple(sorted(names)) if "folder" in kind or "disk" in kind else ("0", "1", "2")), kind


def test_unreadable_images_are_skipped_and_counted(tiny: dict, tmp_path: Path) -> None:
    data = folder(tmp_path / "data", *colours(24), ["red", "green", "blue"])
    (data / "red" / "broken.png").write_bytes(b"not a png")
    (data / "blue" / "empty.jpg").write_bytes(b"")
    model = zoo.load("tiny", device="cpu").finetune(data, epochs=1, batch_size=26)
    assert model.history[0].skipped == 2
    for image in data.rglob("*.png"):
        image.write_bytes(b"junk")
    with pytest.raises(zoo.InputError, match="None of the training images could be read"):
        zoo.load("tiny", device="cpu").finetune(data, epochs=1)


@pytest.mark.parametrize(
    ("make", "options", "match"),
    [
        (lambda d: _mkdir(d / "empty"), {}, "No images in"),
        (lambda d: d / "missing", {}, "No such folder"),
        (lambda d: folder(d / "one", *colours(4, classes=1), ["only"]), {}, "single class"),
        (
            lambda d: (torch.zeros(4, 3, 8, 8), torch.tensor([0, 1, 2, 7])),
            {"labels": ["a", "b", "c"]},
            "names 3 classes",
        ),
        (lambda d: (torch.zeros(4, 3, 8, 8), torch.tensor([0, 1])), {}, "x has 4 samples but y has 2"),
        (lambda d: 42, {}, "Cannot train on a int"),
        (lambda d: colours(6), {"strategy": "bogus"}, "strategy='bogus'"),
        (lambda d: colours(6), {"epochs": 0}, "epochs=0"),
        (lambda d: colours(6), {"learning_rate": 1}, "unknown options \\['learning_rate'\\]"),
    ],
)
def test_bad_data_and_options_are_one_line_errors(tiny: dict, tmp_path: Path, make, options, match: str) -> None:
    with pytest.raises(zoo.InputError, match=match) as info:
        zoo.load("tiny", device="cpu").finetune(make(tmp_path), epochs=options.pop("epochs", 1), **options)
    assert "\n" not in str(info.value)


def test_tensorboard_progress_bar_and_cpu_amp(tiny: dict, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model = zoo.load("tiny", device="cpu")
    model.finetune(colours(32), 0.25, epochs=2, batch_size=8, log_dir=tmp_path / "tb", progress=True, amp=True)
    assert "img/s" in capfd.readouterr().err
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/top1", "val/loss", "val/top1", "val/top5", "lr", "images_per_s"} <= tags
    assert [s.step for s in events.Scalars("val/top1")] == [1, 2]
    assert np.isfinite(model.history[-1].train_loss)


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


@pytest.mark.slow
def test_compile_option_trains_and_saves_plain_keys(tiny: dict, tmp_path: Path) -> None:
    """torch.compile on the CPU (inductor builds C++ kernels: about a minute)."""
    model = zoo.load("tiny", device="cpu")
    model.finetune(colours(32), epochs=1, batch_size=8, compile=True, out=tmp_path / "run")
    assert np.isfinite(model.history[0].train_loss)
    assert not same(weights(model), tiny, ["0.weight"])
    again = zoo.load(str(tmp_path / "run" / "best.safetensors"), device="cpu")  # no `_orig_mod.` keys
    assert same(weights(again), weights(model))
