"""The second example plugin, examples/zoo-realesrgan, from outside the tree: a task and a checkpoint format of
its own, built on `zoo` and `zoo.ext` only, on Real-ESRGAN's real weights and a real photo.

The package is made visible the way pip would, by a `dist-info` folder with an `entry_points.txt` on the path
of a fresh interpreter (as tests/test_third_party_plugin.py does for the first example). The checks of its
checkpoint reader against hostile and foreign files run in this process, on files written here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import zoo

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_SRC = ROOT / "examples" / "zoo-realesrgan" / "src"
WEIGHTS = "realesr-animevideov3.pth"
SHA256 = "4e1e09ba96d08bd4b8455e8897c3242a3501e3766f359941ea894122e158a932"
UPSTREAM = "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.5.0"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """What `pip install ./examples/zoo-realesrgan` leaves in site-packages, minus the code."""
    dist = tmp_path / "site" / "zoo_realesrgan-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: zoo-realesrgan\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[zoo.plugins]\nrealesrgan = zoo_realesrgan:plugin\n")
    return dist.parent


@pytest.fixture
def truth(assets: Path, tmp_path: Path) -> Path:
    """A 256x192 crop of a real photo (the cat in chelsea.png): the high-resolution truth of `photo`."""
    from PIL import Image

    path = tmp_path / "truth.png"
    Image.open(assets / "images" / "chelsea.png").convert("RGB").crop((60, 0, 316, 192)).save(path)
    return path


@pytest.fixture
def photo(truth: Path, tmp_path: Path) -> Path:
    """`truth` shrunk x4 (bicubic) to 64x48: an input whose x4 upscale has a known answer, small enough to be fast."""
    from PIL import Image

    path = tmp_path / "crop.png"
    Image.open(truth).resize((64, 48), Image.Resampling.BICUBIC, reducing_gap=None).save(path)
    return path


def run(args: list[str], site: Path, **env: str) -> str:
    """Run Python with `args` in a fresh interpreter that sees the plugin as installed; return stdout."""
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(EXAMPLE_SRC)]), **env}
    proc = subprocess.run([sys.executable, *args], env=environ, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def psnr(a, b) -> float:
    import numpy as np

    mse = np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse)) if mse else float("inf")


def test_installed_plugin_upscales_a_photo_through_its_format_and_the_catalog(
    site: Path, photo: Path, truth: Path, assets: Path, tmp_path: Path, file_server
) -> None:
    from PIL import Image

    (file_server.root / WEIGHTS).write_bytes((assets / "weights" / WEIGHTS).read_bytes())
    out = run(
        [
            "-c",
            textwrap.dedent(
                f"""
                import hashlib, json, os, sys, warnings
                from pathlib import Path
                import zoo

                names = zoo.list_models(plugin="realesrgan")
                torch_after_listing = "torch" in sys.modules
                import zoo_realesrgan

                checkpoint = {str(assets / "weights" / WEIGHTS)!r}
                own = zoo_realesrgan.load_checkpoint(checkpoint, device="cpu")   # the plugin's format
                weights = Path(os.environ["ZOO_HOME"]) / "weights"
                conversions = lambda: {{p.name: p.stat().st_mtime_ns for p in weights.glob("realesrgan-*.safetensors")}}
                made = conversions()
                again = zoo_realesrgan.load_checkpoint(checkpoint, device="cpu")  # converted once, then cached
                catalog = zoo.load("realesr-animevideov3", device="cpu")       # downloaded, core conversion
                import torch

                torch.manual_seed(0)  # random weights, but the same ones on every run
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    random = zoo.load("realesr-animevideov3:none", device="cpu").predict({str(photo)!r}, tile=None)

                whole = own.predict({str(photo)!r}, tile=None)
                twice = again.predict({str(photo)!r}, tile=None)
                tiled = own.predict({str(photo)!r}, tile=32, overlap=24)
                listed = catalog.predict([{str(photo)!r}], tile=None)
                saved = whole.save({str(tmp_path / "out")!r})
                digest = lambda r: hashlib.sha256(r.image.tobytes()).hexdigest()
                print(json.dumps({{
                    "names": names, "torch_after_listing": torch_after_listing,
                    "made": made, "kept": conversions(),
                    "task": own.spec.task, "name": own.name, "sha": own.weights_sha256,
                    "whole": digest(whole), "twice": digest(twice), "catalog": digest(listed[0]),
                    "tiled": [tiled.tiles, whole.tiles], "saved": str(saved), "result": listed[0].to_dict(),
                }}))
                whole.image.save({str(tmp_path / "whole.png")!r}); tiled.image.save({str(tmp_path / "tiled.png")!r})
                random.image.save({str(tmp_path / "random.png")!r})
                """
            ),
        ],
        site,
        ZOO_MIRRORS=f"{UPSTREAM}={file_server.url}",
    )
    data = json.loads(out)
    assert data["names"] == ["realesr-animevideov3"]
    assert data["torch_after_listing"] is False
    assert len(data["made"]) == 1 and data["kept"] == data["made"]  # one conversion, not redone by the second load
    assert file_server.paths() == [f"/{WEIGHTS}"]  # the catalog's weights came through the mirror, verified
    assert (data["task"], data["name"]) == ("super-resolution", f"{WEIGHTS[:-4]}:{WEIGHTS}")
    assert data["whole"] == data["twice"] == data["catalog"]  # deterministic; the plugin's reader = zoo's
    assert data["tiled"] == [4, 1]  # 64x48 in tiles of 32: 2 x 2
    assert data["result"] == {"source": str(photo), "width": 256, "height": 192, "mode": "RGB", "tiles": 1}

    source = Image.open(photo)
    whole, tiled, random = (Image.open(tmp_path / f"{n}.png") for n in ("whole", "tiled", "random"))
    assert whole.size == (4 * source.width, 4 * source.height) == tiled.size
    assert Image.open(data["saved"]).tobytes() == whole.tobytes()
    bicubic = source.resize(whole.size, Image.Resampling.BICUBIC)
    assert psnr(whole, bicubic) > 30  # a faithful x4 of the photo ...
    # ... made by the real weights: against the known high-resolution answer it beats the network's residual
    # path alone (a nearest-neighbour x4, 25.9 dB here, real weights 26.6 dB) and the same network with random
    # weights (24.6-25.0 dB over seeds 0-7), numbers that do not depend on luck: every input here is fixed.
    hr = Image.open(truth)
    nearest = source.resize(whole.size, Image.Resampling.NEAREST)
    assert psnr(whole, hr) > psnr(nearest, hr) + 0.3
    assert psnr(whole, hr) > psnr(random, hr) + 1.0
    assert psnr(tiled, whole) > 45  # tiles with 24 px of context join without seams


def test_zoo_predict_cli_saves_the_upscaled_photo(site: Path, photo: Path, assets: Path, tmp_path: Path) -> None:
    from PIL import Image

    out = run(
        [
            "-m",
            "zoo",
            "predict",
            "realesr-animevideov3",
            str(photo),
            "--json",
            "--device",
            "cpu",
            "--save",
            str(tmp_path / "out"),
        ],  # fmt: skip
        site,
        ZOO_WEIGHTS_PATH=str(assets / "weights"),
        ZOO_OFFLINE="1",
    )
    result = json.loads(out)["results"][0]
    assert (result["width"], result["height"], result["tiles"]) == (256, 192, 1)
    saved = Image.open(tmp_path / "out" / "crop.png")
    assert saved.size == (256, 192)
    assert psnr(saved, Image.open(photo).resize(saved.size, Image.Resampling.BICUBIC)) > 30


# -- the checkpoint format against files it must refuse, in this process -----------------------------


@pytest.fixture
def realesrgan(monkeypatch: pytest.MonkeyPatch):
    """The example's checkpoint module, imported from its sources."""
    monkeypatch.syspath_prepend(str(EXAMPLE_SRC))
    import zoo_realesrgan.checkpoint

    return zoo_realesrgan.checkpoint


def tiny_state(seed: int) -> dict:
    import torch
    from zoo_realesrgan.arch import SRVGGNetCompact

    torch.manual_seed(seed)
    return SRVGGNetCompact(num_feat=4, num_conv=1, upscale=2).state_dict()


def cached_files() -> list[str]:
    weights = Path(os.environ["ZOO_HOME"]) / "weights"
    return sorted(p.name for p in weights.iterdir()) if weights.is_dir() else []


def test_the_ema_weights_win_and_the_architecture_is_read_from_the_tensors(realesrgan, tmp_path: Path) -> None:
    import torch

    ema, plain = tiny_state(1), tiny_state(2)
    torch.save({"params": plain, "params_ema": ema}, tmp_path / "net.pth")

    model = realesrgan.load_checkpoint(tmp_path / "net.pth", device="cpu")

    assert dict(model.builder_kwargs) == {"num_feat": 4, "num_conv": 1, "upscale": 2}
    assert all(torch.equal(model.module.state_dict()[k], v) for k, v in ema.items())
    assert model(torch.rand(1, 3, 10, 6)).shape == (1, 3, 20, 12)


def test_a_pickle_that_would_run_code_is_refused_without_running_it(realesrgan, tmp_path: Path) -> None:
    import torch

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"params": {"body.0.weight": Exploit()}}, tmp_path / "evil.pth")

    with pytest.raises(zoo.UnsupportedError, match="evil.pth is not a Real-ESRGAN checkpoint: its params hold"):
        realesrgan.load_checkpoint(tmp_path / "evil.pth", device="cpu")
    assert not marker.exists()
    assert not [n for n in cached_files() if n.startswith("realesrgan-")]  # nothing half-made left in the cache
    torch.load(tmp_path / "evil.pth", weights_only=False)  # the file is a real exploit: an unsafe reader runs it
    assert marker.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"model": "not params"}, "has no 'params_ema' or 'params' entry"),
        ({"params": {"conv.weight": "tensor"}}, "its params hold something else than tensors"),
        ({"params": "tensors"}, "has no 'params_ema' or 'params' entry"),
    ],
)
def test_a_foreign_checkpoint_is_refused_with_what_is_wrong(realesrgan, tmp_path: Path, content, message) -> None:
    import torch

    torch.save(content, tmp_path / "other.pth")
    with pytest.raises(zoo.UnsupportedError, match=message):
        realesrgan.load_checkpoint(tmp_path / "other.pth", device="cpu")


def test_tensors_that_do_not_make_an_srvgg_network_are_refused(realesrgan, tmp_path: Path) -> None:
    import torch

    state = tiny_state(3)
    del state["body.1.weight"]  # a ReLU network, or a damaged file: not the PReLU network upstream publishes
    torch.save({"params": state}, tmp_path / "relu.pth")
    with pytest.raises(zoo.UnsupportedError, match=r"not an SRVGGNetCompact checkpoint .*body\.1\.weight"):
        realesrgan.load_checkpoint(tmp_path / "relu.pth", device="cpu")
    torch.save({"params": {"conv.weight": torch.zeros(4, 3, 3, 3)}}, tmp_path / "conv.pth")
    with pytest.raises(zoo.UnsupportedError, match="no body.0 convolution"):
        realesrgan.load_checkpoint(tmp_path / "conv.pth", device="cpu")
    with pytest.raises(zoo.InputError, match="no such checkpoint file"):
        realesrgan.load_checkpoint(tmp_path / "missing.pth", device="cpu")
