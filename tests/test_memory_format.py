"""`predict(..., memory_format=)`: channels_last on the CPU is an opt-in with the default's top-5 on real photos."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

import zoo
from tests.conftest import tiny_cnn

LABELS = ("ant", "bee", "cat")


def _layouts(model: zoo.Model) -> list[str]:
    """Record the memory format of every batch the model's module gets, from now on."""
    seen: list[str] = []

    def hook(_module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        (x,) = args
        seen.append("channels_last" if x.is_contiguous(memory_format=torch.channels_last) else "contiguous_format")

    model.module.register_forward_pre_hook(hook)
    return seen


@pytest.fixture
def tiny() -> zoo.Model:
    @zoo.register("tinylayout", task="image-classification", labels=LABELS, preprocess=zoo.ImagePreprocess(crop=32))
    def build(num_classes: int = 3):
        torch.manual_seed(0)
        return tiny_cnn(num_classes)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", zoo.RandomWeightsWarning)
        return zoo.load("tinylayout", device="cpu")


def test_memory_format_sets_the_layout_the_model_gets(tiny: zoo.Model) -> None:
    tiny.task._channels_last = False  # what the CPU check finds when the logits differ (mobilenet_v2 here)
    seen = _layouts(tiny)
    images = torch.rand(4, 3, 32, 32)
    tiny.predict(images, preprocess=False, memory_format="channels_last")
    tiny.predict(images, preprocess=False, memory_format=torch.channels_last)
    tiny.predict(images, preprocess=False, memory_format="contiguous_format")
    tiny.predict(images, preprocess=False)
    assert seen == ["channels_last", "channels_last", "contiguous_format", "contiguous_format"]
    for bad in ("nhwc", torch.preserve_format, 1):
        with pytest.raises(zoo.InputError, match="memory_format"):
            tiny.predict(images, preprocess=False, memory_format=bad)


def test_channels_last_gives_the_default_top5_on_real_photos(assets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """channels_last (opt-in) against the default NCHW run on every shared photo: same top-5 labels as the
    reference outputs, softmax scores within 1e-5 of the default's (measured: 5e-7), the same bytes when run
    twice; `contiguous_format` is exactly the default here."""
    reference = json.loads((assets / "reference" / "mobilenet_v2.json").read_text())["images"]
    paths = [assets / "images" / name for name in sorted(reference)]
    monkeypatch.setenv("ZOO_WEIGHTS_PATH", str(assets / "weights"))
    model = zoo.load("mobilenet_v2", device="cpu")
    seen = _layouts(model)
    default = model.predict(paths, top_k=5)
    nchw = model.predict(paths, top_k=5, memory_format="contiguous_format")
    fast = model.predict(paths, top_k=5, memory_format="channels_last")
    again = model.predict(paths, top_k=5, memory_format="channels_last")
    assert seen[-2:] == ["channels_last", "channels_last"]
    assert [r.scores for r in nchw] == [r.scores for r in default]
    assert [r.scores for r in again] == [r.scores for r in fast]
    for path, want, got in zip(paths, default, fast):
        assert list(got.labels) == [e["label"] for e in reference[path.name]], path.name
        assert got.indices == want.indices, path.name
        assert got.scores == pytest.approx(want.scores, abs=1e-5, rel=0), path.name


def test_the_cli_flag_reaches_the_model_and_is_refused_where_it_does_not_apply(tmp_path: Path) -> None:
    from click.testing import CliRunner
    from PIL import Image

    from zoo.cli import cli

    seen: list[bool] = []

    @zoo.register("tinyflag", task="image-classification", labels=LABELS, preprocess=zoo.ImagePreprocess(crop=32))
    def build(num_classes: int = 3):
        torch.manual_seed(0)
        module = tiny_cnn(num_classes)
        module.register_forward_pre_hook(
            lambda _m, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last))
        )
        return module

    Image.new("RGB", (40, 40), (200, 30, 30)).save(tmp_path / "red.png")
    runs = {}
    for flag in ([], ["--memory-format", "channels_last"], ["--memory-format", "contiguous_format"]):
        seen.clear()
        result = CliRunner().invoke(cli, ["predict", "tinyflag:none", str(tmp_path / "red.png"), "--json", *flag])
        assert result.exit_code == 0, result.output
        runs[tuple(flag)] = (seen[:], json.loads(result.stdout)["results"][0]["top"])
    default, last, contiguous = runs.values()
    assert (default[0], last[0], contiguous[0]) == ([False], [True], [False])
    assert [c["label"] for c in last[1]] == [c["label"] for c in default[1]] and contiguous[1] == default[1]

    refused = CliRunner().invoke(cli, ["predict", "lraspp_mobilenet_v3_large:none", str(tmp_path / "red.png"),
                                       "--memory-format", "channels_last"])  # fmt: skip
    assert refused.exit_code == 1 and refused.output.startswith("error: --memory-format does not apply to")
