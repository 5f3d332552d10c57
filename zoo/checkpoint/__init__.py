"""Checkpoints: safetensors in and out with zoo metadata; pickles read without running pickled code.

- `weights`: catalog weights converted once to safetensors in the cache, and fast meta-device loads.
- `reader`: the state_dict of any checkpoint file (`weights_only=True`, else `zoo.safe_pickle`).
- `metadata`: the zoo fields of a checkpoint, as safetensors header metadata and `config.json`.
- `files`: the writer of self-describing checkpoints (`Model.save`) and `read_info`, what one records.
- `convert`: `zoo convert IN OUT.safetensors`.
"""

from zoo.checkpoint.convert import Conversion, convert
from zoo.checkpoint.files import read_info, save_checkpoint
from zoo.checkpoint.metadata import CheckpointInfo
from zoo.checkpoint.reader import find_state_dict, read_state_dict, read_tensors
from zoo.checkpoint.weights import (
    build_module,
    convert_pickle,
    load_state_dict_into,
    safetensors_name,
    untie,
    weights_entry,
)

__all__ = [
    "CheckpointInfo",
    "Conversion",
    "build_module",
    "convert",
    "convert_pickle",
    "find_state_dict",
    "load_state_dict_into",
    "read_info",
    "read_state_dict",
    "read_tensors",
    "safetensors_name",
    "save_checkpoint",
    "untie",
    "weights_entry",
]
