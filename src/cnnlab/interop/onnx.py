"""Export a cnnlab model to ONNX, the exchange format that onnxruntime, TensorRT and others run.

The path is cnnlab -> PyTorch (``to_torch``, weights copied exactly) -> ``torch.onnx.export``
in eval mode, so BatchNorm uses its running statistics and Dropout is the identity. The
batch axis is dynamic: one file serves any batch size.

torch 2.13 offers two exporters. The default one (``dynamo=True``, built on
``torch.export``) needs the ``onnxscript`` package; without it we fall back to the older
TorchScript exporter (``dynamo=False``), which PyTorch has deprecated but still ships.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import secrets
import warnings
from pathlib import Path

import numpy as np

from cnnlab.errors import CnnlabError, arg_error
from cnnlab.interop.torch import to_torch
from cnnlab.interop.torch_modules import import_torch
from cnnlab.layers.base import Layer
from cnnlab.layers.registry import import_all_layers

INPUT_NAME = "input"
OUTPUT_NAME = "output"


def onnx_table() -> dict[str, list[type[Layer]]]:
    """ONNX operator -> the cnnlab layer types that declare it (``TorchSpec.onnx_ops``).

    The layer table read from the ONNX side, for importing a graph: which layers an
    operator may become. Operators no layer declares are absent.

    Example:
        >>> [cls.__name__ for cls in onnx_table()["Conv"]][:1]
        ['Conv2D']
    """
    table: dict[str, list[type[Layer]]] = {}
    for cls in import_all_layers().values():
        for op in cls.torch.onnx_ops if cls.torch is not None else ():
            table.setdefault(op, []).append(cls)
    return table


def to_onnx(
    model: Layer,
    path: str | os.PathLike[str],
    input_shape: tuple[int, ...],
    opset_version: int | None = None,
    dynamo: bool | None = None,
) -> Path:
    """Write ``model`` (in eval mode) as an ONNX file with a dynamic batch axis.

    Args:
        model: a cnnlab model (float32 is what most ONNX runtimes expect).
        path: the ``.onnx`` file to write (its folder is created).
        input_shape: one example's shape without the batch axis, e.g. ``(1, 28, 28)``.
        opset_version: the ONNX opset; None lets torch choose.
        dynamo: True for torch's ``torch.export``-based exporter (needs ``onnxscript``),
            False for the older TorchScript one (about 10x faster, deprecated by PyTorch);
            None: the first when ``onnxscript`` is installed.

    Returns:
        The path written. The graph has one input ``"input"`` of shape
        ``("batch", *input_shape)`` and one output ``"output"``.

    Raises:
        CnnlabError: torch or onnx is not installed, or the export failed.

    Example:
        >>> import pytest; _ = pytest.importorskip("onnxruntime")
        >>> import numpy as np, onnxruntime, tempfile, os
        >>> from cnnlab.interop.onnx import to_onnx
        >>> from cnnlab.models import small
        >>> model = small(input_size=8, rng=0)
        >>> out = os.path.join(tempfile.mkdtemp(), "small.onnx")
        >>> path = to_onnx(model, out, (1, 8, 8), dynamo=False)  # the fast exporter, for the doctest
        >>> session = onnxruntime.InferenceSession(str(path))
        >>> x = np.ones((3, 1, 8, 8), dtype=np.float32)
        >>> bool(np.allclose(session.run(None, {"input": x})[0], model.predict(x), atol=1e-5))
        True
    """
    torch = import_torch()
    if importlib.util.find_spec("onnx") is None:
        raise CnnlabError(
            "ONNX export needs the onnx package: pip install 'cnnlab[onnx]' (or pip install onnx)"
        )
    inputs = getattr(model, "num_inputs", 1)  # a Graph's; None: any number (Concat, Add)
    if inputs not in (1, None):
        raise ValueError(
            "to_onnx: the model must take one input (input_shape describes one). "
            f"Received: {model.name} with {inputs} inputs"
        )
    shape = tuple(input_shape)
    if not shape or not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape):
        raise arg_error(
            "to_onnx",
            "input_shape",
            "one example's shape without the batch axis, e.g. (1, 28, 28)",
            input_shape,
        )
    model.output_shape((2, *shape))  # the clear ShapeError before torch's long trace
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = to_torch(model).eval()
    # The input's dtype: the model's float dtype, or what its first layer reads instead
    # (an Embedding reads int64 token ids; zeros are valid ids).
    wanted = model.input_dtype() or np.dtype(model.dtype)
    dtype = getattr(torch, np.dtype(wanted).name)
    example = (torch.zeros((2, *shape), dtype=dtype),)  # batch 2: torch.export fixes size-1 axes
    if dynamo is None:
        dynamo = importlib.util.find_spec("onnxscript") is not None
    elif dynamo and importlib.util.find_spec("onnxscript") is None:
        raise CnnlabError(
            "to_onnx(dynamo=True) needs onnxscript: pip install 'cnnlab[onnx]' (or pip install onnxscript)"
        )
    names = {"input_names": [INPUT_NAME], "output_names": [OUTPUT_NAME], "opset_version": opset_version}
    # torch prints progress and deprecation notes; a failure raises with the whole story instead.
    quiet = logging.getLogger("torch.onnx")  # e.g. "torchvision is not installed. Skipping ..."
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    # Exported beside the target and renamed over it, so a failed export (a full disk, an
    # unsupported op) never leaves a half-written model.onnx in place of a good one.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            if dynamo:
                torch.onnx.export(
                    module,
                    example,
                    str(tmp),
                    dynamo=True,
                    external_data=False,
                    dynamic_shapes=({0: torch.export.Dim("batch")},),
                    verbose=False,
                    **names,
                )
            else:
                torch.onnx.export(
                    module,
                    example,
                    str(tmp),
                    dynamo=False,
                    dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                    **names,
                )
            os.replace(tmp, path)
        except OSError as exc:
            raise CnnlabError(f"to_onnx: cannot write {path}: {exc.strerror or exc}") from exc
        except Exception as exc:
            raise CnnlabError(f"to_onnx: torch.onnx.export failed: {type(exc).__name__}: {exc}") from exc
        finally:
            quiet.setLevel(level)
            tmp.unlink(missing_ok=True)
    return path
