"""Parsing of model names: `name`, `name:TAG`, `plugin/name[:TAG]`, `scheme:rest`, and checkpoint paths."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from zoo.errors import UnknownModelError

__all__ = ["ModelName", "is_path", "is_reserved_name", "parse_name"]

# Patterns are used with `fullmatch` only: `re.match(r"...$")` also accepts a trailing newline ("x\n").
#: A scheme name: `hub:...`; the target is any printable text (no control characters, so no newline).
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9_]*):(?!\d)([^\x00-\x1f\x7f]+)")
_PLAIN = re.compile(
    r"(?:([A-Za-z0-9][A-Za-z0-9._-]*)/)?([A-Za-z0-9][A-Za-z0-9._+-]*)(?::([A-Za-z0-9][A-Za-z0-9._+-]*))?"
)
#: Device names Windows reserves in every folder, with or without an extension (`nul.pth`, `COM1.txt`).
_RESERVED = re.compile(r"(?:CON|PRN|AUX|NUL|COM[1-9¹²³]|LPT[1-9¹²³])(?:\..*)?", re.IGNORECASE | re.DOTALL)
_CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt", ".onnx", ".pt2")


@dataclass(frozen=True)
class ModelName:
    """A parsed model name.

    Attributes:
        raw: the text as given.
        model: model name, lower case (empty for scheme names).
        plugin: plugin of a qualified name (`plugin/name`), else None.
        tag: weights tag as written, else None.
        scheme: `hub`, `hf`, ... for scheme names, else None.
        target: the text after `scheme:`.
    """

    raw: str
    model: str = ""
    plugin: str | None = None
    tag: str | None = None
    scheme: str | None = None
    target: str = ""


def is_reserved_name(name: str) -> bool:
    """True when `name` is a file name Windows reserves for a device (`CON`, `nul.pth`, `Com1.txt`, ...).

    Such a name cannot be created as a file on Windows (opening it opens the device), so a file or repo
    name read from outside is refused when it is one, in any case and with any extension.
    """
    return bool(_RESERVED.fullmatch(name.rstrip(" .")))


def is_path(name: str | os.PathLike[str]) -> bool:
    """True when `name` names a local checkpoint (file or folder) rather than a catalog model.

    An `os.PathLike` is always a path; a string is one when it looks like one (`./x`, `/x`, `~/x`, `x.safetensors`)
    or when a file or folder of that name exists: an existing path wins over a model name.
    """
    if not isinstance(name, str):
        return isinstance(name, os.PathLike)
    if not name or "\0" in name:
        return False
    if name.startswith(("./", "../", "/", "~", ".\\", "..\\")) or name.endswith(_CHECKPOINT_SUFFIXES):
        return True
    if os.sep in name[:1] or (os.altsep is not None and os.altsep in name[:1]):
        return True
    try:
        return Path(name).expanduser().exists()
    except (OSError, ValueError):  # a name too long for the filesystem
        return False


def parse_name(name: str, schemes: frozenset[str] = frozenset()) -> ModelName:
    """Parse a model name as written by a user.

    Args:
        name: the name.
        schemes: scheme prefixes the loaded plugins resolve (`hub`, `hf`); `resnet18:v1` is a tag, not a
            scheme, unless a plugin registered `resnet18` as a scheme.

    Raises:
        UnknownModelError: the text is not a valid name.
    """
    raw = name
    name = name.strip(" ")  # surrounding spaces of a pasted name; a newline or other control character is refused
    scheme = _SCHEME.fullmatch(name)
    if scheme and scheme.group(1).lower() in schemes:
        return ModelName(raw=raw, scheme=scheme.group(1).lower(), target=scheme.group(2))
    plain = _PLAIN.fullmatch(name)
    if plain:
        plugin, model, tag = plain.groups()
        return ModelName(raw=raw, model=model.lower(), plugin=plugin, tag=tag)
    if scheme:  # e.g. `hf:org/repo` while no plugin handles `hf:`; the registry says so
        return ModelName(raw=raw, scheme=scheme.group(1).lower(), target=scheme.group(2))
    raise UnknownModelError(
        f"{raw!r} is not a model name: use name, name:TAG, plugin/name or a checkpoint path. See `zoo list`.",
        name=raw,
    )
