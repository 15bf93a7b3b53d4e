"""torch.compile runner declaration: the PyTorch baseline's module compiled with inductor. Imports nothing from torch.

A runner of its own (not an option of ``pytorch``) so that it is one more entry on the runner axis: the speed-up
table, the scenario picks and ``--runners`` treat eager and compiled as the two things a PyTorch user can run.
The module is onnx2torch's, as for ``pytorch``; ``torch.compile(module, backend="inductor")`` in the default
``mode``, recorded on the row. Compilation is lazy, so the harness's first inference holds it (dynamo tracing,
inductor's code generation, g++ building the C++ kernels): cold start includes what a user pays at start-up, in a
fresh inductor cache per case (a temp folder, removed after), never a warm one from an earlier run.

CPU and fp32 only: inductor's CPU code is C++ built with the system compiler; on cuda it would be Triton, which
no machine here has.
"""

from __future__ import annotations

import os
import shutil
from types import MappingProxyType

from bench.plugin import Availability
from bench.runners.pytorch import PyTorchSpec


def cxx_compiler() -> str | None:
    """The C++ compiler inductor will call on CPU: $CXX if set, else g++ (its default, torch._inductor.config.cpp)."""
    return shutil.which(os.environ.get("CXX") or "g++")


class PyTorchCompileSpec(PyTorchSpec):
    name = "pytorch_compile"
    implementation = "bench.runners.pytorch_compile.runner:PyTorchCompileRunner"
    devices = ("cpu",)
    precisions = ("fp32",)
    torch_module_path = "torch.compile"
    notes = ("torch.compile (inductor, default mode) of the eager baseline's module; compilation is in the cold "
             "start; needs a C++ compiler (g++)")
    precision_notes = MappingProxyType({})
    conversion = ("as pytorch (onnx2torch, not serialized); torch.compile(backend='inductor') in prepare, compiled "
                  "lazily by the first inference")

    def available(self) -> Availability:
        found = super().available()
        if found.ok and cxx_compiler() is None:
            return Availability(False, "inductor builds its CPU kernels with a C++ compiler: g++ (or $CXX) not found")
        return found

    def detect_devices(self):
        return {"cpu": Availability(True)}


SPEC = PyTorchCompileSpec()
