"""Where rows live: the schema, a worker's outcome turned into a row, the parquet store on a folder or an object
store, compaction of a finished run.
``load`` and ``scenarios`` (:mod:`bench.results.frame`) give results as pandas DataFrames, imported on first use.
"""

from __future__ import annotations

from typing import Any

_LAZY = ("load", "scenarios")  # pandas is imported only when one is used, not by `import bench.results`


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from bench.results import frame

        return getattr(frame, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
