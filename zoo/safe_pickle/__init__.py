"""A restricted unpickler that reads `torch.save` checkpoints without running any pickled code.

Only an allowlist of harmless callables is ever called: zoo's own re-implementations of torch's tensor
rebuild functions (which accept nothing but the storages this reader made from the file), containers
(`OrderedDict`, `set`, ...), dtypes and `torch.Size`. Every other global a pickle names, a class such
as `models.yolo.DetectionModel` or a function such as `os.system`, becomes an inert `Stub` that only
records what the pickle says about it. Both the zip format of `torch.save` and the legacy (pre-1.6)
format are read; TorchScript and tar archives are refused.

Example:
    ```python
    from zoo import safe_pickle

    ckpt = safe_pickle.load("yolov5n.pt")          # {'model': <Stub models.yolo.Model>, 'epoch': -1, ...}
    state = safe_pickle.module_state_dict(ckpt["model"])
    yaml = ckpt["model"].state["yaml"]
    ```
"""

from zoo.safe_pickle.modules import module_state_dict
from zoo.safe_pickle.reader import LEGACY_MAGIC, LEGACY_PROTOCOL, load, sniff
from zoo.safe_pickle.stub import Stub

__all__ = ["LEGACY_MAGIC", "LEGACY_PROTOCOL", "Stub", "load", "module_state_dict", "sniff"]
