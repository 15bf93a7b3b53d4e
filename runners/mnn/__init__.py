"""MNN runner declaration. Imports nothing from MNN."""

from __future__ import annotations

import platform

from bench.case import Case
from bench.envinfo import cpu_flags
from bench.plugin import RunnerSpec


def cpu_fp16_arithmetic() -> bool:
    """Whether MNN can compute in fp16 on this CPU, judged without importing MNN.

    MNN's only CPU fp16 backend is its ARMv8.2 one (``Arm82Backend``, chosen for precision "low" when the core
    has FP16 SIMD, the ``asimdhp`` flag on Linux; every Apple arm64 core has it). Elsewhere, x86 included,
    "low" falls through to the fp32 kernels: on this x86 machine its outputs are bit-identical to "high".
    """
    machine = platform.machine().lower()
    if machine not in ("aarch64", "arm64"):
        return False
    if platform.system() == "Darwin":
        return True
    return "asimdhp" in cpu_flags()


class MnnSpec(RunnerSpec):
    name = "mnn"
    distribution = "MNN"
    module = "MNN"
    implementation = "bench.runners.mnn.runner:MnnRunner"
    install_hint = "pip install 'bench[mnn]'"
    devices = ("cpu",)
    precisions = ("fp32", "fp16")
    scenarios = ("latency",)
    model_format = "mnn"
    conversion = (
        "ONNX -> MNN with the compiled converter module inside the MNN wheel (never the mnnconvert script), "
        "fp32 weights, exact GELU"
    )

    def unsupported_reason(self, case: Case) -> str | None:
        if case.precision == "fp16" and not cpu_fp16_arithmetic():
            return (
                f"MNN computes fp16 only on ARMv8.2 cores with FP16 SIMD; on this {platform.machine()} CPU its "
                "'low' precision runs the fp32 kernels (outputs bit-identical to fp32), so an fp16 row would be fp32"
            )
        return None


SPEC = MnnSpec()
