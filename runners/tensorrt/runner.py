"""TensorRT on one NVIDIA GPU, timed the way trtexec reports latency.

convert: the engine is built in a subprocess (``build.py``) and cached per model sha256, TensorRT version, GPU,
precision and shapes. load: ``Runtime.deserialize_cuda_engine``. prepare: an execution context, the case's input
shapes set, one device buffer and one page-locked host buffer per I/O tensor, every address set with
``set_tensor_address``, and the layer precisions read back from the engine inspector. bind: inputs copied to the
device once. infer (the timed call): ``execute_async_v3`` on our stream, then ``cudaStreamSynchronize``: the GPU
latency including the launch, without copies.

After the harness has finished timing, ``facts`` runs ``EXTRA_ITERATIONS`` more iterations the way trtexec
measures each one, with CUDA events on the stream: H2D copies | enqueue | D2H copies, giving H2D, GPU compute
(events around the enqueued work), D2H, host latency (their sum, trtexec's "Latency") and the host time of the
``execute_async_v3`` call itself (trtexec's "Enqueue Time"). They run one after another (trtexec overlaps
iterations on its default settings), on the same inputs, and are in ``runner_facts["trtexec_style"]``.
CUDA graphs are not used (trtexec's ``--useCudaGraph`` is off by default too).
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import tensorrt as trt

from bench.execution.convert import Conversion, ConversionFailed, cached_artifact, converter_deadline, run_converter
from bench.execution.variants import cached_variant
from bench.plugin import Runner, Unsupported
from bench.runners.tensorrt import cuda_runtime as cuda
from bench.runners.tensorrt.build import BUILD_INFO, ENGINE, ERROR, FLAGS
from bench.runners.tensorrt.layers import layer_precisions, precision_problem

WORKSPACE_BYTES = 4 << 30  # stated, not the default (all of the GPU's memory), so engines do not depend on it
OPTIMIZATION_LEVEL = 3  # TensorRT's and trtexec's default, stated
EXTRA_ITERATIONS = 100
ARTIFACT_LAYOUT = 1  # bump when build.json or the options change meaning
# Shares of the conversion deadline: the fp16 copy (ONNX Runtime's converter, seconds) and the engine build (minutes).
VARIANT_PART, BUILD_PART = 0.25, 0.75


def _percentiles(values: np.ndarray) -> dict[str, float]:
    p50, p90, p99 = (float(p) for p in np.percentile(values, [50, 90, 99]))
    return {"median": p50, "mean": float(values.mean()), "min": float(values.min()), "max": float(values.max()),
            "p90": p90, "p99": p99}


class TensorRTRunner(Runner):
    timed_region = (
        "execute_async_v3(stream) + cudaStreamSynchronize(stream): GPU latency including the launch; inputs copied "
        "to the device before timing, outputs left there (H2D/D2H, GPU compute and enqueue times measured after "
        "timing, trtexec's way, are in runner_facts.trtexec_style)"
    )

    # ---- convert: the engine -----------------------------------------------------------------------------

    def _weakly_typed(self) -> bool:
        return hasattr(trt.BuilderFlag, "FP16")

    def _check_precision(self, gpu: dict[str, Any]) -> None:
        precision, version = self.case.precision, trt.__version__
        if precision == "bf16" and not hasattr(trt.BuilderFlag, FLAGS["bf16"]):
            raise Unsupported(f"TensorRT {version} has no BuilderFlag.BF16 (strongly typed only) and bench has no "
                              "bf16 ONNX converter")
        if precision == "bf16" and float(gpu["compute_capability"]) < 8.0:
            raise Unsupported(f"{gpu['name']} (compute capability {gpu['compute_capability']}) has no bf16 "
                              "arithmetic; TensorRT needs 8.0 or newer")

    def _fp16_model(self, onnx_path: Path) -> tuple[Path, dict[str, Any]]:
        """TensorRT >= 11 takes precisions from the model's types: an fp16 copy of the model, fp32 I/O kept."""
        path, made = cached_variant(self.case, "fp16", onnx_path, part=VARIANT_PART)
        return path, made.facts()

    def _options(self, gpu: dict[str, Any], source: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "precision": self.case.precision,
            "weakly_typed": self._weakly_typed(),
            "tf32": False,
            "shapes": {s.name: list(s.shape_at(self.case.batch)) for s in self.case.model.inputs},
            "workspace_bytes": WORKSPACE_BYTES,
            "builder_optimization_level": OPTIMIZATION_LEVEL,
            "gpu": gpu["name"],
            "compute_capability": gpu["compute_capability"],
            "source_model": source or "the ONNX file as it is",
            "layout": ARTIFACT_LAYOUT,
        }

    def _build(self, onnx_path: Path, options: dict[str, Any], folder: Path) -> None:
        cmd = [sys.executable, "-m", "bench.runners.tensorrt.build", str(onnx_path), str(folder), json.dumps(options)]
        try:
            run_converter(cmd, timeout_s=converter_deadline(self.case, part=BUILD_PART))
        except ConversionFailed:
            error = folder / ERROR
            if not error.exists():  # a crash or the deadline: run_converter's own message says which
                raise
            said = json.loads(error.read_text())
            if said["kind"] == "unsupported":
                raise Unsupported(said["message"]) from None
            raise ConversionFailed(said["message"], ops=said["ops"]) from None

    def convert(self, onnx_path: Path) -> Path:
        self.gpu = cuda.device()
        self._check_precision(self.gpu)
        source, variant = onnx_path, None
        if self.case.precision == "fp16" and not self._weakly_typed():
            source, variant = self._fp16_model(onnx_path)
        options = self._options(self.gpu, variant)
        folder, self.conversion = cached_artifact(
            self.case, Conversion("tensorrt", trt.__version__, options), lambda out: self._build(source, options, out)
        )
        return folder / ENGINE

    # ---- load / prepare ---------------------------------------------------------------------------------------

    def load(self, artifact: Path) -> None:
        self.build_info = json.loads((artifact.parent / BUILD_INFO).read_text())
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(artifact.read_bytes())
        if self.engine is None:
            raise RuntimeError(f"deserialize_cuda_engine failed on {artifact} (built by TensorRT "
                               f"{self.build_info.get('tensorrt')}, running {trt.__version__})")

    def _io(self) -> tuple[list[str], list[str]]:
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        return inputs, [n for n in names if n not in inputs]

    def _allocate(self, name: str) -> cuda.Buffer:
        shape = tuple(self.context.get_tensor_shape(name))
        if any(d < 0 for d in shape):
            raise Unsupported(f"tensor {name!r} has a data-dependent shape {list(shape)}; this runner allocates "
                              "every buffer before inference (no output allocator)")
        try:
            dtype = trt.nptype(self.engine.get_tensor_dtype(name))
        except TypeError:
            raise Unsupported(f"tensor {name!r} is {self.engine.get_tensor_dtype(name)}, which numpy cannot hold") \
                from None
        buffer = cuda.Buffer(shape, dtype)
        self.context.set_tensor_address(name, buffer.device)
        return buffer

    def prepare(self) -> None:
        self.context = self.engine.create_execution_context()
        self.stream = cuda.stream()
        self.input_names, self.output_names = self._io()
        shapes = {s.name: tuple(s.shape_at(self.case.batch)) for s in self.case.model.inputs}
        for name in self.input_names:
            if -1 in tuple(self.engine.get_tensor_shape(name)) and not self.context.set_input_shape(name, shapes[name]):
                raise RuntimeError(f"set_input_shape({name!r}, {shapes[name]}) refused: outside the engine's profile")
        self.buffers = {name: self._allocate(name) for name in [*self.input_names, *self.output_names]}
        self.events = tuple(cuda.event() for _ in range(4))
        self.layers = self._layer_precisions()
        problem = precision_problem(self.case.precision, self.layers)
        if self.case.precision == "fp32" and self.build_info["flags"].get("TF32", False):
            problem = "the builder config reads back TF32 on for an fp32 engine"
        if problem:
            raise Unsupported(problem)
        self._handle = int(self.stream)
        self._execute = self.context.execute_async_v3
        self._synchronize = cuda.cudart.cudaStreamSynchronize

    def _layer_precisions(self) -> dict[str, int]:
        inspector = self.engine.create_engine_inspector()
        inspector.execution_context = self.context
        return layer_precisions(json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON)))

    # ---- run ----------------------------------------------------------------------------------------------

    def bind(self, inputs: dict[str, np.ndarray]) -> None:
        self.input_casts: dict[str, list[str]] = {}
        for name in self.input_names:
            buffer, array = self.buffers[name], np.asarray(inputs[name])
            if array.dtype != buffer.dtype:
                self.input_casts[name] = [str(array.dtype), str(buffer.dtype)]
            buffer.host[...] = array.reshape(buffer.shape).astype(buffer.dtype, casting="same_kind", copy=False)
            buffer.to_device(self.stream)
        cuda.synchronize(self.stream)

    def infer(self) -> None:
        if not self._execute(self._handle):
            raise RuntimeError("execute_async_v3 returned False (see TensorRT's log on stderr)")
        (error,) = self._synchronize(self.stream)
        if error != cuda.SUCCESS:
            cuda.call((error,), "cudaStreamSynchronize")

    def outputs(self) -> dict[str, np.ndarray]:
        for name in self.output_names:
            self.buffers[name].to_host(self.stream)
        cuda.synchronize(self.stream)
        return {name: np.array(self.buffers[name].host, copy=True) for name in self.output_names}

    def _trtexec_style(self, iterations: int = EXTRA_ITERATIONS) -> dict[str, Any]:
        """H2D | execute_async_v3 | D2H per iteration, timed with events on the stream and the host clock."""
        h2d_start, compute_start, compute_end, d2h_end = self.events
        inputs = [self.buffers[n] for n in self.input_names]
        outputs = [self.buffers[n] for n in self.output_names]
        times = np.empty((iterations, 4))
        for i in range(iterations):
            cuda.record(h2d_start, self.stream)
            for buffer in inputs:
                buffer.to_device(self.stream)
            cuda.record(compute_start, self.stream)
            t0 = time.perf_counter_ns()
            launched = self._execute(self._handle)
            t1 = time.perf_counter_ns()
            if not launched:
                raise RuntimeError("execute_async_v3 returned False (see TensorRT's log on stderr)")
            cuda.record(compute_end, self.stream)
            for buffer in outputs:
                buffer.to_host(self.stream)
            cuda.record(d2h_end, self.stream)
            cuda.wait(d2h_end)
            times[i] = (cuda.elapsed_ms(h2d_start, compute_start), cuda.elapsed_ms(compute_start, compute_end),
                        cuda.elapsed_ms(compute_end, d2h_end), (t1 - t0) / 1e6)
        h2d, compute, d2h, enqueue = times.T
        return {
            "iterations": iterations, "unit": "ms",
            "how": "after the timed loop, one iteration at a time: events around the H2D copies, the enqueued "
                   "execute_async_v3 and the D2H copies from/to page-locked host buffers; host clock around the "
                   "execute_async_v3 call",
            "host_latency": _percentiles(h2d + compute + d2h), "h2d": _percentiles(h2d),
            "gpu_compute": _percentiles(compute), "d2h": _percentiles(d2h), "enqueue": _percentiles(enqueue),
        }

    def facts(self) -> dict[str, Any]:
        build = {k: v for k, v in self.build_info.items() if k != "warnings"}
        return {
            "runtime_version": trt.__version__,
            "precision_used": self.case.precision,
            "precision_source": "builder flags read back from the config at build (TF32 off; FP16/BF16 on for "
            "those cases on TensorRT 10) and the layer datatypes from the engine inspector (layer_precisions); "
            "fp16 on TensorRT >= 11: the fp16 model's own types",
            "layer_precisions": self.layers,
            "threads_used": 1,
            "phases": "convert: build_serialized_network in a subprocess (cached); load: deserialize_cuda_engine; "
            "prepare: execution context, shapes, device + page-locked host buffers, set_tensor_address",
            "gpu": self.gpu,
            "options": {"build": build, "cuda_graph": False, "stream": "one stream from cudaStreamCreate",
                        "input_casts": getattr(self, "input_casts", {})},
            "build_warnings": self.build_info.get("warnings", []),
            "trtexec_style": self._trtexec_style(),
            "cuda_python": _cuda_python_version(),
        }

    def close(self) -> None:
        for name in ("_execute", "context", "engine", "runtime"):  # the context first: it holds the addresses
            self.__dict__.pop(name, None)
        for buffer in getattr(self, "buffers", {}).values():
            buffer.free()
        if hasattr(self, "stream"):
            cuda.destroy(self.stream, getattr(self, "events", ()))


def _cuda_python_version() -> str | None:
    for distribution in ("cuda-bindings", "cuda-python"):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None
