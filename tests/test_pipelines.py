"""Named preprocessing pipelines: timm models get timm's own eval transform (every crop mode), specs keep the
pipeline through a save, and a pipeline name read from data selects nothing outside the closed set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zoo.images import collect_images, decode, preprocess_batch
from zoo.specs import ImagePreprocess

CPU = torch.device("cpu")


@pytest.fixture
def photos(tmp_path: Path) -> list[Path]:
    """A landscape PNG and a portrait JPEG with structure (gradients and noise), as photos have."""
    rng = np.random.default_rng(0)
    out = []
    for name, (h, w) in (("wide.png", (150, 233)), ("tall.jpg", (301, 187))):
        ramp = np.linspace(0, 255, w)[None, :, None] * np.ones((h, 1, 3))
        pixels = (ramp + rng.normal(0, 30, (h, w, 3))).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / name)
        out.append(tmp_path / name)
    return out


def _zoo_tensor(path: Path, spec: ImagePreprocess) -> torch.Tensor:
    items, _ = collect_images(path)
    return preprocess_batch([decode(items[0], spec.channels)], spec, CPU)[0]


@pytest.mark.parametrize("crop_mode", ["center", "squash", "border"])
@pytest.mark.parametrize("input_size", [(3, 96, 96), (3, 112, 80)], ids=["square", "non-square"])
def test_timm_models_get_timms_own_eval_transform(photos: list[Path], crop_mode: str, input_size: tuple) -> None:
    """zoo's tensor equals `create_transform(**resolve_data_config(pretrained_cfg=...))` on the same file."""
    pytest.importorskip("timm")
    from timm.data import create_transform, resolve_data_config

    from zoo_hf.timm_models import timm_preprocess

    cfg = {"input_size": input_size, "interpolation": "bicubic", "crop_pct": 0.9, "crop_mode": crop_mode,
           "mean": (0.5, 0.4, 0.3), "std": (0.2, 0.25, 0.3), "num_classes": 3}  # fmt: skip
    spec = timm_preprocess(cfg)
    assert spec.pipeline == "timm" and spec.crop_mode == crop_mode and spec.input_size == input_size[1:]
    reference = create_transform(**resolve_data_config(pretrained_cfg=cfg))
    for path in photos:
        expected = reference(Image.open(path).convert("RGB"))
        got = _zoo_tensor(path, spec)
        assert got.shape == expected.shape == input_size
        assert torch.equal(got, expected), (path.name, (got - expected).abs().max().item())


def test_timm_defaults_come_from_timm(photos: list[Path]) -> None:
    """A config without crop_pct, crop_mode or interpolation gets timm's defaults, not zoo's guesses."""
    pytest.importorskip("timm")
    from timm.data import create_transform, resolve_data_config

    from zoo_hf.timm_models import timm_preprocess

    cfg = {"input_size": (3, 64, 64)}
    spec = timm_preprocess(cfg)
    assert (spec.crop_pct, spec.crop_mode, spec.interpolation) == (0.875, "center", "bicubic")
    expected = create_transform(**resolve_data_config(pretrained_cfg=cfg))(Image.open(photos[0]).convert("RGB"))
    assert torch.equal(_zoo_tensor(photos[0], spec), expected)


def test_a_border_crop_is_not_a_center_crop(photos: list[Path]) -> None:
    """The modes really differ on a non-square photo: the old hand-made center pipeline could not pass above."""
    pytest.importorskip("timm")
    from zoo_hf.timm_models import timm_preprocess

    base = {"input_size": (3, 96, 96), "crop_pct": 1.0}
    center = _zoo_tensor(photos[0], timm_preprocess({**base, "crop_mode": "center"}))
    border = _zoo_tensor(photos[0], timm_preprocess({**base, "crop_mode": "border"}))
    assert (center - border).abs().mean() > 0.1


def test_the_pipeline_survives_to_dict_and_from_dict() -> None:
    spec = ImagePreprocess(resize=(102, 91), crop=(96, 86), interpolation="lanczos", pipeline="timm", crop_pct=0.95,
                           crop_mode="squash")  # fmt: skip
    assert ImagePreprocess.from_dict(spec.to_dict()) == spec
    plain = ImagePreprocess()
    assert set(plain.to_dict()) == {"resize", "crop", "mean", "std", "interpolation", "antialias", "channels"}
    assert ImagePreprocess.from_dict(plain.to_dict()) == plain


@pytest.mark.parametrize(
    "fields",
    [
        {"pipeline": "zoo_hf.timm_models:build_timm"},  # data names a pipeline, never code
        {"pipeline": "os:system"},
        {"pipeline": "timm", "crop_mode": "random"},
        {"pipeline": "timm", "crop_pct": 0.0},
        {"pipeline": "face2paint", "crop": None},
        {"interpolation": "lanczos"},  # PIL filters only in the PIL pipelines
    ],
)
def test_bad_pipeline_fields_are_refused(fields: dict) -> None:
    with pytest.raises(ValueError, match="pipeline|crop_mode|crop_pct|crop|interpolation"):
        ImagePreprocess.from_dict({**ImagePreprocess().to_dict(), **fields})
