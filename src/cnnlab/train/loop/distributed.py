"""Multi-process training with ``torchrun``: who am I, and which part of the batch is mine.

``torchrun --nproc-per-node N -m cnnlab train --backend torch ...`` starts N copies of the
same command and tells each one its place through environment variables: ``RANK`` (0 to
N-1 over all machines), ``WORLD_SIZE`` (N in all) and ``LOCAL_RANK`` (the GPU to use on
this machine). Every process builds the same model from the same seed and draws the same
shuffled, augmented global batch from the same seeded generators; each one then trains on
its own shard of that batch, and PyTorch's ``DistributedDataParallel`` averages the
gradients so every process takes the same optimizer step. This is a distributed sampler
that keeps the NumPy engine's batches exactly: N processes with ``--batch-size B`` do the
same steps as one process with ``--batch-size B`` (up to floating-point rounding).

Only rank 0 writes the run folder, runs the callbacks and shows progress. Nothing here
imports torch at module level, so ``is_main_process()`` is free to call anywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlab.errors import CnnlabError


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a ``torchrun`` job (``world_size == 1``: a plain single run)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> DistInfo:
        """Read ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` as torchrun sets them."""
        try:
            return cls(
                rank=int(os.environ.get("RANK", "0")),
                world_size=int(os.environ.get("WORLD_SIZE", "1")),
                local_rank=int(os.environ.get("LOCAL_RANK", "0")),
            )
        except ValueError as exc:
            raise CnnlabError(
                f"torchrun environment: RANK/WORLD_SIZE/LOCAL_RANK must be ints ({exc})"
            ) from None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def is_main_process(backend: str = "torch") -> bool:
    """Whether this process writes the run folder, runs the callbacks and shows progress: the
    one process of a ``backend`` other than "torch"; with "torch", every process unless it is a
    torchrun worker with ``RANK`` > 0 (rank 0 is the main one).

    Example:
        >>> is_main_process(), is_main_process("numpy")
        (True, True)
    """
    return backend != "torch" or DistInfo.from_env().is_main


def shard(n: int, rank: int, world_size: int) -> slice:
    """The rows of a global batch of ``n`` examples that ``rank`` trains on.

    Shards are contiguous and differ in size by at most one (``np.array_split``'s rule), so a
    last, smaller batch is split too; a shard may be empty when ``n < world_size``.

    Example:
        >>> [shard(10, r, 4) for r in range(4)]
        [slice(0, 3, None), slice(3, 6, None), slice(6, 8, None), slice(8, 10, None)]
    """
    bounds = np.cumsum([0] + [len(part) for part in np.array_split(np.arange(n), world_size)])
    return slice(int(bounds[rank]), int(bounds[rank + 1]))


def check_batch_size(batch_size: int, info: DistInfo) -> int:
    """The per-process batch size ``batch_size / world_size``; an error if it does not divide."""
    if batch_size % info.world_size:
        raise CnnlabError(
            f"torchrun: --batch-size is the global batch, split across {info.world_size} processes, "
            f"so it must be divisible by {info.world_size}. Received: batch_size={batch_size}"
        )
    return batch_size // info.world_size


def init_process_group(info: DistInfo, device_type: str) -> Any:
    """Join the torchrun job: gloo on CPU, nccl on CUDA (torchrun's env:// rendezvous)."""
    import torch.distributed as dist

    if not dist.is_available():
        raise CnnlabError("torchrun: this PyTorch build has no torch.distributed")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return dist
