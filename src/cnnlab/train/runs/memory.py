"""Will training fit in memory? An estimate made before a single weight is allocated.

``cnnlab train --model vgg --depth 99`` asks for blocks of ``32 * 2**98`` channels: building
it would take more memory than any machine has, and the kernel would kill the process
without a word. So ``train`` first builds the model *dry* (``cnnlab.init.dry_build``: the
initializers count the values asked for and hand out zero views), which costs nothing, and
refuses with the estimate when the run cannot fit:

    parameters   x 12  weights, gradients, Adam's two moment buffers, the checkpoint's copies
                       of weights and moments, and the temporaries of an update and a save
    activations  x 3   every layer's output for one batch, kept for backward, its gradient,
                       and the layer caches (masks, normalized values)
    + the im2col workspace budget (``cnnlab.functional.conv``)

all float32. The factors are measured: training ``vgg`` depth 6 and 7 (8x8 inputs, Adam,
checkpoints on) peaked at 12.4x and 12.2x the bytes of its weights; ``vgg`` depth 2 width 64
at batch 256 on 28x28 inputs (activations dominate) at about 1.0x the activation term. The
estimate is compared with the memory available now (``MemAvailable``, and the container's
cgroup limit). Like ``cnnlab.load`` (``cnnlab.io.MAX_PARAMETERS``), it also
refuses models above that many parameters: a model ``load`` refuses is not worth training.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.functional import conv as conv_kernels
from cnnlab.init import TooManyParameters, dry_build
from cnnlab.io import MAX_PARAMETERS
from cnnlab.layers.base import Layer
from cnnlab.layers.graph import Graph
from cnnlab.layers.sequential import Sequential

BYTES = 4  # float32
PARAMETER_COPIES = 12  # weights, grads, Adam's m and v, checkpoint copies, temporaries
ACTIVATION_COPIES = 3  # outputs kept for backward, their gradients, layer caches


def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.1f} MiB"


@dataclass
class MemoryEstimate:
    """What one training step of a model needs, in values and bytes."""

    parameters: int
    activations: int  # values of every layer's output for one batch
    workspace: int  # bytes

    @property
    def bytes(self) -> int:
        params = self.parameters * BYTES * PARAMETER_COPIES
        return params + self.activations * BYTES * ACTIVATION_COPIES + self.workspace

    def __str__(self) -> str:
        params = _gib(self.parameters * BYTES * PARAMETER_COPIES)
        activations = _gib(self.activations * BYTES * ACTIVATION_COPIES)
        return (
            f"{_gib(self.bytes)} ({self.parameters:,} parameters x{PARAMETER_COPIES} for weights, "
            f"gradients, optimizer state and checkpoint copies = {params}; {self.activations:,} "
            f"activation values for the batch x{ACTIVATION_COPIES} = {activations}; conv "
            f"workspace {_gib(self.workspace)})"
        )


def activation_values(layer: Layer, shape: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
    """Values of every layer output for an input of ``shape``, and the final output shape."""
    if isinstance(layer, Sequential):
        total = 0
        for child in layer.layers:
            count, shape = activation_values(child, shape)
            total += count
        return total, shape
    if isinstance(layer, Graph):  # each node on the shapes of the tensors it reads
        shapes = layer.shapes(shape)
        total = 0
        for node in layer.nodes.values():
            ins = [shapes[n] for n in node.inputs]
            total += (
                activation_values(node.layer, ins[0])[0] if len(ins) == 1 else math.prod(shapes[node.name])
            )
        return total, shapes[layer.output_name]  # type: ignore[index]  # shapes() checked the output
    out = layer.output_shape(shape)
    inner = sum(activation_values(child, shape)[0] for child in layer.children().values())  # Residual
    return inner + math.prod(out), out


def estimate(model: Layer, input_shape: tuple[int, int, int], batch_size: int) -> MemoryEstimate:
    """The estimate for ``model`` (built for real or dry) on batches of ``input_shape`` (C, H, W)."""
    parameters = sum(p.value.size for p in model.parameters())
    activations, _ = activation_values(model, (batch_size, *input_shape))
    return MemoryEstimate(parameters, activations, conv_kernels.WORKSPACE_BUDGET_BYTES)


def available_bytes() -> int | None:
    """Memory this process can still get: ``MemAvailable``, capped by a cgroup limit; None if unknown."""
    limits = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                limits.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        try:
            limits.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (OSError, ValueError, AttributeError):
            pass
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            limit = Path(limit_file).read_text().strip()
            if limit != "max" and int(limit) < 2**60:
                limits.append(int(limit) - int(Path(usage_file).read_text()))
                break
        except (OSError, ValueError):
            continue
    return min(limits) if limits else None


def check_fits(
    build: Callable[[], Layer],
    input_shape: tuple[int, int, int],
    batch_size: int,
    what: str,
    available: int | None = None,
    max_parameters: int = MAX_PARAMETERS,
    compare_memory: bool = True,
) -> MemoryEstimate:
    """Build ``build()`` dry and refuse, before allocating, a run that cannot fit.

    Args:
        build: makes the model (called inside ``dry_build``: no weights are drawn).
        input_shape: one example's (C, H, W).
        batch_size: examples per training step.
        what: the model as the user named it, for the message (e.g. "vgg(depth=99)").
        available: bytes of memory to compare with (default: ``available_bytes()``).
        max_parameters: refuse above this many parameters (``cnnlab.load``'s limit).
        compare_memory: compare the estimate with ``available`` (False: the parameter limit only).

    Raises:
        CnnlabError: too many parameters, or an estimate above the memory available.
    """
    if compare_memory and available is None:
        available = available_bytes()
    try:
        with dry_build(max_parameters):
            model = build()
    except TooManyParameters as exc:
        need = exc.count * BYTES * PARAMETER_COPIES
        raise CnnlabError(
            f"train: {what} needs at least {exc.count:,} parameters (about {_gib(need)} to train), "
            f"more than the {max_parameters:,} that "
            "cnnlab.load accepts; refused before allocating anything. Use a smaller model "
            "(e.g. a lower --depth or --width)"
        ) from None
    result = estimate(model, input_shape, batch_size)
    if compare_memory and available is not None and result.bytes > available:
        raise CnnlabError(
            f"train: {what} with batch size {batch_size} needs an estimated {result}, but only "
            f"{_gib(available)} of memory is available; refused before allocating anything. Use a "
            "smaller model (e.g. a lower --depth or --width) or a smaller --batch-size"
        )
    return result
