"""The runner registry: a read-only view of the runners of the ``bench.runners`` entry points, bench's own
(declared in its pyproject.toml) first.

Entries are specs only (see ``bench.plugin``); no runtime is imported here.
"""

from __future__ import annotations

import importlib.metadata
import re
import warnings
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import get_args

from bench import DISTRIBUTION
from bench.case import Precision, Scenario
from bench.known import KNOWN
from bench.plugin import RunnerSpec

ENTRY_POINT_GROUP = "bench.runners"
REQUIRED = ("name", "distribution", "module", "implementation", "install_hint")
KNOWN_PRECISIONS = get_args(Precision)
KNOWN_SCENARIOS = get_args(Scenario)


def check_spec(spec: RunnerSpec) -> None:
    """Refuse a spec that would fail later, mid-run: every declaration present and of a kind bench knows."""
    label = f"runner spec {type(spec).__module__}.{type(spec).__qualname__}"
    missing = [a for a in REQUIRED if not isinstance(getattr(spec, a, None), str) or not getattr(spec, a)]
    if missing:
        raise ValueError(f"{label}: missing {', '.join(missing)} (strings, see bench.plugin.RunnerSpec)")
    if not re.fullmatch(r"[\w.]+:\w+", spec.implementation):
        raise ValueError(f"{label}: implementation {spec.implementation!r} is not 'package.module:RunnerClass'")
    for kind, values, known in (("precisions", spec.precisions, KNOWN_PRECISIONS),
                                ("scenarios", spec.scenarios, KNOWN_SCENARIOS)):
        if not values or set(values) - set(known):
            raise ValueError(f"{label}: {kind} {values!r}: expected some of {', '.join(known)}")
    if not spec.devices:
        raise ValueError(f"{label}: devices is empty")


class Registry:
    def __init__(self, specs: Iterable[RunnerSpec] = ()) -> None:
        self._specs: dict[str, RunnerSpec] = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec: RunnerSpec, clobber: bool = False) -> None:
        check_spec(spec)
        if spec.name in self._specs and not clobber:
            raise ValueError(f"runner {spec.name!r} is already registered")
        self._specs[spec.name] = spec

    @property
    def specs(self) -> Mapping[str, RunnerSpec]:
        return MappingProxyType(self._specs)

    @classmethod
    def builtin(cls) -> Registry:
        """bench's own runners (the entry points its own distribution declares), without third-party plugins."""
        return cls(ep.load() for ep in _entry_points() if _is_builtin(ep))

    @classmethod
    def default(cls) -> Registry:
        """bench's own runners, then every third-party plugin that loads (a broken one is a warning), then the
        runtimes bench knows but cannot install (``bench.known``), unless a plugin of that name took their place."""
        registry = cls.builtin()
        for ep in _entry_points():
            if _is_builtin(ep):
                continue
            try:
                registry.register(ep.load())
            except Exception as exc:  # a broken third-party plugin must not break bench
                warnings.warn(f"runner plugin {ep.name!r} ({ep.value}) not loaded: {exc}", stacklevel=2)
        registry.add_known(KNOWN)
        return registry

    def add_known(self, known: Mapping[str, RunnerSpec]) -> None:
        """Register each known-but-not-installable runtime (``bench.known``) that no runner of its name replaces."""
        for name, spec in known.items():
            if name not in self._specs:
                self.register(spec)


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def _is_builtin(ep: importlib.metadata.EntryPoint) -> bool:
    return ep.dist is not None and ep.dist.name == DISTRIBUTION
