"""The ultralytics package, imported the zoo way: settings under the zoo root, no DNS probe, no font download.

ultralytics' traps, and what this module does about each:

- it probes DNS at import (`ultralytics.utils.ONLINE`): zoo imports it with `YOLO_OFFLINE=1` set for the
  import only, so the probe never runs, telemetry (which needs `ONLINE`) stays off and nothing is
  pip-installed behind the user's back; its own downloads (a dataset named by a yaml) still check
  the network when they happen, unless zoo is offline;
- its settings (`datasets_dir`, `weights_dir`, `runs_dir`) default to folders relative to the first
  working directory and are frozen at import: zoo points `YOLO_CONFIG_DIR` under the zoo root and, the
  first time, writes a settings file whose folders are under `<root>/ultralytics` too;
- it downloads `Arial.ttf` to plot or train: zoo copies matplotlib's DejaVu Sans (matplotlib is an
  ultralytics dependency) under both font names ultralytics looks for;
- it replaces `PIL.Image.open` for the whole process (`ultralytics.utils.patches`) with a version that, on a
  file PIL cannot identify, runs `check_requirements("pi-heif")` (a pip install when online) and raises
  `ModuleNotFoundError` when offline: zoo puts Pillow's own `Image.open` back, so a bad file anywhere in the
  process stays a one-line `InputError` and nothing is installed.

A user's own `YOLO_CONFIG_DIR` is respected: zoo then only adds the fonts.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from zoo import UnsupportedError
from zoo.ext import atomic_path, atomic_write_text, backend_dirs, configure_backends

__all__ = ["INSTALL_HINT", "config_dir", "quiet", "ultralytics_module"]

log = logging.getLogger(__name__)

INSTALL_HINT = 'pip install "zoo-sdk[yolo]"'
#: Font names ultralytics looks for in its config folder before downloading them.
FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")
#: The settings schema this module writes (ultralytics migrates other versions, keeping these values).
SETTINGS_VERSION = "0.0.8"


def config_dir() -> Path:
    """The folder ultralytics keeps its settings and fonts in (`$YOLO_CONFIG_DIR/Ultralytics`)."""
    configure_backends()
    return Path(os.environ["YOLO_CONFIG_DIR"]).expanduser() / "Ultralytics"


def ultralytics_module() -> ModuleType:
    """Import ultralytics (once) with zoo's settings, fonts and offline switch in place.

    Raises:
        UnsupportedError: ultralytics is not installed.
    """
    folder = config_dir()
    if _is_zoo_folder(folder):
        write_settings(folder)
    install_fonts(folder)
    if "ultralytics.utils" not in sys.modules:
        try:
            with _no_dns_probe():
                import ultralytics.utils  # noqa: F401 - runs its import-time setup now, offline
        except ImportError as exc:
            raise UnsupportedError(f"ultralytics models need the ultralytics package ({exc}): {INSTALL_HINT}.") from exc
    _restore_pillow()
    import ultralytics
    from ultralytics.utils import USER_CONFIG_DIR

    if Path(USER_CONFIG_DIR) != folder:  # imported earlier under another YOLO_CONFIG_DIR: its folder wins
        install_fonts(Path(USER_CONFIG_DIR))
    return ultralytics


def _restore_pillow() -> None:
    """Import ultralytics' patches now, then give `PIL.Image.open` back its Pillow original (see the docstring)."""
    from PIL import Image

    with _no_dns_probe():
        patches = importlib.import_module("ultralytics.utils.patches")
    original = getattr(patches, "_image_open", None)
    if original is not None and Image.open is not original and Image.open is getattr(patches, "image_open", None):
        Image.open = original


def _is_zoo_folder(folder: Path) -> bool:
    ours = backend_dirs().get("ultralytics")  # declared by this plugin (zoo_yolo/__init__.py)
    return ours is not None and folder.parent.resolve() == ours.resolve()


@contextlib.contextmanager
def _no_dns_probe() -> Iterator[None]:
    """`YOLO_OFFLINE=1` for the duration of the import (left set when zoo is offline)."""
    before = os.environ.get("YOLO_OFFLINE")
    os.environ["YOLO_OFFLINE"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("YOLO_OFFLINE", None)
        else:
            os.environ["YOLO_OFFLINE"] = before


@contextlib.contextmanager
def quiet(level: int = logging.WARNING) -> Iterator[None]:
    """Hold ultralytics' logger (which prints to stdout) at `level` or above, for loads and predictions."""
    logger = logging.getLogger("ultralytics")
    before = logger.level
    logger.setLevel(max(before, level))
    try:
        yield
    finally:
        logger.setLevel(before)


def write_settings(folder: Path) -> Path:
    """Write ultralytics' `settings.json` in `folder` with every folder under the zoo root, unless it exists."""
    path = folder / "settings.json"
    if path.exists():
        return path
    base = folder.parent
    settings = {
        "settings_version": SETTINGS_VERSION,
        "datasets_dir": str(base / "datasets"),
        "weights_dir": str(base / "weights"),
        "runs_dir": str(base / "runs"),
        "uuid": hashlib.sha256(str(uuid.getnode()).encode()).hexdigest(),
        "sync": False,
        "api_key": "",
        "openai_api_key": "",
        "clearml": True,
        "comet": True,
        "dvc": True,
        "mlflow": True,
        "raytune": True,
        "tensorboard": False,
        "wandb": False,
        "vscode_msg": False,
        "openvino_msg": False,
    }
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(settings, indent=2) + "\n")
    return path


def install_fonts(folder: Path) -> None:
    """Copy matplotlib's DejaVu Sans to `folder` as the fonts ultralytics would otherwise download."""
    missing = [folder / name for name in FONT_NAMES if not (folder / name).is_file()]
    if not missing:
        return
    font = _dejavu()
    if font is None:
        log.warning("matplotlib's DejaVu Sans was not found: ultralytics may try to download Arial.ttf to plot")
        return
    folder.mkdir(parents=True, exist_ok=True)
    for target in missing:
        with atomic_path(target) as tmp:
            shutil.copyfile(font, tmp)


def _dejavu() -> Path | None:
    """matplotlib's bundled DejaVu Sans, found without importing matplotlib."""
    spec = importlib.util.find_spec("matplotlib")
    for location in (spec.submodule_search_locations or []) if spec else []:
        font = Path(location) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
        if font.is_file():
            return font
    return None
