"""ONNX Runtime on the CPU execution provider, inputs bound once through IO binding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from bench.plugin import Runner

# ORT spins its intra-op pool between calls by default; that is what users run, so we keep it and record it.
SPINNING = "1"


class OnnxRuntimeRunner(Runner):
    timed_region = "run_with_iobinding: inputs bound before timing; outputs allocated by ORT in host memory"

    def load(self, artifact: Path) -> None:
        # ORT parses inside session creation; here we only read the file, so "prepare" holds the parse.
        # The session is created from the path so that external-data files next to it are found.
        self._path = artifact
        artifact.read_bytes()

    def _session_options(self) -> ort.SessionOptions:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.case.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", SPINNING)
        options.log_severity_level = 3
        return options

    def prepare(self) -> None:
        self.session = ort.InferenceSession(
            str(self._path), sess_options=self._session_options(), providers=["CPUExecutionProvider"]
        )

    def bind(self, inputs: dict[str, np.ndarray]) -> None:
        self._inputs = inputs  # keep the arrays alive: the binding points at their memory
        self.binding = self.session.io_binding()
        for name, array in inputs.items():
            self.binding.bind_cpu_input(name, array)
        self.output_names = [o.name for o in self.session.get_outputs()]
        for name in self.output_names:
            self.binding.bind_output(name, "cpu")
        self._run = self.session.run_with_iobinding

    def infer(self) -> None:
        self._run(self.binding)

    def outputs(self) -> dict[str, np.ndarray]:
        arrays = self.binding.copy_outputs_to_cpu()
        return {name: np.array(a, copy=True) for name, a in zip(self.output_names, arrays, strict=True)}

    def facts(self) -> dict[str, Any]:
        options = self.session.get_session_options()
        return {
            "runtime_version": ort.__version__,
            "precision_used": "fp32",
            "threads_used": options.intra_op_num_threads,
            "providers_used": self.session.get_providers(),
            "phases": "load: read the file; prepare: InferenceSession(path) = parse + optimize + allocate",
            "options": {
                "intra_op_num_threads": options.intra_op_num_threads,
                "inter_op_num_threads": options.inter_op_num_threads,
                "graph_optimization_level": str(options.graph_optimization_level),
                "allow_spinning": SPINNING,
                "execution_mode": str(options.execution_mode),
            },
        }
