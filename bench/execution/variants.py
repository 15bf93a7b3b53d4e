"""Reduced-precision ONNX variants made with ONNX Runtime's own tools, shared by the runners that take ONNX (ONNX
Runtime's int8 and fp16, TensorRT's fp16 on strongly typed builds). :func:`cached_variant` runs the maker as a
deadline-bound converter subprocess and caches its file like any conversion:

    python -m bench.execution.variants int8|fp16 CASE_JSON SRC DST

int8: static quantization (QDQ format, per-channel int8 weights, uint8 activations) calibrated with MinMax on
16 of the zoo's realistic sample inputs (other seeds than the parity inputs, so calibration never sees them).
Before quantizing, weights stored as Constant nodes become initializers and an opset below 13 is raised to 13:
the quantizer treats only initializers as weights (PP-OCR's export stores every weight as a Constant, which it
then quantized per tensor as an activation: exact match 0.155), and per-channel DequantizeLinear needs opset 13
(docs/INT8_RECIPES.md).
fp16: float16 conversion with fp32 model inputs and outputs kept (Cast nodes at the edges).
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.case import Case
from bench.execution.calibration import CALIBRATION_SAMPLES, calibration_inputs, calibration_sha256
from bench.execution.convert import Conversion, cached_artifact, converter_deadline, run_converter
from bench.files import NAME_MAX

INT8_OPTIONS = {"format": "QDQ", "per_channel": True, "weights": "int8", "activations": "uint8",
                "calibration": f"MinMax over {CALIBRATION_SAMPLES} sample inputs",
                "prepare": "Constant weights -> initializers; opset raised to 13 where lower",
                # the row's quant_recipe: the same recipe for every model (docs/INT8_RECIPES.md says why)
                "recipe": f"ONNX Runtime quantize_static, QDQ: weights int8 symmetric per channel, activations uint8 "
                          f"asymmetric per tensor, MinMax ranges over {CALIBRATION_SAMPLES} calibration samples; every "
                          "op type the quantizer supports, nothing skipped by bench (Constant weights made "
                          "initializers first, opset raised to 13 for per-channel)"}
PER_CHANNEL_OPSET = 13
INFERRED = "-inferred"  # onnxruntime.quantization.quant_utils.load_model_with_shape_infer's suffix
FP16_OPTIONS = {"keep_io_types": True}


def make_int8(case: Case, src: Path, dst: Path) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.samples = iter(calibration_inputs(case))

        def get_next(self):
            return next(self.samples, None)

    quantize_static(
        str(_prepared(src, Path.cwd())), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
        weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
    )


def _prepared(src: Path, work: Path) -> Path:
    """``src`` as the quantizer needs it (see the module docstring), written to ``work``; ``src`` itself when it
    needs nothing."""
    import onnx
    from onnx import version_converter

    model = onnx.load(str(src))
    moved = constants_to_initializers(model.graph)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), PER_CHANNEL_OPSET)
    if not moved and opset >= PER_CHANNEL_OPSET and _quantizer_can_name(src):
        return src
    if opset < PER_CHANNEL_OPSET:
        model = version_converter.convert_version(model, PER_CHANNEL_OPSET)
    target = work / "prepared.onnx"
    onnx.save(model, str(target))
    return target


def _quantizer_can_name(src: Path) -> bool:
    """ONNX Runtime's quantizer writes ``<stem>-inferred.onnx`` beside the model it is given: a model whose own name
    is near the filesystem's limit (a user's 250-byte file name) gets a copy under a short name instead."""
    return len(os.fsencode(f"{src.stem}{INFERRED}{src.suffix}")) <= NAME_MAX


def constants_to_initializers(graph) -> int:
    """Move every tensor-valued Constant node of the main graph into an initializer of the same name (the values
    and the graph's meaning unchanged); returns how many."""
    import onnx

    kept, moved = [], 0
    for node in graph.node:
        if node.op_type == "Constant" and [a.name for a in node.attribute] == ["value"]:
            tensor = onnx.TensorProto()
            tensor.CopyFrom(node.attribute[0].t)
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
            moved += 1
        else:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    return moved


def make_fp16(case: Case, src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnx.save(convert_float_to_float16(onnx.load(str(src)), keep_io_types=True), str(dst))


MAKERS = {"int8": make_int8, "fp16": make_fp16}
CONVERTERS: dict[str, tuple[str, dict[str, Any]]] = {
    "int8": ("onnxruntime.quantization", INT8_OPTIONS), "fp16": ("onnxruntime.transformers.float16", FP16_OPTIONS)}


def _ort_version() -> str:
    for distribution in ("onnxruntime", "onnxruntime-gpu"):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def cached_variant(case: Case, precision: str, onnx_path: Path, part: float = 1.0) -> tuple[Path, Conversion]:
    """The ``precision`` variant of ``onnx_path``, from the cache or made now; ``part``: its share of the
    conversion deadline (see ``bench.execution.convert.converter_deadline``)."""
    converter, options = CONVERTERS[precision]
    if precision == "int8":  # the calibration set is part of what was made: in the cache key and on the row
        options = {**options, "calibration_sha256": calibration_sha256(calibration_inputs(case))}

    def produce(folder: Path) -> None:
        with tempfile.TemporaryDirectory() as work:  # the quantizer leaves scratch files in its cwd
            case_file = Path(work) / "case.json"
            case_file.write_text(case.to_json())
            cmd = [sys.executable, "-m", "bench.execution.variants", precision, str(case_file), str(onnx_path),
                   str(folder / "model.onnx")]
            run_converter(cmd, timeout_s=converter_deadline(case, part), cwd=Path(work))

    folder, conversion = cached_artifact(case, Conversion(converter, _ort_version(), options), produce)
    return folder / "model.onnx", conversion


if __name__ == "__main__":
    kind, case_file, src, dst = sys.argv[1:5]
    MAKERS[kind](Case.from_json(Path(case_file).read_text()), Path(src), Path(dst))
