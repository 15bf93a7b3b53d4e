"""What a report reads from the results store: named columns only, raw samples only as bounded quantiles.

Every query goes through :func:`bench.store.query`. Columns the dataset lacks (files from an older schema,
or a store with no ``runs`` table yet) come back as ``None`` rather than failing, so a report of old or
partial results still builds and the charts that need the missing column say "no data".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import store
from bench.errors import UserError

# The columns behind the charts and tables; samples_ns is never among them (see quantiles()).
CASE_FIELDS = (
    "case_key", "run_id", "timestamp", "model", "runner", "runner_version", "device", "precision",
    "precision_used", "batch", "threads", "scenario", "status", "error", "median_ms", "median_ci_low_ms",
    "median_ci_high_ms", "p99_ms", "throughput_per_s", "accuracy_ok", "accuracy_reason", "cosine",
    "normalized_error", "cold_start_ms", "peak_rss_mb", "iterations",
)
RUN_FIELDS = (
    "run_id", "timestamp", "git_commit", "machine_id", "cpu_model", "cpu_arch", "cores_physical",
    "cores_logical", "cpus_allowed", "memory_gb", "os", "kernel", "python", "packages", "cpu_governor",
    "isa_flags", "gpus", "bench_version",
)
# Probabilities at which each drawn case's samples are summarised for its ECDF: 201 points, not 10^5 samples.
ECDF_PROBS = tuple(i / 200 for i in range(201))
MAX_TREND_RUNS = 30


@dataclass
class ReportData:
    """The rows a report is drawn from; plain dicts keyed by column name, ``None`` where unknown."""

    cases: list[dict[str, Any]]  # the latest row per case key (of one run, with --run)
    runs: list[dict[str, Any]]  # one row per run in the store
    history: list[dict[str, Any]] = field(default_factory=list)  # ok medians per case per run, for trends
    quantiles: dict[str, list[float]] = field(default_factory=dict)  # case_key -> ms at ECDF_PROBS


def columns_of(results: Path, table: str) -> set[str]:
    if not store.has_table(results, table):
        return set()
    return set(store.query(results, f"SELECT * FROM {table} LIMIT 0").schema.names)


def _select(wanted: tuple[str, ...], present: set[str], alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return ", ".join(f'{prefix}"{c}"' if c in present else f'NULL AS "{c}"' for c in wanted)


def current_cases(results: Path, run_id: str | None = None) -> list[dict[str, Any]]:
    """The latest row per case key: over all runs, or within ``run_id``."""
    present = columns_of(results, "cases")
    if "case_key" not in present:
        return []
    where, params = ("WHERE run_id = ?", [run_id]) if run_id and "run_id" in present else ("", [])
    order = "timestamp DESC NULLS LAST" if "timestamp" in present else "case_key"
    sql = (
        f"SELECT {_select(CASE_FIELDS, present)} FROM cases {where} "
        f"QUALIFY row_number() OVER (PARTITION BY case_key ORDER BY {order}) = 1 "
        "ORDER BY model NULLS LAST, runner NULLS LAST, precision NULLS LAST, batch, threads, case_key"
    )
    return store.query(results, sql, params).to_pylist()


def runs(results: Path) -> list[dict[str, Any]]:
    present = columns_of(results, "runs")
    if "run_id" not in present:
        return []
    order = "timestamp NULLS LAST" if "timestamp" in present else "run_id"
    return store.query(results, f"SELECT {_select(RUN_FIELDS, present)} FROM runs ORDER BY {order}").to_pylist()


def history(results: Path, max_runs: int = MAX_TREND_RUNS) -> list[dict[str, Any]]:
    """Median of every ok case in each of the last ``max_runs`` runs, with the run's time and commit."""
    present = columns_of(results, "cases")
    if not {"case_key", "run_id", "median_ms", "status", "timestamp"} <= present:
        return []
    run_cols = columns_of(results, "runs")
    commit = "r.git_commit" if "git_commit" in run_cols else "NULL"
    run_time = "coalesce(r.timestamp, c.timestamp)" if "timestamp" in run_cols else "c.timestamp"
    join = "LEFT JOIN runs r ON r.run_id = c.run_id" if "run_id" in run_cols else ""
    model = "c.model" if "model" in present else "NULL"
    sql = f"""
        WITH h AS (
            SELECT c.case_key, {model} AS model, c.run_id, {run_time} AS run_time, {commit} AS git_commit,
                   c.median_ms
            FROM cases c {join}
            WHERE c.status = 'ok' AND c.median_ms IS NOT NULL
        ), recent AS (
            SELECT run_id FROM h GROUP BY run_id ORDER BY min(run_time) DESC LIMIT ?
        )
        SELECT * FROM h WHERE run_id IN (SELECT run_id FROM recent) ORDER BY run_time, case_key
    """
    return store.query(results, sql, [max_runs]).to_pylist()


def quantiles(results: Path, cases: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Latency in ms at ECDF_PROBS for the given case rows (by case key and run id), computed in DuckDB."""
    if not cases or "samples_ns" not in columns_of(results, "cases"):
        return {}
    pairs = ", ".join("(?, ?)" for _ in cases)
    params: list[Any] = [v for c in cases for v in (c["case_key"], c["run_id"])]
    probs = ", ".join(repr(p) for p in ECDF_PROBS)
    sql = f"""
        WITH wanted(case_key, run_id) AS (VALUES {pairs}),
        picked AS (
            SELECT c.case_key, c.samples_ns FROM cases c JOIN wanted w
              ON c.case_key = w.case_key AND c.run_id = w.run_id
            WHERE len(c.samples_ns) > 0
            QUALIFY row_number() OVER (PARTITION BY c.case_key ORDER BY c.timestamp DESC) = 1
        )
        SELECT case_key, quantile_disc(s, [{probs}]) AS q
        FROM (SELECT case_key, unnest(samples_ns) AS s FROM picked) GROUP BY case_key
    """
    rows = store.query(results, sql, params).to_pylist()
    return {r["case_key"]: [v / 1e6 for v in r["q"]] for r in rows}


def known_run_ids(results: Path) -> list[str]:
    ids: set[str] = set()
    for table in ("cases", "runs"):
        if "run_id" in columns_of(results, table):
            ids |= {r["run_id"] for r in store.query(results, f"SELECT DISTINCT run_id FROM {table}").to_pylist()}
    return sorted(i for i in ids if i)


def load(results: Path, run_id: str | None = None, max_ecdf_cases: int = 400) -> ReportData:
    """Read what the report needs. Raises UserError for a missing folder or an unknown run id."""
    if not results.is_dir():
        raise UserError(f"no results folder at {results} (run `bench run --results {results}` first)")
    if run_id and run_id not in known_run_ids(results):
        raise UserError(f"--run: no run {run_id!r} in {results}")
    cases = current_cases(results, run_id)
    drawn = [c for c in cases if c["status"] == "ok" and c["run_id"]][:max_ecdf_cases]
    return ReportData(cases=cases, runs=runs(results), history=history(results), quantiles=quantiles(results, drawn))
