"""The results store: a hive-partitioned parquet dataset, one file per finished case, local or remote.

``results`` is a folder or a URI (``s3://bucket/prefix``, ``file://``, ``gs://``, ...; see :mod:`bench.uri`).
In a local folder each file is written to a hidden temp name, fsynced, then renamed, so readers never see a
half-written file, and a run killed at any point keeps every finished case. On an object store the file is
serialized in memory first and sent in one PUT, which the store makes visible whole or not at all.

Reading lists the ``*.parquet`` files (hidden and ``_`` names skipped), opens them as one ``pyarrow.dataset``
with the current schema, so files of older schema versions merge by column name (missing columns read as
null), and registers it in DuckDB as the views ``cases`` and ``runs``: DuckDB pushes column selection and
filters (``run_id = ?`` prunes whole partitions) down into the scan. DuckDB never touches the filesystem itself,
so remote results need no DuckDB extension.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from bench.errors import UserError
from bench.schema import CASE_SCHEMA, RUN_SCHEMA, SCHEMA_VERSION
from bench.uri import Location, first_line

Results = str | Path | Location  # a folder, a URI, or one already resolved with Location.resolve

# Each table's hive partition columns, in path order; they are columns of the rows too (date is derived).
PARTITIONS = {
    "cases": pa.schema([("date", pa.date32()), ("run_id", pa.string())]),
    "runs": pa.schema([("run_id", pa.string())]),
}
SCHEMAS = {"cases": CASE_SCHEMA, "runs": RUN_SCHEMA}
IGNORED_PREFIXES = (".", "_")  # temp files and other tools' metadata


def location(results: Results) -> Location:
    """Resolve ``results`` once; pass the result on to avoid resolving it again for every call."""
    return Location.resolve(results)


def exists(results: Results) -> bool:
    """The results root exists (a folder, or a prefix with objects under it)."""
    return location(results).is_dir()


# --- writing ---------------------------------------------------------------------------------------------

def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_local(table: pa.Table, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            pq.write_table(table, f, compression="zstd")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(target.parent)
    return target


def _write_remote(table: pa.Table, fs: pafs.FileSystem, path: str, object_store: bool) -> None:
    """Serialize first (a bad row fails before anything is opened), then send every byte in one write."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    data = sink.getvalue()
    if object_store:  # one PUT on close: the object appears whole or not at all
        with fs.open_output_stream(path) as f:
            f.write(data)
        return
    parent, _, name = path.rpartition("/")
    tmp = f"{parent}/.{name}.{os.getpid()}.tmp"  # a filesystem with real folders (HDFS): temp name, then move
    fs.create_dir(parent, recursive=True)
    with fs.open_output_stream(tmp) as f:
        f.write(data)
    fs.move(tmp, path)


def _write(loc: Location, relative: str, table: pa.Table) -> Path | str:
    if loc.local is not None:
        _write_local(table, loc.local / relative)
    else:
        _write_remote(table, loc.fs, loc.path(relative), loc.object_store)
    return loc.join(relative)


def write_table_atomic(table: pa.Table, target: str | Path) -> Path | str:
    """Write ``table`` to the file ``target`` (a path or a URI) so that no reader sees it half-written."""
    loc = location(target)
    if loc.local is not None:
        return _write_local(table, loc.local)
    _write_remote(table, loc.fs, loc.root, loc.object_store)
    return target


def _one_row(schema: pa.Schema, row: dict[str, Any]) -> pa.Table:
    unknown = set(row) - set(schema.names)
    if unknown:
        raise KeyError(f"columns not in the schema: {sorted(unknown)}")
    row = {**row, "schema_version": SCHEMA_VERSION}
    return pa.Table.from_pylist([row], schema=schema)


def _case_relative(run_id: str, started: datetime, index: int, case_key: str) -> str:
    safe_key = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in case_key)[:120]
    return f"cases/date={started:%Y-%m-%d}/run_id={run_id}/{index:05d}-{safe_key}.parquet"


def case_file(results: Results, run_id: str, started: datetime, index: int, case_key: str) -> Path | str:
    """Where a case's row goes: a Path under a local folder, else a URI."""
    return location(results).join(_case_relative(run_id, started, index, case_key))


def write_case(results: Results, run_id: str, started: datetime, index: int, row: dict[str, Any]) -> Path | str:
    relative = _case_relative(run_id, started, index, row["case_key"])
    return _write(location(results), relative, _one_row(CASE_SCHEMA, row))


def write_run(results: Results, run_id: str, row: dict[str, Any]) -> Path | str:
    return _write(location(results), f"runs/run_id={run_id}/run.parquet", _one_row(RUN_SCHEMA, row))


# --- reading ---------------------------------------------------------------------------------------------

def _visible(relative: str) -> bool:
    return relative.endswith(".parquet") and not any(p.startswith(IGNORED_PREFIXES) for p in relative.split("/"))


def _files(loc: Location, table: str) -> list[str]:
    """Paths (inside ``loc.fs``) of the table's finished parquet files."""
    base = loc.path(table)
    try:
        infos = loc.fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    except OSError as exc:
        raise UserError(f"cannot read results at {loc}: {first_line(exc)}") from None
    return sorted(i.path for i in infos if i.type == pafs.FileType.File and _visible(i.path[len(base) + 1:]))


def has_table(results: Results, table: str) -> bool:
    return bool(_files(location(results), table))


def dataset(results: Results, table: str) -> ds.Dataset | None:
    """The table's files as one dataset with the current schema plus its partition columns; None if empty."""
    loc = location(results)
    files = _files(loc, table)
    if not files:
        return None
    partitions = PARTITIONS[table]
    schema = SCHEMAS[table]
    for f in partitions:
        if f.name not in schema.names:
            schema = schema.append(f)
    return ds.dataset(
        files, schema=schema, format="parquet", filesystem=loc.fs,
        partitioning=ds.partitioning(partitions, flavor="hive"), partition_base_dir=loc.path(table),
    )


def _sql(datasets: dict[str, ds.Dataset | None], sql: str, params: list[Any] | None) -> pa.Table:
    con = duckdb.connect()
    try:
        for table, data in datasets.items():
            if data is not None:
                con.register(table, data)
        relation = con.sql(sql, params=params or None)
        # DuckDB 2 has to_arrow_table; older releases call it arrow().
        return (getattr(relation, "to_arrow_table", None) or relation.arrow)()
    finally:
        con.close()


def query(results: Results, sql: str, params: list[Any] | None = None) -> pa.Table:
    """Run SQL over the dataset; ``cases`` and ``runs`` are views over all of its files."""
    loc = location(results)
    return _sql({table: dataset(loc, table) for table in ("cases", "runs")}, sql, params)


def read_cases(results: Results, columns: list[str] | None = None, run_id: str | None = None) -> pa.Table:
    cases = dataset(results, "cases")
    if cases is None:
        return CASE_SCHEMA.empty_table()
    select = ", ".join(f'"{c}"' for c in columns) if columns else "*"
    where, params = ("WHERE run_id = ?", [run_id]) if run_id else ("", [])
    return _sql({"cases": cases}, f"SELECT {select} FROM cases {where} ORDER BY timestamp", params)


def previous_and_latest(results: Results) -> list[dict[str, Any]]:
    """Per machine (machine_id) and suite: its latest complete run and the one before, as ``base`` and ``new``.

    What a nightly compares: each machine against its own previous night, never against another machine.
    """
    loc = location(results)
    if not has_table(loc, "runs"):
        return []
    sql = """
        WITH ranked AS (
            SELECT machine_id, machine_label, suite, run_id, timestamp,
                   lag(run_id) OVER (PARTITION BY machine_id, suite ORDER BY timestamp) AS previous,
                   row_number() OVER (PARTITION BY machine_id, suite ORDER BY timestamp DESC) AS newest
            FROM runs WHERE status = 'complete' AND machine_id IS NOT NULL
        )
        SELECT machine_id, machine_label, suite, previous AS base, run_id AS new FROM ranked
        WHERE newest = 1 AND previous IS NOT NULL ORDER BY machine_label, suite, machine_id
    """
    return query(loc, sql).to_pylist()
