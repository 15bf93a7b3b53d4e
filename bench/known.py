"""Runtimes bench knows of but cannot install: listed by ``bench list runners`` as ``not installable``, with why and
where their source is, and planned like any runner, so that each of their cases is an ``unavailable`` row and the
coverage matrix shows the gap. The registry's version of fsspec's ``known_implementations``, whose entries name a
class and the error to show when its package is missing.

A real runner of the same name (a ``bench.runners`` plugin) takes the entry's place.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, NoReturn

from bench.case import Case
from bench.cpu import Cpu
from bench.plugin import Availability, PrecisionSupport, RunnerSpec


class NotInstallable(RunnerSpec):
    """A known runtime without an installable build: its declarations are what the runtime does (so the planner
    marks what it could never do as unsupported), and it is never available."""

    installable = False
    implementation = "bench.known:no_runner"
    source: str = ""
    why: str = ""

    def version(self) -> str | None:
        return None

    def available(self) -> Availability:
        return Availability(False, f"not installable: {self.why}; source: {self.source}")


def no_runner(case: Case) -> NoReturn:
    """What a case of a not-installable runtime would load; the planner never lets one reach a worker."""
    raise RuntimeError(f"{case.runner} is known to bench but not installable: it has no runner")


class TnnSpec(NotInstallable):
    name = "tnn"
    distribution = "pytnn"  # TNN's Python module, built only from source (-DTNN_PYBIND_ENABLE=ON)
    module = "pytnn"
    install_hint = "build TNN from source (https://github.com/Tencent/TNN); bench has no runner for it yet"
    source = "https://github.com/Tencent/TNN"
    why = ("TNN has no installable build on PyPI, Debian or npm (the PyPI name `tnn` is an unrelated 2018 project); "
           "its Python module (pytnn) exists only when built from source")
    devices = ("cpu", "cuda")  # ARM / x86 CPUs, OpenCL, Metal, CUDA + TensorRT: the two bench plans for
    precisions = ("fp32", "fp16", "int8")
    notes = "known, not installable: no PyPI / Debian / npm build; every case is an `unavailable` row"
    conversion = "onnx2tnn (TNN's converter, from source too)"

    def cpu_precision(self, precision: str, cpu: Cpu) -> PrecisionSupport:
        if precision == "int8":
            return PrecisionSupport("none: which CPU features TNN's int8 kernels use is not known (never run here)")
        if precision != "fp16":
            return PrecisionSupport()
        return PrecisionSupport.needs(cpu, ("asimdhp",), "TNN's ARMv8.2 fp16 kernels",
                                      "TNN computes fp16 on ARMv8.2 cores with FP16 SIMD (asimdhp) only")


KNOWN: MappingProxyType[str, Any] = MappingProxyType({"tnn": TnnSpec()})
