"""A case: one model on one runner, device, precision, batch, thread count and scenario, and the words it is
made of (the precisions and scenarios bench knows, the timing policy), which the suite file, the registry, the
planner and the worker all share.

Cases cross the process boundary as JSON, so they hold plain data only. What became of one is a
``bench.contract.Status``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Literal

# What a precision value asks for, whichever runtime runs it (docs/RESULTS.md; each runtime's own way of doing it is
# its spec's precision_notes). int8_weights is not int8: only the stored weights are int8, the arithmetic is float.
PRECISIONS = {
    "fp32": "float32 weights and arithmetic: the reference every other precision is checked against",
    "fp16": "float16 arithmetic (weights and activations), where the hardware has it; never fp16 storage alone",
    "bf16": "bfloat16 arithmetic, native or emulated as the runtime reports",
    "int8": "int8 weights and activations computed by int8 kernels, calibrated post-training on the shared "
            "calibration set (bench.execution.calibration); layers the quantizer leaves alone run fp32",
    "int8_weights": "weights stored as int8 and turned back into float at load: a smaller file, float arithmetic "
                    "(never labelled int8 compute)",
}
Precision = Literal["fp32", "fp16", "bf16", "int8", "int8_weights"]
# latency: one request at a time, bench's own clock; throughput: an async queue of N requests (bench's own, kept for
# older suites); server and offline: MLPerf LoadGen drives the runtime (bench.execution.loadgen): Poisson arrivals
# under a p99 latency bound, and all queries at once
Scenario = Literal["latency", "throughput", "server", "offline"]
LOADGEN_SCENARIOS = ("server", "offline")


@dataclass(frozen=True)
class TimingPolicy:
    """When to stop measuring (``bench.execution.timing`` applies it). Times in seconds; ``target_rel_ci`` is the 95%
    CI half-width over the median."""

    warmup_time_s: float = 0.2
    warmup_iterations: int = 3
    min_iterations: int = 10
    min_time_s: float = 1.0
    max_time_s: float = 10.0
    target_rel_ci: float = 0.01
    max_iterations: int = 2_000_000


@dataclass(frozen=True)
class LoadGenPolicy:
    """How the server and offline scenarios run LoadGen (``bench.execution.loadgen``). ``p99_bound_ms`` is the
    server's latency bound for this case's model; each trial runs at least ``min_duration_s`` and ``min_queries``
    queries; the server's search for the highest VALID QPS starts no trial past ``search_time_s``."""

    p99_bound_ms: float = 100.0
    min_duration_s: float = 1.0
    min_queries: int = 500  # LoadGen's early stopping needs about 460 queries under the bound to call p99 VALID
    search_time_s: float = 60.0
    qps_resolution: float = 0.05  # the search stops when the invalid QPS is within this fraction of the valid one


@dataclass(frozen=True)
class InputSpec:
    """One model input: its shape at batch 1, dtype, the range of generated values, and which axis is the
    batch (None for inputs without one, such as a scalar sample rate)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    low: float
    high: float
    batch_axis: int | None = 0

    def shape_at(self, batch: int) -> tuple[int, ...]:
        if self.batch_axis is None:
            return self.shape
        shape = list(self.shape)
        shape[self.batch_axis] = batch
        return tuple(shape)


@dataclass(frozen=True)
class ModelRef:
    """A model as a case sees it: where its ONNX file is and what to feed it."""

    name: str
    path: str
    sha256: str
    inputs: tuple[InputSpec, ...]
    source: str = "built"
    task: str = ""
    macs: int | None = None  # multiply-accumulates of one inference at batch 1, counted from the graph
    # The same trained model in another runtime's own format, shipped beside the ONNX file (basic-pitch's .tflite):
    # (format, absolute path of the hash-checked file in the cache) pairs, so a runner of that format runs the
    # publisher's file instead of a conversion.
    alternates: tuple[tuple[str, str], ...] = ()

    # A PyTorch source (``bench run --torch``, bench.models.torchsource): the factory (FactoryRef as JSON), which the
    # runners of torch modules call instead of converting ``path``, and the export's facts (exporter, version,
    # options, outputs, state dict sha256, and why it failed: then ``path`` is empty), as JSON
    torch_factory: str = ""
    torch_export: str = ""

    @property
    def weights(self) -> str:
        """Whether the weights are trained: the zoo's wheel models are, its built models are seeded random (their
        int8 accuracy says little), and a user's model is the user's."""
        return WEIGHTS.get(self.source, "user")

    @property
    def generated_inputs(self) -> bool:
        """The user's own model (an ONNX file or a PyTorch factory): seeded inputs, no task data."""
        return self.source in ("user", "torch")


# What a model's weights are, by its source (ModelRef.weights; the results' `weights` column).
WEIGHTS = {"wheel": "trained", "built": "random (seeded)", "user": "user", "torch": "user"}


# The three deadlines, each for its own thing: a Case made in code (a test, a script) waits this long for its worker;
# a planned case carries its suite's (bench.suite.DEFAULT_TIMEOUT_S, 300 s, for a real model converts in it first);
# a tuning of many candidate programs gets an hour (bench.tune.DEFAULT_TIMEOUT_S).
DEFAULT_TIMEOUT_S = 120.0


def version_suffix(version: str) -> str:
    """What a requested runtime version adds to a case key ("/v1.31.0"; nothing for the installed runtime)."""
    return f"/v{version}" if version else ""


@dataclass(frozen=True)
class Case:
    model: ModelRef
    runner: str
    implementation: str
    device: str
    precision: str
    batch: int
    threads: int
    scenario: str
    timing: TimingPolicy = field(default_factory=TimingPolicy)
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_memory_mb: int | None = None
    seed: int = 0
    cache_dir: str = ""
    cores: str = "all"  # the cores axis: all, or a cluster (big / little / prime)
    cpus: tuple[int, ...] = ()  # the CPUs the launcher pins the worker to; () leaves its affinity as it is
    task_samples: int | None = None  # cap on the labelled samples task accuracy scores (None: the whole set)
    # The version axis (bench.environments): the runner's distribution at this version ("": the one installed
    # beside bench), and the interpreter of the environment that holds it, which the worker runs on ("": bench's).
    runtime_version: str = ""
    python: str = ""
    loadgen: LoadGenPolicy = field(default_factory=LoadGenPolicy)  # the server and offline scenarios only
    # after the timed loop and parity, a per-op pass with the runtime's own profiler (bench.execution.profile); not
    # in the key: it changes nothing that is timed
    profile: bool = False

    @property
    def key(self) -> str:
        """Stable identity of the case across runs, used for resume and compare. A case on every core keeps the
        key it had before the cores axis existed, and a case on the installed runtime the key it had before the
        version axis, so history still matches."""
        cores = "" if self.cores == "all" else f"/c{self.cores}"
        return (
            f"{self.model.name}/{self.runner}/{self.device}/{self.precision}"
            f"/b{self.batch}/t{self.threads}/{self.scenario}{cores}{version_suffix(self.runtime_version)}"
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Case:
        data = json.loads(text)
        model = data.pop("model")
        model["inputs"] = tuple(InputSpec(**{**i, "shape": tuple(i["shape"])}) for i in model["inputs"])
        model["alternates"] = tuple((str(fmt), str(path)) for fmt, path in model.get("alternates", ()))
        timing = TimingPolicy(**data.pop("timing"))
        loadgen = LoadGenPolicy(**data.pop("loadgen", {}))
        cpus = tuple(data.pop("cpus", ()))
        return cls(model=ModelRef(**model), timing=timing, loadgen=loadgen, cpus=cpus, **data)
