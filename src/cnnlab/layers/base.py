"""The layer contract every cnnlab layer follows.

- ``y = layer.forward(x)`` computes the output and caches what backward needs.
- ``dx = layer.backward(dy)`` returns dL/dx and writes ``layer.grads[name]`` for every
  ``layer.params[name]`` (overwriting, not accumulating: one backward per forward).
- ``layer.params`` / ``layer.grads``: ``dict[str, np.ndarray]`` with PyTorch names
  (``"weight"``, ``"bias"``); ``layer.buffers``: state that is not trained
  (BatchNorm's ``"running_mean"``, ``"running_var"``).
- ``layer.train()`` / ``layer.eval()`` set ``layer.training`` and return the layer.
- ``layer.astype(np.float64)`` converts params, grads and buffers in place.
- ``layer.freeze()`` (transfer learning): the layer and its sub-layers keep their weights.
  A frozen layer's params are left out of ``parameters()`` (so no optimizer updates them),
  it computes as in eval mode (BatchNorm uses and keeps its running statistics), and where
  nothing before it trains either, backward does not visit it at all
  (``cnnlab.layers.freeze``; docs/transfer-learning.md).
- ``layer.needs_input_grad = False`` (set by a trainer): nothing before the layer needs
  dL/dx; its backward may return None (Conv2D skips computing it) and the containers stop
  there.

Layers with sub-layers (``Sequential``, ``Residual``) return them from ``children()``;
``state_dict()``, ``parameters()``, ``train()`` and ``astype()`` recurse through them, with
PyTorch's dotted key names (``"0.weight"``, ``"2.block.1.running_mean"``).

Each layer's file also holds its entry of the layer table (the class is its name and
config): ``torch = TorchSpec(...)`` names its PyTorch module and ONNX ops, and, where the
arguments differ, ``torch_args`` / ``from_torch_args`` translate them. ``cnnlab.interop``
reads nothing else, so a new layer is one file (plus its tests).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np

from cnnlab.errors import CnnlabError, ShapeError, arg_error, is_int
from cnnlab.utils import DEFAULT_DTYPE, config_repr

#: Every concrete layer class by name, for building models from JSON configs.
LAYER_TYPES: dict[str, type[Layer]] = {}

L = TypeVar("L", bound="Layer")


@dataclass(frozen=True)
class TorchSpec:
    """A layer's entry in the PyTorch/ONNX table (NumPy only: modules are named, not imported).

    Args:
        module: dotted path of the ``torch.nn.Module`` class the layer converts to, e.g.
            ``"torch.nn.Conv2d"``; the small modules torch lacks are named under
            ``"cnnlab.interop.torch_modules."``. None when there is no equivalent.
        also: further module paths that ``from_torch`` reads back as this layer (a layer
            picks one of them in ``torch_module``, e.g. Conv2D's ``Conv2dSame``).
        onnx_ops: the ONNX operators the layer exports to and could be imported from.
        star_arg: the ``torch_args`` / ``from_torch_args`` key passed as ``*args`` (the
            layers of ``Sequential`` and ``nn.Sequential``).
        none_because: why ``module`` is None (required then: say it explicitly).

    Example:
        >>> TorchSpec("torch.nn.ReLU", onnx_ops=("Relu",)).modules
        ('torch.nn.ReLU',)
    """

    module: str | None
    also: tuple[str, ...] = ()
    onnx_ops: tuple[str, ...] = ()
    star_arg: str | None = None
    none_because: str = ""

    def __post_init__(self) -> None:
        if self.module is None and not self.none_because:
            raise CnnlabError("TorchSpec(None): say why the layer has no PyTorch module (none_because=...)")

    @property
    def modules(self) -> tuple[str, ...]:
        """Every module path that maps to the layer, the default one first."""
        return (*((self.module,) if self.module else ()), *self.also)


@dataclass(unsafe_hash=True)  # not frozen: frozen would block the `value` setter
class Param:
    """A handle on one trainable tensor: ``layer.params[name]`` and its gradient.

    Optimizers hold these handles rather than the arrays, so ``astype`` (which swaps
    the arrays) never leaves an optimizer updating a stale copy.
    """

    layer: Layer
    name: str
    path: str  # dotted name as in state_dict(), e.g. "0.weight"

    @property
    def value(self) -> np.ndarray:
        return self.layer.params[self.name]

    @value.setter
    def value(self, new: np.ndarray) -> None:
        self.layer.params[self.name] = new

    @property
    def grad(self) -> np.ndarray:
        grad = self.layer.grads.get(self.name)
        if grad is None:
            raise CnnlabError(
                f"{self.layer.name}: no gradient for `{self.name}` ({self.path}); "
                "call model.backward(...) after model.forward(...) before the optimizer step; if it "
                "was called, the optimizer holds another model's parameters: build it on the "
                "model you train, e.g. Adam(model.parameters())"
            )
        return grad


class Layer:
    """Base class: holds params, grads, buffers, the train/eval flag and the cache."""

    training: bool
    params: dict[str, np.ndarray]
    grads: dict[str, np.ndarray]
    buffers: dict[str, np.ndarray]
    #: ``freeze()`` sets it: no optimizer updates the layer's own params (transfer learning).
    frozen: bool = False
    #: A trainer sets it False where nothing before the layer needs dL/dx (see the module doc).
    needs_input_grad: bool = True

    def __init__(self) -> None:
        self.training = True
        self.params = {}
        self.grads = {}
        self.buffers = {}
        self._cache: Any = None

    def __init_subclass__(cls, register: bool = True, **kwargs: Any) -> None:
        """Register the class in ``LAYER_TYPES`` (not private ``_Name``s, not ``register=False``).

        Raises:
            CnnlabError: another class is registered under the same name (a saved model
                names its layers by class name, so two would make loading ambiguous).
        """
        super().__init_subclass__(**kwargs)
        if register and not cls.__name__.startswith("_"):
            known = LAYER_TYPES.get(cls.__name__)
            if known is not None and _qualified(known) != _qualified(cls):
                raise CnnlabError(
                    f"layer type {cls.__name__!r} is registered twice: {_qualified(known)} and "
                    f"{_qualified(cls)}; rename one, or pass register=False to a class that is "
                    "never saved"
                )
            LAYER_TYPES[cls.__name__] = cls  # the same class again (a module reload) replaces it

    # ---- the PyTorch/ONNX table entry (read by cnnlab.interop) --------------------------
    #: Every registered layer sets its own (``tests/interop`` checks); None: not declared.
    torch: ClassVar[TorchSpec | None] = None

    def torch_module(self) -> str | None:
        """The path of the torch module this layer converts to (``torch.module`` by default)."""
        return None if self.torch is None else self.torch.module

    def torch_args(self) -> dict[str, Any]:
        """The torch module's constructor arguments, from this layer's attributes.

        Layer values (children) are converted by the caller; the default is no arguments.
        """
        return {}

    @classmethod
    def from_torch_args(cls, module: Any) -> dict[str, Any]:
        """This layer's constructor arguments, read from plain attributes of a torch ``module``.

        torch module values (children) are converted by the caller. Raise
        ``unsupported_torch(module, why)`` for options the layer does not have. The default
        is no arguments.
        """
        return {}

    # ---- the two phases -------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    # ---- helpers for subclasses ------------------------------------------------------
    @property
    def name(self) -> str:
        return type(self).__name__

    def _cached(self) -> Any:
        """Return the forward cache, or raise the clear error for a lone backward()."""
        if self._cache is None:
            raise CnnlabError(
                f"{self.name}: backward() called before forward(); run forward(x) first "
                "(each forward caches what one backward needs)"
            )
        return self._cache

    def _check_input(self, x: np.ndarray, ndims: tuple[int, ...], channels: int | None = None) -> None:
        """Raise ShapeError unless ``x`` has one of ``ndims`` and ``channels`` at axis 1."""
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{self.name}: input must be a numpy.ndarray. Received: {type(x).__name__}")
        if x.ndim not in ndims:
            want = " or ".join({2: "(N, F)", 3: "(N, C, L)", 4: "(N, C, H, W)"}[d] for d in ndims)
            raise ShapeError(f"{self.name}: input must have shape {want}. Received: shape {x.shape}")
        if channels is not None and x.shape[1] != channels:
            axis = "in_channels" if x.ndim == 4 else "in_features"
            raise ShapeError(
                f"{self.name}: input must have {channels} channels/features at axis 1 "
                f"({axis}={channels}). Received: shape {x.shape}"
            )

    def _check_dy(self, dy: np.ndarray, y_shape: tuple[int, ...]) -> None:
        """Raise ShapeError unless the gradient ``dy`` has the forward output's shape ``y_shape``."""
        if dy.shape != y_shape:
            raise ShapeError(
                f"{self.name}: dy must have shape {y_shape} (the output's). Received: shape {dy.shape}"
            )

    # ---- shapes, for summary() and early errors ------------------------------------------
    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Output shape for an input of ``input_shape`` (batch axis included).

        Raises ShapeError (with the size formula) when the input does not fit.
        The default is shape-preserving (activations, dropout, batch norm).
        """
        return tuple(input_shape)

    def formula(self, input_shape: tuple[int, ...]) -> str | None:
        """The lecture's output-size formula with numbers filled in, or None."""
        return None

    # ---- cost, for summary(), the benchmarks and load-time size checks -------------------
    def flops(self, input_shape: tuple[int, ...]) -> int:
        """Forward FLOPs for one example of ``input_shape`` (batch axis included, not counted).

        A multiply-add counts as 2. The default, one op per input element, fits the
        elementwise layers (activations); other layers override it and containers sum
        their children.
        """
        return math.prod(input_shape[1:])

    @classmethod
    def config_parameters(cls, args: dict[str, Any]) -> int:
        """Trainable values a layer built from ``args`` (its config) holds, without building it.

        Used to refuse absurdly large architectures before allocating them, so ``args``
        may be anything a file holds: values that are not ints count as 0. Layers without
        parameters hold 0; ``config_parameter_count`` adds nested layers' counts.
        """
        return 0

    # ---- modes and dtype -------------------------------------------------------------
    def train(self: L, mode: bool = True) -> L:
        """Set training mode (Dropout drops, BatchNorm uses batch statistics).

        A frozen layer stays in eval mode: it computes as the trained model did (frozen
        BatchNorm uses its running statistics and does not update them, as Keras does for
        ``trainable = False``; docs/transfer-learning.md).
        """
        self.training = mode and not self.frozen
        for child in self.children().values():
            child.train(mode)
        return self

    def eval(self: L) -> L:
        """Set evaluation mode; same as ``train(False)``."""
        return self.train(False)

    def astype(self: L, dtype: Any) -> L:
        """Convert params, grads and buffers (and those of children) to ``dtype`` in place."""
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise arg_error(self.name + ".astype", "dtype", "a floating dtype", dtype)
        for store in (self.params, self.grads, self.buffers):
            for key, value in store.items():
                store[key] = value.astype(dtype, copy=False)
        for child in self.children().values():
            child.astype(dtype)
        return self

    @property
    def dtype(self) -> np.dtype:
        """The dtype of the first floating array (parameter or buffer) in state_dict order.

        A layer without arrays (a first MaxPool2D) does not decide: the float64 weights
        after it do. The default dtype when the model holds no floating array at all.
        """
        for _, layer in self.named_layers():
            for value in (*layer.params.values(), *layer.buffers.values()):
                if value.dtype.kind == "f":
                    return value.dtype
        return np.dtype(DEFAULT_DTYPE)

    def input_dtype(self) -> np.dtype | None:
        """The dtype of the input this layer reads when it is not a float, else None.

        None (the default) means the model's float dtype; a layer that reads something
        else says so (``Embedding``: int64 token ids). A container asks its first child, the
        one that reads its input (a Graph's first node reads a graph input).
        """
        for child in self.children().values():
            return child.input_dtype()
        return None

    def input_layers(self) -> list[Layer]:
        """The layers that read this layer's input directly, as the first step of the model.

        A trainer tells them to skip dL/dx (``needs_input_grad = False``: the data needs no
        gradient). A leaf layer is its own; a ``Sequential`` names its first layer's, a
        ``Graph`` those of the nodes that read only graph inputs.
        """
        return [self]

    # ---- structure ----------------------------------------------------------------------
    def children(self) -> dict[str, Layer]:
        """Named sub-layers (empty for leaf layers)."""
        return {}

    def named_layers(self, prefix: str = "") -> Iterator[tuple[str, Layer]]:
        """This layer and every descendant with its dotted prefix, parents first."""
        yield prefix, self
        for key, child in self.children().items():
            yield from child.named_layers(f"{prefix}{key}.")

    def parameters(self) -> list[Param]:
        """Handles on every trainable tensor, in state_dict order (for optimizers).

        The params of frozen layers (``freeze``) are left out: they are not trained.
        """
        return [
            Param(layer, key, prefix + key)
            for prefix, layer in self.named_layers()
            if not layer.frozen
            for key in layer.params
        ]

    def freeze(self: L, frozen: bool = True) -> L:
        """Freeze (or, with ``frozen=False``, unfreeze) this layer and every sub-layer.

        A frozen layer keeps its weights: ``parameters()`` leaves them out, it stays in eval
        mode (``train``), and backward skips it where nothing before it trains
        (``cnnlab.layers.freeze``). Not saved with the model: a run keeps it in its config.

        Example:
            >>> from cnnlab.layers.dense import Dense
            >>> len(Dense(2, 3, rng=0).freeze().parameters())
            0
        """
        mode = self.training  # an unfrozen layer gets the mode its model was in
        for _, layer in self.named_layers():
            layer.frozen = frozen
            layer.training = mode and not frozen
        return self

    def state_dict(self) -> dict[str, np.ndarray]:
        """Params and buffers under PyTorch's key names (copies)."""
        state: dict[str, np.ndarray] = {}
        for prefix, layer in self.named_layers():
            for key, value in {**layer.params, **layer.buffers}.items():
                state[prefix + key] = value.copy()
        return state

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Copy arrays from ``state`` (PyTorch key names) into params and buffers.

        Values may be NumPy arrays or anything ``np.asarray`` takes (e.g. CPU tensors
        after ``.numpy()``). ``num_batches_tracked`` keys from PyTorch are ignored. Each
        array keeps this model's dtype.

        Raises:
            KeyError: missing or unexpected keys (with ``strict=True``), all listed.
            ShapeError: a value whose shape differs from the model's.
        """
        targets: dict[str, tuple[dict[str, np.ndarray], str, str]] = {}
        for prefix, layer in self.named_layers():
            for store in (layer.params, layer.buffers):
                for key in store:
                    targets[prefix + key] = (store, key, layer.name)
        given = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
        missing = [k for k in targets if k not in given]
        unexpected = [k for k in given if k not in targets]
        if strict and (missing or unexpected):
            raise KeyError(
                f"{self.name}.load_state_dict: keys do not match the model. "
                f"Missing: {missing or 'none'}. Unexpected: {unexpected or 'none'}. "
                f"Expected keys: {list(targets)}"
            )
        # Validate every shape before changing anything, so a bad dict leaves no half-load.
        arrays = {}
        for key, (store, name, owner) in targets.items():
            if key not in given:
                continue
            value = np.asarray(given[key])
            if value.shape != store[name].shape:
                raise ShapeError(
                    f"{self.name}.load_state_dict: `{key}` ({owner}.{name}) must have shape "
                    f"{store[name].shape}. Received: shape {value.shape}"
                )
            arrays[key] = value
        for key, value in arrays.items():
            store, name, _ = targets[key]
            store[name] = value.astype(store[name].dtype, copy=True)

    # ---- config and repr ----------------------------------------------------------------
    #: Constructor arguments that are not part of the architecture (never saved).
    _not_config: ClassVar[tuple[str, ...]] = ("rng",)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this layer (see ``layer_from_config``).

        The default reads attributes named like the ``__init__`` arguments.
        """
        sig = inspect.signature(type(self).__init__)
        config = {}
        for arg in list(sig.parameters)[1:]:
            if arg in self._not_config or sig.parameters[arg].kind is inspect.Parameter.VAR_POSITIONAL:
                continue
            config[arg] = getattr(self, arg)
        return config

    def __repr__(self) -> str:
        return config_repr(self, self.get_config())


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def unsupported_torch(module: Any, why: str) -> CnnlabError:
    """The error ``from_torch`` raises for a torch module (or option) cnnlab lacks."""
    return CnnlabError(f"from_torch: {module!r} has no cnnlab equivalent: {why}")


def single(values: Any) -> Any:
    """(3, 3) -> 3 and (3, 5) stays a pair, so a converted layer reads like hand-written code."""
    if isinstance(values, (str, int)):
        return values
    a, b = (int(v) for v in values)
    return a if a == b else (a, b)


def config_int(value: Any) -> int:
    """``value`` if it is a plain int, else 0 (for counting parameters of untrusted configs)."""
    return int(value) if is_int(value) else 0


def to_config(layer: Layer) -> dict[str, Any]:
    """Describe ``layer`` as JSON-ready data: ``{"type": ..., "args": {...}}``."""

    def encode(value: Any) -> Any:
        if isinstance(value, Layer):
            return to_config(value)
        if isinstance(value, (list, tuple)):
            return [encode(v) for v in value]
        if isinstance(value, np.generic):
            return value.item()
        return value

    return {"type": layer.name, "args": {k: encode(v) for k, v in layer.get_config().items()}}


def from_config(config: dict[str, Any]) -> Layer:
    """Build a layer (and its sub-layers) from ``to_config`` output.

    Raises:
        ValueError: unknown layer type (the known ones are listed) or bad arguments.
    """
    if not isinstance(config, dict) or "type" not in config:
        raise ValueError(f"layer config must be a dict with a 'type' key. Received: {config!r}")
    kind = config["type"]
    if kind not in LAYER_TYPES:
        raise ValueError(f"unknown layer type {kind!r}. Known types: {', '.join(sorted(LAYER_TYPES))}")

    def decode(value: Any) -> Any:
        if isinstance(value, dict) and "type" in value:
            return from_config(value)
        if isinstance(value, list):
            return [decode(v) for v in value]
        return value

    args = {k: decode(v) for k, v in config.get("args", {}).items()}
    cls = LAYER_TYPES[kind]
    sig = inspect.signature(cls.__init__)
    var_pos = [p for p in sig.parameters.values() if p.kind is inspect.Parameter.VAR_POSITIONAL]
    try:
        if var_pos and var_pos[0].name in args:
            return cls(*args.pop(var_pos[0].name), **args)
        return cls(**args)
    except TypeError as exc:
        raise ValueError(f"{kind}: bad arguments in config {config.get('args')!r}: {exc}") from None
