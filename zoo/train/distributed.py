"""Data-parallel training under `torchrun`: process group setup, samplers, reductions, rank-0 duties.

`torchrun --nproc_per_node N` sets `RANK`, `LOCAL_RANK` and `WORLD_SIZE`; with `WORLD_SIZE > 1`,
`finetune` joins the process group (nccl on CUDA, gloo on CPU), wraps the module in
`DistributedDataParallel`, shards the data, reduces the metrics, and leaves logging and checkpoints to
rank 0. Without those variables nothing here does anything.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["DistInfo", "ShardSampler", "all_reduce_sums", "dist_info", "rank_zero_first", "session"]


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job.

    Attributes:
        rank: global rank (0 for a single process).
        world_size: number of processes.
        local_rank: rank on this machine (the CUDA device index).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """True with more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, which logs and writes checkpoints."""
        return self.rank == 0


def dist_info() -> DistInfo:
    """The job layout from torchrun's environment variables (a single process without them)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    return DistInfo(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


@contextlib.contextmanager
def session(device: torch.device) -> Iterator[tuple[DistInfo, torch.device]]:
    """Join the process group when launched by torchrun; yields `(info, this rank's device)`.

    A group this function created is destroyed on exit; one that already existed is left alone.
    """
    import torch
    import torch.distributed as dist

    info = dist_info()
    if not info.enabled:
        yield info, device
        return
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    created = not dist.is_initialized()
    if created:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield DistInfo(dist.get_rank(), dist.get_world_size(), info.local_rank), device
    finally:
        if created and dist.is_initialized():
            dist.destroy_process_group()


@contextlib.contextmanager
def rank_zero_first() -> Iterator[None]:
    """Run the body on rank 0 first (downloads, conversions), then on the other ranks."""
    import torch.distributed as dist

    active = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    if active and dist.get_rank() != 0:
        dist.barrier()
    try:
        yield
    finally:
        if active and dist.get_rank() == 0:
            dist.barrier()


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op for one process)."""
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()


def all_reduce_sums(values: Sequence[float], info: DistInfo, device: torch.device) -> list[float]:
    """Element-wise sums of `values` over every rank (float64)."""
    if not info.enabled:
        return [float(v) for v in values]
    import torch
    import torch.distributed as dist

    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def broadcast_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's buffers (BatchNorm statistics) to every rank, so all ranks hold the same model."""
    if not info.enabled:
        return
    import torch.distributed as dist

    for buffer in module.buffers():
        dist.broadcast(buffer, src=0)


def wrap(module: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    """`DistributedDataParallel(module)` when distributed, else the module itself."""
    if not info.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


class ShardSampler:
    """Every `world_size`-th index from `rank`, in order, without padding: exact evaluation metrics."""

    def __init__(self, length: int, info: DistInfo) -> None:
        self.indices = list(range(info.rank, length, info.world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
