"""A case: one model on one runner, device, precision, batch, thread count and scenario.

Cases cross the process boundary as JSON, so they hold plain data only. What became of one is a
``bench.contract.Status``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from bench.execution.timing import TimingPolicy


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
    timeout_s: float = 120.0
    max_memory_mb: int | None = None
    seed: int = 0
    cache_dir: str = ""
    cores: str = "all"  # the cores axis: all, or a cluster (big / little / prime)
    cpus: tuple[int, ...] = ()  # the CPUs the launcher pins the worker to; () leaves its affinity as it is
    task_samples: int | None = None  # cap on the labelled samples task accuracy scores (None: the whole set)

    @property
    def key(self) -> str:
        """Stable identity of the case across runs, used for resume and compare. A case on every core keeps the
        key it had before the cores axis existed, so history still matches."""
        cores = "" if self.cores == "all" else f"/c{self.cores}"
        return (
            f"{self.model.name}/{self.runner}/{self.device}/{self.precision}"
            f"/b{self.batch}/t{self.threads}/{self.scenario}{cores}"
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Case:
        data = json.loads(text)
        model = data.pop("model")
        model["inputs"] = tuple(InputSpec(**{**i, "shape": tuple(i["shape"])}) for i in model["inputs"])
        timing = TimingPolicy(**data.pop("timing"))
        cpus = tuple(data.pop("cpus", ()))
        return cls(model=ModelRef(**model), timing=timing, cpus=cpus, **data)
