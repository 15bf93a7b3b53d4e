"""ONNX Runtime: CPU (and CUDA with onnxruntime-gpu) execution providers, inputs bound once through IO binding.

Latency: one request at a time with ``threads`` intra-op threads. Throughput, server and offline: ``threads``
concurrent requests on one session, one intra-op thread each (the session is thread-safe; ORT releases the GIL
while it runs); server and offline are driven by MLPerf LoadGen (``infer_request``, one binding per request).
int8 and fp16 run model variants made by ORT's own tools (``bench.execution.variants``), cached like any conversion.
"""

from __future__ import annotations

import bisect
import json
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from bench.contract import OpTime
from bench.execution.graph import load_graph
from bench.execution.variants import CONVERTERS, cached_variant
from bench.plugin import Runner, Unsupported

# ORT spins its intra-op pool between calls by default; that is what users run, so we keep it and record it.
SPINNING = "1"
# The scenarios that run ``threads`` requests side by side, one intra-op thread each
CONCURRENT_SCENARIOS = ("throughput", "server", "offline")
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
# Compute-heavy ops (core and contrib domains) whose weight's type in the optimized graph says what they run in.
COMPUTE_OPS = frozenset({"Conv", "ConvTranspose", "FusedConv", "NhwcFusedConv", "MatMul", "FusedMatMul", "Gemm",
                         "FusedGemm"})
# The profiler's name of a node's first input's element type -> bench's precision words.
TRACE_TYPES = {"float": "fp32", "float16": "fp16", "bfloat16": "bf16", "int8": "int8", "uint8": "int8"}
KERNEL_EVENT = "_kernel_time"  # a Node event's name: NODE_kernel_time (the fence events around it are not times)


def trace_op_times(trace: list[dict[str, Any]]) -> list[OpTime]:
    """ORT's chrome-trace events -> one OpTime per kernel run, numbered by the ``model_run`` event holding it."""
    starts = sorted(e["ts"] for e in trace if e.get("cat") == "Session" and e.get("name") == "model_run")
    times = []
    for event in trace:
        if event.get("cat") != "Node" or not str(event.get("name", "")).endswith(KERNEL_EVENT):
            continue
        args = event.get("args", {})
        first_input = (args.get("input_type_shape") or [{}])[0]
        precision = TRACE_TYPES.get(next(iter(first_input), ""), next(iter(first_input), ""))
        times.append(OpTime(run=bisect.bisect_right(starts, event["ts"]) - 1,
                            node=event["name"].removesuffix(KERNEL_EVENT), op_type=args.get("op_name", ""),
                            ms=event["dur"] / 1000, kernel=args.get("provider", ""), precision=precision))
    return times


def _precision_of(path: Path) -> tuple[str, dict[str, int]]:
    """What the model file really holds: QDQ nodes make it int8, float16 initializers fp16."""
    graph = load_graph(path)
    counts = {op: sum(n.op_type == op for n in graph.node) for op in ("QuantizeLinear", "DequantizeLinear")}
    fp16 = sum(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.initializer)
    counts["float16_initializers"] = fp16
    if counts["DequantizeLinear"]:
        return "int8", counts
    return ("fp16" if fp16 else "fp32"), counts


def optimized_weight_types(path: Path, options: ort.SessionOptions, provider: str) -> dict[str, int]:
    """How many compute-heavy nodes of the graph ORT will really run hold weights of each type, read back from
    the optimized model it writes: where its kernels lack fp16, it casts the fp16 weights back to fp32."""
    with tempfile.TemporaryDirectory() as work:
        options.optimized_model_filepath = str(Path(work) / "optimized.onnx")
        ort.InferenceSession(str(path), sess_options=options, providers=[provider])
        graph = onnx.load(options.optimized_model_filepath).graph
    types = {t.name: onnx.TensorProto.DataType.Name(t.data_type).lower() for t in graph.initializer}
    weights = [types.get(n.input[1]) for n in graph.node if n.op_type in COMPUTE_OPS and len(n.input) > 1]
    return dict(Counter(w for w in weights if w))


class OnnxRuntimeRunner(Runner):
    timed_region = (
        "run_with_iobinding (inputs bound before timing; outputs allocated by ORT on the device; on cuda also "
        "synchronize_outputs); throughput: one such call per concurrent request, all awaited"
    )
    _weight_types: dict[str, int] | None = None  # fp16 on the CPU: compute weights by type in the optimized graph

    def convert(self, onnx_path: Path) -> Path:
        if self.case.precision not in CONVERTERS:
            return onnx_path
        variant, self.conversion = cached_variant(self.case, self.case.precision, onnx_path)
        if self.case.precision == "fp16" and self.case.device == "cpu":
            self._check_fp16_kernels(variant)
        return variant

    def _check_fp16_kernels(self, path: Path) -> None:
        """fp16 on the CPU is a row only where ORT keeps most convolutions and matmuls in fp16 (convert_ms holds
        this read-back; cold start does not)."""
        self._weight_types = optimized_weight_types(path, self._session_options(), PROVIDERS["cpu"])
        fp16, total = self._weight_types.get("float16", 0), sum(self._weight_types.values())
        if total and 2 * fp16 < total:
            raise Unsupported(
                f"ONNX Runtime {ort.__version__} runs {total - fp16} of the fp16 model's {total} convolutions / "
                "matmuls in fp32 on this CPU (optimized graph read back: fp16 weights cast to fp32), so an fp16 "
                f"row would be an fp32 row; weight types {self._weight_types}")

    def load(self, artifact: Path) -> None:
        # ORT parses inside session creation; here we only read the file, so "prepare" holds the parse.
        # The session is created from the path so that external-data files next to it are found.
        self._path = artifact
        artifact.read_bytes()
        self._precision, self._node_counts = _precision_of(artifact)
        if self._precision != self.case.precision:
            raise Unsupported(f"the {self.case.precision} variant holds {self._precision} weights and no QDQ nodes")

    def _session_options(self) -> ort.SessionOptions:
        options = ort.SessionOptions()
        concurrent = self.case.scenario in CONCURRENT_SCENARIOS
        options.intra_op_num_threads = 1 if concurrent else self.case.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", SPINNING)
        options.log_severity_level = 3
        return options

    def _provider_options(self) -> dict[str, str]:
        # CUDA EP may run fp32 convolutions and matmuls in TF32; fp32 must mean fp32.
        return {"use_tf32": "0"} if self.case.device == "cuda" else {}

    def prepare(self) -> None:
        provider = PROVIDERS[self.case.device]
        self.session = ort.InferenceSession(
            str(self._path), sess_options=self._session_options(), providers=[(provider, self._provider_options())]
        )
        if provider not in self.session.get_providers():
            raise Unsupported(f"{provider} is not available in this onnxruntime build")
        if self.case.scenario in CONCURRENT_SCENARIOS:
            self.concurrent_requests = self.case.threads
        if self.case.scenario == "throughput":
            self._pool = ThreadPoolExecutor(self.concurrent_requests, thread_name_prefix="ort-request")

    def _binding(self, inputs: dict[str, np.ndarray], session: ort.InferenceSession | None = None) -> ort.IOBinding:
        binding = (session or self.session).io_binding()
        for name, array in inputs.items():
            if self.case.device == "cpu":
                binding.bind_cpu_input(name, array)
            else:  # copied to the device once, here, outside the timed region
                binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, self.case.device, 0))
        for name in self.output_names:
            binding.bind_output(name, self.case.device)
        return binding

    def bind(self, inputs: dict[str, np.ndarray]) -> None:
        self._inputs = inputs  # keep the arrays alive: CPU bindings point at their memory
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.bindings = [self._binding(inputs) for _ in range(self.concurrent_requests)]
        self._run = self.session.run_with_iobinding
        self._sync = self.case.device != "cpu"

    def infer(self) -> None:
        self._run(self.bindings[0])
        if self._sync:
            self.bindings[0].synchronize_outputs()

    def infer_request(self, slot: int) -> None:
        self._run(self.bindings[slot])
        if self._sync:
            self.bindings[slot].synchronize_outputs()

    def infer_concurrent(self) -> None:
        for _ in self._pool.map(self._run, self.bindings):
            pass

    def outputs(self) -> dict[str, np.ndarray]:
        arrays = self.bindings[0].copy_outputs_to_cpu()
        return {name: np.array(a, copy=True) for name, a in zip(self.output_names, arrays, strict=True)}

    def profile(self, inputs: dict[str, np.ndarray], runs: int) -> list[OpTime]:
        """ORT's own profiler, in a second session made for the pass (profiling is a session option, fixed when the
        session is made; the timed one never had it): the chrome-trace JSON it writes, one event per node run."""
        provider = PROVIDERS[self.case.device]
        with tempfile.TemporaryDirectory() as work:
            options = self._session_options()
            options.enable_profiling = True
            options.profile_file_prefix = str(Path(work) / "ort_profile")
            session = ort.InferenceSession(str(self._path), sess_options=options,
                                           providers=[(provider, self._provider_options())])
            binding = self._binding(inputs, session)
            for _ in range(runs):
                session.run_with_iobinding(binding)
                if self._sync:
                    binding.synchronize_outputs()
            trace = json.loads(Path(session.end_profiling()).read_text())
        return trace_op_times(trace)

    def close(self) -> None:
        if hasattr(self, "_pool"):
            self._pool.shutdown()

    def facts(self) -> dict[str, Any]:
        options = self.session.get_session_options()
        return {
            "runtime_version": ort.__version__,
            "precision_used": self._precision,
            "model_nodes": self._node_counts,
            "optimized_weight_types": self._weight_types,
            "threads_used": options.intra_op_num_threads * self.concurrent_requests,
            "providers_used": self.session.get_providers(),
            "provider_options": self._provider_options(),
            "concurrent_requests": self.concurrent_requests,
            "phases": "load: read the file; prepare: InferenceSession(path) = parse + optimize + allocate",
            "options": {
                "intra_op_num_threads": options.intra_op_num_threads,
                "inter_op_num_threads": options.inter_op_num_threads,
                "graph_optimization_level": str(options.graph_optimization_level),
                "allow_spinning": SPINNING,
                "execution_mode": str(options.execution_mode),
            },
        }
