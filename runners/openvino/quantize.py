"""OpenVINO int8: NNCF post-training quantization, run by the runner as a converter subprocess with a deadline:

    python -m bench.runners.openvino.quantize CASE_JSON SRC_ONNX OUT_DIR MODEL_TYPE PRESET

Reads the ONNX file with the case's static shapes (as the runner does), calibrates on the shared calibration set
(``bench.execution.calibration``, every sample at the case's batch) with the recipe the runner chose
(``recipe.py``: MODEL_TYPE ``TRANSFORMER`` or ``default``, PRESET an ``nncf.QuantizationPreset`` name), and writes
``model.xml`` / ``model.bin``. When the model cannot be read or quantized it writes ``OUT_DIR/error.json`` (message
and failed ops: the same words as the fp32 row where OpenVINO's ONNX frontend refuses the model) and exits 1.
Telemetry: the runner module is imported first, so ``openvino_telemetry`` cannot load and NNCF falls back to its
stub (NNCF_CI is set as well); the quantizer sends nothing.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

# Statements, not imports, so that no import sorter can move them below `import nncf` (it once did, and NNCF's
# `import openvino` then sent OpenVINO's event and wrote ~/intel/openvino_ga_cid; tests/test_privacy.py caught it).
os.environ.setdefault("NNCF_CI", "1")  # NNCF's own opt-out
sys.modules.setdefault("openvino_telemetry", None)  # the runner's block: ovc and NNCF fall back to their stubs

import nncf  # noqa: E402
import openvino as ov  # noqa: E402

from bench.case import Case  # noqa: E402
from bench.contract import ConversionFailed  # noqa: E402
from bench.execution.calibration import at_batch, calibration_inputs  # noqa: E402
from bench.runners.openvino.runner import read_static  # noqa: E402


def quantize(case: Case, src: Path, out: Path, model_type: str | None, preset: str) -> None:
    shapes = {spec.name: tuple(spec.shape_at(case.batch)) for spec in case.model.inputs}
    samples = [at_batch(s, case) for s in calibration_inputs(case)]
    model = read_static(src, shapes)  # ConversionFailed, in the fp32 row's words, where the frontend refuses it
    try:
        quantized = nncf.quantize(model, nncf.Dataset(samples), subset_size=len(samples),
                                  model_type=nncf.ModelType[model_type] if model_type else None,
                                  preset=nncf.QuantizationPreset[preset])
    except Exception as exc:  # NNCF raises KeyError, RuntimeError... from deep inside: one line on the row
        traceback.print_exc(limit=8)  # the converter's output, for whoever debugs it
        raise ConversionFailed(f"nncf {nncf.__version__} quantize (model_type {model_type or 'default'}, preset "
                               f"{preset}) failed: {type(exc).__name__}: {exc}") from None
    ov.save_model(quantized, str(out / "model.xml"))
    weights = out / "model.bin"
    if weights.stat().st_size == 0:  # a graph without constants: read_model needs no .bin, the cache no empty file
        weights.unlink()


def main(argv: list[str]) -> int:
    case_file, src, out, model_type, preset = argv
    try:
        quantize(Case.from_json(Path(case_file).read_text()), Path(src), Path(out),
                 None if model_type == "default" else model_type, preset)
    except ConversionFailed as exc:
        (Path(out) / "error.json").write_text(json.dumps({"message": str(exc), "ops": exc.ops}))
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
