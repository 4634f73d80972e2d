"""cnnlab's ONNX import on ONNX's own backend test data; writes docs/onnx-conformance.md.

The data ships inside the ``onnx`` package (``onnx/backend/test/data``):

- ``pytorch-converted/*``: one model per case with ``test_data_set_*/input_*.pb`` and
  ``output_*.pb``. A case passes when ``from_onnx`` imports it and reproduces every data set
  within ONNX's tolerances (rtol 1e-3, atol 1e-7); it is unsupported when ``from_onnx``
  refuses it (the reason is its message); anything else is a failure.
- ``light/light_*.onnx``: nine architectures whose weights are ``ConstantOfShape`` 0.02, with
  the expected output for the input ONNX's runner makes (``arange(n) / n`` in the input's
  shape). ``randomized`` replaces those constants with seeded random weights, for the
  comparison with onnxruntime (``tests/interop/test_onnx_conformance.py``).

Usage::

    python tools/onnx_conformance.py            # rewrite docs/onnx-conformance.md
    python tools/onnx_conformance.py --check    # exit 1 if the doc is not up to date
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from cnnlab.errors import CnnlabError
from cnnlab.interop.onnx_import import CONVERTERS, OPSETS, Imported, import_onnx

DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
DOC = Path(__file__).resolve().parents[1] / "docs" / "onnx-conformance.md"
RTOL, ATOL = 1e-3, 1e-7


@dataclass
class Result:
    """One case: ``status`` is pass, unsupported or fail; ``why`` says what (or the error)."""

    kind: str
    case: str
    ops: str
    status: str
    why: str
    max_err: float = 0.0


def pytorch_cases() -> list[Path]:
    return sorted(p for p in (DATA / "pytorch-converted").iterdir() if (p / "model.onnx").exists())


def light_models() -> list[Path]:
    return sorted((DATA / "light").glob("light_*.onnx"))


def operators(model: Any) -> str:
    return ", ".join(sorted({n.op_type for n in model.graph.node} - {"Constant", "ConstantOfShape"}))


def tensor(path: Path) -> np.ndarray:
    return numpy_helper.to_array(onnx.load_tensor(str(path)))


def refusal(exc: CnnlabError) -> str:
    """The reasons of a refusal, without the node names (one line per op)."""
    lines = str(exc).splitlines()[1:]
    return "; ".join(line.strip("- ").split("; node")[0] for line in lines)


def close(y: np.ndarray, ref: np.ndarray) -> tuple[bool, float]:
    """ONNX's check (rtol, atol); cnnlab's (N, C) stands for ONNX's (N, C, 1, 1)."""
    if y.shape != ref.shape and y.size == ref.size:
        y = y.reshape(ref.shape)
    if y.shape != ref.shape:
        return False, float("inf")
    err = float(np.max(np.abs(y.astype(np.float64) - ref))) if y.size else 0.0
    return bool(np.allclose(y, ref, rtol=RTOL, atol=ATOL)), err


def run_pytorch_case(folder: Path) -> Result:
    model = onnx.load(str(folder / "model.onnx"))
    ops = operators(model)
    try:
        imported = import_onnx(model)
    except CnnlabError as exc:
        return Result("pytorch-converted", folder.name, ops, "unsupported", refusal(exc))
    worst, ok = 0.0, True
    for data in sorted(folder.glob("test_data_set_*")):
        xs = [tensor(p) for p in sorted(data.glob("input_*.pb"))]
        ref = tensor(data / "output_0.pb")
        try:
            good, err = close(imported.model.forward(*xs), ref)
        except Exception as exc:  # a failure, reported as such
            return Result("pytorch-converted", folder.name, ops, "fail", f"{type(exc).__name__}: {exc}")
        ok, worst = ok and good, max(worst, err)
    why = "reproduced" if ok else f"max |err| {worst:.3g} over rtol {RTOL}, atol {ATOL}"
    return Result("pytorch-converted", folder.name, ops, "pass" if ok else "fail", why, worst)


def light_input(model: Any) -> np.ndarray:
    """The input ONNX's runner feeds a light model: ``arange(n) / n`` (open sizes: 1)."""
    inits = {t.name for t in model.graph.initializer}
    first = next(i for i in model.graph.input if i.name not in inits)
    shape = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in first.type.tensor_type.shape.dim)
    n = int(np.prod(shape))
    return (np.arange(n).reshape(shape) / n).astype(np.float32)


def run_light(path: Path) -> tuple[Result, Imported | None]:
    model = onnx.load(str(path))
    ops, case = operators(model), path.stem
    try:
        imported = import_onnx(model)
    except CnnlabError as exc:
        return Result("light", case, ops, "unsupported", refusal(exc)), None
    ref = tensor(path.with_name(f"{path.stem}_output_0.pb"))
    good, err = close(imported.model.forward(light_input(model)), ref)
    why = f"{type(imported.model).__name__} of {len(imported.tensors)} layers"
    return Result("light", case, ops, "pass" if good else "fail", why, err), imported


def randomized(model: Any, seed: int = 0) -> Any:
    """``model`` (changed in place: vgg19's weights are 550 MB) with seeded random constant weights.

    Every ``ConstantOfShape`` (and every float initializer of more than one value) becomes
    an initializer: 1-D tensors (biases, BatchNorm's scale/shift/mean/variance, per-channel
    factors) uniform in [0.5, 1.5] (a positive variance), the others uniform in
    +-sqrt(3 / fan_in) (unit variance through a conv or dense layer).
    """
    rng = np.random.default_rng(seed)
    out = model
    graph = out.graph
    ints = {
        t.name: numpy_helper.to_array(t) for t in graph.initializer if t.data_type == onnx.TensorProto.INT64
    }

    def draw(shape: tuple[int, ...]) -> np.ndarray:
        values = rng.random(shape, dtype=np.float32)  # [0, 1), drawn in float32: vgg19 has 143M
        if len(shape) <= 1:
            return values + np.float32(0.5)
        bound = np.float32(np.sqrt(3.0 / max(1, int(np.prod(shape[1:])))))
        values *= 2 * bound  # in place: uniform in [-bound, bound)
        values -= bound
        return values

    inits = []
    for t in graph.initializer:
        if t.data_type == onnx.TensorProto.FLOAT and int(np.prod(t.dims)) > 1:
            inits.append(numpy_helper.from_array(draw(tuple(t.dims)), t.name))
        else:
            inits.append(t)
    nodes = []
    for node in graph.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in ints:
            inits.append(
                numpy_helper.from_array(draw(tuple(int(v) for v in ints[node.input[0]])), node.output[0])
            )
        else:
            nodes.append(node)
    del graph.initializer[:], graph.node[:]
    graph.initializer.extend(inits)
    graph.node.extend(nodes)
    return out


def with_outputs(model: Any, names: list[str]) -> Any:
    """``model`` (changed in place: no copy of its weights) also outputs the tensors ``names``."""
    out = model
    have = {o.name for o in out.graph.output}
    out.graph.output.extend(
        onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names if n not in have
    )
    return out


def layer_outputs(layer: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every layer's output of a Sequential or Graph (named as ``Imported.tensors``)."""
    values: dict[str, np.ndarray] = {}
    if hasattr(layer, "nodes"):  # a Graph: its nodes in order
        values[layer.inputs[0]] = x
        for name, node in layer.nodes.items():
            values[name] = node.layer.forward(*(values[n] for n in node.inputs))
        del values[layer.inputs[0]]
        return values
    for i, child in enumerate(layer.children().values()):
        x = values[str(i)] = child.forward(x)
    return values


def results() -> list[Result]:
    found = [run_pytorch_case(folder) for folder in pytorch_cases()]
    return found + [run_light(path)[0] for path in light_models()]


def table(found: list[Result]) -> str:
    """The doc: a summary line per kind, then one row per case (no timings: it is compared in a test)."""
    lines = [
        "# ONNX import: conformance on ONNX's own test data",
        "",
        "Generated by `python tools/onnx_conformance.py` from the backend test data shipped inside the",
        "`onnx` package (`onnx/backend/test/data`); `tests/interop/test_onnx_conformance.py` checks that",
        "this file is up to date and runs every case. A case passes when `cnnlab.interop.from_onnx`",
        f"reproduces its reference outputs within ONNX's tolerances (rtol {RTOL}, atol {ATOL}); it is",
        "unsupported when `from_onnx` refuses it, and the reason is the refusal's own message.",
        "",
        "The `light_*` weights are all the constant 0.02, so the test also replaces them with seeded",
        "random weights and compares the import with onnxruntime on the final output and on every",
        "layer's output (max |err| / max |ref| <= 1e-4).",
        "",
        "Use: `cnnlab.interop.from_onnx(path)` returns a `Sequential` (a chain) or a `Graph`;",
        "`cnnlab import MODEL.onnx --out RUN` writes a run folder for `predict`, `show`, `evaluate`,",
        f"`summary` and `export`. Opsets {OPSETS.start} to {OPSETS.stop - 1}. Operators mapped to cnnlab",
        "layers (or folded into one: `Pad` into the next Conv/AveragePool, `Mul`/`Add` by per-channel",
        "constants into the BatchNormalization/Conv/Gemm before them, `Reshape`-`Transpose`-`Reshape`",
        "into ChannelShuffle, torch.export's `Transpose`-`GatherND`-`Transpose`-`ReduceMean` into",
        "AdaptiveAvgPool2D; `Split` along the channels as ChannelSlices):",
        "",
        ", ".join(f"`{op}`" for op in sorted(CONVERTERS)) + ".",
        "",
        "Everything else is refused before anything is built, in one message that lists every",
        "unsupported operator or attribute with the nodes where it occurs.",
        "",
    ]
    for kind in ("pytorch-converted", "light"):
        rows = [r for r in found if r.kind == kind]
        counts = Counter(r.status for r in rows)
        summary = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("pass", "unsupported", "fail"))
        lines += [f"## {kind}: {len(rows)} cases: {summary}", "", "| case | operators | result | why |"]
        lines.append("|---|---|---|---|")
        lines += [f"| {r.case} | {r.ops} | {r.status} | {r.why.replace('|', '/')} |" for r in rows]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the doc is not up to date")
    args = parser.parse_args(argv)
    text = table(results())
    if args.check:
        same = DOC.exists() and DOC.read_text() == text
        print(f"{DOC}: {'up to date' if same else 'out of date: run python tools/onnx_conformance.py'}")
        return 0 if same else 1
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
