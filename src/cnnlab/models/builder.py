"""Build a model from a YAML or JSON file that lists its layers.

The short format lists layers by name with their arguments; ``in_channels``,
``in_features`` and ``num_features`` are filled in from the running output shape, and the
strings ``"num_classes"`` / ``"in_channels"`` stand for the values given to the builder::

    layers:
      - Conv2D: {out_channels: 32, kernel_size: 3, padding: 1}
      - ReLU
      - MaxPool2D: {kernel_size: 2}
      - Flatten
      - Dense: {out_features: 128}
      - Dense: {out_features: num_classes}

``Residual`` takes ``block`` (and ``shortcut``) as nested layer lists, ``Sequential`` takes
``layers``. The full ``to_config`` format (``{"type": "Sequential", "args": ...}``) works too.
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError, ShapeError
from cnnlab.init import RngLike, make_rng
from cnnlab.layers.base import Layer
from cnnlab.layers.graph import Graph
from cnnlab.layers.registry import (
    MAX_PARAMETERS,
    build_from_config,
    config_parameter_count,
    import_all_layers,
)
from cnnlab.layers.residual import Residual
from cnnlab.layers.sequential import Sequential

#: Constructor arguments filled in from the input shape when the file leaves them out.
INFERRED = ("in_channels", "in_features", "num_features")


def read_spec(path: str | os.PathLike[str]) -> Any:
    """Parse a ``.yaml``/``.yml`` (needs PyYAML) or ``.json`` architecture file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model_from_file: no architecture file at {str(path)!r}")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise CnnlabError(
                "model_from_file: YAML files need PyYAML: pip install pyyaml "
                "(or pip install 'cnnlab[train]'); JSON files work without it"
            ) from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"model_from_file: {str(path)!r} is not valid YAML: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"model_from_file: {str(path)!r} is not valid JSON: {exc}") from None


def model_from_file(
    path: str | os.PathLike[str],
    in_channels: int,
    input_size: int | tuple[int, int],
    num_classes: int,
    rng: RngLike = None,
) -> Sequential:
    """Build a ``Sequential`` from a YAML/JSON architecture file (see the module docstring).

    Raises:
        ValueError: unknown layer names (valid ones listed), bad or missing arguments
            (naming the layer's position and the argument), or shapes that do not fit.
    """
    return model_from_spec(read_spec(path), in_channels, input_size, num_classes, rng)


def model_from_spec(
    spec: Any,
    in_channels: int,
    input_size: int | tuple[int, int],
    num_classes: int,
    rng: RngLike = None,
) -> Sequential:
    """Build a ``Sequential`` from parsed file content: ``{"layers": [...]}``, a list, or to_config.

    Example:
        >>> spec = {"layers": ["Flatten", {"Dense": {"out_features": "num_classes"}}]}
        >>> model_from_spec(spec, in_channels=1, input_size=4, num_classes=3, rng=0)
        Sequential(
          (0): Flatten()
          (1): Dense(16, 3)
        )
    """
    H, W = (input_size, input_size) if isinstance(input_size, int) else input_size
    shape = (1, in_channels, H, W)
    if isinstance(spec, dict) and "type" in spec:  # the full to_config format
        model = build_from_config(spec)
        model.output_shape(shape)  # fail now, with the formula, if the input does not fit
        # A Graph stays a Graph (its summary shows the branches; Grad-CAM names its nodes).
        return model if isinstance(model, (Sequential, Graph)) else Sequential(model)  # type: ignore[return-value]
    entries = spec.get("layers") if isinstance(spec, dict) else spec
    if not isinstance(entries, list) or not entries:
        raise ValueError(
            "architecture must be a non-empty list of layers, or a mapping with a `layers` list. "
            f"Received: {type(entries).__name__}"
        )
    import_all_layers()
    builder = _Builder({"num_classes": num_classes, "in_channels": in_channels}, make_rng(rng))
    layers, _ = builder.build_list(entries, shape, "layers")
    return Sequential(*layers)


class _Builder:
    def __init__(self, values: dict[str, Any], rng: Any) -> None:
        self.values = values
        self.rng = rng
        self.parameters = 0
        self.types = import_all_layers()

    def build_list(
        self, entries: Any, shape: tuple[int, ...], where: str
    ) -> tuple[list[Layer], tuple[int, ...]]:
        if isinstance(entries, dict) and "layers" in entries:
            entries = entries["layers"]
        if not isinstance(entries, list):
            raise ValueError(f"{where}: must be a list of layers. Received: {entries!r}")
        layers = []
        for i, entry in enumerate(entries):
            layer, shape = self.build_one(entry, shape, f"{where}[{i}]")
            layers.append(layer)
        return layers, shape

    def build_one(self, entry: Any, shape: tuple[int, ...], where: str) -> tuple[Layer, tuple[int, ...]]:
        name, args = self._parse_entry(entry, where)
        if name not in self.types:
            raise ValueError(
                f"{where}: unknown layer {name!r}. Valid layers: {', '.join(sorted(self.types))}"
            )
        cls = self.types[name]
        where = f"{where} ({name})"
        args = {key: self._substitute(value) for key, value in args.items()}
        if name == "Residual":
            return self._residual(args, shape, where)
        if name == "Sequential":
            layers, out = self.build_list(args.get("layers", []), shape, f"{where}.layers")
            return Sequential(*layers), out
        sig = inspect.signature(cls.__init__)
        valid = [p for p in list(sig.parameters)[1:] if p != "rng"]
        for key in args:
            if key not in valid:
                raise ValueError(
                    f"{where}: unknown argument `{key}`. Valid arguments: {', '.join(valid) or 'none'}"
                )
        for key in INFERRED:
            if key in valid and key not in args:
                args[key] = shape[1]
        missing = [p for p in valid if p not in args and sig.parameters[p].default is inspect.Parameter.empty]
        if missing:
            raise ValueError(f"{where}: missing argument `{missing[0]}`")
        self.parameters += config_parameter_count({"type": name, "args": args})
        if self.parameters > MAX_PARAMETERS:
            raise ValueError(f"{where}: the model would exceed {MAX_PARAMETERS:,} parameters")
        if "rng" in sig.parameters:
            args["rng"] = self.rng
        try:
            layer = cls(**args)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{where}: {exc}") from None
        return layer, self._output_shape(layer, shape, where)

    def _residual(
        self, args: dict[str, Any], shape: tuple[int, ...], where: str
    ) -> tuple[Layer, tuple[int, ...]]:
        unknown = [k for k in args if k not in ("block", "shortcut")]
        if unknown or "block" not in args:
            raise ValueError(
                f"{where}: takes `block` (required) and `shortcut` layer lists. Received: {args!r}"
            )

        block, _ = self.build_list(args["block"], shape, f"{where}.block")
        shortcut = None
        if args.get("shortcut") is not None:
            short, _ = self.build_list(args["shortcut"], shape, f"{where}.shortcut")
            shortcut = Sequential(*short)
        layer = Residual(Sequential(*block), shortcut)
        return layer, self._output_shape(layer, shape, where)

    @staticmethod
    def _output_shape(layer: Layer, shape: tuple[int, ...], where: str) -> tuple[int, ...]:
        try:
            return layer.output_shape(shape)
        except ShapeError as exc:
            raise ShapeError(f"{where}: input of shape {shape} does not fit: {exc}") from None

    @staticmethod
    def _parse_entry(entry: Any, where: str) -> tuple[str, dict[str, Any]]:
        if isinstance(entry, str):
            return entry, {}
        if isinstance(entry, dict) and "type" in entry:
            args = entry.get("args") or {}
        elif isinstance(entry, dict) and len(entry) == 1:
            ((name, args),) = entry.items()
            entry = {"type": name}
            args = {} if args is None else args
            if isinstance(args, list) and name in ("Sequential",):
                args = {"layers": args}
        else:
            raise ValueError(
                f"{where}: a layer must be a name (`ReLU`) or a one-key mapping "
                f"(`Conv2D: {{out_channels: 32, kernel_size: 3}}`). Received: {entry!r}"
            )
        if not isinstance(args, dict):
            raise ValueError(f"{where} ({entry['type']}): arguments must be a mapping. Received: {args!r}")
        return str(entry["type"]), dict(args)

    def _substitute(self, value: Any) -> Any:
        if isinstance(value, str) and value in self.values:
            return self.values[value]
        if isinstance(value, list):
            return [self._substitute(v) for v in value]
        return value
