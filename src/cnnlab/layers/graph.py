"""Graph: a model that is any directed acyclic graph of layers (branches, joins, fan-out).

``Sequential`` is a chain and ``Residual`` one fork-and-add; GoogLeNet's Inception blocks
run parallel branches and join them with ``Concat``, DenseNet feeds every earlier map to
each layer. A ``Graph`` names each layer's output (a node) and lists which tensors each
node reads. Node names are Python identifiers without dots (a dot separates the parts of
a state_dict key, and PyTorch's ``nn.ModuleDict`` refuses dotted names).

- forward runs the nodes in the order they were added (each node's inputs are graph inputs
  or earlier nodes, so that order is topological and a cycle cannot be built);
- backward runs them in reverse. A tensor that several nodes read (fan-out) gets the sum
  of their gradients: by the multivariate chain rule, dL/dt = sum over uses of dL/dt_use.

A node's layer is any cnnlab layer: a single-input layer, a multi-input layer
(``cnnlab.layers.merge``: ``Concat``, ``Add``; their contract is written there), a
``Sequential``, a ``Residual`` or another ``Graph``. A Graph is itself a layer: with one
input it follows the one-array contract of ``cnnlab.layers.base`` (so it can sit inside a
``Sequential``); with several it follows the multi-input contract. It has one output.

Every node and every graph input must lead to the output (a dead node would get no
gradient). One layer instance cannot be two nodes: weight sharing is refused (each node's
forward caches what its own backward needs).

The architecture is plain JSON (``to_config``): the input names, the output name and the
nodes in order, each ``{"name": ..., "layer": <layer config>, "inputs": [...]}``, so
``cnnlab.save``/``cnnlab.load`` need no pickle. state_dict keys are PyTorch's dotted names:
``"<node>.weight"``, ``"<node>.0.weight"`` for a node that is a ``Sequential``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlab.errors import CnnlabError, ShapeError, arg_error
from cnnlab.functional.elementwise import add
from cnnlab.functional.fpstate import quiet_fp_method
from cnnlab.layers.base import Layer, TorchSpec, from_config, to_config
from cnnlab.layers.freeze import quiet_nodes, trains
from cnnlab.layers.registry import config_parameter_count
from cnnlab.layers.sequential import _one_line, format_summary, predict_in_batches


@dataclass(frozen=True)
class Node:
    """One layer of a graph: its output is named ``name`` and it reads ``inputs`` in order."""

    name: str
    layer: Layer
    inputs: tuple[str, ...]


def num_inputs(layer: Any) -> int | None:
    """How many inputs ``layer.forward`` takes: 1 for ordinary layers, None for any number."""
    return getattr(layer, "num_inputs", 1)


class Graph(Layer):
    """A model whose layers form a directed acyclic graph, built node by node.

    Args:
        inputs: the name of the graph's input, or a list of names for several inputs.
        nodes: the nodes as ``to_config`` writes them (``[{"name", "layer", "inputs"}]``),
            in any order; the usual way to add nodes is ``add``.
        output: the name of the node whose output the graph returns (or call ``output``).

    Shape:
        - Input: whatever the nodes that read each graph input take.
        - Output: the output node's shape.

    Example:
        >>> import numpy as np
        >>> from cnnlab.layers.conv import Conv2D
        >>> from cnnlab.layers.merge import Concat
        >>> g = Graph(inputs="x")
        >>> g.add("stem", Conv2D(3, 4, 3, padding=1, rng=0), "x")
        'stem'
        >>> g.add("b1", Conv2D(4, 2, 1, rng=1), "stem")
        'b1'
        >>> g.add("b2", Conv2D(4, 3, 3, padding=1, rng=2), "stem")
        'b2'
        >>> g.add("cat", Concat(), ["b1", "b2"])
        'cat'
        >>> g.output("cat")
        >>> g.forward(np.ones((2, 3, 8, 8), dtype=np.float32)).shape
        (2, 5, 8, 8)
        >>> list(g.state_dict())[:3]
        ['stem.weight', 'stem.bias', 'b1.weight']
    """

    torch = TorchSpec("cnnlab.interop.torch_modules.GraphModule")

    def torch_args(self) -> dict[str, Any]:
        """``GraphModule(inputs, nodes, output)``: the nodes as ``{"name", "inputs", "module"}``."""
        if self.output_name is None:
            raise CnnlabError("to_torch: the Graph has no output; call graph.output(name) first")
        nodes = [{"name": n.name, "inputs": list(n.inputs), "module": n.layer} for n in self.nodes.values()]
        return {"inputs": list(self.inputs), "nodes": nodes, "output": self.output_name}

    @classmethod
    def from_torch_args(cls, module: Any) -> dict[str, Any]:
        nodes = [
            {"name": name, "layer": child, "inputs": list(module.graph_edges[name])}
            for name, child in module.items()
        ]
        return {"inputs": list(module.graph_inputs), "nodes": nodes, "output": module.graph_output}

    def __init__(
        self,
        inputs: str | Sequence[str] = "x",
        nodes: Sequence[dict[str, Any]] | None = None,
        output: str | None = None,
    ) -> None:
        super().__init__()
        names = (
            [inputs] if isinstance(inputs, str) else list(inputs) if isinstance(inputs, Sequence) else None
        )
        if not names or not all(isinstance(n, str) and n.isidentifier() for n in names):
            raise arg_error(
                "Graph", "inputs", "a name (an identifier such as 'x') or a list of names", inputs
            )
        if len(set(names)) != len(names):
            raise arg_error("Graph", "inputs", "distinct names", inputs)
        self.inputs: tuple[str, ...] = tuple(names)
        self.num_inputs = len(names)
        self.nodes: dict[str, Node] = {}
        self.output_name: str | None = None
        self._order: list[tuple[Node, list[str]]] | None = None  # nodes, tensors freed after each
        for node in _sorted_nodes(self.inputs, nodes or []):
            layer = node["layer"] if isinstance(node["layer"], Layer) else from_config(node["layer"])
            self.add(node["name"], layer, node["inputs"])
        if output is not None:
            self.output(output)

    # ---- building ------------------------------------------------------------------------
    def add(self, name: str, layer: Layer, inputs: str | Sequence[str]) -> str:
        """Add node ``name``: ``layer`` applied to ``inputs`` (graph inputs or earlier nodes).

        Returns:
            ``name``, to pass as a later node's input.

        Raises:
            ValueError: a name that is not an identifier or is taken, an input that is not
                a graph input or an earlier node, a layer already used by another node,
                or a number of inputs the layer does not take.
        """
        where = f"Graph.add({name!r})"
        if not isinstance(name, str) or not name.isidentifier():
            raise arg_error("Graph.add", "name", "an identifier (letters, digits, _; no dots)", name)
        if name in self.inputs or name in self.nodes:
            kind = "a graph input" if name in self.inputs else "a node"
            raise ValueError(
                f"{where}: the name is already {kind}; node names must be unique. Taken: {self._known()}"
            )
        if not isinstance(layer, Layer):
            raise arg_error(where, "layer", "a cnnlab Layer", layer)
        names = (
            [inputs] if isinstance(inputs, str) else list(inputs) if isinstance(inputs, Sequence) else None
        )
        if not names or not all(isinstance(n, str) for n in names):
            raise arg_error(where, "inputs", "a tensor name or a non-empty list of names", inputs)
        for n in names:
            if n not in self.inputs and n not in self.nodes:
                raise ValueError(
                    f"{where}: unknown input {n!r}. A node reads graph inputs or nodes added before "
                    f"it (so a graph has no cycles). Known: {self._known()}"
                )
        arity = num_inputs(layer)
        if arity is not None and len(names) != arity:
            hint = "; join branches with Concat or Add first" if arity == 1 else ""
            raise ValueError(
                f"{where}: {layer.name} takes {arity} input(s). Received: {len(names)} inputs {names}{hint}"
            )
        self._refuse_shared(where, layer)
        self.nodes[name] = Node(name, layer, tuple(names))
        self._order = None
        return name

    def output(self, name: str) -> None:
        """Make node ``name`` the graph's output (one output per graph) and check the graph."""
        if name not in self.nodes:
            raise ValueError(
                f"Graph.output: {name!r} is not a node. Nodes: {', '.join(self.nodes) or 'none'}"
            )
        self.output_name = name
        self._order = None
        self._plan()

    def _known(self) -> str:
        return f"graph inputs {', '.join(self.inputs)}; nodes {', '.join(self.nodes) or 'none'}"

    def _refuse_shared(self, where: str, layer: Layer) -> None:
        """Refuse a layer instance (or a sub-layer) that another node already holds."""
        mine = {id(sub) for _, sub in layer.named_layers()}
        if id(self) in mine:
            raise ValueError(f"{where}: a graph cannot be a node of itself")
        for node in self.nodes.values():
            for path, sub in node.layer.named_layers():
                if id(sub) in mine:
                    held = f"node {node.name!r}" + (f" (as {path.rstrip('.')})" if path else "")
                    raise ValueError(
                        f"{where}: this {sub.name} instance is already used by {held}. Weight sharing "
                        "is not supported: give each node its own layer (copy.deepcopy(layer) for the "
                        "same initial weights)"
                    )

    def _plan(self) -> list[tuple[Node, list[str]]]:
        """The nodes in run order, each with the tensors no later node reads (freed after it)."""
        if self._order is not None:
            return self._order
        if self.output_name is None:
            raise CnnlabError(
                "Graph: no output; call graph.output(name) with one of the nodes: "
                f"{', '.join(self.nodes) or 'none'}"
            )
        needed = {self.output_name}
        for node in reversed(self.nodes.values()):
            if node.name in needed:
                needed.update(node.inputs)
        dead = [n for n in (*self.inputs, *self.nodes) if n not in needed]
        if dead:
            raise CnnlabError(
                f"Graph: {', '.join(map(repr, dead))} do(es) not lead to the output {self.output_name!r} "
                "(a dead node gets no gradient); remove it or connect it"
            )
        last_use = {n: i for i, node in enumerate(self.nodes.values()) for n in node.inputs}
        freed: list[list[str]] = [[] for _ in self.nodes]
        for n, i in last_use.items():
            freed[i].append(n)
        self._order = list(zip(self.nodes.values(), freed, strict=True))
        return self._order

    # ---- structure -----------------------------------------------------------------------
    def children(self) -> dict[str, Layer]:
        return {name: node.layer for name, node in self.nodes.items()}

    def input_layers(self) -> list[Layer]:
        """Those of the nodes that read graph inputs only (a node that also reads another
        node must return its gradient to that node). With frozen layers, the quiet nodes
        (``cnnlab.layers.freeze``: nothing in or before them trains) count as graph inputs."""
        quiet = quiet_nodes(self)
        return [
            layer
            for node in self.nodes.values()
            if node.name not in quiet and all(n in self.inputs or n in quiet for n in node.inputs)
            for layer in node.layer.input_layers()
        ]

    def __getitem__(self, name: str) -> Layer:
        """The layer of node ``name``."""
        if name not in self.nodes:
            raise KeyError(f"Graph: no node named {name!r}. Nodes: {', '.join(self.nodes) or 'none'}")
        return self.nodes[name].layer

    def __call__(self, x: np.ndarray, *more: np.ndarray) -> np.ndarray:
        return self.forward(x, *more)

    # ---- the two phases ------------------------------------------------------------------
    def forward(self, x: np.ndarray, *more: np.ndarray) -> np.ndarray:
        return self.forward_keep(x, *more)[0]

    def backward(self, dy: np.ndarray) -> Any:
        """dL/dx (a tuple of one gradient per input for a graph with several inputs).

        An input gradient is None where a layer that reads the input returns None (a first
        Conv2D with ``needs_input_grad = False``), as in ``Sequential``: a sum without that
        layer's share would be wrong, so there is none.
        """
        return self.backward_keep(dy)[0]

    @quiet_fp_method
    def forward_keep(
        self, x: np.ndarray, *more: np.ndarray, keep: Sequence[str] = ()
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``forward``, also returning copies of the tensors named in ``keep`` (graph inputs
        or nodes), for looking inside: feature maps, Grad-CAM's activations.

        Raises:
            KeyError: a name in ``keep`` that is neither a graph input nor a node.
        """
        order = self._plan()
        self._check_names("forward_keep", keep)
        xs = (x, *more)
        if len(xs) != len(self.inputs):
            raise ValueError(
                f"Graph: forward takes {len(self.inputs)} input(s) ({', '.join(self.inputs)}). "
                f"Received: {len(xs)}"
            )
        values = dict(zip(self.inputs, xs, strict=True))
        kept = {n: values[n].copy() for n in keep if n in values}
        for node, freed in order:
            try:
                values[node.name] = node.layer.forward(*(values[n] for n in node.inputs))
            except ShapeError as exc:
                raise ShapeError(f"Graph node {node.name!r} ({_one_line(node.layer)}): {exc}") from None
            if node.name in keep:  # a copy: a later layer may work in place
                kept[node.name] = values[node.name].copy()
            for n in freed:  # no later node reads it: let go of the array
                del values[n]
        self._cache = True  # the nodes cache what backward needs
        return values[self.output_name], kept  # type: ignore[index]

    @quiet_fp_method
    def backward_keep(self, dy: np.ndarray, keep: Sequence[str] = ()) -> tuple[Any, dict[str, np.ndarray]]:
        """``backward``, also returning dL/dt for each tensor t named in ``keep`` (graph
        inputs or nodes; the whole gradient, summed over the nodes that read t), for
        Grad-CAM's gradients at a named node.

        Raises:
            KeyError: a name in ``keep`` that is neither a graph input nor a node.
        """
        self._cached()
        order = self._plan()
        self._check_names("backward_keep", keep)
        grads: dict[str, np.ndarray] = {self.output_name: dy}  # type: ignore[dict-item]
        kept: dict[str, np.ndarray] = {}
        partial: set[str] = set()  # tensors a reader gave no gradient share for
        # Training (the input needs no gradient): nodes with nothing to learn in or before
        # them are not visited (cnnlab.layers.freeze); looking inside (`keep`) visits all.
        quiet = quiet_nodes(self) if not self.needs_input_grad and not keep else set()
        for node, _ in reversed(order):
            if node.name in quiet or (node.name in partial and not trains(node.layer)):
                # No gradient is needed here: nothing in this node learns, nor before it (or
                # a reader needed none), so it is skipped and its inputs get none either.
                grads.pop(node.name, None)
                partial.update(node.inputs)
                continue
            if node.name in partial:
                raise CnnlabError(
                    f"Graph: node {node.name!r} has no complete gradient: a node reading it returned "
                    "None (needs_input_grad = False is only for layers that read a graph input)"
                )
            grad = grads.pop(node.name)  # complete: every reader of the node ran before it
            if node.name in keep:
                kept[node.name] = grad.copy()
            out = node.layer.backward(grad)
            if out is None or not node.layer.needs_input_grad:  # dL/dx not needed (see freeze)
                dxs: tuple[np.ndarray | None, ...] = (None,) * len(node.inputs)
            else:
                dxs = (out,) if num_inputs(node.layer) == 1 else tuple(out)
            for n, dx in zip(node.inputs, dxs, strict=True):
                if dx is None:
                    partial.add(n)
                else:
                    # Fan-out: a tensor read by several nodes gets the sum of their gradients.
                    grads[n] = dx if n not in grads else add(grads[n], dx)
        result = tuple(None if n in partial else grads[n] for n in self.inputs)
        kept.update({n: grads[n].copy() for n in keep if n in self.inputs and n not in partial})
        return (result[0] if len(result) == 1 else result), kept

    def _check_names(self, where: str, keep: Sequence[str]) -> None:
        unknown = [n for n in keep if n not in self.inputs and n not in self.nodes]
        if isinstance(keep, str) or unknown:
            raise KeyError(
                f"Graph.{where}: `keep` must list tensor names. Received: {keep!r}"
                + (f" (unknown: {', '.join(map(repr, unknown))}). Known: {self._known()}" if unknown else "")
            )

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Forward in eval mode, in batches (one-input graphs), leaving the training flag as it was."""
        return predict_in_batches(self, x, batch_size)

    # ---- shapes and cost -----------------------------------------------------------------
    def shapes(self, input_shape: tuple[int, ...], *more: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """Every tensor's shape (graph inputs and nodes) for inputs of these shapes (batch axis included)."""
        order = self._plan()
        given = (input_shape, *more)
        if len(given) != len(self.inputs):
            raise ValueError(
                f"Graph: takes {len(self.inputs)} input shape(s) ({', '.join(self.inputs)}). "
                f"Received: {len(given)}"
            )
        shapes = {n: tuple(s) for n, s in zip(self.inputs, given, strict=True)}
        for node, _ in order:
            try:
                shapes[node.name] = tuple(node.layer.output_shape(*(shapes[n] for n in node.inputs)))
            except ShapeError as exc:
                raise ShapeError(f"Graph node {node.name!r} ({_one_line(node.layer)}): {exc}") from None
        return shapes

    def output_shape(self, input_shape: tuple[int, ...], *more: tuple[int, ...]) -> tuple[int, ...]:
        return self.shapes(input_shape, *more)[self.output_name]  # type: ignore[index]

    def flops(self, input_shape: tuple[int, ...], *more: tuple[int, ...]) -> int:
        """The sum of the nodes' FLOPs, each for the shapes of its inputs."""
        shapes = self.shapes(input_shape, *more)
        return sum(node.layer.flops(*(shapes[n] for n in node.inputs)) for node, _ in self._plan())

    def summary(self, input_shape: Any, print_fn: Any = print) -> list[dict[str, Any]]:
        """Print and return one row per node: ``name <- inputs: layer``, output shape, params, FLOPs.

        Args:
            input_shape: one example's shape without the batch axis, ``(C, H, W)``; a list
                of shapes for a graph with several inputs.
            print_fn: where the table goes (``None`` to print nothing).

        Returns:
            One dict per node with the keys of ``Sequential.summary`` plus ``inputs``.
        """
        given = [tuple(input_shape)] if all(isinstance(d, int) for d in input_shape) else list(input_shape)
        shapes = self.shapes(*((1, *s) for s in given))
        rows = []
        for node, _ in self._plan():
            ins = [shapes[n] for n in node.inputs]
            rows.append(
                {
                    "layer": f"{node.name} <- {', '.join(node.inputs)}: {_one_line(node.layer)}",
                    "inputs": list(node.inputs),
                    "output_shape": shapes[node.name][1:],
                    "params": sum(int(np.prod(p.value.shape)) for p in node.layer.parameters()),
                    "flops": node.layer.flops(*ins),
                    "formula": node.layer.formula(ins[0]) if len(ins) == 1 else None,
                }
            )
        if print_fn is not None:
            table = format_summary(rows, given[0])
            if len(given) > 1:  # the first line names each input's shape
                shown = ", ".join(
                    f"{n} {'x'.join(map(str, s))}" for n, s in zip(self.inputs, given, strict=True)
                )
                table = f"inputs: {shown}" + table[table.index("\n") :]
            print_fn(table)
        return rows

    # ---- config and repr -----------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        nodes = [
            {"name": n.name, "layer": to_config(n.layer), "inputs": list(n.inputs)}
            for n in self.nodes.values()
        ]
        return {"inputs": list(self.inputs), "nodes": nodes, "output": self.output_name}

    @classmethod
    def config_parameters(cls, args: dict[str, Any]) -> int:
        """The nodes' layers' parameters (their configs sit inside node dicts)."""
        nodes = args.get("nodes")
        if not isinstance(nodes, list):
            return 0
        return sum(config_parameter_count(n.get("layer")) for n in nodes if isinstance(n, dict))

    def __repr__(self) -> str:
        lines = [f"  inputs: {', '.join(self.inputs)}"]
        lines += [
            f"  ({n.name} <- {', '.join(n.inputs)}): {n.layer!r}".replace("\n", "\n  ")
            for n in self.nodes.values()
        ]
        lines.append(f"  output: {self.output_name}")
        return "Graph(\n" + "\n".join(lines) + "\n)"


def _sorted_nodes(inputs: tuple[str, ...], nodes: Sequence[Any]) -> list[dict[str, Any]]:
    """Config nodes in an order where each comes after its inputs (stable; cycles refused)."""
    checked: dict[str, dict[str, Any]] = {}
    for i, node in enumerate(nodes):
        if not isinstance(node, dict) or not {"name", "layer", "inputs"} <= set(node):
            raise arg_error("Graph", f"nodes[{i}]", "a dict with keys 'name', 'layer', 'inputs'", node)
        name, ins = node["name"], node["inputs"]
        ins = [ins] if isinstance(ins, str) else ins
        if not isinstance(name, str) or not isinstance(ins, list) or not all(isinstance(n, str) for n in ins):
            raise arg_error("Graph", f"nodes[{i}]", "a str 'name' and a list of str 'inputs'", node)
        if name in checked:
            raise ValueError(f"Graph: node {name!r} is listed twice in `nodes`; node names must be unique")
        checked[name] = {**node, "inputs": ins}
    for name, node in checked.items():
        for n in node["inputs"]:
            if n not in inputs and n not in checked:
                raise ValueError(
                    f"Graph: node {name!r} reads unknown input {n!r}. Known: graph inputs "
                    f"{', '.join(inputs)}; nodes {', '.join(checked)}"
                )
    done, order = set(inputs), []
    pending = list(checked)
    while pending:  # take the first node whose inputs are done: a listed order that works is kept
        ready = next((n for n in pending if all(i in done for i in checked[n]["inputs"])), None)
        if ready is None:
            raise ValueError(f"Graph: the nodes form a cycle: {' -> '.join(_cycle(checked, pending))}")
        done.add(ready)
        order.append(checked[ready])
        pending.remove(ready)
    return order


def _cycle(nodes: dict[str, dict[str, Any]], pending: list[str]) -> list[str]:
    """One cycle among ``pending`` nodes, as a path that ends where it starts."""
    path, name = [], pending[0]
    while name not in path:
        path.append(name)
        name = next(n for n in nodes[name]["inputs"] if n in pending)
    return [*path[path.index(name) :], name]
