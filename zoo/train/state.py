"""Training state on disk: `last.pt` to resume from (model, optimizer, scheduler, epoch, history), and the
best model as a self-describing `best.safetensors` written by `Model.save`.

`last.pt` holds only tensors and plain values, is written atomically, and is read back with
`torch.load(weights_only=True)`: no pickled code runs on resume.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo._atomic import atomic_path
from zoo.errors import InputError

if TYPE_CHECKING:
    from zoo.model import Model, ModelInfo

__all__ = ["BEST_NAME", "STATE_NAME", "check_labels", "read_state", "save_model", "write_state"]

STATE_NAME = "last.pt"
BEST_NAME = "best.safetensors"
FORMAT = 1


def write_state(path: Path, state: Mapping[str, Any]) -> None:
    """Write `state` to `path` atomically (a temporary file renamed into place)."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **state}, tmp)


def read_state(path: Path) -> dict[str, Any]:
    """Read a `last.pt` (or the one inside a run folder) with `weights_only=True`.

    Raises:
        InputError: missing, unreadable, or not a zoo training state.
    """
    import pickle

    import torch

    path = Path(path).expanduser()
    if path.is_dir():
        path = path / STATE_NAME
    if not path.is_file():
        raise InputError(
            f"Cannot resume: {path} does not exist. Pass the {STATE_NAME} of an earlier run (or its --out)."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        raise InputError(
            f"Cannot resume from {path}: it is not a readable training state ({type(exc).__name__})."
        ) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT or "model" not in state:
        raise InputError(f"Cannot resume from {path}: it is not a zoo training state ({STATE_NAME}).")
    return state


def check_labels(state: Mapping[str, Any], labels: Sequence[str], source: str) -> None:
    """Refuse to resume a run whose label set differs from the data's."""
    saved = tuple(state.get("labels", ()))
    if saved != tuple(labels):
        extra, missing = sorted(set(labels) - set(saved)), sorted(set(saved) - set(labels))
        detail = f"new {extra[:5]}, missing {missing[:5]}" if extra or missing else "same names in another order"
        raise InputError(
            f"Cannot resume from {source}: its {len(saved)} labels differ from the data's {len(labels)} ({detail}). "
            f"Resume with the same data, or start a new run without resume."
        )


def save_model(model: Model, path: Path, *, info: ModelInfo | None = None) -> Path:
    """Save `model` as a self-describing safetensors checkpoint (`Model.save`); returns the path.

    With `info`, the checkpoint records it instead of `model.info` (a best epoch's summary, mid-run).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if info is None:
        model.save(path)
    else:
        from zoo.checkpoint import save_checkpoint

        save_checkpoint(path, spec=model.spec, info=info, state_dict=model.module.state_dict())
    return path
