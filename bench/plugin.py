"""The runner plugin interface.

A plugin has two halves:

* a :class:`RunnerSpec`, imported by the parent process: what the runner can do, whether its runtime is
  installed, its version. Importing a spec never imports the runtime, so listing runners stays cheap.
* a :class:`Runner`, imported only inside the worker process that runs one case. The harness owns the
  clock: a runner exposes phases (``convert``, ``load``, ``prepare``, ``bind``, ``infer``) and reports
  facts about what actually ran; it never times itself.

Example, a third-party runner registered through the ``bench.runners`` entry-point group::

    # mypkg/bench_plugin.py
    from bench.plugin import RunnerSpec

    class MyRuntimeSpec(RunnerSpec):
        name = "myruntime"
        distribution = "myruntime"
        module = "myruntime"
        implementation = "mypkg.bench_runner:MyRuntimeRunner"
        install_hint = "pip install myruntime"

    SPEC = MyRuntimeSpec()

    # pyproject.toml
    # [project.entry-points."bench.runners"]
    # myruntime = "mypkg.bench_plugin:SPEC"
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from bench.case import Case, ModelRef
from bench.contract import Conversion, OpTime
from bench.cpu import Cpu


class NoProfiler(Exception):
    """Raised by ``Runner.profile`` where the runtime has no per-op profiler bench can drive; the message, which
    says why, lands on the case row (``profile_note``) and the case keeps its timing."""


class Unsupported(Exception):
    """Raised by a runner in the worker when it finds out only at run time that it cannot do a case
    honestly (say, the runtime reports a different precision than asked); the row's status is unsupported."""


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class PrecisionSupport:
    """Whether a runtime computes a precision on a CPU: the feature that lets it (a flag and how the runtime
    uses it; None for fp32), or why it cannot. Decided from the CPU's flags alone (see ``bench.cpu``)."""

    feature: str | None = None
    reason: str | None = None
    tentative: bool = False  # the flags cannot tell (CPUID bits Linux does not show): the worker's read-back decides

    @property
    def ok(self) -> bool:
        return self.reason is None

    @classmethod
    def accelerated_by(cls, cpu: Cpu, flags: tuple[str, ...], kernels: str) -> PrecisionSupport:
        """Supported on any CPU; the feature names the first of ``flags`` (dot-product instructions, say) that
        ``kernels`` use here, or says that they run on plain SIMD without them."""
        flag = cpu.first(*flags)
        return cls(f"{flag}: {kernels}" if flag else f"none: {kernels} on plain SIMD (no dot-product instructions)")

    @classmethod
    def needs(cls, cpu: Cpu, flags: tuple[str, ...], use: str, otherwise: str) -> PrecisionSupport:
        """Supported where ``cpu`` has one of ``flags`` (the feature reads "FLAG: use"), else ``otherwise``."""
        flag = cpu.first(*flags)
        return cls(f"{flag}: {use}") if flag else cls(reason=otherwise)


class RunnerSpec:
    """What a runner declares. Subclasses set the class attributes; the planner reads only these."""

    name: ClassVar[str]
    distribution: ClassVar[str]  # PyPI distribution providing the runtime, for the version
    module: ClassVar[str]  # import name, probed without importing it
    implementation: ClassVar[str]  # "package.module:RunnerClass", imported in the worker only
    install_hint: ClassVar[str]
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    scenarios: ClassVar[tuple[str, ...]] = ("latency",)
    model_format: ClassVar[str] = "onnx"
    conversion: ClassVar[str] = "none: reads ONNX directly"
    notes: ClassVar[str] = ""  # what a user should know first; README's runner table shows it
    # How this runtime makes and runs each reduced precision it offers (docs/RESULTS.md's precision table)
    precision_notes: ClassVar[Mapping[str, str]] = MappingProxyType({})
    # How this runtime runs each device other than the CPU, its precisions there included (docs/RESULTS.md)
    device_notes: ClassVar[Mapping[str, str]] = MappingProxyType({})
    packages: ClassVar[tuple[str, ...]] = ()  # other distributions whose versions every run records (converters...)
    # Distributions a release's environment (the version axis, bench/environments.py) needs beside the runtime,
    # installed there without their dependencies at the version installed beside bench: a converter shipped as a
    # binary in a wheel (ncnn's pnnx)
    environment_extras: ClassVar[tuple[str, ...]] = ()
    # "package.module:function" that ``bench tune`` runs in a subprocess (see bench/tune.py), for runtimes whose
    # speed depends on a tuning step; None: the runner has none
    tuner: ClassVar[str | None] = None
    installable: ClassVar[bool] = True  # False: a runtime bench knows of but cannot install (bench/known.py)
    # The precisions whose ``Runner.convert`` makes an artifact in the cache, which ``bench run`` makes ahead of the
    # timed phase, several at a time (bench/ahead.py); None: every precision, the safe default (a conversion tried
    # ahead for nothing costs one worker, never a wrong row)
    converted_precisions: ClassVar[tuple[str, ...] | None] = None
    # Runners of torch modules (eager, torch.compile, ExecuTorch; a LiteRT converter from PyTorch): what the path is
    # called after "PyTorch ->". They take the module from bench.runners.pytorch.conversion.source_module: the user's
    # factory for a model from PyTorch (``bench run --torch``), onnx2torch's bridge for an ONNX one. "": the runner
    # runs ONNX, for a model from PyTorch its export (``bench.models.torchsource``).
    torch_module_path: ClassVar[str] = ""

    def version(self) -> str | None:
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return None

    def available(self) -> Availability:
        if importlib.util.find_spec(self.module) is None:
            return Availability(False, f"not installed: {self.install_hint}")
        return Availability(True)

    def detect_devices(self) -> dict[str, Availability]:
        """Which declared devices are present. CPU always is; runners with GPUs override this."""
        return {d: Availability(d == "cpu", "" if d == "cpu" else "no device") for d in self.devices}

    def cpu_precision(self, precision: str, cpu: Cpu) -> PrecisionSupport:
        """Whether this runtime computes ``precision`` (one of ``precisions``) on ``cpu``, and which CPU
        feature lets it. It must depend on ``cpu`` alone, never on the machine it runs on: the planner asks about
        the CPU at hand, the tests about every CPU in ``bench.cpu.REFERENCE_CPUS``. Where the runtime may still
        substitute another precision silently, the runner reads the precision back in the worker as well."""
        return PrecisionSupport()

    def converts(self, precision: str) -> bool:
        """Whether a case of ``precision`` converts the model into the cache before loading it."""
        return self.converted_precisions is None or precision in self.converted_precisions

    def precision_available(self, precision: str) -> Availability:
        """Whether bench has what this precision needs here (a quantizer, a converter): when not, the case is
        ``unavailable`` with an install hint, never ``unsupported`` (that is for what the runtime cannot do)."""
        return Availability(True)

    def case_available(self, case: Case) -> Availability:
        """:meth:`precision_available` for one case, for runners whose need of a tool depends on the model too
        (LiteRT runs a shipped ``.tflite`` without its converter)."""
        return self.precision_available(case.precision)

    def unsupported_reason(self, case: Case) -> str | None:
        """Why this runner cannot run ``case`` (beyond device/precision/scenario/CPU), or None if it can."""
        return None

    def source_path(self, model: ModelRef) -> str | None:
        """How the model reaches this runtime, for the rows and the report: "PyTorch -> ONNX -> openvino" and
        "PyTorch -> ExecuTorch" for a model from PyTorch (``bench run --torch``), "ONNX -> onnx2torch -> eager" for
        an ONNX model run as a torch module; None for an ONNX model on an ONNX runtime."""
        module = self.torch_module_path
        if model.source == "torch":
            return f"PyTorch -> {module}" if module else f"PyTorch -> ONNX -> {self.name}"
        return f"ONNX -> onnx2torch -> {module}" if module else None


class Runner(ABC):
    """One runtime running one case inside the worker process."""

    #: What the timed region contains, recorded on every row.
    timed_region: ClassVar[str] = "infer call"

    def __init__(self, case: Case) -> None:
        self.case = case
        #: Set by ``convert`` when the runner converts (see ``bench.execution.convert.cached_artifact``).
        self.conversion: Conversion | None = None
        #: Requests in flight per ``infer_concurrent`` call (throughput scenario); set in ``prepare``.
        self.concurrent_requests = 1

    def convert(self, onnx_path: Path) -> Path:
        """Turn the ONNX file into this runtime's format (cached); the identity for ONNX runtimes."""
        return onnx_path

    @abstractmethod
    def load(self, artifact: Path) -> None:
        """Read and parse the model."""

    @abstractmethod
    def prepare(self) -> None:
        """Create the session / compile the model for the case's device, precision and threads."""

    @abstractmethod
    def bind(self, inputs: dict[str, np.ndarray]) -> None:
        """Hand inputs to the runtime before timing, wherever its API allows binding them once."""

    @abstractmethod
    def infer(self) -> None:
        """One inference, and nothing else: this is what the harness times."""

    def infer_concurrent(self) -> None:
        """Throughput scenario: run ``concurrent_requests`` requests with the runtime's own concurrency
        (streams, async queues, thread pools) and return when all have finished."""
        raise NotImplementedError(f"{type(self).__name__} has no throughput scenario")

    def infer_request(self, slot: int) -> None:
        """Server and offline scenarios (MLPerf LoadGen, ``bench.execution.loadgen``): one request on request slot
        ``slot`` of ``concurrent_requests``, each slot called from a thread of its own. A runner whose requests
        can run side by side sets ``concurrent_requests`` in ``prepare`` and keeps each slot's bindings apart; the
        default runs one request at a time."""
        self.infer()

    @abstractmethod
    def outputs(self) -> dict[str, np.ndarray]:
        """The last inference's outputs, copied out of the runtime's buffers."""

    def run_each(self, inputs: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Untimed, after the timed loop: each input through bind, infer and outputs (parity, task accuracy)."""
        outputs = []
        for one in inputs:
            self.bind(one)
            self.infer()
            outputs.append(self.outputs())
        return outputs

    #: Why this runner has no per-op profile pass (``profile`` not overridden); runners without one say it better.
    no_profiler: ClassVar[str] = "this runner has no per-op profile pass"

    def profile(self, inputs: dict[str, np.ndarray], runs: int) -> list[OpTime]:
        """Untimed, after parity (``--profile``): ``runs`` inferences of ``inputs`` under the runtime's own per-op
        profiler, one ``OpTime`` per node and run (``run`` numbered from 0; bench drops run 0 as the profiler's
        warm-up). Raise ``NoProfiler`` with the reason where there is none. Example::

            def profile(self, inputs, runs):
                self.bind(inputs)
                times = []
                for run in range(runs):
                    self.infer()
                    times += [OpTime(run, n.name, n.type, n.ms) for n in self.session.last_profile()]
                return times
        """
        raise NoProfiler(self.no_profiler)

    def facts(self) -> dict[str, Any]:
        """What really ran, read back from the runtime where it can tell: precision, threads, options. A
        ``report_label`` fact (say TVM's ``"untuned"``) is shown beside the runner's name wherever a report names
        it, for configurations whose speed is not the runtime's best (``bench/report/labels.py``)."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook, most runtimes free on garbage collection
        """Release the runtime's resources."""
