"""SRVGGNetCompact, Real-ESRGAN's small super-resolution network, written from its description.

A VGG-style body of 3x3 convolutions, each followed by an activation, works at the input's size; its last
convolution makes `3 * upscale**2` channels, which a pixel shuffle turns into an image `upscale` times
larger. The network learns a residual: the input, upsampled by nearest neighbour, is added to its output.
The module names (`body.N`) are upstream's, so its state_dicts load as they are.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ACTIVATIONS", "SRVGGNetCompact"]

#: Activation names upstream uses, and what each builds for `num_feat` channels.
ACTIVATIONS = {
    "prelu": lambda n: nn.PReLU(num_parameters=n),
    "relu": lambda n: nn.ReLU(inplace=True),
    "lrelu": lambda n: nn.LeakyReLU(negative_slope=0.1, inplace=True),
}


class SRVGGNetCompact(nn.Module):
    """Real-ESRGAN's compact super-resolution network.

    Args:
        num_in_ch: input channels.
        num_out_ch: output channels.
        num_feat: channels of the body.
        num_conv: 3x3 convolutions between the first and the last.
        upscale: how many times larger the output is, per side.
        act: the activation after each body convolution: "prelu", "relu" or "lrelu".
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_conv: int = 16,
                 upscale: int = 4, act: str = "prelu") -> None:  # fmt: skip
        super().__init__()
        self.upscale = upscale
        layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), ACTIVATIONS[act](num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), ACTIVATIONS[act](num_feat)]
        layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """NCHW images in [0, 1] to NCHW images `upscale` times larger (not clamped)."""
        out = x
        for layer in self.body:
            out = layer(out)
        return self.upsampler(out) + F.interpolate(x, scale_factor=self.upscale, mode="nearest")
