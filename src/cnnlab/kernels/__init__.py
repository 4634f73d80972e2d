"""The compiled kernel tier: optional numba kernels beside the readable NumPy engine.

``pip install 'cnnlab[fast]'`` installs numba; cnnlab can then run the 3x3-type
convolutions (any kernel larger than 1x1, any stride, padding up to kernel-1, no dilation)
with generated, register-blocked numba kernels instead of im2col + GEMM. By default ("auto")
it does so only where they measured faster than the NumPy engine on the project machine:
stride 1 with 8-16 channels and a batch of at least 40,000 pixels per channel (e.g. 64
images of 28x28; ``dispatch.auto_prefers_compiled``; measurements in docs/performance.md).
Everything else, and every case the compiled kernels do not cover, runs on the NumPy
engine, which stays the reference: same layer API, same PyTorch weight layouts, the same
results up to float summation order.

Choose with the environment variable ``CNNLAB_KERNELS``:

- unset or ``auto``: compiled where it measured faster when numba is importable, else NumPy;
- ``numpy``: always the NumPy engine;
- ``compiled``: the compiled tier (a one-line notice and NumPy when numba is missing).

Safety: each compiled kernel is compared with the NumPy path on its first use for a shape
class (a tiny random case with the same channels, kernel, stride, padding and dtype); on a
mismatch that class falls back to NumPy with a one-line notice. Modules:

- ``select``: which tier runs (``CNNLAB_KERNELS``), notices;
- ``numba_env``: numba's cache directory, threading layer and compile-time switches;
- ``conv_codegen``: writes and imports the generated numba kernels;
- ``conv``: the flat, phase-split layout and the compiled conv forward / backward;
- ``check``: the first-use self-check;
- ``dispatch``: what ``Conv2D`` calls.
"""

from cnnlab.kernels.select import compiled_available, tier

__all__ = ["compiled_available", "tier"]
