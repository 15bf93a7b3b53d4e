"""The answer a run ends with: one screen, not one line per case.

Counts by status; one line per runner that ran nothing (its reason said once, not once per case); per machine
one block, the matrix of ``bench.report.matrix``: a row per model (two lines: the picks, then their values and
leads), a column per deployment scenario; how many outputs were wrong or timings unstable; where the full table,
the dashboard and the per-case detail are. Example::

    from bench.report.answer import answer_lines
    print("\\n".join(answer_lines(rows, "results")))
"""

from __future__ import annotations

from collections import Counter, defaultdict

from bench.contract import Status
from bench.report import matrix, scenarios
from bench.report.labels import with_runner_labels
from bench.report.matrix import Cell
from bench.report.views import Row, eligible

SKIPPED = (Status.UNSUPPORTED, Status.UNAVAILABLE)


def answer_lines(rows: list[Row], results: str, runs: list[Row] | None = None) -> list[str]:
    """The closing screen for ``rows`` (one run's), about ``2 x len(models) + 10`` lines; ``runs``: the run's row
    (its environment), which names the machine by its CPU, GPUs and label."""
    lines = [_counts(rows)]
    lines += _runners_that_ran_nothing(rows)
    lines += _per_machine(rows, runs)
    lines += _problems(rows)
    lines += [f"full table and charts: bench report --results {results}  (then open reports/latest/index.html); "
              "every case's line: --verbose"]
    return lines


def _counts(rows: list[Row]) -> str:
    counts = Counter(r["status"] for r in rows)
    ran = sum(n for status, n in counts.items() if status not in SKIPPED)
    parts = ", ".join(f"{status} {n}" for status, n in counts.most_common())
    return f"{len(rows)} cases, {ran} run: {parts}"


def _runners_that_ran_nothing(rows: list[Row]) -> list[str]:
    by_runner: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_runner[r["runner"]].append(r)
    lines = []
    for runner, group in sorted(by_runner.items()):
        if any(r["status"] not in SKIPPED for r in group):
            continue
        reason, n = Counter(r.get("error") or r["status"] for r in group).most_common(1)[0]
        others = f" (and {len(group) - n} cases for other reasons)" if n < len(group) else ""
        lines.append(f"  {runner} ran nothing: {reason}{others}")
    return ["runners that could not run here:", *lines] if lines else []


def _per_machine(rows: list[Row], runs: list[Row] | None) -> list[str]:
    if any(r.get("emulated") for r in rows):
        return ["picks per model: none, this run was emulated: its timings measure the emulator, not the chip "
                "(parity and task accuracy stand; the rows are written)"]
    labelled = with_runner_labels([dict(r) for r in rows])  # "tvm (untuned)", as the page
    made = matrix.matrices(scenarios.scenario_table(labelled, runs), labelled, runs)
    lines = []
    for m in made:
        picked = [(model, cells) for model, cells in m.rows if any(not c.empty for c in cells)]
        if picked:
            lines += [f"  on {m.title}:", *(f"    {line}".rstrip() for line in _grid(m.scenarios, picked))]
    software = sorted({str(r["software_device"]) for r in rows if r.get("software_device")})
    if software:  # the scenario table left them out: say so, or a model run only there reads as "no correct row"
        lines.append(f"  not ranked: the rows on a software device ({', '.join(software)}), a CPU doing a GPU's "
                     "work: functional checks")
    answered = {model for m in made for model, cells in m.rows if any(not c.empty for c in cells)}
    unanswered = sorted({str(r["model"]) for r in rows} - answered)
    if unanswered:
        lines.append(f"  no correct row, so no pick: {', '.join(unanswered)}")
    if not lines:
        return []
    return ["what to deploy, per machine (a row per model: the pick, then its value and lead over another runtime; "
            "'=' a tie, within noise; no lead: the only runtime):", *lines]


def _grid(columns: tuple[str, ...], rows: list[tuple[str, tuple[Cell, ...]]]) -> list[str]:
    """Aligned columns, two lines a model: the picks (runner, precision), then their values and leads."""
    table = [["model", *(matrix.SHORT.get(s, s) for s in columns)]]
    for model, cells in rows:
        table.append([model, *(_who(c) for c in cells)])
        table.append(["", *(_how(c) for c in cells)])
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    return ["  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)) for line in table]


def _who(cell: Cell) -> str:
    if cell.empty:
        return "-"
    return " ".join(p for p in (cell.runner, cell.precision, cell.detail) if p)


def _how(cell: Cell) -> str:
    if cell.empty:
        return f"({cell.empty})"
    return f"{matrix.value_text(cell)} {matrix.lead_text(cell, tie='=', alone='')}".strip()


def _problems(rows: list[Row]) -> list[str]:
    wrong = sum(1 for r in rows if r.get("accuracy_ok") is False)
    unstable = sum(1 for r in rows if r.get("unstable"))
    failed = sum(1 for r in rows if r["status"] not in (Status.OK, *SKIPPED))
    passing = sum(1 for r in rows if eligible(r))
    parts = [f"{passing} correct and timed"]
    parts += [f"{wrong} wrong outputs (timed, flagged, never picked)"] if wrong else []
    parts += [f"{failed} failed (conversion, error, crash, timeout, oom)"] if failed else []
    parts += [f"{unstable} unstable timings (cv > 10% or CI not reached)"] if unstable else []
    return ["; ".join(parts)]


def model_line(model: str, rows: list[Row], runs: list[Row] | None = None) -> str:
    """One model's picks as soon as its last case has run (``rows``: that model's rows of the run), on one line:
    the first answer a long run gives, the closing screen's matrix row for it being the same picks."""
    labelled = with_runner_labels([dict(r) for r in rows])
    cells = [c for m in matrix.matrices(scenarios.scenario_table(labelled, runs), labelled, runs)
             for name, row in m.rows if name == model for c in row if not c.empty]
    if not cells:
        return f"{model} done: no correct row, so no pick"
    return f"{model} done: " + " | ".join(f"{matrix.SHORT.get(c.scenario, c.scenario)} {_who(c)} {_how(c)}".rstrip()
                                     for c in cells)
