"""ncnn runner declaration. Imports nothing from ncnn or pnnx.

Conversion uses the native converter binary that the ``pnnx`` wheel ships (``site-packages/pnnx/pnnx``). It is
found with ``importlib.util.find_spec``, which locates the package without running it: the ``pnnx`` console
script and ``pnnx.export`` import torch, the binary does not (``pip install --no-deps pnnx`` is enough).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import MappingProxyType

from bench import extra_hint, vulkan
from bench.case import Case
from bench.cpu import Cpu
from bench.plugin import Availability, PrecisionSupport, RunnerSpec

PNNX_HINT = "pip install --no-deps pnnx (only its native converter binary is used; no torch needed)"
# Measured on an AMD EPYC (Zen 5; avx512_bf16, no avx512_fp16), ncnn 1.0.20261020, MobileNetV2, 1 thread.
X86_FP16_EVIDENCE = (
    "ncnn has no fp16 arithmetic on x86, AVX512-FP16 included (its source has fp16 compute paths for ARMv8.2 and "
    "RISC-V only): use_fp16_* store weights and activations as fp16 (F16C conversions) and compute in fp32 "
    "(measured on an AMD EPYC, MobileNetV2 at 1 thread: outputs moved by 1.7e-3 max abs, 6.8 -> 5.8 ms), so an fp16 "
    "row there would be an fp32-arithmetic row"
)


def pnnx_binary() -> Path | None:
    """The pnnx wheel's converter executable, or None when the wheel is absent."""
    spec = importlib.util.find_spec("pnnx")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "pnnx"
    return path if path.is_file() and os.access(path, os.X_OK) else None


class NcnnSpec(RunnerSpec):
    name = "ncnn"
    distribution = "ncnn"
    module = "ncnn"
    implementation = "bench.runners.ncnn.runner:NcnnRunner"
    install_hint = extra_hint("ncnn")
    # vulkan: ncnn's GPU path (the one Android apps ship), on whichever Vulkan device ncnn sees (bench.vulkan)
    devices = ("cpu", "vulkan")
    precisions = ("fp32", "fp16", "int8")
    scenarios = ("latency",)
    model_format = "ncnn"
    packages = ("pnnx",)
    environment_extras = ("pnnx",)  # the converter binary, in each release's environment too (--versions)
    notes = ("batch 1; the converter is the pnnx wheel: `pip install --no-deps pnnx`; int8: bench's Python port of "
             "ncnn's ncnn2table (ACIQ) and ncnn2int8, which no wheel ships")
    precision_notes = MappingProxyType({
        "fp16": "use_fp16_packed/storage/arithmetic on an fp32 model; fp16 arithmetic on ARMv8.2 FP16 cores only",
        "int8": "ncnn's int8 kernels (use_int8_inference) on a model quantized by bench's Python port of ncnn2table "
                "(ACIQ activation scales on the shared calibration set, per-channel weights) and ncnn2int8: "
                "Convolution, ConvolutionDepthWise and InnerProduct int8, the rest fp32",
    })
    device_notes = MappingProxyType({
        "vulkan": "ncnn's Vulkan compute (use_vulkan_compute) on ncnn's default Vulkan device, named on the row "
                  "(runner_facts.vulkan_device). fp32: use_fp16_packed / storage / arithmetic and bf16 off, so the "
                  "GPU stores and computes fp32; fp16: fp16 storage and arithmetic on (ncnn's Vulkan default), "
                  "refused where the device lacks them; both read back from net.opt after loading. Timed: the "
                  "extractor with host Mats, so each iteration includes the upload of the inputs and the download of "
                  "the outputs; cold start includes compiling the shader pipelines (no cache persists between "
                  "processes). int8: CPU only",
    })
    conversion = "ONNX -> ncnn with the pnnx wheel's native converter binary (no torch), fp32 weights (fp16=0)"

    def available(self) -> Availability:
        runtime = super().available()
        if not runtime.ok:
            return runtime
        if pnnx_binary() is None:
            return Availability(False, f"the ONNX -> ncnn converter is missing: {PNNX_HINT}")
        return Availability(True)

    def detect_devices(self) -> dict[str, Availability]:
        return {"cpu": Availability(True), "vulkan": vulkan.availability()}

    def cpu_precision(self, precision: str, cpu: Cpu) -> PrecisionSupport:
        if precision == "int8":
            return PrecisionSupport.accelerated_by(cpu, ("avx512_vnni", "avx_vnni", "i8mm", "asimddp"),
                                                   "ncnn's int8 kernels")
        if precision != "fp16":
            return PrecisionSupport()
        if cpu.arch == "x86":
            return PrecisionSupport(reason=X86_FP16_EVIDENCE)
        if cpu.arch != "arm64":
            return PrecisionSupport(reason=f"ncnn fp16 arithmetic runs on ARMv8.2 (asimdhp) only, not {cpu.arch}")
        return PrecisionSupport.needs(
            cpu, ("asimdhp",), "ncnn's ARMv8.2 fp16 kernels (use_fp16_arithmetic; checked again in the worker)",
            "this ARM CPU has no FP16 SIMD (asimdhp): ncnn computes fp32 there whatever use_fp16_arithmetic says")

    def unsupported_reason(self, case: Case) -> str | None:
        if case.batch != 1:
            return "ncnn runs batch 1: pnnx drops the batch axis when it converts"
        if case.device == "vulkan" and case.precision == "int8":
            return "ncnn int8 is benchmarked on the CPU only: bench's int8 port targets ncnn's CPU kernels"
        return None


SPEC = NcnnSpec()
