"""ncnn runner declaration. Imports nothing from ncnn or pnnx.

Conversion uses the native converter binary that the ``pnnx`` wheel ships (``site-packages/pnnx/pnnx``). It is
found with ``importlib.util.find_spec``, which locates the package without running it: the ``pnnx`` console
script and ``pnnx.export`` import torch, the binary does not (``pip install --no-deps pnnx`` is enough).
"""

from __future__ import annotations

import importlib.util
import os
import platform
from pathlib import Path

from bench.case import Case
from bench.plugin import Availability, RunnerSpec

PNNX_HINT = "pip install --no-deps pnnx (only its native converter binary is used; no torch needed)"
X86_MACHINES = {"x86_64", "amd64", "i386", "i686", "x86"}
ARM64_MACHINES = {"aarch64", "arm64", "armv8l"}


def pnnx_binary() -> Path | None:
    """The pnnx wheel's converter executable, or None when the wheel is absent."""
    spec = importlib.util.find_spec("pnnx")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "pnnx"
    return path if path.is_file() and os.access(path, os.X_OK) else None


def fp16_unsupported_reason(machine: str) -> str | None:
    """Why ncnn cannot do fp16 arithmetic on this CPU architecture, or None where it can (ARMv8.2 asimdhp,
    checked again on the CPU itself in the worker)."""
    machine = machine.lower()
    if machine in X86_MACHINES:
        return ("ncnn has no fp16 arithmetic on x86: its use_fp16_* options only store some weights in fp16 "
                "(F16C) and compute in fp32, so fp16 is not offered on this CPU")
    if machine not in ARM64_MACHINES:
        return f"ncnn fp16 arithmetic is run here on ARMv8.2 (asimdhp) only, not on {machine or 'this CPU'}"
    return None


class NcnnSpec(RunnerSpec):
    name = "ncnn"
    distribution = "ncnn"
    module = "ncnn"
    implementation = "bench.runners.ncnn.runner:NcnnRunner"
    install_hint = "pip install 'bench[ncnn]'"
    # Vulkan is left out: the wheel can drive a Vulkan GPU, but no such device was available to test it on.
    devices = ("cpu",)
    precisions = ("fp32", "fp16")
    scenarios = ("latency",)
    model_format = "ncnn"
    conversion = "ONNX -> ncnn with the pnnx wheel's native converter binary (no torch), fp32 weights (fp16=0)"

    def available(self) -> Availability:
        runtime = super().available()
        if not runtime.ok:
            return runtime
        if pnnx_binary() is None:
            return Availability(False, f"the ONNX -> ncnn converter is missing: {PNNX_HINT}")
        return Availability(True)

    def unsupported_reason(self, case: Case) -> str | None:
        if case.batch != 1:
            return "ncnn runs batch 1: pnnx drops the batch axis when it converts"
        if case.precision == "fp16":
            return fp16_unsupported_reason(platform.machine())
        return None


SPEC = NcnnSpec()
