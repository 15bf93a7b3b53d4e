"""The runner registry: a read-only view of built-in runners and those of the ``bench.runners`` entry points.

Entries are specs only (see ``bench.plugin``); no runtime is imported here.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from bench.plugin import RunnerSpec, load_object

BUILTIN_RUNNERS = (
    "bench.runners.onnxruntime:SPEC",
    "bench.runners.openvino:SPEC",
    "bench.runners.ncnn:SPEC",
    "bench.runners.mnn:SPEC",
    "bench.runners.tensorrt:SPEC",
    "bench.runners.pytorch:SPEC",
)
ENTRY_POINT_GROUP = "bench.runners"


class Registry:
    def __init__(self, specs: Iterable[RunnerSpec] = ()) -> None:
        self._specs: dict[str, RunnerSpec] = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec: RunnerSpec, clobber: bool = False) -> None:
        if spec.name in self._specs and not clobber:
            raise ValueError(f"runner {spec.name!r} is already registered")
        self._specs[spec.name] = spec

    @property
    def specs(self) -> Mapping[str, RunnerSpec]:
        return MappingProxyType(self._specs)

    @classmethod
    def builtin(cls) -> Registry:
        """bench's own runners, without the entry points."""
        return cls(load_object(path) for path in BUILTIN_RUNNERS)

    @classmethod
    def default(cls) -> Registry:
        registry = cls.builtin()
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                registry.register(ep.load())
            except Exception as exc:  # a broken third-party plugin must not break bench
                warnings.warn(f"runner plugin {ep.name!r} ({ep.value}) not loaded: {exc}", stacklevel=2)
        return registry
