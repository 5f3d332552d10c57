"""Device selection: "auto" means cuda > mps > cpu; `ZOO_DEVICE` and explicit strings win."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoo import settings
from zoo.errors import UnsupportedError

if TYPE_CHECKING:
    import torch

__all__ = ["place_module", "resolve_device"]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn a device request into a `torch.device` that exists on this machine.

    Args:
        device: "auto" (or None) for the best available device (`ZOO_DEVICE` first), or any string
            `torch.device` accepts ("cpu", "cuda", "cuda:1", "mps").

    Raises:
        UnsupportedError: the device is not available here.
    """
    import torch

    if device is None or (isinstance(device, str) and device == "auto"):
        device = settings.device() or "auto"
    if isinstance(device, str) and device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise UnsupportedError(f"{device!r} is not a device: use auto, cpu, cuda, cuda:N or mps.") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UnsupportedError(f"Device {str(dev)!r} asked for, but CUDA is not available here: use --device cpu.")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UnsupportedError(
                f"Device {str(dev)!r} asked for, but only {torch.cuda.device_count()} CUDA device(s) exist."
            )
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise UnsupportedError("Device 'mps' asked for, but MPS is not available here: use --device cpu.")
    return dev


def place_module(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Put a freshly loaded module in eval mode on `device` (channels_last on CUDA); returns it."""
    import torch

    module.eval()
    module.to(device)
    if device.type == "cuda":
        module.to(memory_format=torch.channels_last)
    return module
