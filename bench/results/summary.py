"""A summary of the compacted runs: what a report's first step reads from every row, kept beside the history.

A report first chooses its runs from every row of the history: the run holding each case key's latest row on
each machine, and the last runs with timings. That is a scan of every file (3 to 5 s of a 10M-row history on
two cores). A compacted file never changes, so its part of the answer can be kept: ``_summary.parquet`` at
the results root (outside cases/ and runs/, so no reader lists it) names the compacted files it covers and holds

* ``key`` rows: per case key and machine (machine_id, machine_label), the run and time of its latest row;
* ``run`` rows: per run, its machine and the first time of an ok row with a median (``n``: how many).

:func:`update` folds in every compacted file not yet covered: ``compact_run`` calls it as each run completes,
``bench compact`` after compacting (and then also drops a summary whose runs' machines were renamed).
:func:`usable` gives a reader the summary only while every file it covers is still listed and each run's machine
is still the one summarised; the reader then scans only the files it does not cover (normally a run or two),
else everything as before. Lost updates (two compactions at once) only leave a run uncovered, which the next
update covers. Latest is by row time, so folding a summary into more rows gives the result a scan of all of
them gives (ties aside, which no scan orders either).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from bench.results import layout, store
from bench.results.uri import Location

FILE = "_summary.parquet"  # beside cases/ and runs/: no listing of either sees it
SCHEMA = pa.schema([("kind", pa.string()), ("path", pa.string()), ("case_key", pa.string()),
                    ("machine_id", pa.string()), ("machine_label", pa.string()), ("run_id", pa.string()),
                    ("timestamp", pa.timestamp("us", tz="UTC")), ("n", pa.int64())])
TIMED = "status = 'ok' AND median_ms IS NOT NULL"
KEY_COLUMNS = ["case_key", "machine_id", "machine_label", "run_id", "timestamp"]
RUN_COLUMNS = ["run_id", "machine_id", "machine_label", "timestamp", "n"]
CHUNK = 200  # compacted files folded in at once


@dataclass(frozen=True)
class Summary:
    covered: frozenset[str]  # file paths, relative to the results root
    keys: pa.Table  # case_key, machine_id, machine_label, run_id, timestamp
    runs: pa.Table  # run_id, machine_id, machine_label, timestamp (first timed row), n (timed rows)



def read(loc: Location) -> Summary | None:
    """The summary as written, or None (none yet, or unreadable: then it is as if there were none)."""
    try:
        with loc.fs.open_input_file(loc.path(FILE)) as f:
            table = pq.read_table(f, schema=SCHEMA)
    except (OSError, pa.ArrowException):
        return None
    kind = table.column("kind").to_pylist()

    def rows(name: str, columns: list[str]) -> pa.Table:
        return table.filter(pa.array([k == name for k in kind])).select(columns)

    covered = frozenset(rows("file", ["path"]).column("path").to_pylist())
    return Summary(covered, rows("key", KEY_COLUMNS), rows("run", RUN_COLUMNS))


def usable(loc: Location, files: list[str], runs: pa.Table) -> Summary | None:
    """The summary, if it still describes ``files`` (the cases table as listed now) and ``runs`` (the runs
    table's run_id, machine_id, machine_label as read now)."""
    summary = read(loc)
    if summary is None or not summary.covered <= {loc.relative(f) for f in files}:
        return None
    machines: dict[str, set] = {}
    for r in runs.select(["run_id", "machine_id", "machine_label"]).to_pylist():
        machines.setdefault(r["run_id"], set()).add((r["machine_id"], r["machine_label"]))
    for r in summary.runs.to_pylist():
        if machines.get(r["run_id"], {(None, None)}) != {(r["machine_id"], r["machine_label"])}:
            return None  # a run's machine is named otherwise now: its rows may belong to another group
    return summary


def uncovered_runs(loc: Location, files: list[str], summary: Summary) -> list[str]:
    """Run ids of the listed files the summary does not cover."""
    return sorted({f.rsplit("/", 2)[-2].partition("=")[2] for f in files if loc.relative(f) not in summary.covered})


def update(loc: Location, check_machines: bool = False) -> int:
    """Fold every compacted file not yet covered into the summary; returns how many files were added. The
    files are read here through pyarrow (never through store.query, which a compaction may be running under).
    ``check_machines`` (``bench compact``): first drop a summary whose runs' machines are named otherwise now,
    which costs a read of every runs file; a reader checks that anyway, and falls back to scanning."""
    files = store.visible_files(loc, "cases")
    listed = {loc.relative(f) for f in files}
    old = read(loc)
    if old is not None and check_machines:
        old = usable(loc, files, _runs(loc, store.visible_files(loc, "runs")))
    if old is not None and not old.covered <= listed:
        old = None  # a covered file is gone: summarise again what there is
    covered = old.covered if old else frozenset()
    new = [f for f in files if layout.is_compacted(f) and loc.relative(f) not in covered]
    if not new:
        return 0
    run_ids = {f.rsplit("/", 2)[-2].partition("=")[2] for f in new}
    run_files = [f for f in store.visible_files(loc, "runs") if f.rsplit("/", 2)[-2].partition("=")[2] in run_ids] \
        if len(run_ids) > 64 else [f for r in sorted(run_ids) for f in store.finished_files(loc, f"runs/run_id={r}")]
    machines = _runs(loc, run_files)
    keys, runs = (old.keys, [old.runs]) if old else (SCHEMA.empty_table().select(KEY_COLUMNS), [])
    for start in range(0, len(new), CHUNK):  # a first summary of a long history: in bounded memory
        keys, more = _aggregate(loc, new[start:start + CHUNK], machines, keys)
        runs.append(more)
    _write(loc, covered | {loc.relative(f) for f in new}, keys, pa.concat_tables(
        [r.select(RUN_COLUMNS).cast(pa.schema([SCHEMA.field(c) for c in RUN_COLUMNS])) for r in runs]))
    return len(new)


def _runs(loc: Location, files: list[str]) -> pa.Table:
    columns = ["run_id", "machine_id", "machine_label"]
    return store._dataset(loc, "runs", files).to_table(columns=columns) if files else \
        store._full_schema("runs").empty_table().select(columns)


def _aggregate(loc: Location, files: list[str], runs: pa.Table, keys: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(key rows, run rows) of ``files`` folded into ``keys``, in DuckDB over pyarrow's scan."""
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        con.register("new_cases", store._dataset(loc, "cases", files))
        con.register("new_runs", runs)
        con.register("old_keys", keys)
        rows = ("SELECT c.case_key, c.run_id, c.timestamp, c.status, c.median_ms, m.machine_id, m.machine_label "
                f"FROM new_cases c {store.machine_join('new_runs')} WHERE c.case_key IS NOT NULL "
                f"AND NOT {store.impossible('c')}")  # as every cases view: an impossible row is no row
        keys = con.sql(f"""
            WITH every_row AS (
                SELECT case_key, machine_id, machine_label, run_id, timestamp FROM ({rows})
                UNION ALL SELECT * FROM old_keys)
            SELECT case_key, machine_id, machine_label,
                   coalesce(arg_max(run_id, timestamp), any_value(run_id)) AS run_id, max(timestamp) AS timestamp
            FROM every_row GROUP BY case_key, machine_id, machine_label""").to_arrow_table()
        per_run = con.sql(f"""
            SELECT run_id, any_value(machine_id) AS machine_id, any_value(machine_label) AS machine_label,
                   min(timestamp) FILTER (WHERE {TIMED}) AS timestamp, count(*) FILTER (WHERE {TIMED}) AS n
            FROM ({rows}) c GROUP BY run_id""").to_arrow_table()
        return keys, per_run
    finally:
        con.close()


def _write(loc: Location, covered: frozenset[str], keys: pa.Table, runs: pa.Table) -> None:
    parts = [pa.table({"kind": ["file"] * len(covered), "path": sorted(covered)}),
             keys.append_column("kind", pa.array(["key"] * keys.num_rows, pa.string())),
             runs.append_column("kind", pa.array(["run"] * runs.num_rows, pa.string()))]
    table = pa.concat_tables([_conform(p) for p in parts])
    layout.write_at(loc, FILE, table)


def _conform(table: pa.Table) -> pa.Table:
    return pa.table({f.name: table.column(f.name).cast(f.type) if f.name in table.column_names
                     else pa.nulls(table.num_rows, f.type) for f in SCHEMA}, schema=SCHEMA)
