"""Helpers for the store tests: publishing files on the test server, and a plugin that fresh processes see.

The plugin `storetest` is installed the way pip would leave it (a `dist-info` with an entry point on
`PYTHONPATH`); its models and their weights come from the ``ZOO_TEST_WEIGHTS`` environment variable, so
one plugin serves every test.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

PLUGIN = '''
"""Models of the store tests: their weights are declared in ZOO_TEST_WEIGHTS (JSON)."""
import json
import os

import zoo

plugin = zoo.Plugin("storetest", description="models of the store tests")


def tinyw(num_classes: int = 3):
    """A few-KB CNN."""
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes),
    )


for _name, _weights in json.loads(os.environ.get("ZOO_TEST_WEIGHTS", "{}")).items():
    plugin.model(_name, task="image-classification", labels=["a", "b", "c"], weights={"v1": zoo.Weights(**_weights)})(
        tinyw
    )
'''


def publish(server: Any, name: str, data: bytes) -> str:
    """Serve `data` at `/name` on the test server; returns its sha256."""
    path = server.root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def safetensors_bytes(payload: bytes) -> bytes:
    """A valid safetensors file holding `payload` as one uint8 tensor (a file with no published hash must
    be a complete file of its format before it is pinned)."""
    header = json.dumps({"x": {"dtype": "U8", "shape": [len(payload)], "data_offsets": [0, len(payload)]}})
    raw = header.encode() + b" " * (-len(header) % 8)
    return len(raw).to_bytes(8, "little") + raw + payload


def install_plugin(folder: Path) -> Path:
    """Write the `storetest` plugin and its dist-info into `folder`; returns the folder for PYTHONPATH."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "zoo_storetest.py").write_text(textwrap.dedent(PLUGIN))
    dist = folder / "zoo_storetest-0.1.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: zoo-storetest\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[zoo.plugins]\nstoretest = zoo_storetest:plugin\n")
    return folder


def plugin_env(site: Path, weights: dict[str, dict[str, Any]], **extra: str) -> dict[str, str]:
    """An environment for a fresh process that sees the plugin with these models' weights."""
    path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**os.environ, "PYTHONPATH": path, "ZOO_TEST_WEIGHTS": json.dumps(weights), **extra}


def zoo_cmd(*args: str) -> list[str]:
    """The command line of `zoo ARGS` in a fresh interpreter."""
    return [sys.executable, "-m", "zoo", *args]


def run_zoo(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `zoo ARGS` in a fresh process and wait for it."""
    return subprocess.run(zoo_cmd(*args), env=env, capture_output=True, text=True, timeout=timeout)


def parts(weights: Path) -> list[Path]:
    """Temporary files in the weights folder."""
    return sorted(p for p in weights.iterdir() if p.name.endswith(".part"))
