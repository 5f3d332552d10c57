"""The optical-flow task: zoo's predict equals torchvision's RAFT pipeline on two real photos' crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import zoo
from zoo.errors import InputError
from zoo.results import OpticalFlow


@pytest.mark.filterwarnings("ignore::zoo.errors.RandomWeightsWarning")
def test_raft_small_predict_equals_torchvision_pipeline(assets: Path, tmp_path: Path) -> None:
    import torch
    from torchvision.io import read_image
    from torchvision.models import get_model
    from torchvision.models.optical_flow import Raft_Small_Weights

    frame = read_image(str(assets / "images" / "bus.jpg"))[:, 200:328, 100:228]
    first, second = frame, torch.roll(frame, shifts=3, dims=2)
    torch.manual_seed(0)
    model = zoo.load("raft_small:none", device="cpu")
    found = model.predict([first, second], num_flow_updates=4)
    reference = get_model("raft_small", weights=None).eval()
    reference.load_state_dict(model.module.state_dict())
    a, b = Raft_Small_Weights.C_T_V2.transforms()(first.unsqueeze(0), second.unsqueeze(0))
    with torch.inference_mode():
        want = reference(a, b, num_flow_updates=4)[-1][0].numpy()

    assert isinstance(found, OpticalFlow) and found.flow.shape == (2, 128, 128)
    np.testing.assert_allclose(found.flow, want, atol=1e-4)
    assert found.plot().size == (128, 128) and found.save(tmp_path / "flow.png").stat().st_size > 0
    assert set(found.to_dict()) >= {"mean_motion", "max_motion"} and "OpticalFlow(" in repr(found)
    with pytest.raises(InputError, match="two frames"):
        model.predict(first)
