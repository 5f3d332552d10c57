"""zoo-realesrgan: Real-ESRGAN super-resolution for zoo, as a third-party plugin would write it.

It adds what zoo does not have: a task (`super-resolution`: an image in, an image `scale` times larger out,
in tiles for big images) and a checkpoint format (Real-ESRGAN's `.pth` files, `{"params": state_dict}` or
`{"params_ema": ...}`, read without running pickled code and cached as safetensors). It uses only `zoo` and
`zoo.ext`.

- `zoo.load("realesr-animevideov3")`: the published x4 anime-video model, from the catalog;
- `zoo_realesrgan.load_checkpoint("net.pth")`: any SRVGGNetCompact checkpoint of Real-ESRGAN's, its
  architecture read from the tensors.

Importing this module is cheap: torch is imported when a model is built or a checkpoint read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import zoo
from zoo_realesrgan.checkpoint import load_checkpoint

if TYPE_CHECKING:
    import torch.nn

__all__ = ["TASK", "WEIGHTS_URL", "load_checkpoint", "plugin", "srvgg_compact"]

TASK = "super-resolution"
#: Upstream's release of the x4 anime-video model (a `{"params": state_dict}` pickle).
WEIGHTS_URL = "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.5.0/realesr-animevideov3.pth"

plugin = zoo.Plugin("realesrgan", description="Real-ESRGAN super-resolution: a task and a checkpoint format")
plugin.task(TASK, "zoo_realesrgan.task:SuperResolution")


@plugin.model(
    "realesr-animevideov3",
    task=TASK,
    weights={
        "v0.2.5.0": zoo.Weights(
            url=WEIGHTS_URL,
            sha256="4e1e09ba96d08bd4b8455e8897c3242a3501e3766f359941ea894122e158a932",
            format="state_dict-pickle",
            license="BSD-3-Clause",
        )
    },
    family="real-esrgan",
    scale=4,
)
def srvgg_compact(num_feat: int = 64, num_conv: int = 16, upscale: int = 4, act: str = "prelu") -> torch.nn.Module:
    """Real-ESRGAN SRVGGNetCompact x4 (anime video): a small VGG-style super-resolution network."""
    from zoo_realesrgan.arch import SRVGGNetCompact

    return SRVGGNetCompact(num_feat=num_feat, num_conv=num_conv, upscale=upscale, act=act)
