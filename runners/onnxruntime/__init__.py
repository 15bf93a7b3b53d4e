"""ONNX Runtime runner declaration. Imports nothing from onnxruntime."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from types import MappingProxyType

from bench import extra_hint
from bench.case import Case
from bench.cpu import Cpu
from bench.plugin import Availability, PrecisionSupport, RunnerSpec

# Measured on an AMD EPYC (Zen 5; no avx512_fp16), onnxruntime 1.32, MobileNetV2 at 1 thread; MLAS defines its fp16
# kernels (MLAS_F16VEC_INTRINSICS_SUPPORTED) for arm64 only, so an AVX512-FP16 Xeon is no different.
X86_FP16_EVIDENCE = (
    "ONNX Runtime's CPU kernels have no fp16 arithmetic on x86 (MLAS's fp16 kernels are arm64-only, AVX512-FP16 "
    "included): the optimizer turns the fp16 model's weights back into fp32 and inserts Casts (measured on an AMD "
    "EPYC: all 52 convolutions of MobileNetV2 ran fp32, 5.8 -> 6.3 ms, outputs moved by 2.2e-2 by the fp16 "
    "rounding of the weights), so an fp16 row there would be an fp32 row with extra casts"
)


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
    install_hint = extra_hint("onnxruntime")
    devices = ("cpu", "cuda")
    precisions = ("fp32", "fp16", "int8")
    converted_precisions = ("fp16", "int8")  # variants made by ORT's tools; fp32 reads the ONNX file
    scenarios = ("latency", "throughput", "server", "offline")
    model_format = "onnx"
    packages = ("onnxruntime-gpu",)
    notes = "the fp32 reference for every runner; cuda needs onnxruntime-gpu; IO binding, spinning recorded"
    precision_notes = MappingProxyType({
        "fp16": "float16 model (onnxruntime.transformers.float16, fp32 inputs and outputs); the optimized graph read "
                "back (on x86 the CPU provider casts back to fp32, so the row is refused there)",
        "int8": "static QDQ (per-channel int8 weights, uint8 activations, MinMax) on the shared calibration set, "
                "after Constant weights become initializers and the opset is raised to 13 (docs/INT8_RECIPES.md); "
                "QDQ nodes counted in the variant",
    })
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

    def cpu_precision(self, precision: str, cpu: Cpu) -> PrecisionSupport:
        if precision == "int8":
            return PrecisionSupport.accelerated_by(cpu, ("avx512_vnni", "avx_vnni", "amx_int8", "i8mm", "asimddp"),
                                                   "MLAS int8 kernels")
        if precision != "fp16":
            return PrecisionSupport()
        if cpu.arch != "arm64":
            return PrecisionSupport(reason=X86_FP16_EVIDENCE if cpu.arch == "x86" else
                                    f"ONNX Runtime's CPU kernels have fp16 arithmetic on arm64 only, not {cpu.arch}")
        return PrecisionSupport.needs(
            cpu, ("asimdhp",), "MLAS fp16 NEON kernels (Conv, pooling, GEMM; the optimized graph is read back)",
            "this ARM CPU has no FP16 SIMD (asimdhp): ONNX Runtime would run the fp16 model's ops in fp32 with Casts")

    def unsupported_reason(self, case: Case) -> str | None:
        if case.precision == "int8" and case.device != "cpu":
            return "int8 (static QDQ) is benchmarked on the CPU execution provider only"
        return None


SPEC = OnnxRuntimeSpec()
