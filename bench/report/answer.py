"""The answer a run ends with: one screen, not one line per case.

Counts by status; one line per runner that ran nothing (its reason said once, not once per case); per model one
line with its deployment-scenario picks (``bench.report.scenarios``; a run of one model, such as
``bench run --model my.onnx``, gets its whole scenario table); how many outputs were wrong or timings
unstable; where the full table, the dashboard and the per-case detail are. Example::

    from bench.report.answer import answer_lines
    print("\\n".join(answer_lines(rows, "results")))
"""

from __future__ import annotations

from collections import Counter, defaultdict

from bench.contract import Status
from bench.report import scenarios
from bench.report.labels import with_runner_labels
from bench.report.views import Row, eligible

# The scenarios a per-model line shows, in order, with their short names (the full table has them all)
SHOWN = {"realtime, 1 thread": "1 thread", "realtime, all cores": "all cores", "server throughput": "server",
         "cold start": "cold start"}
SKIPPED = (Status.UNSUPPORTED, Status.UNAVAILABLE)


def answer_lines(rows: list[Row], results: str) -> list[str]:
    """The closing screen for ``rows`` (one run's), about ``len(models) + 10`` lines."""
    lines = [_counts(rows)]
    lines += _runners_that_ran_nothing(rows)
    lines += _per_model(rows)
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


def _per_model(rows: list[Row]) -> list[str]:
    if any(r.get("emulated") for r in rows):
        return ["picks per model: none, this run was emulated: its timings measure the emulator, not the chip "
                "(parity and task accuracy stand; the rows are written)"]
    table = scenarios.scenario_table(with_runner_labels([dict(r) for r in rows]))  # "tvm (untuned)", as the page
    by_model: dict[tuple, dict[str, Row]] = defaultdict(dict)
    for record in table.records():
        by_model[(record["machine"], record["model"])][record["scenario"]] = record
    machines = {machine for machine, _ in by_model}
    lines = []
    one_model = len({model for _, model in by_model}) == 1  # `bench run --model my.onnx`: its whole table
    for (machine, model), picks in sorted(by_model.items(), key=lambda kv: tuple(map(str, kv[0]))):
        where = f" [{machine}]" if len(machines) > 1 else ""
        if one_model:
            lines.append(f"  {model}{where}:")
            lines += [f"    {name}: {_pick(record)}" for name, record in picks.items()]
            continue
        cells = [f"{short} {_pick(picks[name])}" for name, short in SHOWN.items() if name in picks]
        lines.append(f"  {model}{where}: " + " | ".join(cells))
    software = sorted({str(r["software_device"]) for r in rows if r.get("software_device")})
    if software:  # the scenario table left them out: say so, or a model run only there reads as "no correct row"
        lines.append(f"  not ranked: the rows on a software device ({', '.join(software)}), a CPU doing a GPU's "
                     "work: functional checks")
    models = {r["model"] for r in rows}
    unanswered = sorted(m for m in models if m not in {model for _, model in by_model})
    if unanswered:
        lines.append(f"  no correct row, so no pick: {', '.join(unanswered)}")
    if not lines:
        return []
    return ["picks per model (fastest correct row; '=' a tie with the runner-up, +N% its lead over another "
            "runtime):", *lines]


def _pick(record: Row) -> str:
    who = f"{record['runner']} {record['precision']}"
    if record["scenario"] == "realtime, all cores":
        who += f" t{record['threads']}"
    elif record["scenario"] in ("server throughput", "memory-bound edge", "accuracy first"):
        who += f" t{record['threads']} b{record['batch']}"
    versus = ""
    if record["verdict"] == "tie":
        versus = " = " + " ".join(str(record["runner_up"]).split()[:2])  # its runner and precision
    elif record["verdict"] == "clear" and record["margin_pct"] is not None:
        versus = f" +{record['margin_pct']:.0f}%"
    return f"{who} {record['value']:.3g} {record['unit']}{versus}"


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
