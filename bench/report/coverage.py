"""``bench coverage``: what runs where, at a glance. Model x (runner, precision), each cell the worst outcome of
its cases in the latest rows: ok, wrong output, conversion failed, runtime error, crash, timeout, oom, n/a; then the
fastest passing case per model, configuration and precision (so an int8 winner never hides the fastest fp32)."""

from __future__ import annotations

from bench.report import data, views
from bench.results.uri import Location
from bench.text import printable

SHORT = {
    "ok": "ok", "ok (unchecked)": "ok?", "wrong output": "WRONG", "conversion failed": "convert-fail",
    "runtime error": "error", "bad worker output": "error", "crashed": "crash", "timeout": "timeout",
    "out of memory": "oom", "unsupported": "-", "unavailable": "n/a",
}


def matrix(results: Location, run_id: str | None = None) -> str:
    cases = data.load(results, run_id, max_ecdf_cases=0).cases
    table = views.coverage(cases)
    cells = {(r["model"], r["runner"], r["precision"]): r["category"] for r in table.records()}
    if not cells:
        return "no results"
    models = sorted({m for m, _, _ in cells})
    columns = sorted({(runner, p) for _, runner, p in cells})
    header = ["model", *(f"{runner}/{p}" for runner, p in columns)]
    rows = [header] + [[m, *(SHORT.get(cells.get((m, *c), ""), "") for c in columns)] for m in models]
    legend = "ok: outputs checked | WRONG: outside tolerance | -: unsupported | n/a: runtime or device absent"
    return "\n".join([*_aligned(rows), "", legend, "", *_fastest_per_precision(cases)])


def _aligned(rows: list[list[str]]) -> list[str]:
    rows = [[printable(c) for c in r] for r in rows]  # model and runner names from files: no terminal escapes
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _fastest_per_precision(cases: list[views.Row]) -> list[str]:
    table = views.winners_by_precision(cases)
    if not table.rows:
        return ["no case passed its tolerance"]
    rows = [[c.replace("_", " ") for c in table.columns]]
    rows += [[f"{v:.3f}" if isinstance(v, float) else str(v if v is not None else "") for v in r] for r in table.rows]
    return ["fastest passing case per precision:", *_aligned(rows)]
