"""PyTorch runner declaration: the "why not just run it in PyTorch?" baseline. Imports nothing from torch.

The ONNX file becomes a ``torch.fx.GraphModule`` with onnx2torch and runs in eager mode under
``torch.inference_mode()``: what a PyTorch user gets without a compiler. PyTorch's own deployment paths are runners
of their own beside it: ``pytorch_compile`` (the same module through ``torch.compile``) and ``executorch`` (exported
and lowered to XNNPACK).

Precisions: fp32 everywhere (TF32 and implicit bf16 turned off, see ``runner.py``); bf16 and fp16 by casting the
module and the float inputs (``module.to(dtype)``), offered on the CPU only where it has native arithmetic for
that type (AVX512-BF16 / AMX-BF16, AVX512-FP16 / AMX-FP16; elsewhere PyTorch converts to fp32 inside each kernel,
which would make the row a slow fp32 row labelled bf16), and on cuda where the GPU has it (checked in the worker).

Devices: cpu; cuda when the driver lists a GPU and the installed torch is not a CPU build (checked here from
/proc and torch's version string, without importing torch; the worker checks ``torch.cuda.is_available()``).
"""

from __future__ import annotations

import importlib.util
from types import MappingProxyType

from bench import extra_hint
from bench.cpu import Cpu
from bench.nvidia import cuda_device
from bench.plugin import Availability, PrecisionSupport, RunnerSpec

# cpuinfo flags that give PyTorch's oneDNN kernels native arithmetic in each reduced precision, by architecture.
NATIVE_CPU_FLAGS = {
    "x86": {"bf16": ("amx_bf16", "avx512_bf16"), "fp16": ("amx_fp16", "avx512_fp16")},
    "arm64": {"bf16": ("bf16",), "fp16": ("asimdhp",)},
}


def cpu_precision_support(precision: str, cpu: Cpu) -> PrecisionSupport:
    """Whether PyTorch computes ``precision`` natively on ``cpu`` (the worker asks oneDNN as well)."""
    if precision not in ("bf16", "fp16"):
        return PrecisionSupport()
    needed = NATIVE_CPU_FLAGS.get(cpu.arch, {}).get(precision, ())
    flags = ", ".join(needed) or f"the flags known for {cpu.arch}"
    return PrecisionSupport.needs(
        cpu, needed, f"native {precision} arithmetic in PyTorch's CPU kernels (oneDNN)",
        f"this CPU has no native {precision} arithmetic (none of {flags}): PyTorch would convert to fp32 inside its "
        "kernels, so the row would time fp32 work plus conversions")


class PyTorchSpec(RunnerSpec):
    name = "pytorch"
    distribution = "torch"
    module = "torch"
    implementation = "bench.runners.pytorch.runner:PyTorchRunner"
    install_hint = extra_hint("pytorch")
    devices = ("cpu", "cuda")
    precisions = ("fp32", "bf16", "fp16")
    scenarios = ("latency",)
    model_format = "onnx"
    torch_module_path = "eager"
    packages = ("onnx2torch",)
    notes = "the eager baseline; not in `all` (torch is large): `scripts/install test` adds the CPU build"
    precision_notes = MappingProxyType({
        "bf16": "the module and inputs cast to torch.bfloat16; on CPUs only where oneDNN has native bf16",
        "fp16": "the module and inputs cast to torch.float16; on CPUs only where oneDNN has native fp16",
    })
    conversion = "ONNX -> torch.fx.GraphModule with onnx2torch, run eagerly (checked in a subprocess, not serialized)"

    def available(self) -> Availability:
        for module, what in (("torch", "torch"), ("onnx2torch", "the ONNX -> PyTorch converter onnx2torch")):
            if importlib.util.find_spec(module) is None:
                return Availability(False, f"not installed: {what} ({self.install_hint})")
        return Availability(True)

    def detect_devices(self) -> dict[str, Availability]:
        version = self.version() or ""
        if "+cpu" in version:
            cuda = Availability(False, f"torch {version} is a CPU-only build")
        else:
            cuda = cuda_device()
        return {"cpu": Availability(True), "cuda": cuda}

    def cpu_precision(self, precision: str, cpu: Cpu) -> PrecisionSupport:
        return cpu_precision_support(precision, cpu)


SPEC = PyTorchSpec()
