""""Why not just run it in PyTorch?": every timed case against eager PyTorch fp32 on the same model and configuration.

The baseline is what a PyTorch user runs without doing anything: the ``pytorch`` runner (eager) at fp32, same model,
device, batch, threads and scenario. Beside it: PyTorch's own deployment paths (``pytorch_compile``, ``executorch``)
first, then every other runtime, each at each precision it ran. A speed-up counts only where the case matched the
fp32 reference; a wrong output is shown as such, never as a number in the wide table.
"""

from __future__ import annotations

from bench.report.views import Row, Table, _ms, config, config_label, eligible, timed

EAGER = "pytorch"
PYTORCH_PATHS = (EAGER, "pytorch_compile", "executorch")  # shown first, in this order
WRONG = "✗ wrong"


def over_eager(cases: list[Row]) -> Table:
    """One row per timed case that has an eager fp32 baseline: its median, the baseline's, the speed-up (baseline /
    case) and both cold starts (a compiler's start-up cost is part of the answer)."""
    base = {(c.get("model"), *config(c)): c for c in cases
            if c.get("runner") == EAGER and c.get("precision") == "fp32" and eligible(c)}
    cols = ("model", "config", "runner", "precision", "median_ms", "eager_median_ms", "speedup", "cold_start_ms",
            "eager_cold_start_ms", "accuracy_ok", "case_key", "eager_case_key")
    rows = []
    for c in cases:
        b = base.get((c.get("model"), *config(c))) if timed(c) else None
        if b is not None:
            rows.append((c.get("model"), config_label(config(c)), c.get("runner"), c.get("precision"),
                         _ms(c["median_ms"]), _ms(b["median_ms"]), round(b["median_ms"] / c["median_ms"], 4),
                         _ms(c.get("cold_start_ms")), _ms(b.get("cold_start_ms")), c.get("accuracy_ok"),
                         c["case_key"], b["case_key"]))
    note = "" if rows else "no eager PyTorch (runner 'pytorch') fp32 case passed its tolerance to compare against"
    return Table("speedup_over_eager", cols, rows, note)


def _column_order(label: str) -> tuple:
    runner, _, precision = label.partition(" ")
    mine = PYTORCH_PATHS.index(runner) if runner in PYTORCH_PATHS else len(PYTORCH_PATHS)
    return (mine, runner, precision != "fp32", precision)


def over_eager_wide(long: Table) -> Table:
    """The same numbers as one row per model and configuration, one column per runner and precision: the eager
    median, then speed-ups (``✗ wrong`` where the case failed its tolerance, empty where it did not run)."""
    records = long.records()
    labels = sorted({f"{r['runner']} {r['precision']}" for r in records}, key=_column_order)
    grid: dict[tuple, dict] = {}
    for r in records:
        cells = grid.setdefault((r["model"], r["config"]), {"eager_ms": r["eager_median_ms"]})
        cells[f"{r['runner']} {r['precision']}"] = r["speedup"] if r["accuracy_ok"] is True else WRONG
    rows = [(model, cfg, cells["eager_ms"], *(cells.get(label) for label in labels))
            for (model, cfg), cells in grid.items()]
    return Table("speedup_over_eager_wide", ("model", "config", "eager_fp32_ms", *labels), rows, long.note)
