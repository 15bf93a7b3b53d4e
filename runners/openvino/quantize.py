"""OpenVINO int8: NNCF post-training quantization, run by the runner as a converter subprocess with a deadline:

    python -m bench.runners.openvino.quantize CASE_JSON SRC_ONNX OUT_DIR

Reads the ONNX file with the case's static shapes (as the runner does), calibrates on the shared calibration set
(``bench.execution.calibration``, every sample at the case's batch), and writes ``model.xml`` / ``model.bin``.
Telemetry: the runner module is imported first, so ``openvino_telemetry`` cannot load and NNCF falls back to its
stub (NNCF_CI is set as well); the quantizer sends nothing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Statements, not imports, so that no import sorter can move them below `import nncf` (it once did, and NNCF's
# `import openvino` then sent OpenVINO's event and wrote ~/intel/openvino_ga_cid; tests/test_privacy.py caught it).
os.environ.setdefault("NNCF_CI", "1")  # NNCF's own opt-out
sys.modules.setdefault("openvino_telemetry", None)  # the runner's block: ovc and NNCF fall back to their stubs

import nncf  # noqa: E402
import openvino as ov  # noqa: E402

from bench.case import Case  # noqa: E402
from bench.execution.calibration import at_batch, calibration_inputs  # noqa: E402
from bench.runners.openvino.runner import read_static  # noqa: E402


def quantize(case: Case, src: Path, out: Path) -> None:
    shapes = {spec.name: tuple(spec.shape_at(case.batch)) for spec in case.model.inputs}
    samples = [at_batch(s, case) for s in calibration_inputs(case)]
    model = read_static(src, shapes)
    quantized = nncf.quantize(model, nncf.Dataset(samples), subset_size=len(samples))
    ov.save_model(quantized, str(out / "model.xml"))
    weights = out / "model.bin"
    if weights.stat().st_size == 0:  # a graph without constants: read_model needs no .bin, the cache no empty file
        weights.unlink()


if __name__ == "__main__":
    case_file, src, out = sys.argv[1:4]
    quantize(Case.from_json(Path(case_file).read_text()), Path(src), Path(out))
