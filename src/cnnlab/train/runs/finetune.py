"""Fine-tune what you import: the transfer-learning part of ``cnnlab train``.

``cnnlab train --model MODEL --data FOLDER [--new-head] [--freeze UPTO]`` starts from a
trained network instead of a fresh one (docs/transfer-learning.md):

- ``MODEL`` is a saved model file (``.npz``/``.safetensors``), a run folder (its
  ``model.npz``) or an ``.onnx`` file (read with ``cnnlab.interop.from_onnx``);
- the input's channels and size come from the model (the ``input_shape`` saved with it, or
  the ONNX file's input): an image folder is read at that size and in those channels, other
  data must already fit (the error gives both shapes);
- normalization: a cnnlab model's own (the per-channel mean/std it was trained with), so
  the features see inputs as they did; an ONNX file has none, so the new data's statistics;
- ``--new-head`` replaces the classifier (``cnnlab.models.head``: the last Dense, or 1x1
  Conv2D, before the output) with a fresh one for the data's classes, seeded by ``--seed``;
  without it, the model's outputs must already be one per class of the data;
- ``--freeze UPTO`` freezes the layers up to and including ``UPTO``: an index of a
  ``Sequential`` (``--freeze 5``: layers 0-5), a node of a ``Graph`` (the node and every
  node it reads from, directly or not), or ``all-but-head``. Frozen layers keep their
  weights, stay in eval mode (BatchNorm uses its running statistics) and are skipped by the
  backward pass (``cnnlab.layers.freeze``). The config keeps both options, so ``--resume``
  rebuilds the same model from the same file.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.errors import CnnlabError, ShapeError
from cnnlab.interop.onnx_import import import_onnx
from cnnlab.layers.base import Layer
from cnnlab.layers.graph import Graph
from cnnlab.layers.sequential import Sequential
from cnnlab.models.head import find_head, replace_head
from cnnlab.models.zoo import MODELS
from cnnlab.train.runs.trained_model import load_model

#: The model files ``--model`` fine-tunes (a run folder stands for its model.npz).
PRETRAINED_SUFFIXES = (".npz", ".safetensors", ".onnx")
#: ``--freeze all-but-head``: everything but the classifier trains no more.
ALL_BUT_HEAD = "all-but-head"


def is_pretrained(model: str) -> bool:
    """Whether ``--model`` names a trained model (file or run folder) rather than an architecture."""
    if model in MODELS:  # a zoo name, even where a folder of that name exists
        return False
    return os.path.splitext(model)[1].lower() in PRETRAINED_SUFFIXES or Path(model).is_dir()


@dataclass
class Pretrained:
    """A trained model to start from, with what its file says about its input.

    Attributes:
        model: the network (not modified: ``start_model`` works on a copy).
        input_shape: ``(C, H, W)`` of one input, or None where the file does not say.
        normalization: the ``Normalizer`` state it was trained with, or None (ONNX).
        source: the path given, for messages.
    """

    model: Layer
    input_shape: tuple[int, int, int] | None
    normalization: dict[str, Any] | None
    source: str


def load_pretrained(path: str) -> Pretrained:
    """Read ``--model``'s file or run folder (see the module doc).

    Raises:
        FileNotFoundError: nothing there. CnnlabError: an ONNX file cnnlab cannot read (the
            importer's message lists what it lacks), or onnx not installed.
    """
    if Path(path).suffix.lower() == ".onnx":
        if not Path(path).is_file():
            raise FileNotFoundError(f"train: --model {path}: no such ONNX file")
        imported = import_onnx(path)
        return Pretrained(imported.model, _chw(imported.input_shape), None, path)
    model, extra = load_model(path)
    return Pretrained(model, _chw(extra.get("input_shape")), extra.get("normalization"), path)


def _chw(shape: Any) -> tuple[int, int, int] | None:
    """``(C, H, W)`` from a saved or declared input shape; None where it is not three sizes."""
    if isinstance(shape, (list, tuple)) and len(shape) == 3 and all(isinstance(d, int) for d in shape):
        return (shape[0], shape[1], shape[2])
    return None


def check_input_shape(pre: Pretrained, image_shape: tuple[int, int, int], data: str) -> None:
    """Refuse data whose images the model cannot read, naming both shapes.

    Raises:
        CnnlabError: the model's saved input shape differs from the images', or (without
            one) the model's layers refuse the images' shape.
    """
    got = "x".join(map(str, image_shape))
    if pre.input_shape is not None and tuple(pre.input_shape) != tuple(image_shape):
        want = "x".join(map(str, pre.input_shape))
        raise CnnlabError(
            f"train: the model {pre.source} takes images of {want} (channels x height x width), but "
            f"the dataset {data} has {got}. An image folder is read at the model's size and "
            "channels; a named dataset cannot be: use a folder of images, or a model made for it"
        )
    try:
        pre.model.output_shape((1, *image_shape))
    except ShapeError as exc:
        raise CnnlabError(
            f"train: the model {pre.source} cannot read the dataset {data}'s images of {got} "
            f"(channels x height x width): {exc}"
        ) from None


def start_model(
    pre: Pretrained, num_classes: int, new_head: bool, freeze: str | None, rng: np.random.Generator
) -> tuple[Layer, list[str]]:
    """A copy of ``pre.model`` ready to fine-tune, and one line per change made.

    The copy gets a new head for ``num_classes`` (``new_head``, drawn from ``rng``) and the
    freeze of ``freeze`` (``freeze_upto``); ``pre.model`` is left as it was.

    Raises:
        CnnlabError: without ``new_head``, outputs that are not one per class (both counts
            named); a bad ``freeze`` (the valid choices named); a freeze that leaves nothing
            to train.
    """
    model = copy.deepcopy(pre.model).train()
    notes = []
    if new_head:
        notes.append(replace_head(model, num_classes, rng))
    else:
        outputs = _outputs(model, pre)
        if outputs != num_classes:
            raise CnnlabError(
                f"train: the model {pre.source} has {outputs} outputs per image, but the data has "
                f"{num_classes} classes. Give --new-head to replace its classifier "
                f"({find_head(model).path}) with one for {num_classes} classes. Nothing was written"
            )
    if freeze is not None:
        notes.append(freeze_upto(model, freeze))
    return model, notes


def _outputs(model: Layer, pre: Pretrained) -> int | str:
    if pre.input_shape is None:
        return "an unknown number of"
    out = model.output_shape((1, *pre.input_shape))  # (1, K) for a classifier
    return out[1] if len(out) == 2 else f"{out[1:]} (not a classifier's (K,))"


def freeze_upto(model: Layer, upto: str) -> str:
    """Freeze ``model`` up to and including ``upto`` (see the module doc); returns a summary.

    Raises:
        CnnlabError: ``upto`` is not a valid index/node name (the choices are listed), or
            the freeze would leave no parameter to train.

    Example:
        >>> from cnnlab.models.zoo import small
        >>> m = small(rng=0)
        >>> freeze_upto(m, "5")
        'froze layers 0-5 (18,816 of 421,642 parameters); training the rest'
        >>> freeze_upto(small(rng=0), "conv9")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        cnnlab.errors.CnnlabError: train: --freeze must be a layer index 0-9 of this Sequential ...
        ... or all-but-head. Received: --freeze conv9
    """
    total = _count(model)
    if upto == ALL_BUT_HEAD:
        head = find_head(model)
        model.freeze()
        head.layer.freeze(False).train(True)
        what = f"every layer but the head {head.path}"
    elif isinstance(model, Sequential):
        index = _index(model, upto)
        for layer in model.layers[: index + 1]:
            layer.freeze()
        what = f"layers 0-{index}"
    elif isinstance(model, Graph):
        names = _ancestors(model, _node(model, upto))
        for name in names:
            model.nodes[name].layer.freeze()
        what = f"node {upto} and the {len(names) - 1} nodes before it"
    else:
        raise CnnlabError(f"train: --freeze needs a Sequential or Graph model. Received: {model.name}")
    trained = sum(p.value.size for p in model.parameters())
    if trained == 0:
        raise CnnlabError(
            f"train: --freeze {upto} freezes every layer with parameters: nothing would train. "
            f"Freeze less (e.g. --freeze {ALL_BUT_HEAD})"
        )
    return f"froze {what} ({total - trained:,} of {total:,} parameters); training the rest"


def _count(model: Layer) -> int:
    return sum(v.size for _, layer in model.named_layers() for v in layer.params.values())


def _index(model: Sequential, upto: str) -> int:
    text = str(upto).strip()
    if text.lstrip("-").isdigit() and 0 <= int(text) < len(model.layers):
        return int(text)
    choices = ", ".join(f"{i}: {layer!r}".replace("\n", " ") for i, layer in enumerate(model.layers))
    raise CnnlabError(
        f"train: --freeze must be a layer index 0-{len(model.layers) - 1} of this Sequential "
        f"({choices}) or {ALL_BUT_HEAD}. Received: --freeze {upto}"
    )


def _node(model: Graph, upto: str) -> str:
    if upto in model.nodes:
        return upto
    raise CnnlabError(
        f"train: --freeze must be a node of this Graph ({', '.join(model.nodes)}) or {ALL_BUT_HEAD}. "
        f"Received: --freeze {upto}"
    )


def _ancestors(model: Graph, name: str) -> list[str]:
    """``name`` and every node it reads from, directly or through others, in run order."""
    wanted = {name}
    for node in reversed(model.nodes.values()):
        if node.name in wanted:
            wanted.update(node.inputs)
    return [n for n in model.nodes if n in wanted]
