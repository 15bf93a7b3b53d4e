"""What runners read from an ONNX file besides running it: the graph without its external weights, its inputs
(initializers excluded), outputs with their declared types, and the external-data files it points to."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # onnx is imported when a graph is read: a worker whose artifact is cached never pays for it
    import onnx


def load_graph(path: Path) -> onnx.GraphProto:
    """The graph, external data left on disk: cheap even for a model of gigabytes."""
    import onnx

    return onnx.load(str(path), load_external_data=False).graph


@dataclass(frozen=True)
class GraphIO:
    inputs: tuple[str, ...]  # graph inputs that are not initializers, in graph order
    outputs: tuple[str, ...]
    output_types: dict[str, dict[str, Any]]  # name -> {"dtype": numpy name or None, "dims": [int | None]}
    external_data: tuple[str, ...]  # files the initializers' external data lives in, sorted

    @classmethod
    def of(cls, graph: onnx.GraphProto) -> GraphIO:
        weights = {t.name for t in graph.initializer}
        external = {e.value for t in graph.initializer for e in t.external_data if e.key == "location"}
        return cls(
            inputs=tuple(i.name for i in graph.input if i.name not in weights),
            outputs=tuple(o.name for o in graph.output),
            output_types={o.name: _declared_type(o) for o in graph.output},
            external_data=tuple(sorted(external)),
        )


def graph_io(path: Path) -> GraphIO:
    return GraphIO.of(load_graph(path))


def _declared_type(value: onnx.ValueInfoProto) -> dict[str, Any]:
    """Numpy dtype name and static dims (None where symbolic or unknown) of one declared output."""
    import onnx

    tensor = value.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tensor.shape.dim]
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name if tensor.elem_type else None
    return {"dtype": dtype, "dims": dims}
