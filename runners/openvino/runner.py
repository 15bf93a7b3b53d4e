"""OpenVINO on the CPU: the ONNX file read by OpenVINO's own ONNX frontend with static input shapes, compiled
with an explicit inference precision, thread count and performance hint, each read back from the compiled model.

Why the frontend and not ``Core.read_model`` + ``Model.reshape``: models with ``If`` (silero-vad) only convert
when the input shapes are static *while converting*; ``read_model`` converts with the file's dynamic shapes and
fails on them before ``reshape`` could help. ``read_model`` runs this same frontend, without the shapes.
``openvino.convert_model`` / ``ovc`` would also take shapes, but they send telemetry (see below).

Telemetry: ``import openvino`` imports ``openvino.tools.ovc``, whose ``__init__`` sends an "ov import" event to
Google Analytics through ``openvino_telemetry`` and writes a client id to ``~/intel/openvino_ga_cid``, unless
the user opted out or ``CI=true``. When ``openvino_telemetry`` cannot be imported, ovc falls back to its own
no-op stub (``openvino.tools.ovc.telemetry_stub``); this module makes that import fail before importing openvino,
so the worker neither sends nor writes anything. The runtime itself (Core, frontends, compile, infer) sends nothing.
"""

from __future__ import annotations

import sys

# Must run before the first `import openvino` of the process (the worker imports nothing of OpenVINO before this;
# the quantizer sets the same block itself, first thing).
if "openvino" not in sys.modules:
    sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]  # import fails -> ovc's stub
TELEMETRY_BLOCKED = "openvino_telemetry" in sys.modules and sys.modules["openvino_telemetry"] is None

import importlib.metadata  # noqa: E402
import re  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import openvino as ov  # noqa: E402
import openvino.properties as props  # noqa: E402
import openvino.properties.hint as hints  # noqa: E402
from openvino.frontend import (  # noqa: E402
    FrontEndManager,
    GeneralFailure,
    NotImplementedFailure,
    OpConversionFailure,
    OpValidationFailure,
)

from bench.contract import OpTime  # noqa: E402
from bench.execution.calibration import CALIBRATION_SAMPLES, calibration_inputs, calibration_sha256  # noqa: E402
from bench.execution.convert import (  # noqa: E402
    Conversion,
    ConversionFailed,
    cached_by_case_converter,
    first_lines,
)
from bench.plugin import Runner, Unsupported  # noqa: E402
from bench.runners.openvino.recipe import recipe_for  # noqa: E402

DEVICE = "CPU"
# bench precision -> OpenVINO element type for INFERENCE_PRECISION_HINT (int8: the layers NNCF left in float run
# f32, so that an int8 row is not int8+bf16), and back.
HINTS = {"fp32": ov.Type.f32, "bf16": ov.Type.bf16, "fp16": ov.Type.f16, "int8": ov.Type.f32}
PRECISION_NAMES = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}
# NNCF's defaults, stated: what a user of nncf.quantize gets; part of the cache key with the calibration set's hash.
# model_type and preset come per model from recipe.py's rule, and the row's recipe says which and why.
INT8_OPTIONS = {"quantizer": "nncf.quantize (post-training)", "fast_bias_correction": True,
                "subset_size": "the whole calibration set", "calibration_samples": CALIBRATION_SAMPLES}
COMPUTE_LAYERS = ("Convolution", "GroupConvolution", "FullyConnected", "MatMul", "Deconvolution")
INT8_TYPES = ("u8", "i8")
FRONTEND_FAILURES = (OpConversionFailure, OpValidationFailure, NotImplementedFailure, GeneralFailure)
# "-- If-16 with a message:" / "Conversion is failed for: If-16, Conv-16": ONNX op type and opset version.
FAILED_OP = re.compile(r"^-- ([A-Za-z_][\w.]*)-\d+ with a message", re.MULTILINE)
TELEMETRY = (
    "blocked: openvino_telemetry made unimportable before `import openvino`, so openvino.tools.ovc uses its no-op "
    "stub (plain `import openvino` sends an event and writes ~/intel/openvino_ga_cid); the runtime sends nothing"
)
COMPUTE_NODE_SKIP = {"Input", "Output", "Const"}
# The precision an exec_type ends with (brgconv_avx512_f32, jit_avx512_amx_bf16, ...) -> bench's words.
EXEC_PRECISIONS = {"f32": "fp32", "bf16": "bf16", "f16": "fp16", "i8": "int8", "u8": "int8"}


def profiled_ops(run: int, infos: list[Any]) -> list[OpTime]:
    """``InferRequest.get_profiling_info()`` of one inference -> its executed nodes (the fused and skipped ones
    report NOT_RUN and no time)."""
    return [OpTime(run=run, node=i.node_name, op_type=i.node_type, ms=i.real_time.total_seconds() * 1000,
                   kernel=i.exec_type, precision=EXEC_PRECISIONS.get(i.exec_type.rpartition("_")[2].lower(), ""))
            for i in infos if i.status == ov.ProfilingInfo.Status.EXECUTED]


class PrecisionNotHonoured(Unsupported):
    """The compiled model reports another inference precision than the one asked for: the row is
    ``unsupported`` with both precisions named, never a row labelled with a precision that did not run."""


def _failed_ops(message: str) -> list[str]:
    return list(dict.fromkeys(FAILED_OP.findall(message)))


def read_static(path: Path, shapes: dict[str, tuple[int, ...]]) -> ov.Model:
    """ONNX file -> ov.Model through the ONNX frontend, with every input's shape fixed before converting."""
    frontend = FrontEndManager().load_by_framework("onnx")
    try:
        input_model = frontend.load(str(path))
        for name, shape in shapes.items():
            place = input_model.get_place_by_tensor_name(name)
            if place is None:
                raise ValueError(f"the model has no input named {name!r}")
            input_model.set_partial_shape(place, ov.PartialShape(list(shape)))
        return frontend.convert(input_model)
    except FRONTEND_FAILURES as exc:
        text = str(exc)
        raise ConversionFailed(f"OpenVINO ONNX frontend: {first_lines(text, 6)}", ops=_failed_ops(text)) from None


def _node_precisions(compiled: ov.CompiledModel) -> dict[str, int]:
    """How many executed nodes of the runtime graph ran in each precision (Input/Output/Const left out)."""
    counts: Counter[str] = Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) not in COMPUTE_NODE_SKIP:
            counts[info["runtimePrecision"].astype(str)] += 1
    return dict(sorted(counts.items()))


def _compute_precisions(compiled: ov.CompiledModel) -> dict[str, int]:
    """How many convolution / matmul nodes of the runtime graph ran in each precision."""
    counts: Counter[str] = Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) in COMPUTE_LAYERS:
            counts[info["runtimePrecision"].astype(str)] += 1
    return dict(sorted(counts.items()))


class OpenVinoRunner(Runner):
    timed_region = (
        "latency: InferRequest.infer() on one request whose input tensors were set before timing, outputs left "
        "in OpenVINO's buffers (share_outputs=True); throughput: AsyncInferQueue.start_async() on each of the "
        "OPTIMAL_NUMBER_OF_INFER_REQUESTS requests (inputs set on each before timing), then wait_all()"
    )

    def convert(self, onnx_path: Path) -> Path:
        """int8: the NNCF-quantized IR, from the cache or made now in a subprocess; other precisions read ONNX."""
        if self.case.precision != "int8":
            return onnx_path
        recipe, calibration = recipe_for(onnx_path), calibration_inputs(self.case)
        options = {**INT8_OPTIONS, "model_type": recipe.model_type, "preset": recipe.preset,
                   "recipe": recipe.describe(len(calibration)), "calibration_sha256": calibration_sha256(calibration),
                   "openvino": importlib.metadata.version("openvino"),  # the IR is saved at the case's shapes:
                   "static_input_shapes": {s.name: list(s.shape_at(self.case.batch)) for s in self.case.model.inputs}}

        conversion = Conversion("nncf", importlib.metadata.version("nncf"), options)
        # the quantizer's own account (error.json) is the row's reason: the frontend's words, not a traceback
        folder, self.conversion = cached_by_case_converter(self.case, conversion, "bench.runners.openvino.quantize",
                                                           onnx_path, recipe.model_type or "default", recipe.preset)
        return folder / "model.xml"

    def load(self, artifact: Path) -> None:
        self.core = ov.Core()
        self.shapes = {spec.name: tuple(spec.shape_at(self.case.batch)) for spec in self.case.model.inputs}
        # the quantized IR was saved with the case's static shapes
        self.model = self.core.read_model(artifact) if artifact.suffix == ".xml" else read_static(artifact, self.shapes)

    @property
    def throughput(self) -> bool:
        """OpenVINO's throughput hint (streams), with its optimal number of requests side by side: the throughput
        scenario's async queue, and the server and offline scenarios' requests (MLPerf LoadGen's threads)."""
        return self.case.scenario in ("throughput", "server", "offline")

    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            hints.inference_precision: HINTS[self.case.precision],
            props.inference_num_threads: self.case.threads,
            # Activations are quantized on the fly only for weight-compressed models; off, stated, for all cases.
            "DYNAMIC_QUANTIZATION_GROUP_SIZE": 0,
        }
        if self.throughput:
            config[hints.performance_mode] = hints.PerformanceMode.THROUGHPUT
        else:
            config[hints.performance_mode] = hints.PerformanceMode.LATENCY
            config[props.num_streams] = 1
        return config

    def prepare(self) -> None:
        self.config = self._config()
        self.compiled = self.core.compile_model(self.model, DEVICE, self.config)
        self.precision_used = self._check_precision()
        self.output_names = [port.get_any_name() for port in self.compiled.outputs]
        if self.throughput:
            self.concurrent_requests = self.compiled.get_property(props.optimal_number_of_infer_requests)
        if self.case.scenario == "throughput":
            self.queue = ov.AsyncInferQueue(self.compiled, self.concurrent_requests)
            self.requests = list(self.queue)
        elif self.throughput:  # server, offline: one request per LoadGen thread (infer_request), GIL released
            self.requests = [self.compiled.create_infer_request() for _ in range(self.concurrent_requests)]
        else:
            self.requests = [self.compiled.create_infer_request()]
        self.request = self.requests[0]  # the harness's first (cold) inference is a single sync call

    def _check_precision(self) -> str:
        asked = HINTS[self.case.precision]
        used = self.compiled.get_property(hints.inference_precision)
        if used != asked:
            capabilities = ", ".join(self.core.get_property(DEVICE, props.device.capabilities))
            raise PrecisionNotHonoured(
                f"asked INFERENCE_PRECISION_HINT={asked.get_type_name()} for {self.case.precision}, but the "
                f"compiled model reports {used.get_type_name()}: OpenVINO's CPU plugin cannot do "
                f"{self.case.precision} arithmetic on this CPU (capabilities: {capabilities}) and substitutes "
                f"{used.get_type_name()} silently; not run, so that no {self.case.precision} row holds "
                f"{used.get_type_name()} numbers"
            )
        return self._check_int8() if self.case.precision == "int8" else PRECISION_NAMES[used.get_type_name()]

    def _check_int8(self) -> str:
        """int8 only where int8 kernels ran: NNCF may insert nothing, and OpenVINO may fold it all back to float."""
        compute = _compute_precisions(self.compiled)
        if not any(compute.get(t) for t in INT8_TYPES):
            raise Unsupported(f"the NNCF-quantized model ran no int8 convolution or matmul (runtime precisions of "
                              f"those layers: {compute}), so an int8 row would be a float row")
        return "int8"

    def _as_static(self, name: str, array: np.ndarray) -> np.ndarray:
        """The array in the static shape the model was converted with. bench.execution.inputs hands scalar inputs over
        as shape (1,) (np.ascontiguousarray makes 0-d arrays 1-d); OpenVINO refuses (1,) for a [] input."""
        shape = self.shapes[name]
        if array.shape != shape and array.size == int(np.prod(shape)):
            self.reshaped_inputs[name] = [list(array.shape), list(shape)]
            return array.reshape(shape)
        return array

    def bind(self, inputs: dict[str, np.ndarray]) -> None:
        # Each request gets its own copy of the inputs, shared with its tensors (no copy per inference);
        # self._arrays keeps that memory alive while the tensors point at it.
        self._arrays = []
        self.reshaped_inputs: dict[str, list[list[int]]] = {}
        for index, request in enumerate(self.requests):
            for name, array in inputs.items():
                data = self._as_static(name, array if index == 0 else array.copy())
                self._arrays.append(data)
                request.set_tensor(name, ov.Tensor(data, shared_memory=True))

    def infer(self) -> None:
        self.request.infer(share_outputs=True)

    def infer_request(self, slot: int) -> None:
        self.requests[slot].infer(share_outputs=True)

    def infer_concurrent(self) -> None:
        start = self.queue.start_async
        for _ in range(self.concurrent_requests):
            start()
        self.queue.wait_all()

    def outputs(self) -> dict[str, np.ndarray]:
        # The output tensors are the request's own buffers, overwritten by its next inference: copy them.
        request = self.requests[0]
        return {
            name: np.array(request.get_output_tensor(i).data, copy=True)
            for i, name in enumerate(self.output_names)
        }

    def profile(self, inputs: dict[str, np.ndarray], runs: int) -> list[OpTime]:
        """OpenVINO's own per-node counters: the model compiled again with PERF_COUNT (a compile-time property: the
        timed model never had it), one request, ``get_profiling_info()`` after each inference (it holds the last
        one): node, layer type, and the kernel and precision that ran it (exec_type)."""
        compiled = self.core.compile_model(self.model, DEVICE, {**self.config, props.enable_profiling: True})
        request = compiled.create_infer_request()
        arrays = {name: self._as_static(name, array) for name, array in inputs.items()}
        for name, array in arrays.items():
            request.set_tensor(name, ov.Tensor(array, shared_memory=True))
        times = []
        for run in range(runs):
            request.infer(share_outputs=True)
            times += profiled_ops(run, request.get_profiling_info())
        return times

    def _read_back(self) -> dict[str, Any]:
        c = self.compiled
        return {
            "inference_precision_hint": c.get_property(hints.inference_precision).get_type_name(),
            "performance_hint": str(c.get_property(hints.performance_mode)),
            "execution_mode_hint": str(c.get_property(hints.execution_mode)),
            "num_streams": int(c.get_property(props.num_streams)),
            "inference_num_threads": c.get_property(props.inference_num_threads),
            "optimal_number_of_infer_requests": c.get_property(props.optimal_number_of_infer_requests),
            "infer_requests_used": len(self.requests),
            "enable_cpu_pinning": c.get_property("ENABLE_CPU_PINNING"),
            "enable_hyper_threading": c.get_property("ENABLE_HYPER_THREADING"),
            "scheduling_core_type": str(c.get_property("SCHEDULING_CORE_TYPE")),
            "dynamic_quantization_group_size": c.get_property("DYNAMIC_QUANTIZATION_GROUP_SIZE"),
            "execution_devices": list(c.get_property("EXECUTION_DEVICES")),
        }

    def facts(self) -> dict[str, Any]:
        asked = {str(k): v.get_type_name() if isinstance(v, ov.Type) else str(v) for k, v in self.config.items()}
        return {
            "runtime_version": importlib.metadata.version("openvino"),
            "runtime_build": ov.get_version(),
            "precision_used": self.precision_used,
            "precision_source": "compiled_model.get_property(INFERENCE_PRECISION_HINT)",
            "threads_used": self.compiled.get_property(props.inference_num_threads),
            "phases": "convert (int8): NNCF quantization to IR, cached; load: Core() + ONNX frontend load with "
            "static input shapes + convert to ov.Model (int8: read_model of the IR); "
            "prepare: compile_model + infer request(s)",
            "options": {
                "device": DEVICE,
                "asked": asked,
                "read_back": self._read_back(),
                "static_input_shapes": {k: list(v) for k, v in self.shapes.items()},
                "inputs_reshaped": self.reshaped_inputs,  # name: [shape handed over, shape bound]
                "cache_dir": None,  # no model cache: prepare_ms is a full compilation every time
            },
            "runtime_node_precisions": _node_precisions(self.compiled),
            "compute_layer_precisions": _compute_precisions(self.compiled),  # int8: how much of the work ran u8/i8
            "device_capabilities": list(self.core.get_property(DEVICE, props.device.capabilities)),
            "telemetry": TELEMETRY if TELEMETRY_BLOCKED else "NOT blocked: openvino was imported before the runner",
            "openvino_telemetry_loaded": sys.modules.get("openvino_telemetry") is not None,
        }

    def close(self) -> None:
        for name in ("queue", "request", "requests", "compiled", "model", "core"):
            self.__dict__.pop(name, None)
