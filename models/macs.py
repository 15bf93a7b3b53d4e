"""Parameters and multiply-accumulates of an ONNX model, computed from its graph.

``count_cost(model, input_shapes)`` fixes the graph inputs to the given concrete shapes, runs ONNX shape
inference (after folding shape computations, see below) and counts, per node:

- Conv (also ConvInteger, QLinearConv): ``N * M * prod(output spatial) * (C / group) * prod(kernel)``, so
  grouped and depthwise convolutions count only the channels each filter reads;
- ConvTranspose: ``N * C * prod(input spatial) * (M / group) * prod(kernel)``;
- Gemm: ``M * N * K``;
- MatMul (also MatMulInteger, QLinearMatMul), batched and broadcast: ``prod(output shape) * K``.

One MAC is one multiply plus one add, the unit of published "FLOPs" figures such as ResNet-50's 4.1 G.
Not counted: biases, BatchNormalization, activations, pooling, Resize, Softmax, LayerNormalization and
other elementwise or reduction ops (a few operations per element, small next to the products above), ops
of other domains (e.g. com.microsoft fused attention), Einsum and recurrent ops (LSTM, GRU).
Subgraphs: an If counts its costlier branch; a Loop or Scan counts its body once and is itself counted
in ``unknown_ops``, as its trip count is not known from shapes. A counted op whose shapes stay unknown
(a dimension left symbolic, or computed in a way inference cannot follow) is skipped and counted in
``unknown_ops``.

Shape computations (Shape -> Gather/Slice/Cast -> Concat -> Reshape, as exporters write for dynamic
axes) are folded to constants with numpy before inference: ONNX's own data propagation only follows
them for recent opsets, and older exports (opset 11-13) are common.

A count past int64 (9.2e18 MACs, years of compute per inference) is no inference's: an If branch that is never
taken can declare any size (a huge Expand + MatMul), and counting the costlier branch trusts it. Such a count is
unknown (``macs`` None), as the row's int64 column could not hold it either.

``params`` is the number of elements of floating-point constant tensors, initializers and Constant
nodes alike (some exporters, e.g. paddle2onnx, keep every weight in Constant nodes), in the main graph
and in subgraphs. Integer tensors are not counted, so neither are the weights of an int8-quantized model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, helper, numpy_helper

FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE}
# Initializers above this size cannot be shapes or axes: inference gets their type and shape, not their data.
_SMALL = 1024
_FOLD_ROUNDS = 8  # each round can resolve one more level of Shape-of-a-Reshape chains
# op type -> index of the weight / second operand
_CONV_OPS = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}
_MATMUL_OPS = {"MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3)}

Shapes = Mapping[str, "list[int | None]"]


@dataclass(frozen=True)
class ModelCost:
    params: int  # elements of floating-point constant tensors
    macs: int | None  # multiply-accumulates of one inference at the given input shapes; None past int64
    unknown_ops: int = 0  # counted ops skipped because a shape stayed unknown (and Loop/Scan nodes)


def count_cost(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]]) -> ModelCost:
    """Params and MACs of `model` with its graph inputs fixed to `input_shapes` (name -> full shape)."""
    macs, unknown = _graph_macs(model.graph, _infer_shapes(model, input_shapes))
    bounded = macs if macs <= np.iinfo(np.int64).max else None  # past int64: no inference's count (module doc)
    return ModelCost(params=_count_params(model.graph), macs=bounded, unknown_ops=unknown)


# ---------------------------------------------------------------------------------------------- counting
def _graph_macs(graph: onnx.GraphProto, shapes: Shapes) -> tuple[int, int]:
    macs = unknown = 0
    for node in graph.node:
        if node.domain not in ("", "ai.onnx"):
            continue
        bodies = [_graph_macs(g, shapes) for g in _subgraphs(node)]
        if node.op_type == "If" and bodies:
            macs += max(b[0] for b in bodies)
            unknown += max(b[1] for b in bodies)
        elif bodies:  # Loop, Scan: one iteration of the body
            macs += sum(b[0] for b in bodies)
            unknown += sum(b[1] for b in bodies) + 1
        else:
            count = _node_macs(node, shapes)
            macs, unknown = (macs + count, unknown) if count is not None else (macs, unknown + 1)
    return macs, unknown


def _node_macs(node: onnx.NodeProto, shapes: Shapes) -> int | None:
    """MACs of a counted op, 0 for an op that is not counted, None when a needed shape is unknown."""

    def shape(index: int) -> list[int | None] | None:
        return shapes.get(node.input[index]) if index < len(node.input) and node.input[index] else None

    out = shapes.get(node.output[0]) if node.output else None
    if node.op_type in _CONV_OPS:
        weight = shape(_CONV_OPS[node.op_type])
        return math.prod(out) * math.prod(weight[1:]) if _known(out, weight) else None
    if node.op_type == "ConvTranspose":
        x, weight = shape(0), shape(1)
        return math.prod(x) * math.prod(weight[1:]) if _known(x, weight) else None
    if node.op_type == "Gemm":
        a = shape(0)
        trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
        return math.prod(out) * a[0 if trans_a else 1] if _known(out, a) and len(a) == 2 else None
    if node.op_type in _MATMUL_OPS:
        a = shape(_MATMUL_OPS[node.op_type][0])
        return math.prod(out) * a[-1] if _known(out, a) and len(a) >= 1 else None
    return 0


def _known(*shapes: list[int | None] | None) -> bool:
    return all(s is not None and all(isinstance(d, int) and d > 0 for d in s) for s in shapes)


def _count_params(graph: onnx.GraphProto) -> int:
    tensors = list(graph.initializer)
    for node in graph.node:
        if node.op_type == "Constant":
            tensors += [a.t for a in node.attribute if a.type == AttributeProto.TENSOR]
    count = sum(math.prod(t.dims) for t in tensors if t.data_type in FLOAT_TYPES)
    return count + sum(_count_params(g) for node in graph.node for g in _subgraphs(node))


def _subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    for attr in node.attribute:
        if attr.type == AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == AttributeProto.GRAPHS:
            yield from attr.graphs


# ----------------------------------------------------------------------------------------------- shapes
def _infer_shapes(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]]) -> dict[str, list[int | None]]:
    """Name -> shape (None for an unknown dimension) of every value that inference could type."""
    light = _shape_only_copy(model)
    graph_inputs = {i.name: i for i in light.graph.input}
    for name, shape in input_shapes.items():
        if name not in graph_inputs:
            raise ValueError(f"{name!r} is not a graph input; inputs: {sorted(graph_inputs)}")
        _set_shape(graph_inputs[name], shape)
    # drop the shapes recorded at export (symbolic batch etc.) so that inference recomputes them
    del light.graph.value_info[:]
    for output in light.graph.output:
        output.type.tensor_type.ClearField("shape")
    shapes: dict[str, list[int | None]] = {}
    for _ in range(_FOLD_ROUNDS):
        inferred = onnx.shape_inference.infer_shapes(light, check_type=False, strict_mode=False, data_prop=True)
        shapes = {t.name: list(t.dims) for t in model.graph.initializer}
        _collect_shapes(inferred.graph, shapes)
        if not _fold_shape_computations(light.graph, shapes):
            break
    return shapes


def _collect_shapes(graph: onnx.GraphProto, shapes: dict[str, list[int | None]]) -> None:
    for value in [*graph.input, *graph.value_info, *graph.output]:
        tensor_type = value.type.tensor_type
        if value.type.HasField("tensor_type") and tensor_type.HasField("shape"):
            shapes[value.name] = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
    for node in graph.node:
        for subgraph in _subgraphs(node):
            _collect_shapes(subgraph, shapes)


def _shape_only_copy(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose large initializers are typed graph inputs without data: inference needs their shapes,
    not their bytes; this keeps it fast, under protobuf's 2 GB limit, and working for external data."""
    light = onnx.ModelProto()
    light.CopyFrom(model)
    declared = {i.name for i in light.graph.input}
    kept = []
    for tensor in light.graph.initializer:
        if math.prod(tensor.dims) <= _SMALL and tensor.data_location != TensorProto.EXTERNAL:
            kept.append(tensor)
        elif tensor.name not in declared:
            light.graph.input.append(helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
    del light.graph.initializer[:]
    light.graph.initializer.extend(kept)
    return light


def _set_shape(value: onnx.ValueInfoProto, shape: Sequence[int]) -> None:
    dims = value.type.tensor_type.shape.dim
    if len(dims) and len(dims) != len(shape):
        raise ValueError(f"input {value.name!r} has rank {len(dims)}, got shape {list(shape)}")
    value.type.tensor_type.shape.ClearField("dim")
    for size in shape:
        value.type.tensor_type.shape.dim.add().dim_value = int(size)


# ----------------------------------------------------------------------------------- shape folding
def _fold_shape_computations(graph: onnx.GraphProto, shapes: Shapes) -> bool:
    """Replace main-graph nodes that compute small integer tensors from known shapes and constants by
    initializers. Returns whether anything was folded."""
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer if math.prod(t.dims) <= _SMALL}
    folded_nodes = []
    for node in graph.node:
        outputs = _fold_node(node, values, shapes)
        if outputs is None:
            continue
        values.update(zip(node.output, outputs, strict=True))
        if node.op_type != "Constant":
            folded_nodes.append(node)
    for node in folded_nodes:
        graph.node.remove(node)
        graph.initializer.extend(numpy_helper.from_array(values[name], name) for name in node.output)
    return bool(folded_nodes)


def _fold_node(node: onnx.NodeProto, values: dict[str, np.ndarray], shapes: Shapes) -> list[np.ndarray] | None:
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if node.domain not in ("", "ai.onnx") or node.op_type not in _FOLDERS:
        return None
    if node.op_type == "Constant":
        tensor = attrs.get("value")
        return [numpy_helper.to_array(tensor)] if tensor is not None and math.prod(tensor.dims) <= _SMALL else None
    if node.op_type == "Shape":
        shape = shapes.get(node.input[0])
        if not _known(shape):
            return None
        return [np.array(shape[attrs.get("start", 0) : attrs.get("end", len(shape))], dtype=np.int64)]
    inputs = [values.get(name) if name else None for name in node.input]
    if any(name and x is None for name, x in zip(node.input, inputs, strict=True)):
        return None
    try:
        result = _FOLDERS[node.op_type](inputs, attrs)
    except (ValueError, IndexError, TypeError):
        return None
    return [result] if result.size <= _SMALL and result.dtype.kind in "iu" else None


def _slice(inputs: list, attrs: dict) -> np.ndarray:
    data = inputs[0]
    if len(inputs) > 1:  # opset >= 10: starts, ends, axes, steps are inputs
        starts, ends = inputs[1], inputs[2]
        axes = inputs[3] if len(inputs) > 3 and inputs[3] is not None else range(len(starts))
        steps = inputs[4] if len(inputs) > 4 and inputs[4] is not None else [1] * len(starts)
    else:
        starts, ends = attrs["starts"], attrs["ends"]
        axes, steps = attrs.get("axes", range(len(starts))), [1] * len(starts)
    index = [slice(None)] * data.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=False):
        index[int(axis)] = slice(int(start), int(end), int(step))
    return data[tuple(index)]


def _unsqueeze(inputs: list, attrs: dict) -> np.ndarray:
    axes = attrs["axes"] if "axes" in attrs else inputs[1]
    rank = inputs[0].ndim + len(axes)
    return np.expand_dims(inputs[0], tuple(sorted(int(a) % rank for a in axes)))


def _squeeze(inputs: list, attrs: dict) -> np.ndarray:
    axes = attrs.get("axes", inputs[1] if len(inputs) > 1 else None)
    return np.squeeze(inputs[0], None if axes is None else tuple(int(a) for a in axes))


def _reduce_prod(inputs: list, attrs: dict) -> np.ndarray:
    if "axes" in attrs or len(inputs) > 1:
        raise ValueError("only the full product of a shape is folded")
    return np.prod(inputs[0], keepdims=bool(attrs.get("keepdims", 1)))


def _divide(inputs: list, attrs: dict) -> np.ndarray:
    a, b = inputs
    return (a // b) if a.dtype.kind in "iu" else a / b


_FOLDERS: dict[str, Callable[[list, dict], np.ndarray] | None] = {
    "Constant": None,  # handled in _fold_node
    "Shape": None,
    "Identity": lambda i, a: i[0],
    "Cast": lambda i, a: i[0].astype(helper.tensor_dtype_to_np_dtype(a["to"])),
    "Gather": lambda i, a: np.take(i[0], i[1], axis=a.get("axis", 0)),
    "Concat": lambda i, a: np.concatenate(i, axis=a["axis"]),
    "Slice": _slice,
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Add": lambda i, a: i[0] + i[1],
    "Sub": lambda i, a: i[0] - i[1],
    "Mul": lambda i, a: i[0] * i[1],
    "Div": _divide,
    "ReduceProd": _reduce_prod,
}
