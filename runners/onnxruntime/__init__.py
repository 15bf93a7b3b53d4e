"""ONNX Runtime runner declaration. Imports nothing from onnxruntime."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from bench.case import Case
from bench.plugin import Availability, RunnerSpec


def _gpu_build_installed() -> bool:
    try:
        importlib.metadata.version("onnxruntime-gpu")
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


class OnnxRuntimeSpec(RunnerSpec):
    name = "onnxruntime"
    distribution = "onnxruntime"
    module = "onnxruntime"
    implementation = "bench.runners.onnxruntime.runner:OnnxRuntimeRunner"
    install_hint = "pip install 'bench[onnxruntime]'"
    devices = ("cpu", "cuda")
    precisions = ("fp32", "fp16", "int8")
    scenarios = ("latency", "throughput")
    model_format = "onnx"
    conversion = "none for fp32; onnxruntime.quantization (static QDQ int8) and float16 conversion make variants"

    def version(self) -> str | None:
        return super().version() or (importlib.metadata.version("onnxruntime-gpu") if _gpu_build_installed() else None)

    def detect_devices(self) -> dict[str, Availability]:
        if not _gpu_build_installed():
            cuda = Availability(False, "needs onnxruntime-gpu (pip install onnxruntime-gpu)")
        elif not Path("/proc/driver/nvidia/version").exists():
            cuda = Availability(False, "no NVIDIA driver")
        else:
            cuda = Availability(True)
        return {"cpu": Availability(True), "cuda": cuda}

    def unsupported_reason(self, case: Case) -> str | None:
        if case.precision == "fp16" and case.device == "cpu":
            return "ONNX Runtime's CPU execution provider has fp16 kernels for few ops; fp16 runs on cuda"
        if case.precision == "int8" and case.device != "cpu":
            return "int8 (static QDQ) is benchmarked on the CPU execution provider only"
        return None


SPEC = OnnxRuntimeSpec()
