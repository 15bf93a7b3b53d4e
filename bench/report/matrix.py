"""The answer as one matrix per machine: a row per model, a column per deployment scenario, each cell the pick.

The scenario table (``bench.report.scenarios``) decides every pick, runner-up, margin and tie; this module only
lays its rows out, so the page, summary.md, ``matrix.csv`` and the terminal's closing answer say the same thing.
A machine is named by what it is (its ``--machine-label``, board, CPU and GPU models, from the runs table), not by
its hash; the hash is added only where two machines would otherwise read the same. A cell without a pick says why
in a few words ("no passing case", "not measured", "1 thread only"). Example::

    from bench.report import matrix, scenarios
    table = scenarios.scenario_table(cases, runs)
    for m in matrix.matrices(table, cases, runs):
        print(m.title, [(model, [matrix.cell_text(c) for c in cells]) for model, cells in m.rows])
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from bench.report import scenarios, views
from bench.report.scenarios import ScenarioPick
from bench.report.views import Row

# A scenario's column header; a scenario the table gains later is shown under its own name.
SHORT = {"realtime, 1 thread": "realtime 1 thread", "realtime, all cores": "realtime all cores",
         "server at p99 bound": "server at p99 bound", "memory-bound edge": "edge memory", "cold start": "cold start",
         "accuracy first": "accuracy first"}
UNITS = {"items/s": "/s"}  # the terminal's and a cell's shorter unit, where there is one
NO_PASS = "no passing case"
NOT_MEASURED = "not measured"
ONE_THREAD = "1 thread only"
NOT_RANKED = "not ranked (emulated or software device)"
# One colour per runtime, the same on every page: bench's runners by name, any other by a hash of its name.
COLOURS = {"onnxruntime": "#cfe0fc", "openvino": "#ddd0f5", "ncnn": "#ffd9b0", "mnn": "#c8efd4",
           "tensorrt": "#d3eea6", "pytorch": "#fbcaca", "pytorch_compile": "#f9c7e4", "executorch": "#f2dcc0",
           "tvm": "#c4ecec", "litert": "#fff1a6"}
SPARE_COLOURS = ("#e2e8c0", "#d6e4f0", "#f0d6e4", "#e4f0d6", "#f0e4d6", "#d6f0e4", "#e8d6f0", "#f0f0d0")


@dataclass(frozen=True)
class Cell:
    """One scenario's pick for one model on one machine, or why there is none (``empty``)."""

    scenario: str
    runner: str = ""
    precision: str = ""
    value: float | None = None
    unit: str = ""
    lead: str = ""  # "+30%", "tie", "only one"
    runner_up: str = ""  # runner and precision
    detail: str = ""  # the pick's threads and batch, where the scenario lets them vary
    case_key: str | None = None
    empty: str = ""

    @property
    def tie(self) -> bool:
        return self.lead == "tie"

    @property
    def runtime(self) -> str:
        """The runner's bare name ("tvm" of "tvm (untuned)"): what its colour follows."""
        return self.runner.split(" (")[0]


@dataclass(frozen=True)
class Matrix:
    machine: str  # the scenario table's machine key (label or id): what its cells link with
    title: str  # what the machine is: label, board, CPU and GPU models
    scenarios: tuple[str, ...]
    rows: tuple[tuple[str, tuple[Cell, ...]], ...]  # (model, one cell per scenario)


# --- public --------------------------------------------------------------------------------------------

def matrices(table: views.Table, cases: list[Row], runs: list[Row] | None = None) -> list[Matrix]:
    """One matrix per machine, from the scenario table ``table`` made of ``cases`` (and ``runs``); models in their
    order of first appearance, machines by name. A machine none of whose rows may be ranked (an emulated run's) has
    none: the table's note says why (:func:`not_ranked`)."""
    by_run = {r.get("run_id"): r for r in runs or ()}
    made_picks = scenarios.picks(table)
    columns = _columns(made_picks)
    picks = {(p.machine, p.model, p.scenario): p for p in made_picks}
    groups = views._group([{**c, "machine": scenarios._machine(c, by_run)} for c in cases], ("machine", "model"))
    if not groups:  # rows made without cases (a table alone): its own machines and models
        groups = {(p.machine, p.model): [] for p in made_picks}
    titles = _titles(sorted({m for m, _ in groups}, key=str), runs or [])
    made = []
    for machine in sorted(titles, key=lambda m: (titles[m], str(m))):  # by what the reader sees
        models = [model for (m, model) in groups if m == machine]
        rows = tuple((str(model), tuple(_cell(picks.get((machine, model, s)), s, groups[(machine, model)], by_run)
                                        for s in columns)) for model in models)
        if any(c.empty != NOT_RANKED for _, cells in rows for c in cells):
            made.append(Matrix(str(machine), titles[machine], columns, rows))
    return made


def not_ranked(table: views.Table) -> str:
    """The scenario table's sentences on the rows it left out (emulated, software device), or ""."""
    return table.note.removesuffix(scenarios.NOTE).strip()


def matrix_table(made: list[Matrix]) -> views.Table:
    """The matrices as one CSV-shaped table: a row per machine and model, a column per scenario, text cells."""
    columns = next((m.scenarios for m in made), scenarios.SCENARIOS)
    cols = ("machine", "machine_name", "model", *(SHORT.get(s, s) for s in columns))
    rows = [(m.machine, m.title, model, *(cell_text(c) for c in cells)) for m in made for model, cells in m.rows]
    note = ("Per machine, a row per model and a column per deployment scenario: the pick (runner, precision), its "
            "value and its lead over the best of another runtime ('tie': within noise); the numbers are in "
            "scenarios.csv.")
    return views.Table("matrix", cols, rows, note)


def cell_text(cell: Cell) -> str:
    """"onnxruntime fp32 t4 1.23 ms +30%", "ncnn int8 t1 12 MiB tie with mnn int8", or "(no passing case)"."""
    if cell.empty:
        return f"({cell.empty})"
    who = " ".join(p for p in (cell.runner, cell.precision, cell.detail) if p)
    return f"{who} {value_text(cell)} {lead_text(cell)}".strip()


def value_text(cell: Cell) -> str:
    if cell.value is None:
        return ""
    if cell.scenario == "accuracy first":
        return f"loss {cell.value:.2g}"
    unit = UNITS.get(cell.unit, cell.unit)
    number = f"{cell.value:,.0f}" if abs(cell.value) >= 1000 else f"{cell.value:.3g}"  # 4,000, not 4e+03
    return f"{number}{unit}" if unit.startswith("/") else f"{number} {unit}"


def lead_text(cell: Cell, tie: str = "tie with", alone: str = "only runtime") -> str:
    """The lead as a cell says it: "+30%", "+0.1 pt", "tie with RUNNER PRECISION" (``tie``: its words), or
    ``alone`` where no other runtime had a passing row."""
    if cell.tie:
        return f"{tie} {cell.runner_up}"
    return alone if cell.lead == "only one" else cell.lead


def colour(runtime: str) -> str:
    """The runtime's background colour: fixed for bench's runners, a stable pick of the spare ones otherwise."""
    if runtime in COLOURS:
        return COLOURS[runtime]
    return SPARE_COLOURS[int(hashlib.sha256(runtime.encode()).hexdigest(), 16) % len(SPARE_COLOURS)]


def machine_title(run: Row) -> str:
    """"x86-avx512: Intel Xeon 8375C + NVIDIA H100": the label, the board, the CPU and the GPUs of a runs row."""
    gpus = ", ".join(_gpu_names(run.get("gpus")))
    what = " + ".join(p for p in (run.get("soc_model"), run.get("cpu_model"), gpus) if p) or "unknown machine"
    return f"{run['machine_label']}: {what}" if run.get("machine_label") else what


# --- one cell --------------------------------------------------------------------------------------------

def _columns(picks: list[ScenarioPick]) -> tuple[str, ...]:
    """The table's scenarios in its own order, any scenario it has that SCENARIOS does not name after them."""
    extra = tuple(dict.fromkeys(p.scenario for p in picks if p.scenario not in scenarios.SCENARIOS))
    return (*scenarios.SCENARIOS, *extra)


def _cell(pick: ScenarioPick | None, scenario: str, group: list[Row], by_run: dict[Any, Row]) -> Cell:
    if pick is None:
        return Cell(scenario, empty=_why_empty(scenario, group, by_run))
    lead = {"tie": "tie", "only one": "only one"}.get(pick.verdict) or _margin(pick)
    up = " ".join(str(pick.runner_up).split()[:2]) if pick.runner_up else ""  # its runner, precision
    return Cell(scenario, str(pick.runner), str(pick.precision), pick.value, pick.unit, lead, up, _detail(pick),
                pick.pick_case_key)


def _margin(pick: ScenarioPick) -> str:
    margin = pick.margin_pct
    if margin is None:
        return ""
    if pick.scenario == "accuracy first":
        return f"+{margin:.2g} pt"  # percentage points of loss
    return f"+{margin:.0f}%" if margin >= 1 else f"+{margin:.1f}%"


def _detail(pick: ScenarioPick) -> str:
    """Threads and batch where the scenario leaves them open (realtime, 1 thread fixes both)."""
    if pick.scenario == "realtime, 1 thread":
        return ""
    batch = f" b{pick.batch}" if pick.batch != 1 else ""  # batch 1 unless said
    return f"t{pick.threads}{batch}"


def _why_empty(scenario: str, group: list[Row], by_run: dict[Any, Row]) -> str:
    native = [c for c in group if not scenarios._emulated(c, by_run) and not c.get("software_device")]
    if group and not native:
        return NOT_RANKED
    if not any(views.eligible(c) for c in native):
        return NO_PASS
    candidates = [c for c in native if _measures(scenario, c)]
    if scenario == "realtime, all cores" and candidates and max(_threads(c) for c in candidates) <= 1:
        return ONE_THREAD
    return NO_PASS if candidates else NOT_MEASURED


def _measures(scenario: str, case: Row) -> bool:
    """Whether the case was run for what ``scenario`` ranks, passing or not."""
    latency_b1 = case.get("scenario") == "latency" and case.get("batch") == 1
    ran = case.get("status") not in ("unsupported", "unavailable")
    return ran and {
        "realtime, 1 thread": latency_b1 and case.get("threads") == 1,
        "realtime, all cores": latency_b1,
        "server at p99 bound": case.get("scenario") in ("server", "throughput"),
        "memory-bound edge": case.get("scenario") == "latency",
    }.get(scenario, True)


def _threads(case: Row) -> int:
    return case["threads"] if isinstance(case.get("threads"), int) else 0


# --- machine names ---------------------------------------------------------------------------------------

def _titles(machines: list[str], runs: list[Row]) -> dict[str, str]:
    """Machine key -> its title from its latest runs row; the key itself is added where two titles are the same
    (two machines of one model without labels), and stands alone where no runs row names the machine."""
    latest: dict[str, Row] = {}
    for run in sorted(runs, key=lambda r: str(r.get("timestamp"))):
        key = run.get("machine_label") or run.get("machine_id")
        if key:
            latest[key] = run
    titles = {m: machine_title(latest[m]) if m in latest else str(m) for m in machines}
    seen = [t for m, t in titles.items() if m in latest]
    return {m: f"{t} ({str(m)[:8]})" if m in latest and seen.count(t) > 1 else t for m, t in titles.items()}


def _gpu_names(raw: Any) -> list[str]:
    """The GPU names in a runs row's ``gpus`` (JSON list of {name, ...}); none where it is unreadable."""
    try:
        gpus = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return []
    names = [g.get("name") for g in gpus or () if isinstance(g, dict)] if isinstance(gpus, list) else []
    counted = {n: names.count(n) for n in names if isinstance(n, str) and n}
    return [f"{n} x{k}" if k > 1 else n for n, k in counted.items()]
