"""ONNX -> ExecuTorch ``.pte`` with XNNPACK delegation, run by the runner as a converter subprocess:

    python -m bench.runners.executorch.lower CASE_JSON SRC_ONNX OUT_DIR

onnx2torch (as the PyTorch runner converts) -> constant shape tensors made static (``static.py``) ->
``torch.export.export`` at the case's input shapes -> int8 only: PT2E quantization with XNNPACK's quantizer,
calibrated on the shared calibration set, and exported again -> ``to_edge_transform_and_lower`` with the
``XnnpackPartitioner`` -> ``to_executorch()``. Writes ``model.pte`` and ``lowering.json`` (how much of the graph the
delegate took, which output is which), or ``error.json`` (message and ops) and exits 1.
"""

from __future__ import annotations

import importlib.metadata
import operator
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from bench.case import Case
from bench.execution.convert import ConversionFailed
from bench.runners.pytorch.child import bridge_module, calibrate, converter_main, first_line, traceable
from bench.runners.pytorch.conversion import source_module

# XNNPACK's own recommended int8 recipe: symmetric int8, weights per output channel, activations per tensor.
INT8_OPTIONS = {"quantizer": "XNNPACKQuantizer (PT2E: prepare_pt2e / convert_pt2e)",
                "config": "get_symmetric_quantization_config(is_per_channel=True)",
                "recipe": "PT2E with XNNPACKQuantizer: int8 symmetric, weights per output channel, activations per "
                          "tensor, static (calibrated); every op XNNPACK's quantizer annotates, nothing skipped"}
QUANTIZE_OPS = ("quantize_per_tensor", "quantize_per_channel", "quantize_affine")


def _op_name(target: Any) -> str:
    """'aten.convolution.default' for edge and aten ops, the function name for others (getitem)."""
    name = getattr(target, "__name__", None) or str(target)
    return str(name).split(":")[0].strip()


def delegation(edge: Any) -> dict[str, Any]:
    """How much of the lowered graph XNNPACK took: ops inside delegates vs ops left to ExecuTorch's portable
    kernels (counted before ``to_executorch``, whose memory-planning ops are not the model's)."""
    from executorch.exir.lowered_backend_module import LoweredBackendModule

    gm = edge.exported_program().graph_module
    delegated: Counter[str] = Counter()
    backends: Counter[str] = Counter()
    for _, child in gm.named_children():
        if isinstance(child, LoweredBackendModule):
            backends[child.backend_id] += 1
            delegated.update(_op_name(n.target) for n in child.original_module.graph.nodes if n.op == "call_function")
    portable = Counter(_op_name(n.target) for n in gm.graph.nodes if n.op == "call_function"
                       and n.target is not operator.getitem and _op_name(n.target) != "executorch_call_delegate")
    state = "none" if not delegated else "partial" if portable else "full"
    quantized = sum(c for op, c in (delegated + portable).items() if any(q in op for q in QUANTIZE_OPS))
    return {"delegation": state, "delegates": dict(backends), "delegated_ops": sum(delegated.values()),
            "portable_ops": sum(portable.values()), "portable_op_kinds": dict(sorted(portable.items())),
            "delegated_op_kinds": dict(sorted(delegated.items())), "quantize_ops": quantized}


def _quantized(module: torch.nn.Module, args: tuple, case: Case, names: list[str]) -> torch.nn.Module:
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(torch.export.export(module, args).module(), quantizer)
    calibrate(prepared, case, names)
    return convert_pt2e(prepared)


def lower(case: Case, src: Path, out: Path) -> dict[str, Any]:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    source = source_module(case.model, src)  # the user's factory, or onnx2torch's bridge
    t = traceable(source, case, src)
    module = t.module
    if case.precision == "int8":
        module = _quantized(module, t.args, case, t.names)
    try:
        program = torch.export.export(module, t.args)
    except Exception as exc:  # torch.export raises many kinds (UserError, GuardOnDataDependentSymNode, ...)
        where = bridge_module(exc.__traceback__)
        raise ConversionFailed(f"torch.export failed{_in_bridge(where)}: {type(exc).__name__}: {first_line(exc)}",
                               ops=[where] if where else []) from None
    edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    facts = delegation(edge)
    (out / "model.pte").write_bytes(edge.to_executorch().buffer)
    return {**facts, "input_names": t.names, "output_leaves": t.leaves, "made_static": t.made_static,
            "conversion_report": t.report, "executorch": importlib.metadata.version("executorch")}


def _in_bridge(where: str | None) -> str:
    """Where an export failed when onnx2torch's module was the one traced: the bridge's failure, not ExecuTorch's."""
    return f" in {where}, a module of onnx2torch (the ONNX -> PyTorch bridge, not ExecuTorch)" if where else ""


def main(argv: list[str]) -> int:
    return converter_main(argv, lower, "lowering.json", lambda where: f"ExecuTorch lowering failed{_in_bridge(where)}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
