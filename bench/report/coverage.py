"""``bench coverage``: what runs where, at a glance. Model x (runner, precision), each cell the worst outcome of
its cases in the latest rows: ok, wrong output, conversion failed, runtime error, crash, timeout, oom, n/a."""

from __future__ import annotations

from bench.report import data, views

SHORT = {
    "ok": "ok", "ok (unchecked)": "ok?", "wrong output": "WRONG", "conversion failed": "convert-fail",
    "runtime error": "error", "bad worker output": "error", "crashed": "crash", "timeout": "timeout",
    "out of memory": "oom", "unsupported": "-", "unavailable": "n/a",
}


def matrix(results, run_id: str | None = None) -> str:
    table = views.coverage(data.load(results, run_id, max_ecdf_cases=0).cases)
    cells = {(r["model"], r["runner"], r["precision"]): r["category"] for r in table.records()}
    if not cells:
        return "no results"
    models = sorted({m for m, _, _ in cells})
    columns = sorted({(runner, p) for _, runner, p in cells})
    header = ["model", *(f"{runner}/{p}" for runner, p in columns)]
    rows = [header] + [[m, *(SHORT.get(cells.get((m, *c), ""), "") for c in columns)] for m in models]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    legend = "ok: outputs checked | WRONG: outside tolerance | -: unsupported | n/a: runtime or device absent"
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join([*lines, "", legend])
