"""zoo-example-plugin: a minimal third-party zoo plugin declaring one tiny image classifier, `tinynet`.

Importing this module is cheap: it imports zoo (which does not import torch) and declares data.
torch is imported inside the builder, when a model is actually built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import zoo

if TYPE_CHECKING:
    import torch.nn

__all__ = ["WEIGHTS_URL", "plugin", "tinynet"]

plugin = zoo.Plugin("example", description="A minimal third-party plugin: one tiny cat/dog classifier")

#: Where the `v1` weights are published. This is a placeholder on example.org: the file itself ships in
#: this project's `weights/` folder; point `ZOO_WEIGHTS_PATH` (or a `ZOO_MIRRORS` rewrite) at it.
WEIGHTS_URL = "https://example.org/zoo-example-plugin/tinynet-v1.safetensors"


@plugin.model(
    "tinynet",
    task="image-classification",
    labels=["cat", "dog"],
    weights={
        "v1": zoo.Weights(
            url=WEIGHTS_URL,
            sha256="24af3c6d887be5ff0c7eb8f4e41b0bcab909fcdb8c5df55d222200144ed9ec7e",
            license="BSD-3-Clause",
            meta={"note": "hand-set toy weights: reddish images are 'cat', bluish images are 'dog'"},
        )
    },
    preprocess=zoo.ImagePreprocess(resize=72, crop=64, mean=(0.5,) * 3, std=(0.5,) * 3),
)
def tinynet(num_classes: int = 2) -> torch.nn.Module:
    """A tiny CNN (242 parameters) that shows the plugin plumbing; not a useful classifier."""
    import torch.nn as nn  # heavy imports go inside the builder, never at module level

    return nn.Sequential(
        nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, num_classes),
    )
