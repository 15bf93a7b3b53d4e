"""Data flows one way (docs/ARCHITECTURE.md): the zoo needs no part of the plugin interface or the run, a report
never imports a runner, a runner never imports the store; bench's own modules form no import cycle and stand on
floors (shared vocabulary, worker, results, report, parent) that import only downwards. Read from the source's
imports (every import statement in a file: module level, inside functions, under TYPE_CHECKING), so a new edge
fails."""

from __future__ import annotations

import ast
import subprocess
import sys
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

# bench's floors, lowest first: a module imports its own floor or one below. The top-level modules of the first
# are the vocabulary and tools that every floor uses (the case and its contract, the runner declarations, errors,
# files, the cache, the machine's description); every other top-level module is the parent's, on the top floor
# (a new one lands there: moving it down is a decision).
SHARED = {"bench", "bench.cache", "bench.capability", "bench.case", "bench.containment", "bench.contract", "bench.cpu",
          "bench.errors", "bench.files", "bench.known", "bench.loading", "bench.noise", "bench.plugin",
          "bench.registry", "bench.text", "bench.thermal", "bench.topology"}
FLOORS = ("shared", "bench.execution", "bench.results", "bench.report", "parent")


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


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def bench_graph() -> dict[str, set[str]]:
    """Each module of bench/ -> the modules of bench/ it imports (``from bench.report import compare`` is
    bench.report.compare; bench.models and bench.runners live outside bench/ and are left out)."""
    modules = {module_name(p): p for p in (ROOT / "bench").rglob("*.py")}

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {resolve(a.name) for a in node.names if a.name.startswith("bench.")}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                    and (node.module + ".").startswith("bench."):
                targets |= {resolve(f"{node.module}.{a.name}") if f"{node.module}.{a.name}" in modules
                            else resolve(node.module) for a in node.names}
        graph[name] = {t for t in targets if t and t != name}
    return graph


def floor(module: str) -> int:
    if module in SHARED:
        return 0
    package = next((f for f in FLOORS[1:-1] if module == f or module.startswith(f + ".")), None)
    return FLOORS.index(package) if package else len(FLOORS) - 1


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                found.append(sorted([v, *component]))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_bench_modules_import_no_cycle():
    assert cycles(bench_graph()) == []


def test_a_cycle_is_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_bench_module_imports_a_floor_above_its_own():
    allowed = {(module_name(ROOT / path), name) for path, name in ALLOWED}
    upward = {f"{m} ({FLOORS[floor(m)]}) -> {t} ({FLOORS[floor(t)]})"
              for m, targets in bench_graph().items() for t in targets
              if floor(t) > floor(m) and (m, t) not in allowed}
    assert not upward, sorted(upward)


def test_the_one_allowed_edge_still_points_up():
    """The exception stays listed only while it is needed: frame still imports the report's scenario table."""
    graph = bench_graph()
    assert "bench.report.scenarios" in graph["bench.results.frame"]
    assert floor("bench.report.scenarios") > floor("bench.results.frame")


def test_the_worker_loads_only_the_shared_floor_and_its_own():
    """What docs/ARCHITECTURE.md says of the worker process: of bench/ it loads the shared vocabulary and
    bench/execution/, never a parent's module (nor pydantic, which the parent alone checks results with)."""
    script = ("import sys, bench.execution.worker; "
              "print(' '.join(sorted(m for m in sys.modules if m == 'bench' or m.startswith(('bench.', 'pydantic')))))")
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                            timeout=120).stdout.split()
    shared = {m for m in loaded if not m.startswith("bench.execution")}
    assert shared == {"bench", "bench.cache", "bench.case", "bench.containment", "bench.contract", "bench.cpu",
                      "bench.files", "bench.loading", "bench.plugin", "bench.topology"}
    assert shared <= SHARED
