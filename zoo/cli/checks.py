"""Checks the CLI makes before loading a model: what its task declares it can do."""

from __future__ import annotations

from zoo.names import is_path, parse_name


def require_capability(name: str, capability: str) -> None:
    """Refuse model `name` before any download when its task declares no `capability` (`finetune`, ...).

    Catalog names are checked from their spec alone; checkpoint paths and scheme names (`hf:`, `hub:`),
    whose spec may take a fetch to know, are checked by the API once loaded.

    Raises:
        UnsupportedError: the task declares no such capability (a one-line message naming it).
    """
    from zoo import api
    from zoo.registry import get_registry

    registry = get_registry()
    if is_path(name) or parse_name(name, frozenset(registry.scheme_names())).scheme is not None:
        return
    api.capabilities(name).require(capability, name)
