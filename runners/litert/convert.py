"""ONNX -> ``.tflite`` through onnx2torch and litert-torch, run by the runner as a converter subprocess:

    python -m bench.runners.litert.convert CASE_JSON SRC_ONNX OUT_DIR

onnx2torch (as the PyTorch runner converts) -> constant shape tensors made static (the ExecuTorch runner's
``static.py``, for torch.export traces the module here too) -> int8 only: PT2E quantization with litert-torch's
quantizer, calibrated on the shared calibration set -> ``litert_torch.convert`` at the case's input shapes.
Writes ``model.tflite`` and ``export.json`` (which input and output is which), or ``error.json`` (message and ops)
and exits 1. A failure of the bridge (onnx2torch, or a module of it that torch.export cannot trace) says it is the
bridge's, not LiteRT's.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path
from typing import Any

import torch

from bench.case import Case
from bench.execution.convert import ConversionFailed
from bench.runners.pytorch.child import bridge_module, calibrate, converter_main, first_line, traceable
from bench.runners.pytorch.conversion import SourceModule, source_module

BRIDGE = "the ONNX -> PyTorch bridge (onnx2torch)"


def _quantized(module: torch.nn.Module, args: tuple, case: Case, names: list[str]) -> tuple[torch.nn.Module, Any]:
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
    prepared = prepare_pt2e(torch.export.export(module, args).module(), quantizer)
    calibrate(prepared, case, names)
    return convert_pt2e(prepared, fold_quantize=False), QuantConfig(pt2e_quantizer=quantizer)


def _source(case: Case, src: Path) -> SourceModule:
    """The user's factory (``bench run --torch``), or onnx2torch's module of the ONNX file, whose failures are the
    bridge's and say so."""
    try:
        return source_module(case.model, src)
    except ConversionFailed as exc:
        if case.model.torch_factory:
            raise
        raise ConversionFailed(f"{BRIDGE} failed, not LiteRT: {exc}", ops=exc.ops) from None


def convert(case: Case, src: Path, out: Path) -> dict[str, Any]:
    source = _source(case, src)
    import litert_torch  # after the bridge: a model it refuses costs no jax import

    t = traceable(source, case, src)
    module = t.module
    quant_config = None
    if case.precision == "int8":
        module, quant_config = _quantized(module, t.args, case, t.names)
    try:
        edge = litert_torch.convert(module, t.args, quant_config=quant_config)
    except Exception as exc:  # torch.export and the lowering raise many kinds: the row says whose failure it is
        where = bridge_module(exc.__traceback__)
        whose = (f"{BRIDGE} made a module ({where}) that litert-torch's torch.export cannot trace, not LiteRT's "
                 "failure" if where else "litert-torch failed")
        raise ConversionFailed(f"{whose}: {type(exc).__name__}: {first_line(exc)}",
                               ops=[where] if where else []) from None
    edge.export(str(out / "model.tflite"))
    return {"input_names": t.names, "output_leaves": t.leaves, "made_static": t.made_static,
            "conversion_report": t.report,
            "litert_torch": importlib.metadata.version("litert-torch")}


def _failed(where: str | None) -> str:
    return f"LiteRT conversion failed{f' in {where} (a module of {BRIDGE})' if where else ''}"


def main(argv: list[str]) -> int:
    return converter_main(argv, convert, "export.json", _failed)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
