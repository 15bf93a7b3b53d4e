"""MNN on the CPU through its Module API (``MNN.nn``), on a model converted by the converter inside the wheel.

Conversion runs the compiled ``_tools`` module in a subprocess, never ``MNN.tools.mnnconvert`` or the
``mnnconvert`` script: those import ``MNN/tools/utils/log.py``, which pip-installs a logging SDK and sends the
machine id to a remote service. The subprocess makes ``import MNN`` fail, so that path cannot load.

The Module API is used (not the Interpreter/Session API) because only it runs models with control flow
(silero-vad's ``If`` and LSTM become subgraphs: the Session API refuses them).
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import MNN
import MNN.expr as F
import MNN.nn as nn
import numpy as np

from bench.contract import OpTime
from bench.cpu import Cpu
from bench.execution.calibration import calibration_inputs
from bench.execution.convert import (
    Conversion,
    ConversionFailed,
    cached_artifact,
    converter_deadline,
    first_lines,
    run_converter,
)
from bench.execution.graph import graph_io
from bench.plugin import Runner, Unsupported

from . import SPEC, build, quantize, recipe

MODEL_FILE = "model.mnn"
OUTPUTS_FILE = "outputs.json"
CONVERTER = "MNNConvert (_tools.mnnconvert, the compiled converter in the MNN wheel)"
# --useGeluApproximation defaults to 1: the converter turns exact (erf) GELU into the tanh approximation,
# 4.7e-4 max error on [-6, 6]. No --fp16 (weights stay fp32) and, but for int8_weights, no weight quantization.
CONVERTER_ARGS = ("-f", "ONNX", "--bizCode", "bench", "--useGeluApproximation", "0")
# int8_weights: symmetric, per output channel (the converter's defaults; asymmetric measured worse on PP-OCRv4 det:
# cosine 0.13 against symmetric's 0.45 - both far outside the tolerance, and the row says so)
WEIGHT_QUANT_ARGS = ("--weightQuantBits", "8")
WEIGHT_QUANT_OPTIONS = {"weightQuantBits": 8, "weightQuantAsymmetric": False, "weightQuantBlock": "per channel"}
CONVERSION_OPTIONS = {
    "framework": "ONNX",
    "bizCode": "bench",
    "useGeluApproximation": 0,
    "fp16_weights": False,
    "weightQuantBits": 0,
    "keepInputFormat": "converter default (true)",
    "optimizeLevel": "converter default (1)",
}
# MNN must not be imported in the converter process (its tools import the telemetry module); no sockets either.
# _tools.mnnconvert returns True even when conversion fails: success is judged by the file it writes.
CONVERT_SCRIPT = """\
import sys
for name in ("MNN", "socket", "ssl", "urllib.request", "http.client"):
    sys.modules[name] = None
import _tools
_tools.mnnconvert(["mnnconvert", "--modelFile", sys.argv[1], "--MNNModel", sys.argv[2], *sys.argv[3:]])
"""
# BackendConfig::PrecisionMode name, and the config string every pymnn version parses ("high"/"low")
# int8: the layers left float run fp32; int8_weights: the weights become float at load, all arithmetic fp32
PRECISION_MODES = {"fp32": ("High", "high"), "fp16": ("Low", "low"), "int8": ("High", "high"),
                   "int8_weights": ("High", "high")}
QUANTIZER = "mnnquant (_tools.mnnquant, MNN's post-training quantizer in the wheel)"
INPUT_DTYPES = {"float": np.float32, "int": np.int32, "uint8": np.uint8, "int8": np.int8, "double": np.float64}
MNN_DTYPES = {np.dtype(np.float32): F.float, np.dtype(np.int32): F.int, np.dtype(np.uint8): F.uint8,
              np.dtype(np.int8): F.int8, np.dtype(np.float64): F.double}
UNSUPPORTED_OPS = re.compile(r"Not Support:\s*(.+)")
# numpy dtype -> the Session API's tensor type, for the profile pass's inputs (int64 passes as int32, as in bind)
HALIDE_TYPES = {np.dtype(np.float32): "Halide_Type_Float", np.dtype(np.int32): "Halide_Type_Int",
                np.dtype(np.int64): "Halide_Type_Int", np.dtype(np.uint8): "Halide_Type_Uint8"}


def mnn_version() -> str:
    return metadata.version("MNN")


def _ops_named(output: str) -> list[str]:
    """Op types from the converter's "These Op Not Support: ONNX::A ONNX::B" lines."""
    ops = []
    for match in UNSUPPORTED_OPS.finditer(output):
        ops += [token.rpartition("::")[2] for token in match.group(1).split()]
    return list(dict.fromkeys(ops))


def _error_lines(output: str) -> str:
    lines = [line for line in output.splitlines() if re.search(r"error|fail|not support", line, re.I)]
    return first_lines("\n".join(lines) or output)


def _declared_outputs(onnx_path: Path) -> dict[str, Any] | None:
    """Names, dtypes and static dims (None where symbolic) of the ONNX graph's outputs."""
    try:
        return graph_io(onnx_path).output_types
    except Exception:  # the converter accepted it; without declared outputs, MNN's shapes are reported as they are
        return None


def _fit_shape(array: np.ndarray, dims: list[int | None] | None) -> np.ndarray:
    """MNN sometimes adds or drops size-1 axes (silero-vad's sequence variant: LSTM state [1,128,1,1] for ONNX's
    [1,?,128]). Reshape to the ONNX shape only when both are known and equal once the size-1 axes are dropped:
    that never moves an element. One symbolic ONNX dim is solved from the element count (like reshape's -1).
    Anything else stays as MNN gave it, and the parity check reports it."""
    if dims is None or dims.count(None) > 1:
        return array
    if None in dims:
        known = int(np.prod([d for d in dims if d is not None]))
        if known == 0 or array.size % known:
            return array
        dims = [array.size // known if d is None else d for d in dims]
    if [d for d in array.shape if d != 1] != [d for d in dims if d != 1]:
        return array
    return array.reshape(dims)


class MnnRunner(Runner):
    timed_region = (
        "Module.onForward(input Vars written in bind): input shape check (no resize after the first call), "
        "MNN's own input layout conversion, the session run; outputs stay in MNN's buffers (copied after timing)"
    )

    # --- conversion -------------------------------------------------------------------------------------

    def convert(self, onnx_path: Path) -> Path:
        weights_only = self.case.precision == "int8_weights"
        options = {**CONVERSION_OPTIONS, **WEIGHT_QUANT_OPTIONS} if weights_only else CONVERSION_OPTIONS
        args = (*CONVERTER_ARGS, *WEIGHT_QUANT_ARGS) if weights_only else CONVERTER_ARGS
        conversion = Conversion(CONVERTER, mnn_version(), options)
        folder, self.conversion = cached_artifact(
            self.case, conversion, lambda tmp: self._produce(onnx_path, tmp, args, weights_only))
        return self._quantized(folder, onnx_path) if self.case.precision == "int8" else folder

    def _quantized(self, fp32: Path, onnx_path: Path) -> Path:
        """int8: the fp32 conversion quantized by MNN's own quantizer with the model's recipe (recipe.py), cached
        beside it (its options name both). The row's options also say what bounds the result (``limited_by``):
        MNN's tiny-channel defect (a fact of the model, so in the key) and this MNN build's kernels (of the
        library loaded here, so not in the key)."""
        samples = calibration_inputs(self.case)  # once: for the cache key's hash and, on a miss, to calibrate
        chosen = recipe.choose(onnx_path)
        options = {**quantize.options(samples, chosen), "source_conversion": CONVERSION_OPTIONS}

        def produce(tmp: Path) -> None:
            quantize.quantize(self.case, samples, fp32 / MODEL_FILE, tmp / MODEL_FILE, chosen)
            (tmp / OUTPUTS_FILE).write_text((fp32 / OUTPUTS_FILE).read_text())

        conversion = Conversion(QUANTIZER, mnn_version(), options)
        folder, done = cached_artifact(self.case, conversion, produce)
        limits = [limit for limit in (chosen.limit(), build.build_limit(self._library(), Cpu.here())) if limit]
        row_options = {**done.options, "limited_by": "; ".join(limits)} if limits else done.options
        self.conversion = dataclasses.replace(done, options=row_options)
        return folder

    def _library(self) -> dict[str, Any]:
        """The MNN library this process loaded and the int8 kernels it holds (read once per worker)."""
        if not hasattr(self, "_library_facts"):
            self._library_facts = build.library_facts()
        return self._library_facts

    def _produce(self, onnx_path: Path, folder: Path, args: tuple[str, ...], weights_only: bool) -> None:
        target = folder / MODEL_FILE
        part = 0.75 if weights_only else 1.0  # the rest for the read-back
        cmd = [sys.executable, "-c", CONVERT_SCRIPT, str(onnx_path), str(target), *args]
        with tempfile.TemporaryDirectory(prefix="mnnconvert-") as scratch:  # whatever it writes beside itself
            output = run_converter(cmd, converter_deadline(self.case, part), cwd=Path(scratch))
            if "Converted Failed" in output or not target.is_file() or target.stat().st_size == 0:
                target.unlink(missing_ok=True)
                raise ConversionFailed(f"MNNConvert wrote no model: {_error_lines(output)}", ops=_ops_named(output))
            if weights_only:  # what the converter did is read from the file it wrote, like int8's
                counts = quantize.read_back(self.case, target, Path(scratch))
                (folder / quantize.INT8_FILE).write_text(json.dumps(counts))
        (folder / OUTPUTS_FILE).write_text(json.dumps(_declared_outputs(onnx_path)))

    # --- phases -----------------------------------------------------------------------------------------

    def load(self, artifact: Path) -> None:
        # The Module API parses the file when the module is created, which needs the runtime (threads,
        # precision): that is in prepare. Here: read the file and the ONNX outputs recorded at conversion.
        self._path = artifact / MODEL_FILE
        self._path.read_bytes()
        self._declared = json.loads((artifact / OUTPUTS_FILE).read_text())
        quantized = self.case.precision in ("int8", "int8_weights")
        self._int8 = json.loads((artifact / quantize.INT8_FILE).read_text()) if quantized else None
        self._refuse_a_float_model()

    def _refuse_a_float_model(self) -> None:
        """A quantizer that silently quantized nothing gives a float model: that row is not int8."""
        if self.case.precision == "int8" and not self._int8["int8_convolutions"]:
            raise Unsupported(f"MNN's quantizer left no convolution with int8 activations ({self._int8}): an int8 "
                              "row would be a float row")
        if self.case.precision == "int8_weights" and not self._int8["int8_weight_convolutions"]:
            raise Unsupported(f"MNN's converter stored no convolution's weights as int8 ({self._int8}): an "
                              "int8_weights row would be an fp32 row")

    def _runtime_config(self) -> dict[str, Any]:
        if self.case.precision not in PRECISION_MODES:
            raise ValueError(f"MNN runner has no precision {self.case.precision!r}")
        declared = SPEC.cpu_precision(self.case.precision, Cpu.here())
        if not declared.ok:
            raise Unsupported(declared.reason)
        return {"backend": "CPU", "numThread": self.case.threads, "precision": PRECISION_MODES[self.case.precision][1]}

    def prepare(self) -> None:
        self._config = self._runtime_config()
        self._mode = PRECISION_MODES[self.case.precision][0]
        self._runtime = nn.create_runtime_manager((self._config,))
        self._input_names = [spec.name for spec in self.case.model.inputs]
        output_names = list(self._declared) if self._declared else []
        self.module = nn.load_module_from_file(
            str(self._path), self._input_names, output_names, runtime_manager=self._runtime,
            thread_num=self.case.threads, precision_mode=getattr(F.PrecisionMode, self._mode),
        )
        info = self.module.get_info()
        self.output_names = list(info["outputNames"])
        self._input_dtypes = [INPUT_DTYPES.get(str(i.dtype).rpartition(".")[2]) for i in info.get("inputs", [])]
        self._model_info = {k: v for k, v in info.items() if k not in ("inputs",)}

    def _input_var(self, array: np.ndarray, dtype: type | None) -> F.Var:
        if dtype is None:  # the module did not say: MNN has no int64, everything else passes as is
            dtype = np.int32 if array.dtype == np.int64 else array.dtype.type
        converted = array.astype(dtype)
        if array.dtype.kind in "iu" and not np.array_equal(converted, array):
            raise ValueError(f"input values do not fit MNN's {np.dtype(dtype).name} input")
        var = F.placeholder(list(array.shape), F.NCHW, MNN_DTYPES[np.dtype(dtype)])
        var.write(np.ascontiguousarray(converted))  # copies into MNN's tensor
        return var

    def bind(self, inputs: dict[str, np.ndarray]) -> None:
        dtypes = self._input_dtypes or [None] * len(self._input_names)
        pairs = zip(self._input_names, dtypes, strict=True)
        self._vars = [self._input_var(inputs[name], dtype) for name, dtype in pairs]
        self._forward = self.module.onForward
        self._results: list = []

    def infer(self) -> None:
        self._results = self._forward(self._vars)

    def outputs(self) -> dict[str, np.ndarray]:
        if len(self._results) != len(self.output_names):  # onForward returns [] when the session fails
            raise RuntimeError(f"MNN returned {len(self._results)} outputs, the model has {len(self.output_names)}")
        self._reshaped: dict[str, list] = {}
        arrays = {}
        for name, var in zip(self.output_names, self._results, strict=True):
            if var.data_format != F.NCHW:  # NC4HW4 (packed channels) or NHWC: back to ONNX's layout
                var = F.convert(var, F.NCHW)
            array = np.array(var.read(), copy=True)  # read() is a view into MNN's buffer
            declared = (self._declared or {}).get(name, {})
            if declared.get("dtype"):
                array = array.astype(declared["dtype"], copy=False)
            fitted = _fit_shape(array, declared.get("dims"))
            if fitted.shape != array.shape:
                self._reshaped[name] = [list(array.shape), list(fitted.shape)]
            arrays[name] = fitted
        return arrays

    def profile(self, inputs: dict[str, np.ndarray], runs: int) -> list[OpTime]:
        """MNN's per-op callbacks, which only its Session API has (the Module API the case ran through has none):
        the same converted file in an Interpreter session with the case's config, ``runSessionWithCallBackInfo``
        timing each op between its begin and end callbacks (perf_counter_ns; each callback costs about a
        microsecond of Python). Models with control flow are refused by the Session API: the pass says so."""
        interpreter = MNN.Interpreter(str(self._path))
        session = interpreter.createSession(self._config)
        for name, array in inputs.items():
            self._session_input(interpreter, session, name, array)
        timed: list[tuple[str, str, float]] = []  # name, type, ms of the run going on
        started: list[int] = []

        def begin(_tensors: Any, info: Any) -> bool:
            started.append(time.perf_counter_ns())
            return True

        def end(_tensors: Any, info: Any) -> bool:
            timed.append((info.getName(), info.getType(), (time.perf_counter_ns() - started.pop()) / 1e6))
            return True

        times: list[OpTime] = []
        for run in range(runs):
            interpreter.runSessionWithCallBackInfo(session, begin, end)
            times += [OpTime(run=run, node=name, op_type=kind, ms=ms, kernel=self._config["backend"])
                      for name, kind, ms in timed]
            timed.clear()
        return times

    @staticmethod
    def _session_input(interpreter: Any, session: Any, name: str, array: np.ndarray) -> None:
        tensor = interpreter.getSessionInput(session, name)
        if tuple(tensor.getShape()) != array.shape:
            interpreter.resizeTensor(tensor, array.shape)
            interpreter.resizeSession(session)
        data = array.astype(np.int32) if array.dtype == np.int64 else np.ascontiguousarray(array)
        halide = getattr(MNN, HALIDE_TYPES[array.dtype])
        tensor.copyFrom(MNN.Tensor(array.shape, halide, data, MNN.Tensor_DimensionType_Caffe))

    def facts(self) -> dict[str, Any]:
        mode = self._mode
        return {
            "runtime_version": MNN.version(),
            "precision_used": self.case.precision,
            "threads_used": self.case.threads,
            "readback": (
                "none: MNN's Python Module API reports neither precision nor threads; precision_used and "
                f"threads_used are what was set explicitly (precision mode {mode}, numThread {self.case.threads})"
            ),
            "precision_note": (
                "MNN 3.6 on x86: the AVX2/AVX512 backend runs fp32 kernels whatever the precision mode ('low' "
                "measured bit-identical to 'high'; the wheel has no BF16 backend); fp16 arithmetic exists only on "
                "ARMv8.2 FP16 cores"
            ),
            "api": "MNN.nn.load_module_from_file (Module API), CPU backend",
            "phases": "load: read the .mnn file; prepare: runtime manager + module load (parse, schedule, "
            "allocate); first inference: MNN packs the weights",
            "options": {**self._config, "precision_mode": mode, "shape_mutable": True, "rearrange": False,
                        "memory_mode": "Normal", "power_mode": "Normal"},
            "model_info": self._model_info,
            "mnn_library": self._library(),
            "outputs_reshaped": getattr(self, "_reshaped", {}),
            # int8 / int8_weights: read back from the quantized file (MNNConvert --JsonFile): convolutions with int8
            # activations, with int8 weights
            "int8_readback": self._int8,
            "compute_precision": "fp32 (int8 weights dequantized at load)" if self.case.precision == "int8_weights"
            else None,
        }

    def close(self) -> None:
        self._results = []
        self._vars = []
        self.module = None
        self._runtime = None
