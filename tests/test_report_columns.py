"""Every column name bench/report/ uses exists in the results schema, or is one the report makes itself.

The report works on plain dicts keyed by column name (``bench.report.views.Row``): a misspelled name there reads
None, and a chart says "no data" or a table shows "?" instead of failing. So this test parses bench/report/ and
collects every name used as a column: ``row["name"]``, ``row.get("name")`` / ``row.pop("name")``, the strings of a
column list (a tuple or list of strings assigned to a name ending in cols, columns, keys or fields, or the fields
of a typed row's dataclass such a name is made of: ``COLUMNS = tuple(f.name for f in fields(ScenarioPick))``), and the
strings given to a report function's or dataclass's ``key``, ``column``, ``keys`` or ``columns`` parameter
(``_by(rows, "model")``, ``Table("latency", cols, rows)``, ``table.select(("model", "runner"))``). Each must be a
column of bench/results/schema.py, the name of one of the report's tables (the ``name`` of a ``Table(...)``), or a
name in DERIVED below, where each says what makes it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from bench.report import compare, data
from bench.results.schema import CASE_COLUMNS, OP_COLUMNS, RUN_COLUMNS

REPORT = Path(__file__).resolve().parents[1] / "bench" / "report"
SCHEMA = {c.name for c in CASE_COLUMNS} | {c.name for c in RUN_COLUMNS} | {c.name for c in OP_COLUMNS}
COLUMN_LIST = re.compile(r"(^|_)(cols|columns|keys|fields)$", re.IGNORECASE)
COLUMN_PARAMETERS = ("key", "column", "keys", "columns")
TABLE = "Table"  # bench.report.views.Table(name, columns, rows, note): its names are keys of the report's dicts

# Names the report makes itself (never read from the store), each with what makes it. A name is here only when no
# schema column has it (test_the_derived_names_are_used_and_are_no_schema_column), so a misspelled column fails.
DERIVED = {
    # The per-op profile's tables (bench/report/ops.py)
    "case": "a profiled case as the ops tables name it: runner, precision and configuration (views.case_label)",
    "family": "an op type's family across runtimes (ops.family: Conv, MatMul, ...)",
    "shares": "one op family's share of each runtime's profiled time, in words (ops.op_families)",
    "runners": "how many profiled cases an op family's shares span (ops.op_families)",
    "base_ms": "an op's median in compare's base run (ops.moved_ops)",
    "new_ms": "an op's median in compare's new run (ops.moved_ops)",
    "change_ms": "new_ms - base_ms (ops.moved_ops)",
    "change": "the op's relative change, or appeared / gone (ops.moved_ops)",
    # Added to each case or trend row as the report reads it (data.py), or aliases in its queries
    "machine": "the row's --machine-label, else its machine_id (store.MACHINE): one machine's rows never mix",
    "run_time": "a trend row's run start time (data.history)",
    "what": "DuckDB alias: whether a run holds a latest row or a recent timing (data.key_runs)",
    "q": "DuckDB alias: a case's latency quantiles (data.quantiles)",
    "samples": "compare's alias for a case's raw samples (compare.load_side, change.compare_case)",
    "fastest_ns": "compare's alias for a case's fastest raw sample (compare._possible_samples)",
    # Columns of the report's own tables, computed from the case rows (views.py, eager.py, scenarios.py)
    "config": "device, batch, threads and scenario as one label (views.config_label)",
    "speedup": "a baseline's median over this row's (views.speedup, views.int8_speedup, eager.py)",
    "baseline_median_ms": "the --baseline runner's median at the same configuration (views.speedup)",
    "baseline_case_key": "its case (views.speedup)",
    "eager_median_ms": "PyTorch eager fp32's median at the same configuration (eager.py)",
    "eager_cold_start_ms": "its cold start (eager.py)",
    "eager_case_key": "its case (eager.py)",
    "eager_ms": "its median, as a cell of the wide table (eager.over_eager_wide)",
    "eager_fp32_ms": "that cell's column (eager.over_eager_wide)",
    "fp32_ms": "a runner's fp32 median (views.int8_speedup)",
    "int8_ms": "its int8 median at the same configuration (views.int8_speedup)",
    "int8_accuracy_ok": "the int8 row's accuracy_ok (views.int8_speedup)",
    "fp32_task": "the fp32 row's task score (views.int8_speedup)",
    "int8_task": "the int8 row's task score (views.int8_speedup)",
    "recipe": "the int8 row's quant_recipe, as its column is named on the page (views.int8_speedup)",
    "limited_by": "the int8 row's quant_limit, as its column is named on the page (views.int8_speedup)",
    "fastest": "the fastest eligible case: a Pareto table column (views.pareto), or winners_by_precision's",
    "correct": "a kind of Pareto point: its outputs matched the reference (charts.pareto_charts)",
    "on_front": "no other eligible case is as fast and as accurate (views.pareto)",
    "runners_passing": "runners with a passing row at a precision (views.winners_by_precision)",
    "winner": "the fastest eligible case's runner and precision (views.winners)",
    "machine_name": "what a machine is: its label, board, CPU and GPUs from its latest run (matrix.machine_title)",
    "runner_up": "the fastest of another runner (views.winners, scenarios)",
    "runner_up_median_ms": "its median (views.winners)",
    "margin_pct": "how much slower the runner-up is, in percent (views.winners, scenarios)",
    "within_noise": "the winner's and runner-up's median CIs overlap (views.winners)",
    "wrong_but_faster": "faster cases left out because their outputs were wrong (views.winners)",
    "like_for_like": "winner and runner-up ran at the same precision (views.winners, scenarios)",
    "percent_of_peak": "achieved GFLOP/s over the machine's matmul peak (views.efficiency)",
    "flag": "what is odd about that share (views.efficiency)",
    "category": "a case's status as the coverage matrix names it (views.category)",
    "categories": "a coverage cell's categories and counts (views.coverage)",
    "detail": "a coverage cell's cases in words (views.coverage)",
    "ok": "how many of a cell's cases ran and matched the reference (views.coverage)",
    "reason": "why an output was wrong: the first line of accuracy_reason (views.wrong_outputs)",
    "runs": "a machine's runs (views.environment)",
    "commits": "their git commits (views.environment)",
    "first_run": "its first run's date (views.environment)",
    "last_run": "its last run's date (views.environment)",
    "pick": "a deployment scenario's pick (scenarios.COLUMNS)",
    "value": "its number (scenarios.COLUMNS); also a compare --json entry's",
    "unit": "that number's unit (scenarios.COLUMNS)",
    "runner_up_value": "the runner-up's number (scenarios.COLUMNS)",
    "verdict": "clear, tie or only one (scenarios.COLUMNS)",
    "p_value": "Mann-Whitney p of pick against runner-up (scenarios.COLUMNS)",
    "rule": "the scenario's rule in words (scenarios.COLUMNS)",
    "pick_case_key": "the pick's case, linked from its cell (scenarios.COLUMNS)",
    "runner_up_case_key": "the runner-up's case (scenarios.COLUMNS)",
    "same_everywhere": "every machine has the same pick (scenarios.cross_machine)",
    # summary.md's winners table: its headers are words, not column names (summary.summary_markdown)
    "median ms": "header", "runner-up": "header", "runner-up ms": "header", "margin": "header",
    "same precision": "header", "faster but wrong": "header",
    # compare --json's entries (github-action-benchmark's format) and the two runs compared (compare.py)
    "range": "a case's CI half-width as text", "extra": "what else a case's entry says",
    "env_differs": "a compare status: the cases left out because the environment differs",
    "base": "the earlier run of a pair (store.previous_and_latest)", "new": "the later run of that pair",
    # Chart kinds that are no table's name (render.jobs), the deployment scenarios (scenarios.TIE_WITHIN),
    # precisions (views.int8_speedup) and matplotlib's colour map
    "ecdf": "chart", "resources": "chart", "throughput": "chart",
    "server at p99 bound": "scenario", "memory-bound edge": "scenario", "cold start": "scenario",
    "fp32": "precision", "int8": "precision",
    "tab10": "matplotlib's ten-colour map (charts.runner_colors)",
    # keys inside the runs table's vulkan_devices JSON (bench.vulkan), shown by views.environment
    "why": "vulkan_devices: why there is no device", "name": "vulkan_devices: a device's name",
    "vendor": "vulkan_devices: its vendor", "type": "vulkan_devices: discrete / integrated / virtual / cpu",
    "software": "vulkan_devices: a software device (lavapipe, SwiftShader)",
}


def _strings(node: ast.AST) -> Iterator[ast.Constant]:
    """The string constants of ``node``: itself, or the items of a tuple or list (not the ``*spread`` ones)."""
    items = node.elts if isinstance(node, (ast.Tuple, ast.List)) else [node]
    yield from (n for n in items if isinstance(n, ast.Constant) and isinstance(n.value, str))


def _callee(call: ast.Call) -> str | None:
    return call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", None)


def _parameters(node: ast.FunctionDef | ast.ClassDef) -> list[str]:
    """A function's parameters (less self), or a dataclass's fields: in the order a call gives them."""
    if isinstance(node, ast.ClassDef):
        return [s.target.id for s in node.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)]
    names = [a.arg for a in node.args.posonlyargs + node.args.args]
    return names[1:] if names[:1] in (["self"], ["cls"]) else names


def _column_parameters(trees: list[ast.Module]) -> dict[str, dict[str, int]]:
    """The report's functions and dataclasses that take column names: name -> {parameter: position}."""
    found: dict[str, dict[str, int]] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                params = _parameters(node)
                wanted = {p: params.index(p) for p in COLUMN_PARAMETERS if p in params}
                if wanted:
                    found[node.name] = wanted
    return found


def _arguments(call: ast.Call, wanted: dict[str, int]) -> Iterator[ast.AST]:
    for name, position in wanted.items():
        if len(call.args) > position:
            yield call.args[position]
        yield from (k.value for k in call.keywords if k.arg == name)


def _row_fields(tree: ast.Module, value: ast.AST) -> Iterator[ast.Constant]:
    """The fields of each dataclass of ``tree`` that ``value`` gives to ``fields(...)``, as column names (its line)."""
    classes = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
    for call in ast.walk(value):
        if isinstance(call, ast.Call) and _callee(call) == "fields" and call.args:
            row = classes.get(getattr(call.args[0], "id", ""))
            for field in row.body if row else ():
                if isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name):
                    yield ast.Constant(field.target.id, lineno=field.lineno)


def _uses(tree: ast.Module, takes_columns: dict[str, dict[str, int]]) -> Iterator[ast.Constant]:
    """Every string constant ``tree`` uses as a column name (see the module's docstring)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript):
            yield from _strings(node.slice)
        elif isinstance(node, ast.Call):
            if isinstance(node.func, ast.Attribute) and node.func.attr in ("get", "pop") and node.args:
                yield from _strings(node.args[0])
            for argument in _arguments(node, takes_columns.get(_callee(node) or "", {})):
                yield from _strings(argument)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and COLUMN_LIST.search(t.id) for t in targets):
                yield from _strings(node.value)
                yield from _row_fields(tree, node.value)


def _table_names(trees: list[ast.Module]) -> set[str]:
    calls = (n for tree in trees for n in ast.walk(tree) if isinstance(n, ast.Call) and _callee(n) == TABLE)
    return {c.value for call in calls if call.args for c in _strings(call.args[0])}


def _parse(folder: Path) -> dict[str, ast.Module]:
    return {path.name: ast.parse(path.read_text(), str(path)) for path in sorted(folder.glob("*.py"))}


def used_names(folder: Path = REPORT) -> dict[str, list[str]]:
    """Column name -> where bench/report/ uses it (file:line)."""
    trees = _parse(folder)
    takes_columns = _column_parameters(list(trees.values()))
    where: dict[str, list[str]] = {}
    for name, tree in trees.items():
        for const in _uses(tree, takes_columns):
            where.setdefault(const.value, []).append(f"{name}:{const.lineno}")
    return where


def known_names(folder: Path = REPORT) -> set[str]:
    return SCHEMA | set(DERIVED) | _table_names(list(_parse(folder).values()))


def test_every_column_the_report_uses_is_in_the_schema_or_derived_by_it():
    known = known_names()
    unknown = {name: places for name, places in used_names().items() if name not in known}
    assert not unknown, f"no column of bench/results/schema.py, no table's name, not in DERIVED here: {unknown}"


def test_the_derived_names_are_used_and_are_no_schema_column():
    used = used_names()
    assert not set(DERIVED) & SCHEMA, "a schema column needs no entry in DERIVED: " + str(set(DERIVED) & SCHEMA)
    assert set(DERIVED) <= set(used), f"in DERIVED but no longer used by the report: {set(DERIVED) - set(used)}"


def test_the_columns_the_report_reads_are_the_schemas():
    case, run = {c.name for c in CASE_COLUMNS}, {c.name for c in RUN_COLUMNS}
    assert set(data.CASE_FIELDS) <= case, set(data.CASE_FIELDS) - case
    assert set(compare.CASE_FIELDS) <= case, set(compare.CASE_FIELDS) - case
    assert set(data.RUN_FIELDS) <= run, set(data.RUN_FIELDS) - run


def test_a_misspelled_column_fails(tmp_path):
    """The check itself: bench/report/ copied with one column misspelled fails it, in each form it looks at."""
    for path in REPORT.glob("*.py"):
        (tmp_path / path.name).write_text(path.read_text())
    views = (tmp_path / "views.py").read_text()
    (tmp_path / "views.py").write_text(views.replace('case.get("accuracy_ok")', 'case.get("acuracy_ok")', 1))
    assert set(used_names(tmp_path)) - known_names(tmp_path) == {"acuracy_ok"}
    one = tmp_path / "one"
    one.mkdir()
    takers = "def _by(records, key): ...\nclass Table:\n    name: str\n    columns: tuple\n"  # as in views.py
    for line in ('x = row["medain_ms"]', 'x = row.pop("medain_ms")', 'cols = ("model", "medain_ms")',
                 'x = _by(rows, "medain_ms")', 'x = _by(rows, key="medain_ms")', 't = Table("t", ("medain_ms",))',
                 'class Pick:\n    medain_ms: float\nCOLUMNS = tuple(f.name for f in fields(Pick))'):
        (one / "mod.py").write_text(f"{takers}{line}\n")
        assert set(used_names(one)) - known_names(one) == {"medain_ms"}, line
