"""MNN runner declaration. Imports nothing from MNN."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from types import MappingProxyType

from bench import extra_hint
from bench.cpu import Cpu
from bench.plugin import Availability, PrecisionSupport, RunnerSpec

# Measured on an AMD EPYC (Zen 5; avx512_bf16, no avx512_fp16), MNN 3.6.1: tests/runners/test_mnn.py keeps checking it.
X86_FP16_EVIDENCE = (
    "MNN's only CPU fp16 backend is its ARMv8.2 one (Arm82Backend, built for ARM only, chosen for precision 'low' "
    "on cores with FP16 SIMD); on x86, AVX512-FP16 included, 'low' runs the AVX2/AVX-512 fp32 kernels (measured on "
    "an AMD EPYC: outputs bit-identical to 'high'), so an fp16 row there would be an fp32 row"
)


# What a build with a GPU backend holds: the backend's own library beside the engine, or the API calls linked in.
GPU_BACKENDS = {"Vulkan": ("libMNN_Vulkan", b"vkCreateInstance"), "OpenCL": ("libMNN_CL", b"clCreateContext")}
GPU_BUILD = ("a GPU build is MNN's Python package built from source (pymnn/pip_package) with the backend on (CMake "
             "-DMNN_VULKAN=ON or -DMNN_OPENCL=ON)")


@functools.cache
def gpu_backends() -> tuple[str, ...] | None:
    """The GPU backends compiled into the installed MNN (its engine library read, never imported), or None when
    MNN is not installed. The PyPI wheel has none: its engine names Vulkan and OpenCL only in an enum."""
    spec = importlib.util.find_spec("_mnncengine")
    if spec is None or not spec.origin:
        return None
    engine = Path(spec.origin)
    folders = [engine.parent, engine.parent / "mnn.libs", engine.parent / "MNN"]
    data = engine.read_bytes()
    return tuple(name for name, (library, symbol) in GPU_BACKENDS.items()
                 if symbol in data or any(any(f.glob(f"{library}*")) for f in folders if f.is_dir()))


class MnnSpec(RunnerSpec):
    name = "mnn"
    distribution = "MNN"
    module = "MNN"
    implementation = "bench.runners.mnn.runner:MnnRunner"
    install_hint = extra_hint("mnn")
    # vulkan: declared so that a suite asking for it gets an unavailable row that says why (detect_devices)
    devices = ("cpu", "vulkan")
    precisions = ("fp32", "fp16", "int8", "int8_weights")
    scenarios = ("latency",)
    model_format = "mnn"
    notes = ("Module API; int8: MNN's own post-training quantizer on the shared calibration set with a recipe chosen "
             "from the model's weights (EMA; KL keeping float the convolutions MNN's weight encoder would zero), read "
             "back from the quantized file; the row names the loaded MNN library, its VNNI kernels and what bounds "
             "the result (the PyPI wheel has no AVX-512 VNNI int8 kernels: docs/MNN_INT8.md builds one that has); "
             "int8_weights: int8 weights only, float arithmetic; never the mnnconvert script (it installs a package "
             "and sends the machine id)")
    precision_notes = MappingProxyType({
        "fp16": "precision mode 'low': the Arm82Backend's fp16 kernels on ARMv8.2 FP16 cores",
        "int8": "MNN's post-training quantizer (quantized.out's library) on the shared calibration set, 8 bits, "
                "MAX_ABS weights per output channel; activations EMA (convolution inputs/outputs only), or KL with "
                "every non-convolution op and the convolutions MNN's weight encoder would zero (channel scale <= "
                "1e-6 after BatchNorm folding) kept float (EMA ignores skip_quant_op_names); recipe and limited_by "
                "in conversion_options; convolutions with int8 activations counted in the quantized file (none: "
                "the row is not int8)",
        "int8_weights": "converter's --weightQuantBits 8: convolution weights stored int8 (per output channel) and "
                        "dequantized to float when the model loads, so the arithmetic is fp32; smaller file, same "
                        "kernels; weight-quantized convolutions counted in the converted file",
    })
    device_notes = MappingProxyType({
        "vulkan": "never run: the PyPI wheel holds only MNN's CPU backend, so the row is unavailable and says how to "
                  "get a GPU build; bench's MNN runner drives the CPU backend only",
    })
    conversion = (
        "ONNX -> MNN with the compiled converter module inside the MNN wheel (never the mnnconvert script), "
        "fp32 weights, exact GELU"
    )

    def detect_devices(self) -> dict[str, Availability]:
        backends = gpu_backends()
        if not backends:
            why = (f"MNN {self.version()} as installed has no GPU backend (the PyPI wheel is CPU-only: no "
                   f"libMNN_Vulkan or libMNN_CL, no vkCreateInstance or clCreateContext in its engine); {GPU_BUILD}")
        else:
            why = (f"this MNN has its {' and '.join(backends)} backend(s), but bench's MNN runner drives the CPU "
                   "backend only")
        return {"cpu": Availability(True), "vulkan": Availability(False, why)}

    def cpu_precision(self, precision: str, cpu: Cpu) -> PrecisionSupport:
        if precision == "int8":
            return PrecisionSupport.accelerated_by(cpu, ("avx512_vnni", "i8mm", "asimddp"), "MNN's int8 kernels")
        if precision == "int8_weights":
            return PrecisionSupport("none: float kernels (weights dequantized at load)")
        if precision != "fp16":
            return PrecisionSupport()
        if cpu.arch != "arm64":
            return PrecisionSupport(reason=X86_FP16_EVIDENCE if cpu.arch == "x86" else
                                    f"MNN computes fp16 only on ARMv8.2 cores with FP16 SIMD, not on {cpu.arch}")
        if not cpu.has_all("fphp", "asimdhp"):  # MNN needs both (source/backend/cpu/CPURuntime.cpp)
            return PrecisionSupport(reason="this ARM CPU lacks ARMv8.2 FP16 (fphp and asimdhp): MNN's 'low' "
                                           "precision runs its fp32 kernels there")
        return PrecisionSupport("asimdhp: MNN's Arm82Backend fp16 kernels (precision 'low')")


SPEC = MnnSpec()
