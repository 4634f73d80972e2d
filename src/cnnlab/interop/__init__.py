"""Interop: move cnnlab models to PyTorch and ONNX and back.

torch, onnx and onnxruntime are optional; they are imported only when a function needs them
(``pip install 'cnnlab[torch]'``, ``pip install 'cnnlab[onnx]'``).
"""

from cnnlab.interop.onnx import to_onnx
from cnnlab.interop.onnx_import import from_onnx
from cnnlab.interop.torch import from_torch, to_torch

__all__ = ["from_onnx", "from_torch", "to_onnx", "to_torch"]
