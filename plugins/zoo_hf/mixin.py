"""`PyTorchModelHubMixin` repos (config.json + model.safetensors): the class comes from the caller, the arguments
from config.json, the weights through the zoo store.

```python
zoo.load("hf:org/my-net", model_class=MyNet)              # a class
zoo.load("hf:org/my-net", model_class="my_pkg.nets:MyNet")  # or its import path, written by the caller
```

`model_class` is a `caller_only` argument: a config.json or checkpoint that names one is refused before anything
is imported (`zoo.arguments`), and `Model.save` does not record it.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from zoo import InputError, UnsupportedError

if TYPE_CHECKING:
    import torch

__all__ = ["build_mixin", "mixin_kwargs"]


def build_mixin(model_class: type | str | None = None, **config: Any) -> torch.nn.Module:
    """`model_class` built with the arguments of its config.json, as `PyTorchModelHubMixin.from_pretrained` does.

    Args:
        model_class: the `torch.nn.Module` subclass, or its import path `package.module:Class`; only ever
            the caller's keyword, never a file's.
        **config: the repo's config.json.

    Raises:
        UnsupportedError: no class given.
        InputError: the import path does not name an `nn.Module` subclass.
    """
    if model_class is None:
        raise UnsupportedError(
            "This Hub repo holds a PyTorchModelHubMixin model (config.json + model.safetensors without zoo metadata): "
            "pass its class, zoo.load('hf:org/repo', model_class=MyNet)."
        )
    cls = _import(model_class) if isinstance(model_class, str) else model_class
    return cls(**mixin_kwargs(cls, config))


def mixin_kwargs(cls: type, config: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments `cls.__init__` takes from `config` (all of it under `**kwargs`, or as `config=`)."""
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(config)
    kwargs = {k: v for k, v in config.items() if k in params}
    if "config" in params and "config" not in config:
        kwargs["config"] = dict(config)
    return kwargs


def _import(path: str) -> type:
    import torch

    module_name, _, attr = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, ValueError) as exc:
        raise InputError(f"model_class={path!r} cannot be imported ({exc}): use 'package.module:Class'.") from exc
    if not (isinstance(obj, type) and issubclass(obj, torch.nn.Module)):
        raise InputError(f"model_class={path!r} is not a torch.nn.Module subclass.")
    return obj
