"""The video-classification task: zoo's predict equals torchvision's own pipeline; frames from a tensor, a
folder of images or a video file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import zoo
from zoo.errors import InputError
from zoo.results import VideoClassification


@pytest.fixture(scope="module")
def r3d() -> zoo.Model:
    import torch

    torch.manual_seed(0)
    return zoo.load("r3d_18:none", device="cpu")


def _frames(count: int = 16) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(count, 60, 80, 3), dtype=np.uint8)


@pytest.mark.filterwarnings("ignore::zoo.errors.RandomWeightsWarning")
def test_r3d_predict_equals_torchvision_pipeline(r3d: zoo.Model) -> None:
    import torch
    from torchvision.models import get_model
    from torchvision.models.video import R3D_18_Weights

    frames = _frames()
    found = r3d.predict(frames, top_k=3)
    reference = get_model("r3d_18", weights=None).eval()
    reference.load_state_dict(r3d.module.state_dict())
    clip = R3D_18_Weights.KINETICS400_V1.transforms()(torch.from_numpy(frames).permute(0, 3, 1, 2))
    with torch.inference_mode():
        want = reference(clip.unsqueeze(0)).softmax(-1)[0].topk(3)

    assert isinstance(found, VideoClassification) and found.clips == 1 and found.frames == 16
    assert list(found.indices) == want.indices.tolist()
    np.testing.assert_allclose(found.scores, want.values.numpy(), atol=1e-6)
    assert found.labels[0] == r3d.labels[found.indices[0]] and len(r3d.labels) == 400
    assert '"clips": 1' in found.to_json() and "VideoClassification(" in repr(found)


@pytest.mark.filterwarnings("ignore::zoo.errors.RandomWeightsWarning")
def test_frames_from_a_folder_and_clips_averaged(r3d: zoo.Model, tmp_path: Path) -> None:
    from PIL import Image

    frames = _frames(20)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / f"{i:03d}.png")
    from_folder = r3d.predict(tmp_path, clip_len=8)
    from_tensor = r3d.predict(frames, clip_len=8)
    assert from_folder.clips == 3 and from_folder.frames == 20  # 8 + 8 + 4 padded with the last frame
    assert from_folder.indices == from_tensor.indices
    np.testing.assert_allclose(from_folder.scores, from_tensor.scores, atol=1e-6)


@pytest.mark.filterwarnings("ignore::zoo.errors.RandomWeightsWarning")
def test_video_file_read_with_pyav(r3d: zoo.Model, tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    path = tmp_path / "clip.avi"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=8)
        stream.width, stream.height, stream.pix_fmt = 80, 64, "yuvj420p"
        for frame in _frames(5):
            big = np.zeros((64, 80, 3), np.uint8)
            big[:60] = frame
            for packet in stream.encode(av.VideoFrame.from_ndarray(big, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    found = r3d.predict(path, clip_len=4)
    assert found.frames == 5 and found.clips == 2 and found.source == str(path)
    bad = tmp_path / "not-a-video.avi"
    bad.write_bytes(b"nope")
    with pytest.raises(InputError, match="not a readable video"):
        r3d.predict(bad)
    with pytest.raises(InputError, match="video file, a folder of frames"):
        r3d.predict(np.zeros((4, 4, 3), np.uint8))
