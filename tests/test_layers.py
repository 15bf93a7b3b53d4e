"""Data flows one way (docs/ARCHITECTURE.md): the zoo needs no part of the plugin interface or the run, a report
never imports a runner, a runner never imports the store. Read from the source's imports, so a new edge fails."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM_OF_ZOO = ("bench.plugin", "bench.registry", "bench.run", "bench.launcher", "bench.execution.worker",
                   "bench.plan", "bench.results", "bench.report", "bench.runners")
RULES = [
    ("models", UPSTREAM_OF_ZOO),
    ("bench/report", ("bench.runners", "bench.plugin", "bench.execution", "bench.launcher")),
    ("bench/results", ("bench.runners", "bench.plugin", "bench.report")),
    ("runners", ("bench.results", "bench.report", "bench.run")),
]
# The one edge allowed against the flow, each with its reason: the DataFrame facade the issue names
# (bench.results.scenarios) computes the report's scenario table; it imports it inside the function, so
# `import bench.results` never loads the report.
ALLOWED = {("bench/results/frame.py", "bench.report.scenarios")}


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize(("folder", "forbidden"), RULES, ids=[r[0] for r in RULES])
def test_no_module_reaches_back_upstream(folder, forbidden):
    offenders = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / folder).rglob("*.py")
        for name in imported(path)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
        and (str(path.relative_to(ROOT)), name) not in ALLOWED
    }
    assert not offenders, sorted(offenders)
