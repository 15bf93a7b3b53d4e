"""MNN int8: full post-training quantization with the quantizer the MNN wheel compiles in (``_tools.mnnquant``,
the library behind ``quantized.out``), on the shared calibration set, then read back from the quantized file.

``_tools.mnnquant`` takes ONE argv-style list in MNN 3.6.1 (the wheel's ``MNN/tools/mnnquant.py`` passes three
strings and aborts). It runs in a subprocess that cannot import ``MNN`` (whose Python tools load its telemetry)
nor open sockets. Calibration uses MNN's "sequence" input mode: one folder per sample with ``input.json`` (names
and shapes) and one ``NAME.txt`` of values per input, so any model's inputs (not only images) are fed as they are.
The read-back converts the quantized model to JSON with the wheel's converter and counts the convolutions whose
activations are quantized too (``quanParameter.scaleIn``): that is what makes MNN's CPU backend run int8 kernels.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.case import Case
from bench.execution.calibration import CALIBRATION_SAMPLES, calibration_sha256
from bench.execution.convert import ConversionFailed, converter_deadline, first_lines, run_converter

from .recipe import Recipe

# Stated, and part of the cache key with the model's recipe (recipe.py: the activation method and the layers kept
# float): MAX_ABS weights, 8 bits (below 8 the wheel's 7-bit x86 kernel gives wrong output: never lower on x86).
QUANT_CONFIG = {"weight_quantize_method": "MAX_ABS", "quant_bits": 8, "input_type": "sequence",
                "used_sample_num": CALIBRATION_SAMPLES}
INT8_FILE = "int8.json"
_BLOCK = """\
import sys
for name in ("MNN", "socket", "ssl", "urllib.request", "http.client"):
    sys.modules[name] = None
import _tools
"""
QUANT_SCRIPT = _BLOCK + "_tools.mnnquant(['quantized.out', sys.argv[1], sys.argv[2], sys.argv[3]])\n"
DUMP_SCRIPT = _BLOCK + ("_tools.mnnconvert(['mnnconvert', '-f', 'MNN', '--modelFile', sys.argv[1], '--JsonFile', "
                         "sys.argv[2]])\n")
# MNN's JSON dump writes C's nan / inf, which JSON lacks; read as NaN / Infinity and counted.
NON_FINITE = re.compile(r"(?<![\w.])-?(?:nan|inf)(?![\w.])")
CONV_TYPES = ("Convolution", "ConvolutionDepthwise", "Deconvolution", "DeconvolutionDepthwise")


def options(samples: list[dict[str, np.ndarray]], recipe: Recipe) -> dict[str, Any]:
    return {**QUANT_CONFIG, **recipe.options(), "recipe": recipe.describe(),
            "calibration_sha256": calibration_sha256(samples)}


def _write_calibration(samples: list[dict[str, np.ndarray]], folder: Path) -> list[dict[str, Any]]:
    """One folder per calibration sample, as MNN's sequence mode reads them; returns the inputs' names and shapes."""
    declared = []
    for i, sample in enumerate(samples):
        sample_dir = folder / f"{i:04d}"
        sample_dir.mkdir(parents=True)
        declared = [{"name": name, "shape": list(array.shape) or [1]} for name, array in sample.items()]
        (sample_dir / "input.json").write_text(json.dumps({"inputs": declared}))
        for name, array in sample.items():
            np.savetxt(sample_dir / f"{name}.txt", np.asarray(array, dtype=np.float64).reshape(-1), fmt="%.9g")
    return declared


def quantize(case: Case, samples: list[dict[str, np.ndarray]], fp32_model: Path, target: Path,
             recipe: Recipe) -> dict[str, int]:
    """The int8 model at ``target`` calibrated on ``samples`` (``calibration_inputs(case)``) with ``recipe``, and
    what the read-back found in it."""
    with tempfile.TemporaryDirectory(prefix="mnnquant-") as work:
        calibration = Path(work) / "calibration"
        inputs = _write_calibration(samples, calibration)
        config = Path(work) / "config.json"
        settings = {**QUANT_CONFIG, "feature_quantize_method": recipe.method, "format": "RGB",
                    "path": str(calibration), "inputs": inputs}
        if recipe.float_convolutions:
            settings["skip_quant_op_names"] = _skipped(case, fp32_model, Path(work), recipe)
        config.write_text(json.dumps(settings))
        cmd = [sys.executable, "-c", QUANT_SCRIPT, str(fp32_model), str(target), str(config)]
        output = run_converter(cmd, converter_deadline(case, part=0.4), cwd=Path(work))
        if not target.is_file() or target.stat().st_size == 0:
            raise ConversionFailed(f"MNN's quantizer wrote no model: {first_lines(output, 6)}")
        counts = read_back(case, target, Path(work), recipe.float_convolutions)
    if counts["kept_float"] != len(recipe.float_convolutions):
        raise ConversionFailed(f"MNN's quantizer was told to keep {len(recipe.float_convolutions)} convolution(s) "
                               f"float ({', '.join(recipe.float_convolutions)}) and kept {counts['kept_float']}: "
                               "their weight channels would be zeroed")
    (target.parent / INT8_FILE).write_text(json.dumps(counts))
    return counts


def _skipped(case: Case, fp32_model: Path, work: Path, recipe: Recipe) -> list[str]:
    """KL's ``skip_quant_op_names``: every op of the float model but its convolutions, and the convolutions the
    recipe keeps float."""
    ops = _ops(_dump(case, fp32_model, work, part=0.15)[0])
    return [op["name"] for op in ops if op.get("type") not in CONV_TYPES and op.get("name")] + \
        list(recipe.float_convolutions)


def _dump(case: Case, model: Path, work: Path, part: float) -> tuple[dict[str, Any], int]:
    """The MNN model as JSON (MNNConvert --JsonFile), and how many non-finite numbers it holds."""
    dump = work / f"{model.stem}.json"
    run_converter([sys.executable, "-c", DUMP_SCRIPT, str(model), str(dump)], converter_deadline(case, part=part),
                  cwd=work)
    text, bad_numbers = NON_FINITE.subn(lambda m: {"nan": "NaN", "-nan": "NaN", "inf": "Infinity",
                                                     "-inf": "-Infinity"}[m.group(0)], dump.read_text())
    return json.loads(text), bad_numbers


def _ops(net: dict[str, Any]) -> list[dict[str, Any]]:
    # control flow (silero-vad's If) puts convolutions in subgraphs: those count too
    return [*net["oplists"], *(op for graph in net.get("subgraphs") or [] for op in graph.get("nodes") or [])]


def read_back(case: Case, model: Path, work: Path, keep_float: tuple[str, ...] = ()) -> dict[str, int]:
    """Convolutions in a quantized file: how many have int8 weights, how many int8 activations as well, and how
    many of ``keep_float`` are there with neither."""
    net, bad_numbers = _dump(case, model, work, part=0.15)
    convs = [op for op in _ops(net) if op.get("type") in CONV_TYPES]
    quantized = [_quan(op) for op in convs if _quan(op)]
    # MNN's quantizer can write NaN scales (seen on PP-OCRv4 rec): the row's parity check judges the outputs
    return {"convolutions": len(convs), "int8_convolutions": sum(1 for q in quantized if q.get("scaleIn")),
            "int8_weight_convolutions": sum(1 for q in quantized if q.get("buffer") and q.get("aMaxOrBits") == 8),
            "kept_float": sum(1 for op in convs if op.get("name") in keep_float and not _quan(op)),
            "non_finite_numbers": bad_numbers}


def _quan(op: dict[str, Any]) -> dict[str, Any]:
    """A convolution's quantization block: int8 weights in ``buffer`` (aMaxOrBits bits); activation scales in
    ``scaleIn`` / ``scaleOut`` (0 when only the weights are quantized)."""
    return (op.get("main") or {}).get("quanParameter") or {}
