"""`hub:` names: a `ModelSpec` made on the fly for any hubconf entry point (nothing runs until it is built)."""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from zoo import ModelSpec
from zoo_hub.names import HubTarget, parse_target

__all__ = ["build_entry", "resolve"]

PLUGIN = "hub"
TASK = "hub-module"


def resolve(text: str) -> tuple[ModelSpec, str | None]:
    """The spec for `hub:<text>`: building it calls the entry point (after trust) with the load's keyword arguments."""
    target = parse_target(text)
    slug = re.sub(r"[^a-z0-9._+-]+", ".", target.display.lower()).strip(".") or "hub"
    spec = ModelSpec(
        name=f"hub.{slug}"[:200],
        task=TASK,
        builder=partial(build_entry, target),
        plugin=PLUGIN,
        description=f"torch.hub entry point {target.display}",
        meta={"hub": target.display, "repo": target.key, "entry": target.entry, "archives": _archives(target)},
    )
    return spec, None


def _archives(target: HubTarget) -> list[dict[str, str]]:
    """The GitHub archives `zoo fetch` locks for this repo's code (the default branch: main, then master)."""
    if target.path is not None or target.owner is None or target.repo is None:
        return []
    from zoo.ext import archive_artifact
    from zoo_hub.repo import DEFAULT_REFS

    refs = (target.ref,) if target.ref else DEFAULT_REFS
    try:
        artifacts = [archive_artifact(target.owner, target.repo, ref) for ref in refs]
    except ValueError:  # an unsafe name: refused when the code is asked for
        return []
    return [{"file": a.name, "url": a.urls[0]} for a in artifacts]


def build_entry(target: HubTarget, *, trust: bool | None = None, **kwargs: Any) -> Any:
    """Call the entry point on the CPU (outside any meta-device context) and return its module."""
    import torch

    from zoo_hub.loader import load_entry

    with torch.device("cpu"):
        return load_entry(target, trust=trust, **kwargs)
