"""Settings read when used: environment variables first, then the config file, then defaults.

Nothing here is frozen at import time, so `monkeypatch.setenv` is all a test needs.

The config file is ``<user_config_dir("zoo")>/config.toml`` (or ``ZOO_CONFIG``)::

    home = "/data/zoo"                  # ZOO_HOME
    offline = false                     # ZOO_OFFLINE
    verify = false                      # ZOO_VERIFY: hash weights again at every load
    progress = true                     # ZOO_PROGRESS: download bars on a terminal
    device = "cuda:1"                   # ZOO_DEVICE
    plugins = ["torchvision", "mine"]   # ZOO_PLUGINS
    weights_path = ["/mnt/weights"]     # ZOO_WEIGHTS_PATH

    [mirrors]                           # ZOO_MIRRORS
    "https://download.pytorch.org" = "http://mirror.local/torch"
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def config_path() -> Path:
    """Path of the config file (``ZOO_CONFIG`` overrides the platform default)."""
    if env := os.environ.get("ZOO_CONFIG"):
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("zoo")) / "config.toml"


def config() -> dict[str, Any]:
    """The parsed config file, or an empty dict when there is none."""
    path = config_path()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ZooError(f"Cannot read the zoo config file {path}: {exc.strerror}. Fix or remove it.") from exc
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ZooError(f"The zoo config file {path} is not valid TOML ({exc}). Fix or remove it.") from exc


def _flag(env: str, key: str) -> bool:
    raw = os.environ.get(env)
    if raw is None:
        value = config().get(key, False)
        return bool(value)
    raw = raw.strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ZooError(f"{env}={raw!r} is not a boolean: use 1 or 0.")


def _list(env: str, key: str, sep: str) -> list[str]:
    raw = os.environ.get(env)
    if raw is not None:
        return [part.strip() for part in raw.split(sep) if part.strip()]
    value = config().get(key, [])
    if isinstance(value, str):
        value = [value]
    return [str(v) for v in value]


def cache_root() -> Path:
    """Root of the zoo cache: ``ZOO_HOME``, the config's ``home``, else the platform cache dir."""
    if env := os.environ.get("ZOO_HOME"):
        return Path(env).expanduser().absolute()
    if home := config().get("home"):
        return Path(str(home)).expanduser().absolute()
    import platformdirs

    return Path(platformdirs.user_cache_dir("zoo")).absolute()


def offline() -> bool:
    """True when ``ZOO_OFFLINE`` (or the config's ``offline``) forbids every network call."""
    return _flag("ZOO_OFFLINE", "offline")


def progress() -> bool | None:
    """``ZOO_PROGRESS`` (or the config's ``progress``): False hides download bars, True or None (unset) shows
    them when stderr is a terminal."""
    if "ZOO_PROGRESS" not in os.environ and "progress" not in config():
        return None
    return _flag("ZOO_PROGRESS", "progress")


def verify() -> bool:
    """True when ``ZOO_VERIFY`` (or the config's ``verify``) asks every load to hash its weights file again."""
    return _flag("ZOO_VERIFY", "verify")


def device() -> str | None:
    """The device asked for by ``ZOO_DEVICE`` or the config, or None for automatic choice."""
    return os.environ.get("ZOO_DEVICE") or config().get("device") or None


def plugin_allowlist() -> list[str] | None:
    """Names of the plugins to load (``ZOO_PLUGINS``, comma-separated), or None for all."""
    if "ZOO_PLUGINS" not in os.environ and "plugins" not in config():
        return None
    return _list("ZOO_PLUGINS", "plugins", ",")


def weights_path() -> list[Path]:
    """Folders searched for weight files before any download (``ZOO_WEIGHTS_PATH``, os.pathsep-separated)."""
    return [Path(p).expanduser() for p in _list("ZOO_WEIGHTS_PATH", "weights_path", os.pathsep)]


def mirrors() -> list[tuple[str, str]]:
    """URL prefix rewrites ``(prefix, replacement)``, from ``ZOO_MIRRORS`` or the config's ``[mirrors]``.

    ``ZOO_MIRRORS`` is a comma-separated list of ``prefix=replacement`` pairs.
    """
    raw = os.environ.get("ZOO_MIRRORS")
    if raw is None:
        table = config().get("mirrors", {})
        if not isinstance(table, dict):
            raise ZooError(f"[mirrors] in {config_path()} must be a table of prefix = replacement.")
        return [(str(k), str(v)) for k, v in table.items()]
    pairs = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        prefix, sep, replacement = item.partition("=")
        if not sep or not prefix.strip() or not replacement.strip():
            raise ZooError(
                f"ZOO_MIRRORS entry {item!r} is not prefix=replacement, e.g. https://github.com=http://m/gh."
            )
        pairs.append((prefix.strip(), replacement.strip()))
    return pairs
