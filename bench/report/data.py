"""What a report reads from the results store: named columns only, raw samples only as bounded quantiles.

Reading the dataset costs one pass over every parquet file's footer per reference to ``cases``, so a
report makes two: one for the light columns of every row (then "latest row per case key" and the trend
history are computed in memory by DuckDB), one for the quantiles of the cases it draws. Columns the dataset
lacks (files from an older schema, a store with no ``runs`` table) come back as ``None`` rather than
failing, so a report of old or partial results still builds and the charts that need them say "no data".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from bench import store
from bench.errors import UserError

# The columns behind the charts and tables; samples_ns is never among them (see quantiles()).
CASE_FIELDS = (
    "case_key", "run_id", "timestamp", "model", "runner", "runner_version", "device", "precision",
    "precision_used", "batch", "threads", "scenario", "status", "error", "median_ms", "median_ci_low_ms",
    "median_ci_high_ms", "p99_ms", "throughput_per_s", "accuracy_ok", "accuracy_reason", "cosine",
    "normalized_error", "top1_agreement", "cold_start_ms", "peak_rss_mb", "iterations", "unstable",
    "achieved_gflops", "task_metric", "task_value", "task_n",
)
RUN_FIELDS = (
    "run_id", "timestamp", "git_commit", "machine_id", "cpu_model", "cpu_arch", "cores_physical",
    "cores_logical", "cpus_allowed", "memory_gb", "os", "kernel", "python", "packages", "cpu_governor",
    "isa_flags", "gpus", "bench_version", "machine_label", "turbo", "noise_warnings", "peak_gflops",
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


def columns(wanted: tuple[str, ...]) -> str:
    """A select list of those of ``wanted`` that the dataset has (DuckDB's COLUMNS with a regex)."""
    return "COLUMNS('^(" + "|".join(re.escape(w) for w in wanted) + ")$')"


def read(results: Path, table: str, wanted: tuple[str, ...], where: str = "", params: list | None = None) -> pa.Table:
    """``wanted`` columns of ``table``; the ones the dataset lacks are added as nulls."""
    if not store.has_table(results, table):
        return pa.table({w: pa.nulls(0) for w in wanted})
    got = store.query(results, f"SELECT {columns(wanted)} FROM {table} {where}", params)
    for w in wanted:
        if w not in got.schema.names:
            got = got.append_column(w, pa.nulls(got.num_rows))
    return got.select(list(wanted))


def _rows(table: pa.Table, sql: str, params: list | None = None) -> list[dict[str, Any]]:
    """Run ``sql`` over an in-memory table called ``t``: no file is read again."""
    con = duckdb.connect()
    try:
        con.register("t", table)
        cursor = con.execute(sql, params or [])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        con.close()


def current(light: pa.Table, run_id: str | None = None) -> list[dict[str, Any]]:
    """The latest row per case key: over all runs, or within ``run_id``."""
    where, params = ("WHERE run_id = ?", [run_id]) if run_id else ("", [])
    return _rows(light, f"""
        SELECT * FROM t {where}
        QUALIFY row_number() OVER (PARTITION BY case_key ORDER BY timestamp DESC NULLS LAST) = 1
        ORDER BY model NULLS LAST, runner NULLS LAST, precision NULLS LAST, batch, threads, case_key""", params)


def history(light: pa.Table, runs: list[dict[str, Any]], max_runs: int = MAX_TREND_RUNS) -> list[dict[str, Any]]:
    """Median of every ok case in each of the last ``max_runs`` runs, with the run's time, commit and machine
    (its --machine-label, else its machine_id): a trend line never joins two machines."""
    rows = _rows(light, """
        WITH h AS (SELECT case_key, model, run_id, timestamp, median_ms FROM t
                   WHERE status = 'ok' AND median_ms IS NOT NULL AND run_id IS NOT NULL),
        recent AS (SELECT run_id FROM h GROUP BY run_id ORDER BY min(timestamp) DESC LIMIT ?)
        SELECT * FROM h WHERE run_id IN (SELECT run_id FROM recent) ORDER BY timestamp, case_key""", [max_runs])
    by_id = {r["run_id"]: r for r in runs}
    for h in rows:
        run = by_id.get(h["run_id"], {})
        h["run_time"] = run.get("timestamp") or h.pop("timestamp")
        h.pop("timestamp", None)
        h["git_commit"] = run.get("git_commit")
        h["machine"] = run.get("machine_label") or run.get("machine_id")
    return sorted(rows, key=lambda h: (str(h["run_time"]), h["case_key"]))


def quantiles(results: Path, cases: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Latency in ms at ECDF_PROBS for the given case rows (by case key and run id), computed in DuckDB."""
    if not cases:
        return {}
    pairs = ", ".join("(?, ?)" for _ in cases)
    run_ids = sorted({c["run_id"] for c in cases})
    # The run_id filter sits on the scan itself, so only those runs' partitions are read (a join would not prune).
    params: list[Any] = [v for c in cases for v in (c["case_key"], c["run_id"])] + run_ids
    probs = ", ".join(repr(p) for p in ECDF_PROBS)
    in_runs = ", ".join("?" for _ in run_ids)
    sql = f"""
        WITH wanted(case_key, run_id) AS (VALUES {pairs}),
        picked AS (
            SELECT c.case_key, c.samples_ns
            FROM (SELECT {columns(("case_key", "run_id", "samples_ns"))} FROM cases WHERE run_id IN ({in_runs})) c
            JOIN wanted w ON c.case_key = w.case_key AND c.run_id = w.run_id
            WHERE len(c.samples_ns) > 0
        )
        SELECT case_key, quantile_disc(s, [{probs}]) AS q
        FROM (SELECT case_key, unnest(samples_ns) AS s FROM picked) GROUP BY case_key
    """
    try:
        rows = store.query(results, sql, params).to_pylist()
    except duckdb.BinderException:  # files from before samples_ns: no distributions to draw
        return {}
    return {r["case_key"]: [v / 1e6 for v in r["q"]] for r in rows}


def load(results: Path, run_id: str | None = None, max_ecdf_cases: int = 400) -> ReportData:
    """Read what the report needs. Raises UserError for a missing folder or an unknown run id."""
    if not store.exists(results):
        raise UserError(f"no results folder at {results} (run `bench run --results {results}` first)")
    light = read(results, "cases", CASE_FIELDS)
    runs = read(results, "runs", RUN_FIELDS, "ORDER BY timestamp NULLS LAST").to_pylist()
    cases = current(light, run_id)
    if run_id and not cases and run_id not in {r["run_id"] for r in runs}:
        raise UserError(f"--run: no run {run_id!r} in {results}")
    drawn = [c for c in cases if c["status"] == "ok" and c["run_id"]][:max_ecdf_cases]
    return ReportData(cases=cases, runs=runs, history=history(light, runs), quantiles=quantiles(results, drawn))
