"""ExecuTorch on cpu: the ``.pte`` program (XNNPACK delegate) loaded with ``executorch.runtime`` and its
``forward`` method executed on torch tensors made before timing.

Threads: the runtime's shared threadpool (XNNPACK's) is reset to the case's thread count before the program loads
and read back; torch's own intra-op threads are set too (ExecuTorch's Python binding hands tensors over through
torch). Nothing is cached between cases but the ``.pte`` file.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from executorch.extension.pybindings import portable_lib
from executorch.runtime import Runtime

from bench.execution.calibration import CALIBRATION_SAMPLES, calibration_inputs, calibration_sha256
from bench.execution.convert import Conversion, cached_by_case_converter
from bench.plugin import Runner, Unsupported
from bench.runners.executorch.lower import INT8_OPTIONS
from bench.runners.pytorch.conversion import PREPARE

BACKEND = "XnnpackBackend"
STATIC = "onnx2torch's constant Reshape shapes, Split sizes and Resize inputs as Python values (static.py)"


class ExecuTorchRunner(Runner):
    timed_region = ("method.execute(inputs): the .pte's forward through ExecuTorch's Python runtime on torch tensors "
                    "made before timing (the XNNPACK delegate and any portable kernels); outputs left as returned")

    def _options(self) -> dict[str, Any]:
        options = {
            "partitioner": "XnnpackPartitioner()", "precision": self.case.precision, "prepare": PREPARE,
            "static": STATIC, "torch": torch.__version__, "onnx2torch": importlib.metadata.version("onnx2torch"),
            # the module: the user's factory (the model's sha256 keys its weights) or onnx2torch's bridge
            "source": json.loads(self.case.model.torch_factory)["text"] if self.case.model.torch_factory else "onnx",
            "static_input_shapes": {s.name: list(s.shape_at(self.case.batch)) for s in self.case.model.inputs},
        }
        if self.case.precision == "int8":
            options |= {**INT8_OPTIONS, "torchao": importlib.metadata.version("torchao"),
                        "calibration_samples": CALIBRATION_SAMPLES,
                        "calibration_sha256": calibration_sha256(calibration_inputs(self.case))}
        return options

    def convert(self, onnx_path: Path) -> Path:
        """Export and lower in a subprocess with a deadline; the .pte and its lowering facts are cached."""

        conversion = Conversion("executorch", importlib.metadata.version("executorch"), self._options())
        folder, self.conversion = cached_by_case_converter(self.case, conversion, "bench.runners.executorch.lower",
                                                           onnx_path)
        self.lowering = json.loads((folder / "lowering.json").read_text())
        return folder / "model.pte"

    def load(self, artifact: Path) -> None:
        torch.set_num_threads(self.case.threads)
        portable_lib._unsafe_reset_threadpool(self.case.threads)  # before the program's delegate is initialised
        self.runtime = Runtime.get()
        self.program = self.runtime.load_program(artifact)

    def prepare(self) -> None:
        if self.case.precision == "int8" and not self.lowering["quantize_ops"]:
            raise Unsupported("the quantized program holds no quantize ops: the PT2E quantizer annotated nothing, "
                              "so an int8 row would be a float row")
        self.method = self.program.load_method("forward")  # XNNPACK builds its runtime (packs weights) here

    def bind(self, inputs: dict[str, np.ndarray]) -> None:
        self._args = [torch.from_numpy(np.array(inputs[name], copy=True)) for name in self.lowering["input_names"]]

    def infer(self) -> None:
        self._result = self.method.execute(self._args)

    def outputs(self) -> dict[str, np.ndarray]:
        return {name: np.array(self._result[leaf].numpy(), copy=True)
                for name, leaf in self.lowering["output_leaves"].items()}

    def _precision_used(self) -> str:
        if self.case.precision == "int8":
            return "int8"  # prepare refused a program without quantize ops
        floats = {str(t.dtype) for t in self._result if t.is_floating_point()}
        return "fp32" if floats <= {"torch.float32"} else "mixed: " + ",".join(sorted(floats))

    def facts(self) -> dict[str, Any]:
        lowering = {k: v for k, v in self.lowering.items() if k not in ("input_names", "output_leaves")}
        return {
            "runtime_version": importlib.metadata.version("executorch"),
            "precision_used": self._precision_used(),
            "precision_source": "int8: quantize ops counted in the lowered program; fp32: the outputs' dtypes",
            "threads_used": portable_lib._threadpool_get_thread_count(),
            "phases": "convert: onnx2torch + torch.export + XNNPACK lowering to .pte in a subprocess, cached; "
            "load: Runtime.load_program; prepare: load_method('forward') (XNNPACK delegate init)",
            **lowering,  # delegation: full | partial | none, with the op counts on each side
            "options": {
                "backend_available": self.runtime.backend_registry.is_available(BACKEND),
                "backends_registered": sorted(self.runtime.backend_registry.registered_backend_names),
                "torch_threads": torch.get_num_threads(),
                "torch": torch.__version__,
            },
        }

    def close(self) -> None:
        for name in ("method", "program"):
            self.__dict__.pop(name, None)
