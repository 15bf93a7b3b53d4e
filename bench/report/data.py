"""What a report reads from the results store: named columns only, raw samples only as bounded quantiles and,
for the scenario table's latency ties that the CIs leave open, those few rows' samples cut as bench compare cuts.

A fleet's history holds ten million rows, and a report draws a few thousand of them, so it reads in steps: the
runs table, once (later queries join against it); the runs holding each case key's latest row and the last runs
with timings, from the compacted runs' summary (:mod:`bench.results.summary`) and the keys of the rows it does
not cover (case key, run id, time, status), or from those of every row where there is no usable summary; then
the drawn columns of those runs only, and the quantiles of the drawn cases' samples (only those runs' files are
listed and opened). The store's views always have the
current schema, so files from an older schema read as nulls where they lack a column, and the charts that
need one say "no data".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from bench.contract import Status
from bench.errors import UserError
from bench.report import change
from bench.report.labels import with_runner_labels
from bench.results import store, summary
from bench.results.uri import Location

# The columns behind the charts and tables; samples_ns is never among them (see quantiles()).
CASE_FIELDS = (
    "case_key", "run_id", "timestamp", "model", "runner", "runner_version", "device", "precision",
    "precision_used", "batch", "threads", "scenario", "status", "error", "median_ms", "median_ci_low_ms",
    "median_ci_high_ms", "p99_ms", "throughput_per_s", "accuracy_ok", "accuracy_reason", "cosine",
    "normalized_error", "top1_agreement", "cold_start_ms", "peak_rss_mb", "iterations", "unstable",
    "achieved_gflops", "task_metric", "task_value", "task_n", "quant_recipe", "quant_limit",
    "software_device", "weights", "loadgen_valid", "loadgen_p99_bound_ms",
    "runtime_version_requested",  # the version axis: a release is a series of its own
    "source_path",  # a model from PyTorch: its path names the runner (labels.runner_label)
    "profile_ops", "profile_coverage", "profile_agrees", "profile_note",
    "runner_facts",  # only for a runner's report_label (labels.with_runner_labels), then dropped
)
RUN_FIELDS = (
    "run_id", "timestamp", "git_commit", "machine_id", "cpu_model", "cpu_arch", "cores_physical",
    "cores_logical", "cpus_allowed", "memory_gb", "os", "kernel", "python", "packages", "cpu_governor",
    "isa_flags", "gpus", "bench_version", "machine_label", "turbo", "noise_warnings", "peak_gflops",
    "cpu_precision_features", "emulated", "emulator", "kernel_arch", "soc_model", "cpu_clusters", "vulkan_devices",
)
# The latest row is kept per case key AND machine (store.MACHINE): a fleet's results never show one machine's
# row in place of another's.
# Probabilities at which each drawn case's samples are summarised for its ECDF: 201 points, not 10^5 samples.
ECDF_PROBS = tuple(i / 200 for i in range(201))
MAX_TREND_RUNS = 30
RUN_MACHINES = "run_machines"  # the runs rows already read, given to store.query by this name


@dataclass
class ReportData:
    """The rows a report is drawn from; plain dicts keyed by column name, ``None`` where unknown."""

    cases: list[dict[str, Any]]  # the latest row per case key and machine (of one run, with --run)
    runs: list[dict[str, Any]]  # one row per run in the store
    history: list[dict[str, Any]] = field(default_factory=list)  # ok medians per case per run, for trends
    quantiles: dict[str, list[float]] = field(default_factory=dict)  # case_key -> ms at ECDF_PROBS
    results: Location | None = None  # where the rows were read (None: rows made in code, no samples to fetch)
    ops: list[dict[str, Any]] = field(default_factory=list)  # the profiled cases' nodes (--profile), ops table

    def rank_samples(self, cases: list[dict[str, Any]]) -> dict[tuple[str, str], list[int]]:
        """:func:`rank_samples` of ``cases`` from where these rows were read (nothing where none)."""
        return rank_samples(self.results, cases) if self.results is not None else {}


def _in(values: list[str]) -> tuple[str, list[str]]:
    """``IN (?, ?, ...)`` and its parameters: a literal list that DuckDB prunes partitions with (a join does not)."""
    return f"IN ({', '.join('?' for _ in values)})", list(values)


def _machines(runs: pa.Table | None) -> tuple[str, dict[str, pa.Table]]:
    """The join to each case's machine, over the runs rows already read where given (not thousands of files)."""
    if runs is None:
        return store.MACHINE_JOIN, {}
    return store.machine_join(RUN_MACHINES), {RUN_MACHINES: runs.select(["run_id", "machine_id", "machine_label"])}


def key_runs(results: Location, run_id: str | None, max_runs: int = MAX_TREND_RUNS,
             runs: pa.Table | None = None) -> tuple[list[str], list[str]]:
    """Runs holding the latest row of some case key (of ``run_id`` only, if given), and the last ``max_runs``
    runs with ok timings (for trends, over every run). With ``runs`` (the runs table as read) and no ``run_id``,
    from the summary where it is usable; else one scan of five light columns of every row, aggregated in DuckDB
    two ways at once (per case key and machine, and per run), never materialised row by row."""
    if run_id is None and runs is not None:
        summarised = _summarised_key_runs(results, max_runs, runs)
        if summarised is not None:
            return summarised
    chosen, params = ("c.run_id = ?", [run_id]) if run_id else ("true", [])
    join, given = _machines(runs)
    rows = store.query(results, f"""
        WITH keyed AS (
            SELECT c.case_key, {store.MACHINE} AS machine, c.run_id, c.timestamp, {chosen} AS chosen,
                   c.status = 'ok' AND c.median_ms IS NOT NULL AS timed
            FROM cases c {join}),
        grouped AS (
            SELECT GROUPING(run_id) = 1 AS per_key, run_id,
                   coalesce(arg_max(run_id, timestamp) FILTER (WHERE chosen),
                            any_value(run_id) FILTER (WHERE chosen)) AS latest,
                   count(*) FILTER (WHERE chosen) AS n_latest,
                   min(timestamp) FILTER (WHERE timed) AS first_timed, count(*) FILTER (WHERE timed) AS n_timed
            FROM keyed GROUP BY GROUPING SETS ((case_key, machine), (run_id))),
        latest AS (SELECT DISTINCT latest AS run_id FROM grouped WHERE per_key AND n_latest > 0),
        recent AS (
            SELECT run_id FROM grouped WHERE NOT per_key AND n_timed > 0 AND run_id IS NOT NULL
            ORDER BY first_timed DESC LIMIT ?)
        SELECT 'latest' AS what, run_id FROM latest UNION ALL SELECT 'recent' AS what, run_id FROM recent""",
                        [*params, max_runs], given=given).to_pylist()
    return ([r["run_id"] for r in rows if r["what"] == "latest"], [r["run_id"] for r in rows if r["what"] == "recent"])


def _summarised_key_runs(loc: Location, max_runs: int, runs: pa.Table) -> tuple[list[str], list[str]] | None:
    """:func:`key_runs` from the compacted runs' summary (bench.results.summary) and a scan of the files it
    does not cover; None when there is no usable summary."""
    files = store.visible_files(loc, "cases")
    kept = summary.usable(loc, files, runs)
    if kept is None:
        return None
    join, given = _machines(runs)
    given.update(summary_keys=kept.keys, summary_runs=kept.runs)
    rows = store.query(loc, f"""
        WITH keyed AS (
            SELECT c.case_key, {store.MACHINE} AS machine, c.run_id, c.timestamp,
                   c.status = 'ok' AND c.median_ms IS NOT NULL AS timed
            FROM cases c {join}),
        every_key AS (
            SELECT case_key, machine, run_id, timestamp FROM keyed UNION ALL
            SELECT case_key, coalesce(machine_label, machine_id), run_id, timestamp FROM summary_keys),
        latest AS (
            SELECT DISTINCT coalesce(arg_max(run_id, timestamp), any_value(run_id)) AS run_id
            FROM every_key GROUP BY case_key, machine),
        per_run AS (
            SELECT run_id, min(timestamp) FILTER (WHERE timed) AS first_timed, count(*) FILTER (WHERE timed) AS n
            FROM keyed GROUP BY run_id UNION ALL SELECT run_id, timestamp, n FROM summary_runs),
        recent AS (SELECT run_id FROM per_run WHERE n > 0 AND run_id IS NOT NULL ORDER BY first_timed DESC LIMIT ?)
        SELECT 'latest' AS what, run_id FROM latest UNION ALL SELECT 'recent' AS what, run_id FROM recent""",
                       [max_runs], run_ids=summary.uncovered_runs(loc, files, kept), given=given).to_pylist()
    return ([r["run_id"] for r in rows if r["what"] == "latest"], [r["run_id"] for r in rows if r["what"] == "recent"])


def current(results: Location, run_ids: list[str], runs: pa.Table | None = None) -> list[dict[str, Any]]:
    """The latest row per case key and machine among ``run_ids`` (the runs that hold them, from :func:`key_runs`)."""
    if not run_ids:
        return []
    in_runs, params = _in(run_ids)
    columns = ", ".join(f"c.{name}" for name in store.column_list(CASE_FIELDS).split(", "))
    join, given = _machines(runs)
    return with_runner_labels(store.query(results, f"""
        SELECT {columns}, coalesce({store.MACHINE}, '?') AS machine FROM cases c {join}
        WHERE c.run_id {in_runs}
        QUALIFY row_number() OVER (PARTITION BY c.case_key, {store.MACHINE} ORDER BY c.timestamp DESC NULLS LAST) = 1
        ORDER BY c.model NULLS LAST, c.runner NULLS LAST, c.precision NULLS LAST, c.batch, c.threads, machine,
                 c.case_key""", params, run_ids=run_ids, given=given).to_pylist())


def history(results: Location, run_ids: list[str], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median of every ok case in each of ``run_ids``, with the run's time, commit and machine (its
    --machine-label, else its machine_id): a trend line never joins two machines."""
    if not run_ids:
        return []
    in_runs, params = _in(run_ids)
    rows = store.query(results, f"""
        SELECT case_key, model, run_id, timestamp, median_ms FROM cases
        WHERE run_id {in_runs} AND status = 'ok' AND median_ms IS NOT NULL""", params, run_ids=run_ids).to_pylist()
    by_id = {r["run_id"]: r for r in runs}
    for h in rows:
        run = by_id.get(h["run_id"], {})
        h["run_time"] = run.get("timestamp") or h.pop("timestamp")
        h.pop("timestamp", None)
        h["git_commit"] = run.get("git_commit")
        h["machine"] = run.get("machine_label") or run.get("machine_id")
    return sorted(rows, key=lambda h: (str(h["run_time"]), h["case_key"]))


def _wanted(cases: list[dict[str, Any]]) -> tuple[str, str, list[Any], list[str]]:
    """For a query of the given rows: ``WITH wanted(case_key, run_id)`` of them; ``IN (...)`` of their run ids,
    which DuckDB prunes partitions with; the parameters of both, in that order; and the run ids (``store.query``'s
    ``run_ids``: only their files are listed and opened)."""
    run_ids = sorted({c["run_id"] for c in cases})
    in_runs, run_params = _in(run_ids)
    pairs = ", ".join("(?, ?)" for _ in cases)
    params: list[Any] = [v for c in cases for v in (c["case_key"], c["run_id"])] + run_params
    return f"WITH wanted(case_key, run_id) AS (VALUES {pairs})", in_runs, params, run_ids


def quantiles(results: Location, cases: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Latency in ms at ECDF_PROBS for the given case rows (by case key and run id), computed in DuckDB."""
    if not cases:
        return {}
    wanted, in_runs, params, run_ids = _wanted(cases)
    probs = ", ".join(repr(p) for p in ECDF_PROBS)
    sql = f"""
        {wanted},
        picked AS (
            SELECT c.case_key, c.samples_ns
            FROM (SELECT case_key, run_id, samples_ns FROM cases WHERE run_id {in_runs}) c
            JOIN wanted w ON c.case_key = w.case_key AND c.run_id = w.run_id
            WHERE len(c.samples_ns) > 0
        )
        SELECT case_key, quantile_disc(s, [{probs}]) AS q
        FROM (SELECT case_key, unnest(samples_ns) AS s FROM picked) GROUP BY case_key
    """
    rows = store.query(results, sql, params, run_ids=run_ids).to_pylist()
    return {r["case_key"]: [v / 1e6 for v in r["q"]] for r in rows}


def rank_samples(results: Location, cases: list[dict[str, Any]]) -> dict[tuple[str, str], list[int]]:
    """(case key, run id) -> the raw samples of each given case row, cut as ``bench compare`` cuts them
    (``change.cut_sql``), in one query that opens those rows' runs only: the scenario table's rank test, which
    only the picks whose CI does not overlap their runner-up's need (``scenarios.scenario_table``'s ``samples``).
    Where a run holds a case key twice (a resumed case), its latest row, as :func:`current` keeps."""
    if not cases:
        return {}
    wanted, in_runs, params, run_ids = _wanted(cases)
    sql = f"""
        {wanted}
        SELECT c.case_key, c.run_id, {change.cut_sql()} AS samples
        FROM (SELECT case_key, run_id, timestamp, samples_ns FROM cases WHERE run_id {in_runs}) c
        JOIN wanted w ON c.case_key = w.case_key AND c.run_id = w.run_id
        WHERE len(c.samples_ns) > 0
        QUALIFY row_number() OVER (PARTITION BY c.case_key, c.run_id ORDER BY c.timestamp DESC NULLS LAST) = 1
    """
    rows = store.query(results, sql, params, run_ids=run_ids).to_pylist()
    return {(r["case_key"], r["run_id"]): r["samples"] for r in rows}


OP_FIELDS = ("run_id", "case_key", "rank", "node", "op_type", "kernel", "op_precision", "median_ms", "share")


def profiled_ops(results: Location, cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ops rows of ``cases`` that were profiled (their runs' files only), ranked within each case."""
    wanted = {(c["run_id"], c["case_key"]) for c in cases if c.get("profile_ops")}
    if not wanted:
        return []
    run_ids = sorted({run for run, _ in wanted})
    in_runs, params = _in(run_ids)
    rows = store.query(results, f"SELECT {store.column_list(OP_FIELDS)} FROM ops WHERE run_id {in_runs} "
                                "ORDER BY run_id, case_key, rank", params, run_ids=run_ids).to_pylist()
    return [r for r in rows if (r["run_id"], r["case_key"]) in wanted]


def load(results: Location, run_id: str | None = None, max_ecdf_cases: int = 400) -> ReportData:
    """Read what the report needs. Raises UserError for a missing folder or an unknown run id."""
    if not store.exists(results):
        raise UserError(f"no results folder at {results} (run `bench run --results {results}` first)")
    sql = f"SELECT {store.column_list(RUN_FIELDS)} FROM runs ORDER BY timestamp NULLS LAST"
    run_table = store.query(results, sql)  # once: the later queries join against it, not the runs files
    runs = run_table.to_pylist()
    latest, recent = key_runs(results, run_id, runs=run_table)
    cases = current(results, latest, run_table)
    if run_id and not cases and run_id not in {r["run_id"] for r in runs}:
        raise UserError(f"--run: no run {run_id!r} in {results}")
    drawn = [c for c in cases if c["status"] == Status.OK and c["run_id"]][:max_ecdf_cases]
    return ReportData(cases=cases, runs=runs, history=history(results, recent, runs),
                      quantiles=quantiles(results, drawn), results=results, ops=profiled_ops(results, cases))
