"""The worker-to-row contract: what a worker writes to ``result.json``, as frozen types; what a runner tells the
worker about its conversion (``Conversion``, ``ConversionFailed``); and what the parent learned of a worker run
(``WorkerOutcome``), which a row is made from.

The worker builds a :class:`WorkerResult` and writes ``to_json()`` (plain ``json``: nothing heavy is imported
in the process being timed); the parent reads it back with ``from_json``, which checks every field's type, so a
malformed result is a ``bad_output`` row at the boundary rather than a KeyError while the row is built.
``tests/test_result.py`` maps every field to a column of the results schema and back.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

# pydantic reads this from plain dataclasses when the parent checks a result: an unknown key is refused too.
FORBID_EXTRA = {"extra": "forbid"}
SPAWNED_AT_ENV = "BENCH_SPAWNED_AT_NS"  # the launcher's time.time_ns() at spawn, for the worker's start-up phase
# What a worker process can be asked to run (bench.execution.worker's main): a timed case, an fp32 reference, or
# only a case's conversion (bench.ahead's pass); the fork server refuses anything else.
WORKER_MODES = ("case", "reference", "convert")


class Status(str, Enum):
    """What became of a case; the ``status`` column."""

    OK = "ok"  # ran, timed, outputs checked
    ERROR = "error"  # the runner raised, or the worker exited non-zero
    CRASHED = "crashed"  # the worker died from a signal
    TIMEOUT = "timeout"  # the worker passed its deadline and its process group was killed
    BAD_OUTPUT = "bad_output"  # the worker exited but its result could not be read
    UNSUPPORTED = "unsupported"  # the runner declares (or finds in the worker) that it cannot do this case
    UNAVAILABLE = "unavailable"  # the runner's runtime is not installed, or the device is absent
    CONVERSION_FAILED = "conversion_failed"  # the converter from ONNX to the runtime's format refused the model
    OOM = "oom"  # the worker ran out of memory (its --max-memory cap, or the kernel's OOM killer)

    def __str__(self) -> str:
        return self.value


class ConversionFailed(Exception):
    """The converter refused the model. The worker turns this into a ``conversion_failed`` row."""

    def __init__(self, message: str, ops: list[str] | None = None) -> None:
        super().__init__(message)
        self.ops = ops or []


@dataclass(frozen=True)
class Conversion:
    """What was converted, with what, and whether the cache had it already: recorded on the row."""

    converter: str
    converter_version: str
    options: dict[str, Any] = field(default_factory=dict)
    cached: bool = False

    def facts(self) -> dict[str, Any]:
        return {
            "converter": self.converter,
            "converter_version": self.converter_version,
            "conversion_options": self.options,
            "conversion_cached": self.cached,
        }


@dataclass(frozen=True)
class LatencyStats:
    """Summary of one case's timed iterations, in milliseconds (computed by ``bench.execution.stats.latency_stats``)."""

    iterations: int
    median_ms: float
    median_ci_low_ms: float
    median_ci_high_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    cv: float


@dataclass(frozen=True, kw_only=True)
class Phases:
    """Where a case's wall time goes, phase by phase, each timed once by the worker (the timed loop is Timing's).
    The ones after ``warmup_iterations`` came later: None in a result of an older worker. Keyword arguments only:
    eleven numbers in a row are too easy to shift by one."""

    __pydantic_config__ = FORBID_EXTRA

    convert_ms: float
    load_ms: float
    prepare_ms: float
    first_inference_ms: float
    warmup_iterations: int
    worker_start_ms: float | None = None  # spawn -> the worker's main(): interpreter, numpy and bench imports
    import_ms: float | None = None  # the runner's module, and with it the runtime
    warmup_ms: float | None = None
    parity_ms: float | None = None
    task_ms: float | None = None
    write_ms: float | None = None  # the raw samples to disk
    profile_ms: float | None = None  # the per-op profile pass after parity (bench.execution.profile), where asked


@dataclass(frozen=True)
class Timing:
    """The timed loop: its statistics and what each iteration held."""

    __pydantic_config__ = FORBID_EXTRA

    latency: LatencyStats
    phases: Phases
    wall_ns: int
    cpu_ns: int
    stop_reason: str
    items_per_iteration: int
    timed_region: str
    cpus: tuple[int, ...] = ()  # the worker's affinity as it read it back
    cpu_freq_ratio: float | None = None  # lowest current / top frequency of those CPUs right after the loop


@dataclass(frozen=True)
class Accuracy:
    """Outputs against the fp32 reference on the parity inputs (``bench.execution.parity``); worst case over them."""

    __pydantic_config__ = FORBID_EXTRA

    accuracy_ok: bool | None
    reason: str = ""
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    normalized_error: float | None = None
    cosine: float | None = None
    top1_agreement: float | None = None
    parity_inputs: int | None = None


@dataclass(frozen=True)
class TaskScore:
    """Task accuracy on the zoo's labelled data (``bench.execution.task_eval``), for real trained models."""

    __pydantic_config__ = FORBID_EXTRA

    task_metric: str
    task_value: float
    task_n: int
    task_metrics: str  # JSON: every metric of the task
    task_reused_from: str = ""  # the case whose identical outputs were scored (bench.execution.task_eval)


@dataclass(frozen=True)
class RunnerFacts:
    """What a runner reports it ran. The fields with columns of their own are typed; ``details`` keeps the
    whole report (``runner_facts`` column), options and read-backs included."""

    __pydantic_config__ = FORBID_EXTRA

    runtime_version: str | None = None
    precision_used: str | None = None
    threads_used: int | None = None
    converter: str | None = None
    converter_version: str | None = None
    conversion_options: dict[str, Any] | None = None
    conversion_cached: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, reported: dict[str, Any]) -> RunnerFacts:
        """From ``Runner.facts()`` merged with ``Conversion.facts()``: plain dicts, the runner's own vocabulary."""
        plain = json.loads(json.dumps(reported, default=str))  # what result.json will hold, and so the row
        return cls(**{k: plain[k] for k in TYPED_FACTS if plain.get(k) is not None}, details=plain)


TYPED_FACTS = ("runtime_version", "precision_used", "threads_used", "converter", "converter_version",
               "conversion_options", "conversion_cached")


@dataclass(frozen=True)
class LoadGenTrial:
    """One LoadGen run at one target QPS (``bench.execution.loadgen``): what LoadGen decided and measured."""

    __pydantic_config__ = FORBID_EXTRA

    scenario: str  # a server case's search starts with offline trials: its ceiling
    target_qps: float  # offline: the QPS LoadGen was told to expect (it issues min_duration x this at once)
    valid: bool
    reason: str  # why LoadGen called it INVALID ("" when VALID)
    queries: int
    achieved_qps: float  # server: completed samples per second; offline: samples per second
    p50_ms: float
    p90_ms: float
    p99_ms: float
    duration_s: float


@dataclass(frozen=True)
class LoadGenRun:
    """A server or offline case's LoadGen result: the trial it reports (server: the highest VALID target QPS) and
    every trial tried, LoadGen's version, settings and logs, and what bench's own Python driver can push."""

    __pydantic_config__ = FORBID_EXTRA

    scenario: str
    qps: float | None  # server: the highest VALID target QPS (None: none was VALID); offline: samples per second
    valid: bool
    reason: str
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    p99_bound_ms: float | None  # the server's bound; None offline
    trials: tuple[LoadGenTrial, ...]
    version: str
    settings: dict[str, Any]  # LoadGen's effective_* settings of the reported trial
    requests_in_flight: int
    driver_ceiling_qps: float | None  # a no-op model through the same driver: the most QPS bench itself can drive
    summary_log: str
    detail_log: str


@dataclass(frozen=True)
class OpTime:
    """One node's time in one profiled inference, as the runtime's own profiler reported it (``Runner.profile``).
    ``kernel``: what ran it where the profiler says (ORT's provider, OpenVINO's exec_type, MNN's backend);
    ``precision``: the precision it ran in, where the profiler says."""

    __pydantic_config__ = FORBID_EXTRA

    run: int
    node: str
    op_type: str
    ms: float
    kernel: str = ""
    precision: str = ""


@dataclass(frozen=True)
class OpSummary:
    """One node over the profile pass's kept runs: its median time (``bench.execution.profile``)."""

    __pydantic_config__ = FORBID_EXTRA

    node: str
    op_type: str
    kernel: str
    precision: str
    median_ms: float
    runs: int  # the kept runs the node was reported in


@dataclass(frozen=True)
class Profile:
    """The profile pass's answer: the nodes, and the median over runs of the per-run sum of node times (what is
    checked against the case's median); or, where there was no pass, why (``note``)."""

    __pydantic_config__ = FORBID_EXTRA

    runs: int = 0
    total_ms: float | None = None
    ops: tuple[OpSummary, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class WorkerResult:
    """One worker's answer: a status, and for a timed case everything its row is made from."""

    __pydantic_config__ = FORBID_EXTRA

    status: Status
    error: str = ""
    timing: Timing | None = None
    facts: RunnerFacts | None = None
    accuracy: Accuracy | None = None
    task: TaskScore | None = None
    reference: str | None = None  # reference mode: the saved fp32 outputs
    loadgen: LoadGenRun | None = None  # the server and offline scenarios
    profile: Profile | None = None  # the per-op profile pass, where the case asked for one

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str)

    @classmethod
    def from_json(cls, text: str | bytes) -> WorkerResult:
        """The result, every field's type checked; ValueError when it does not hold (a ``bad_output`` row)."""
        from pydantic import ValidationError

        try:
            return _adapter().validate_json(text, strict=True)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise ValueError(f"result.json: {where}: {first['msg']}") from None


@dataclass
class WorkerOutcome:
    """What the parent learned about one worker run (``bench.launcher``); ``bench.results.rows`` makes its row."""

    status: Status
    result: WorkerResult | None = None
    samples_ns: np.ndarray | None = None
    error: str = ""
    exit_code: int | None = None
    signal: str | None = None
    stderr_tail: str = ""
    peak_rss_mb: float | None = None
    wall_s: float = 0.0
    started_by: str = ""  # how the worker process began: "fork server" or "fresh interpreter"


@functools.cache
def _adapter() -> Any:
    """pydantic's validator for WorkerResult, built once per parent process (the worker never imports pydantic)."""
    from pydantic import TypeAdapter

    return TypeAdapter(WorkerResult)
