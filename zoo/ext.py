"""`zoo.ext`: the one public surface for plugin authors.

Users write `import zoo`; a plugin that needs more than declaring models (a task of its own, a checkpoint
format, a scheme that downloads, a CLI command) imports what it needs from `zoo.ext` too, and nothing else
from zoo. Every other module under `zoo.` is private: it may change in any release without notice, and zoo's
own plugins are held to this rule by a test.

```python
from zoo.ext import Task, ImageOutput, collect_images, decode, build_model, get_store, read_pickle
```

What is here:

- the model contract: `Plugin`, `ModelSpec`, `Weights`, `Artifact`, `ImagePreprocess`, `Task`, `Model`;
- building a model: `build_model` (the one way a `Model` is made), `ModelInfo`, `resolve_device`,
  `place_module`, and what a checkpoint records (`CheckpointInfo`);
- tensors from files: `read_state_dict` (safetensors or a pickled state_dict, never running code),
  `read_pickle` and `module_state_dict` (any `torch.save` file read without running pickled code),
  `load_state_dict_into`, `untie`;
- torchvision detectors: `replace_box_predictor` (a new class count, as fine-tuning gives one) and `box_classes`;
- images and results: `collect_images`, `decode`, `preprocess_batch`, `normalize_batch`, `resize_crop`,
  `check_size`, `ImageItem`, result types, `progress_bar`;
- the store: `get_store` (`Store.fetch`, `Store.derive`), `CacheEntry`, `hash_file`, GitHub archives
  (`archive_artifact`, `repo_snapshot`, `cached_ref`), settings read when used (`cache_root`, `is_offline`),
  the backends' folders and offline switches (`backend_dirs`, `configure_backends`), trust of hub code
  (`check_trust`);
- files: `atomic_write`, `atomic_write_bytes`, `atomic_write_text`; arguments read from files
  (`file_kwargs`, `parse_json`); models other plugins declare (`declared_spec`, `USER_PLUGIN`);
- CLI rendering for `Plugin.command` commands: `echo_json`, `table`;
- every error and warning zoo raises.

Version policy: `EXT_API_VERSION` is `(major, minor)`. A release that adds a name, or an optional argument,
raises the minor number; a release that removes or renames a name, or changes a signature or a result in a
way existing plugins would notice, raises the major number, and the old name keeps working, with a
`DeprecationWarning`, for at least one minor release before it goes. `__all__` is the whole surface and is
listed, name by name, in the documentation (a test holds the two equal).

Importing `zoo.ext` never imports torch; the functions that need it import it when called.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what documentation tools and type checkers see; at run time each name is imported when first used
    from zoo._atomic import atomic_path, atomic_write, atomic_write_bytes, atomic_write_text
    from zoo.arguments import file_kwargs, parse_json
    from zoo.build import build_model
    from zoo.checkpoint import CheckpointInfo, load_state_dict_into, read_state_dict, untie
    from zoo.cli.render import echo_json, table
    from zoo.device import place_module, resolve_device
    from zoo.errors import (
        ChecksumError,
        DiskFullError,
        DownloadError,
        InputError,
        OfflineError,
        PluginError,
        RandomWeightsWarning,
        SkippedInputsWarning,
        UnknownModelError,
        UnsupportedError,
        UntrustedCodeError,
        ZooError,
        ZooWarning,
    )
    from zoo.images import (
        ImageItem,
        check_size,
        collect_images,
        decode,
        normalize_batch,
        preprocess_batch,
        resize_crop,
    )
    from zoo.model import Model, ModelInfo
    from zoo.offline import backend_dirs, configure_backends
    from zoo.plugin import Plugin
    from zoo.progress import progress_bar
    from zoo.registry import USER_PLUGIN
    from zoo.results import Classification, Detections, ImageOutput, ResultList, SkippedInput
    from zoo.safe_pickle import load as read_pickle
    from zoo.safe_pickle import module_state_dict
    from zoo.settings import cache_root
    from zoo.settings import offline as is_offline
    from zoo.specs import Artifact, ImagePreprocess, ModelSpec, Weights
    from zoo.store import CacheEntry, Store, get_store
    from zoo.store.cache import hash_file
    from zoo.store.github import archive_artifact, cached_ref, repo_snapshot
    from zoo.tasks.base import Task, TaskCapabilities
    from zoo.train.detection_heads import box_classes, replace_box_predictor
    from zoo.trust import check as check_trust

__all__ = [
    "Artifact",
    "CacheEntry",
    "CheckpointInfo",
    "ChecksumError",
    "Classification",
    "Detections",
    "DiskFullError",
    "DownloadError",
    "EXT_API_VERSION",
    "ImageItem",
    "ImageOutput",
    "ImagePreprocess",
    "InputError",
    "Model",
    "ModelInfo",
    "ModelSpec",
    "OfflineError",
    "Plugin",
    "PluginError",
    "RandomWeightsWarning",
    "ResultList",
    "SkippedInput",
    "SkippedInputsWarning",
    "Store",
    "Task",
    "TaskCapabilities",
    "USER_PLUGIN",
    "UnknownModelError",
    "UnsupportedError",
    "UntrustedCodeError",
    "Weights",
    "ZooError",
    "ZooWarning",
    "archive_artifact",
    "atomic_path",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "backend_dirs",
    "box_classes",
    "build_model",
    "cache_root",
    "cached_ref",
    "check_size",
    "check_trust",
    "collect_images",
    "configure_backends",
    "declared_spec",
    "decode",
    "echo_json",
    "file_kwargs",
    "get_store",
    "hash_file",
    "is_offline",
    "load_state_dict_into",
    "module_state_dict",
    "normalize_batch",
    "parse_json",
    "place_module",
    "preprocess_batch",
    "progress_bar",
    "read_pickle",
    "read_state_dict",
    "replace_box_predictor",
    "repo_snapshot",
    "resize_crop",
    "resolve_device",
    "table",
    "untie",
]

#: The module of each name, imported on first use (so a plugin's `from zoo.ext import X` costs only what X
#: needs, and listing models stays free of the store and checkpoint code). A test holds it to the imports above.
_MODULES: dict[str, tuple[str, ...]] = {
    "zoo._atomic": ("atomic_path", "atomic_write", "atomic_write_bytes", "atomic_write_text"),
    "zoo.arguments": ("file_kwargs", "parse_json"),
    "zoo.build": ("build_model",),
    "zoo.checkpoint": ("CheckpointInfo", "load_state_dict_into", "read_state_dict", "untie"),
    "zoo.cli.render": ("echo_json", "table"),
    "zoo.device": ("place_module", "resolve_device"),
    "zoo.errors": (
        "ChecksumError",
        "DiskFullError",
        "DownloadError",
        "InputError",
        "OfflineError",
        "PluginError",
        "RandomWeightsWarning",
        "SkippedInputsWarning",
        "UnknownModelError",
        "UnsupportedError",
        "UntrustedCodeError",
        "ZooError",
        "ZooWarning",
    ),
    "zoo.images": (
        "ImageItem",
        "check_size",
        "collect_images",
        "decode",
        "normalize_batch",
        "preprocess_batch",
        "resize_crop",
    ),
    "zoo.model": ("Model", "ModelInfo"),
    "zoo.offline": ("backend_dirs", "configure_backends"),
    "zoo.plugin": ("Plugin",),
    "zoo.progress": ("progress_bar",),
    "zoo.registry": ("USER_PLUGIN",),
    "zoo.results": ("Classification", "Detections", "ImageOutput", "ResultList", "SkippedInput"),
    "zoo.safe_pickle": ("module_state_dict",),
    "zoo.settings": ("cache_root",),
    "zoo.specs": ("Artifact", "ImagePreprocess", "ModelSpec", "Weights"),
    "zoo.store": ("CacheEntry", "Store", "get_store"),
    "zoo.store.cache": ("hash_file",),
    "zoo.store.github": ("archive_artifact", "cached_ref", "repo_snapshot"),
    "zoo.tasks.base": ("Task", "TaskCapabilities"),
    "zoo.train.detection_heads": ("box_classes", "replace_box_predictor"),
}
#: Names that differ from the attribute they stand for: `(module, attribute)`.
_RENAMED: dict[str, tuple[str, str]] = {
    "check_trust": ("zoo.trust", "check"),
    "is_offline": ("zoo.settings", "offline"),
    "read_pickle": ("zoo.safe_pickle", "load"),
}
_ORIGINS = {name: (module, name) for module, names in _MODULES.items() for name in names} | _RENAMED

EXT_API_VERSION: tuple[int, int] = (1, 1)
"""The version of this surface, `(major, minor)`: see the version policy above."""


def declared_spec(plugin: str, model: str) -> ModelSpec | None:
    """The spec that plugin `plugin` declares under the name `model`, or None (no such plugin loaded, or no such
    model in it). Scheme names (`hub:`, `hf:`) are not declared models: they are never found here.

    Args:
        plugin: a plugin name, as `zoo plugins` shows it (`USER_PLUGIN` for `@zoo.register` models).
        model: a model name, as the plugin declares it.
    """
    from zoo.registry import get_registry

    found = get_registry().plugins.get(plugin)
    return found.specs.get(model) if found is not None else None


def __getattr__(name: str) -> Any:
    origin = _ORIGINS.get(name)
    if origin is None:
        raise AttributeError(f"module 'zoo.ext' has no attribute {name!r}")
    value = getattr(importlib.import_module(origin[0]), origin[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
