"""AnimeGAN2 through the hub plugin, end to end on a tiny AnimeGAN2-shaped generator in a test-written repo:
trust, weights through a mirror, face2paint preprocessing, tiling, `ImageOutput`, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import zoo
from tests.test_hub import SHA1, _github_archive, write_repo
from zoo.cli import cli

MODEL = """
import torch.nn as nn
import torch.nn.functional as F


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.block_a = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.LeakyReLU(0.2))
        self.out_layer = nn.Sequential(nn.Conv2d(8, 3, 1), nn.Tanh())

    def forward(self, input, align_corners=True):
        out = self.block_a(input)
        out = F.interpolate(out, input.size()[-2:], mode="bilinear", align_corners=align_corners)
        return self.out_layer(out)
"""

HUBCONF = """
import torch
open({marker!r}, "w").close()


def generator(pretrained=True, device="cpu", progress=True, check_hash=True):
    '''AnimeGAN2 generator (tiny stand-in).'''
    from model import Generator

    model = Generator().to(device)
    if pretrained:
        raise AssertionError("zoo loads the weights itself")
    return model
"""


@pytest.fixture
def served(tmp_path: Path, file_server, monkeypatch: pytest.MonkeyPatch) -> dict[str, torch.Tensor]:
    """The tiny generator's weights published as paprika.pt on a GitHub mirror; returns them."""
    files = {"model.py": MODEL, "hubconf.py": HUBCONF.format(marker=str(tmp_path / "ran"))}
    repo = write_repo(tmp_path / "animegan2", files)
    torch.manual_seed(0)
    namespace: dict = {}
    exec(compile(MODEL, "model.py", "exec"), namespace)  # the same class, to make real weights
    state = namespace["Generator"]().state_dict()
    target = file_server.root / "bryandlee/animegan2-pytorch/raw/main/weights/paprika.pt"
    target.parent.mkdir(parents=True)
    torch.save(state, target)
    archive = file_server.root / "bryandlee/animegan2-pytorch/archive/main.tar.gz"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(_github_archive(repo, "animegan2-pytorch-main", SHA1))
    monkeypatch.setenv("ZOO_MIRRORS", f"https://github.com={file_server.url}")
    state["repo"] = repo  # type: ignore[assignment]
    return state


@pytest.fixture
def face(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "face.png"
    Image.fromarray(rng.integers(0, 255, (300, 240, 3), dtype=np.uint8)).save(path)
    return path


def test_untrusted_generator_never_runs(served: dict, tmp_path: Path) -> None:
    with pytest.raises(zoo.UntrustedCodeError, match="bryandlee/animegan2-pytorch"):
        zoo.load("animegan2:paprika")
    with pytest.raises(zoo.UntrustedCodeError):
        zoo.load("animegan2:paprika", repo=str(served["repo"]))
    assert not (tmp_path / "ran").exists()


def test_face2paint_path_matches_a_manual_pipeline(served: dict, face: Path) -> None:
    from torchvision.transforms import functional as F

    model = zoo.load("animegan2:paprika", trust=True, device="cpu")
    assert model.weights == "paprika" and model.spec.task == "image-to-image"
    for key, tensor in model.module.state_dict().items():
        assert torch.equal(tensor, served[key]), key
    pins = json.loads((zoo.settings.cache_root() / "pins.json").read_text())
    assert len(pins["animegan2-paprika.pt"]["sha256"]) == 64  # upstream publishes no hash: recorded at first download
    result = model.predict(face)
    assert isinstance(result, zoo.results.ImageOutput) and result.image.size == (512, 512) and result.tiles == 1
    photo = Image.open(face).convert("RGB")  # 240x300: face2paint crops the centre 240x240, resizes with LANCZOS
    square = photo.crop((0, 30, 240, 270)).resize((512, 512), Image.LANCZOS)
    with torch.inference_mode():
        expected = (model.module(F.to_tensor(square)[None] * 2 - 1)[0] * 0.5 + 0.5).clamp(0, 1)
    got = torch.from_numpy(np.array(result.image)).permute(2, 0, 1).float() / 255
    assert (got - expected).abs().max() <= 1 / 255 + 1e-6
    pair = result.side_by_side()
    assert pair.size == (1024, 512)


def test_large_inputs_are_tiled_at_full_resolution(served: dict, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = np.linspace(0, 255, 900)[None, :, None] * np.ones((700, 1, 3))
    big = (x + rng.normal(0, 10, (700, 900, 3))).clip(0, 255).astype(np.uint8)
    model = zoo.load("animegan2:paprika", repo=str(served["repo"]), trust=True, device="cpu")
    result = model.predict(big, overlap=64)
    assert result.image.size == (900, 700) and result.tiles == 4
    tensor = torch.from_numpy(big).permute(2, 0, 1).float() / 255 * 2 - 1
    with torch.inference_mode():
        whole = (model.module(tensor[None])[0] * 0.5 + 0.5).clamp(0, 1) * 255
    got = torch.from_numpy(np.array(result.image)).permute(2, 0, 1).float()
    assert (got - whole).abs().mean() < 2.0  # seams blended away: close to one pass over the whole image
    cropped = model.predict(big, tile=False)
    assert cropped.image.size == (512, 512) and cropped.tiles == 1
    path = result.save(tmp_path / "anime.png")
    assert Image.open(path).size == (900, 700)
    assert result.to_dict() == {"source": "<input 0>", "width": 900, "height": 700, "mode": "RGB", "tiles": 4}


def test_cli_predict_saves_images(served: dict, face: Path, tmp_path: Path) -> None:
    out = CliRunner().invoke(cli, ["predict", "animegan2:paprika", str(face), "--trust", "--json", "--device", "cpu",
                                   "--save", str(tmp_path / "out")])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["results"][0]["width"] == 512
    assert Image.open(tmp_path / "out" / "face.png").size == (512, 512)
    names = [s["name"] for s in json.loads(CliRunner().invoke(cli, ["list", "anime*", "--json"]).output)]
    assert names == ["animegan2"]
    info = zoo.info("animegan2")
    assert set(info.weights) == {"face_paint_512_v2", "face_paint_512_v1", "celeba_distill", "paprika"}
    assert info.default_weights == "face_paint_512_v2"


def _repo_face2paint(archive: Path):
    """The repo's own `face2paint` factory, from hubconf.py in the real archive (it imports only torch and PIL)."""
    import tarfile
    import types

    with tarfile.open(archive) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/hubconf.py") and m.name.count("/") == 1)
        source = tar.extractfile(member).read().decode()  # type: ignore[union-attr]
    hubconf = types.ModuleType("animegan2_hubconf")
    exec(compile(source, "hubconf.py", "exec"), hubconf.__dict__)
    return hubconf.face2paint


@pytest.mark.assets
@pytest.mark.parametrize("photo", ["chelsea.png", "bus.jpg", "astronaut.png"])
def test_model_input_is_exactly_what_the_repos_face2paint_makes(assets: Path, photo: str) -> None:
    """face2paint crops the centre square, then resizes it with LANCZOS: zoo's tensor is the same, bit for bit
    (landscape, portrait JPEG and square inputs)."""
    from zoo.images import collect_images, decode, preprocess_batch
    from zoo_hub.animegan2 import FACE2PAINT

    seen: list[torch.Tensor] = []

    def capture(x: torch.Tensor) -> torch.Tensor:  # stands in for the generator: records its input
        seen.append(x.clone())
        return x

    face2paint = _repo_face2paint(assets / "hub" / "bryandlee-animegan2-pytorch-main.tar.gz")
    path = assets / "images" / photo
    face2paint(size=512)(capture, Image.open(path).convert("RGB"))
    items, _ = collect_images(path)
    ours = preprocess_batch([decode(items[0], 3)], FACE2PAINT, torch.device("cpu"))
    assert ours.shape == seen[0].shape == (1, 3, 512, 512)
    assert torch.equal(ours, seen[0])
