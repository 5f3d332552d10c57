"""zoo: PyTorch models from every source behind one `load / predict / finetune` API.

```python
import zoo
zoo.load("resnet18").predict("cat.jpg")
```

Importing zoo never imports torch; models import it when they are built.
"""

from zoo._version import __version__
from zoo.api import capabilities, fetch, info, list_models, load, plugins, register
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
from zoo.model import Model, ModelInfo
from zoo.plugin import Plugin
from zoo.registry import PluginInfo
from zoo.results import Classification, Detections, ImageOutput, ResultList, SkippedInput
from zoo.specs import Artifact, ImagePreprocess, ModelSpec, Weights
from zoo.streaming import ResultStream
from zoo.tasks.base import Task, TaskCapabilities

__all__ = [
    "Artifact",
    "ChecksumError",
    "Classification",
    "Detections",
    "DiskFullError",
    "DownloadError",
    "ImageOutput",
    "ImagePreprocess",
    "InputError",
    "Model",
    "ModelInfo",
    "ModelSpec",
    "OfflineError",
    "Plugin",
    "PluginError",
    "PluginInfo",
    "RandomWeightsWarning",
    "ResultList",
    "ResultStream",
    "SkippedInput",
    "SkippedInputsWarning",
    "Task",
    "TaskCapabilities",
    "UnknownModelError",
    "UnsupportedError",
    "UntrustedCodeError",
    "Weights",
    "ZooError",
    "ZooWarning",
    "__version__",
    "capabilities",
    "fetch",
    "info",
    "list_models",
    "load",
    "plugins",
    "register",
]
