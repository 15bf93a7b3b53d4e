"""Planning: suite x zoo x runners x devices x precisions x batches x cores x threads x scenarios -> cases.

Every name is validated before any model is built. A combination a runner cannot do stays in the
plan as a skipped case, so it becomes a row with its status and reason instead of silence.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from bench import topology
from bench.case import LOADGEN_SCENARIOS, Case, ModelRef
from bench.contract import Status
from bench.cpu import Cpu
from bench.envinfo import cpus_allowed
from bench.errors import UserError
from bench.models.torchsource import FactoryRef, torch_model
from bench.models.user import user_model
from bench.models.zoo import ZooModel, load_manifest, model_ref
from bench.plugin import Availability, PrecisionSupport, RunnerSpec
from bench.registry import Registry
from bench.suite import Suite


@dataclass(frozen=True)
class Overrides:
    """Command-line choices that replace the suite's."""

    models: list[str] | None = None
    runners: list[str] | None = None
    threads: list[int] | None = None
    user_model: Path | None = None
    torch_factory: FactoryRef | None = None  # bench run --torch: a model from the user's PyTorch code
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    timeout_s: float | None = None
    max_memory_mb: int | None = None
    shard: Shard | None = None
    profile: bool = False  # --profile: every case gets the per-op pass, whatever the suite says


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (1-based): a case belongs to exactly one shard, by the hash of its key,
    so n machines of one kind split a suite disjointly and completely, whatever order they plan in."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        index, sep, count = text.partition("/")
        if sep and index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count):
            return cls(int(index), int(count))
        raise UserError(f"--shard {text!r}: expected I/N with 1 <= I <= N, e.g. 2/4")

    def owns(self, case_key: str) -> bool:
        digest = int(hashlib.sha256(case_key.encode()).hexdigest()[:16], 16)
        return digest % self.count == self.index - 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class PlannedCase:
    case: Case
    skip_status: Status | None = None  # UNSUPPORTED / UNAVAILABLE: written as a row, not run
    skip_reason: str = ""
    index: int = 0  # position in the whole (unsharded) plan: names the row's file
    precision_feature: str | None = None  # the CPU feature the runner's declaration says lets the precision run
    source_path: str | None = None  # how the model reaches the runtime: "PyTorch -> ONNX -> openvino" (RunnerSpec)


def check_names(kind: str, names: list[str], known: list[str], origin: str) -> None:
    for name in names:
        if name not in known:
            raise UserError(f"{origin}: unknown {kind} {name!r}; known: {', '.join(known)}")


def _runners(suite: Suite, overrides: Overrides, registry: Registry, origin: str) -> list[RunnerSpec]:
    names = overrides.runners or suite.runners
    known = list(registry.specs)
    if names == ["*"]:
        return list(registry.specs.values())
    check_names("runner", names, known, "--runners" if overrides.runners else origin)
    return [registry.specs[n] for n in names]


def _zoo_models(suite: Suite, overrides: Overrides, origin: str) -> list[ZooModel]:
    zoo = load_manifest()
    names = overrides.models or suite.models
    check_names("model", names, sorted(zoo), "--models" if overrides.models else origin)
    return [zoo[n] for n in names]


def _threads(suite: Suite, overrides: Overrides, cores: int) -> list[int]:
    """The thread counts to run on ``cores`` CPUs: "all" is their number."""
    values = overrides.threads or [cores if t == "all" else t for t in suite.threads]
    for t in values:
        if t < 1:
            raise UserError(f"threads must be >= 1, got {t}")
    return list(dict.fromkeys(values))


CoreSet = tuple[str, tuple[int, ...], int, str]  # cores name, its CPUs, threads, why it cannot run here ("" if it can)


def _core_sets(suite: Suite, overrides: Overrides, root: Path = Path("/")) -> list[CoreSet]:
    """(cores, cpus, threads, why not) for each cores value x thread count. A cluster this machine lacks (one
    cluster on most x86 machines) still plans its cases, as unavailable rows that say why."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(cpus_allowed()))
    sets: list[tuple[str, tuple[int, ...], int, str]] = []
    for name in suite.cores:
        cpus, why = topology.core_set(name, allowed, root)
        for n in _threads(suite, overrides, len(cpus or allowed)):
            sets.append((name, cpus or (), n, why))
    return sets


@functools.cache
def _loadgen_installed() -> bool:
    return importlib.util.find_spec("mlperf_loadgen") is not None


def _skip(spec: RunnerSpec, case: Case, available: Availability, devices: dict[str, Availability],
          support: PrecisionSupport):
    if case.batch != 1 and all(i.batch_axis is None for i in case.model.inputs):
        return Status.UNSUPPORTED, f"model {case.model.name!r} has no batch axis; it runs at batch 1 only"
    # What the runner declares comes first: TensorRT on a CPU case is unsupported, whether installed or not
    if case.device not in spec.devices:
        return Status.UNSUPPORTED, f"{spec.name} has no device {case.device!r} (it has {', '.join(spec.devices)})"
    if case.precision not in spec.precisions:
        return Status.UNSUPPORTED, f"{spec.name} offers precisions {', '.join(spec.precisions)}, not {case.precision}"
    if case.scenario not in spec.scenarios:
        return Status.UNSUPPORTED, f"{spec.name} has no {case.scenario} scenario yet"
    if not available.ok:
        return Status.UNAVAILABLE, available.reason
    if case.scenario in LOADGEN_SCENARIOS and not _loadgen_installed():
        return Status.UNAVAILABLE, (f"the {case.scenario} scenario runs MLPerf LoadGen, not installed: "
                                    "pip install 'onnx-inference-bench[loadgen]' (x86-64 wheels)")
    if not devices[case.device].ok:
        return Status.UNAVAILABLE, f"device {case.device!r}: {devices[case.device].reason}"
    tool = spec.case_available(case)
    if not tool.ok:
        return Status.UNAVAILABLE, tool.reason
    if not support.ok:
        return Status.UNSUPPORTED, support.reason
    reason = spec.unsupported_reason(case)
    return (Status.UNSUPPORTED, reason) if reason else (None, "")


def _releases(suite: Suite, runners: list[RunnerSpec], origin: str) -> dict[str, list[str]]:
    """Runner name -> the releases its cases run on ([""]: the one installed beside bench); a distribution in the
    suite's ``versions`` that no runner of the plan is would be an axis that silently runs nothing."""
    distributions = {spec.distribution for spec in runners}
    for name in suite.versions:
        if name not in distributions:
            raise UserError(f"{origin}: versions: no runner of this plan is the distribution {name!r} (the runners' "
                            f"distributions: {', '.join(sorted(distributions))})")
    return {spec.name: suite.versions.get(spec.distribution, [""]) for spec in runners}


def _export_failed(spec: RunnerSpec, model: ModelRef) -> bool:
    """A model from PyTorch whose ONNX export failed (``bench.models.torchsource``): a ``conversion_failed`` row,
    naming the exporter, for every runner of ONNX; the runners of torch modules still run the module."""
    return bool(model.torch_export) and not model.path and not spec.torch_module_path


def _placeholder(model: ZooModel) -> ModelRef:
    return ModelRef(model.name, "", model.sha256, model.inputs, model.source, model.task)


def plan(
    suite: Suite,
    origin: str,
    overrides: Overrides,
    registry: Registry,
    cache_dir: Path,
    build_models: bool = True,
    cpu: Cpu | None = None,
) -> list[PlannedCase]:
    """The cases to run, in order. With ``build_models=False`` (dry run) nothing is built or read. ``cpu``:
    the CPU the runners' declarations are asked about (default: this one; tests plan for others too)."""
    runners = _runners(suite, overrides, registry, origin)
    releases = _releases(suite, runners, origin)
    known_devices = sorted({d for spec in registry.specs.values() for d in spec.devices})
    check_names("device", suite.devices, known_devices, origin)
    _threads(suite, overrides, cpus_allowed())  # bad --threads is refused before any model is built
    timeout_s = overrides.timeout_s or suite.timeout_s
    if overrides.torch_factory:  # the export's deadline is a case's
        models = [torch_model(overrides.torch_factory, overrides.shapes, cache_dir if build_models else None,
                              timeout_s)]
    elif overrides.user_model:
        models = [user_model(overrides.user_model, overrides.shapes, cache_dir if build_models else None)]
    else:
        zoo_models = _zoo_models(suite, overrides, origin)
        models = [model_ref(m, cache_dir) if build_models else _placeholder(m) for m in zoo_models]
    availability = {spec.name: spec.available() for spec in runners}
    devices = {spec.name: spec.detect_devices() for spec in runners}
    cpu = cpu or Cpu.here()
    planned: list[PlannedCase] = []
    axes = (models, runners, suite.devices, suite.precisions, suite.batch_sizes, _core_sets(suite, overrides),
            suite.scenarios)
    for model, spec, device, precision, batch, (cores, cpus, n_threads, why), scenario, release in (
            (*axis, release) for axis in itertools.product(*axes) for release in releases[axis[1].name]):
        case = Case(
            model=model, runner=spec.name, implementation=spec.implementation, device=device,
            precision=precision, batch=batch, threads=n_threads, scenario=scenario,
            timing=suite.timing.policy(), timeout_s=timeout_s, max_memory_mb=overrides.max_memory_mb,
            seed=suite.seed, cache_dir=str(cache_dir), cores=cores, cpus=cpus if cores != "all" else (),
            task_samples=suite.task_samples, runtime_version=release,
            loadgen=suite.loadgen.policy(model.name, timeout_s),
            profile=suite.profile or overrides.profile,
        )
        support = spec.cpu_precision(precision, cpu) if device == "cpu" else PrecisionSupport()
        status, reason = _skip(spec, case, availability[spec.name], devices[spec.name], support)
        if why and status is None:
            status, reason = Status.UNAVAILABLE, why
        if status is None and _export_failed(spec, model):
            status, reason = Status.CONVERSION_FAILED, json.loads(model.torch_export)["error"]
        planned.append(PlannedCase(case, status, reason, len(planned), support.feature, spec.source_path(model)))
    if overrides.shard:
        planned = [p for p in planned if overrides.shard.owns(p.case.key)]
    if not planned:
        raise UserError(f"{origin}: the plan is empty" + (f" for shard {overrides.shard}" if overrides.shard else ""))
    return planned


def plan_sha256(planned: list[PlannedCase]) -> str:
    """What a run is, as a hash: its case keys and the model bytes behind them, in plan order."""
    text = "\n".join(f"{p.index}\t{p.case.key}\t{p.case.model.sha256}" for p in planned)
    return hashlib.sha256(text.encode()).hexdigest()
