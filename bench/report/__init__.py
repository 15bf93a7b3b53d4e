"""``bench report``: results folder -> a static page, a CI summary and the tables behind them, as CSV.

The page is built in :mod:`bench.report.dashboard` (it draws with matplotlib); ``build_report`` and ``command``
are imported from there on first use, so that the tables (``views``, ``scenarios``, ``answer``) can be used
without matplotlib: ``bench run`` ends with ``answer`` and must not load it (matplotlib writes its font cache
under HOME, which a run never does). Example::

    from pathlib import Path
    from bench.report import build_report
    out = build_report(Path("results"), Path("reports/latest"))   # out.index, out.summary, out.csv
"""

from __future__ import annotations

from typing import Any

_FROM_DASHBOARD = ("build_report", "command", "ReportFiles", "sections", "tables")


def __getattr__(name: str) -> Any:
    if name in _FROM_DASHBOARD:
        from bench.report import dashboard

        return getattr(dashboard, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
