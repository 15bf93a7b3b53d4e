"""Where the results store's files go and how each is written, apart from how they are read (``bench.results.store``),
so that the store and the runs cache (``bench.results.runs_cache``) both write through this module and neither
imports the other to do it.

The layout is hive-partitioned: ``cases/date=D/run_id=R/NNNNN-KEY.parquet`` (one file per finished case; a complete
run's merged into ``compacted.parquet`` by :mod:`bench.results.compaction`) and ``runs/run_id=R/run.parquet``.
In a local folder each file is written to a hidden temp name, fsynced, then renamed, so readers never see a
half-written file, and a run killed at any point keeps every finished case. On an object store the file is
serialized in memory first and sent in one PUT, which the store makes visible whole or not at all.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from bench.files import write_atomic
from bench.results.schema import CASE_SCHEMA, OP_SCHEMA, RUN_SCHEMA, SCHEMA_VERSION
from bench.results.uri import Location

# What a user may name the results by: a folder, a URI, or a Location. It is resolved once, where the user gives it
# (bench.cli's --results, bench.results.load, bench.report.build_report), and the store's functions (store.query,
# write_case, compaction, the summary) take the Location resolved there.
Results = str | Path | Location

# Each table's hive partition columns, in path order; they are columns of the rows too (date is derived).
PARTITIONS = {
    "cases": pa.schema([("date", pa.date32()), ("run_id", pa.string())]),
    "runs": pa.schema([("run_id", pa.string())]),
    "ops": pa.schema([("date", pa.date32()), ("run_id", pa.string())]),
}
IGNORED_PREFIXES = (".", "_")  # temp files and other tools' metadata
COMPACTED = "compacted.parquet"  # a finished run's rows in one file; see compact_run


def location(results: Results) -> Location:
    """Resolve ``results`` once; pass the result on to avoid resolving it again for every call."""
    return Location.resolve(results)


def write_local(table: pa.Table, target: Path) -> Path:
    return write_atomic(target, lambda f: pq.write_table(table, f, compression="zstd"))


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


def write_at(loc: Location, relative: str, table: pa.Table) -> Path | str:
    """Write ``table`` to ``relative`` under ``loc`` so that no reader sees it half-written; returns its address."""
    if loc.local is not None:
        write_local(table, loc.local / relative)
    else:
        _write_remote(table, loc.fs, loc.path(relative), loc.object_store)
    return loc.join(relative)


def write_table_atomic(table: pa.Table, target: str | Path) -> Path | str:
    """Write ``table`` to the file ``target`` (a path or a URI) so that no reader sees it half-written."""
    loc = location(target)
    if loc.local is not None:
        return write_local(table, loc.local)
    _write_remote(table, loc.fs, loc.root, loc.object_store)
    return target


def _one_row(schema: pa.Schema, row: dict[str, Any]) -> pa.Table:
    return _rows(schema, [row])


def _rows(schema: pa.Schema, rows: list[dict[str, Any]]) -> pa.Table:
    unknown = {name for row in rows for name in row} - set(schema.names)
    if unknown:
        raise KeyError(f"columns not in the schema: {sorted(unknown)}")
    return pa.Table.from_pylist([{**row, "schema_version": SCHEMA_VERSION} for row in rows], schema=schema)


def run_folder(run_id: str, started: datetime, table: str = "cases") -> str:
    """The partition folder (relative to the results root) that holds a run's case files (or its ops files)."""
    return f"{table}/date={started:%Y-%m-%d}/run_id={run_id}"


# The names bench gives what it writes under cases/ (see run_folder, _case_relative and COMPACTED): compaction
# merges and deletes these only, never another file that happens to sit in a bench-like folder.
RUN_FOLDER = re.compile(r"cases/date=\d{4}-\d{2}-\d{2}/run_id=[^/]+")
CASE_FILE = re.compile(r"\d{5,}-[\w.-]{0,120}\.parquet")


def written_by_bench(folder: str, name: str) -> bool:
    """``folder/name`` (relative to the results root) is named as bench names a run's case or compacted file."""
    return bool(RUN_FOLDER.fullmatch(folder)) and (name == COMPACTED or bool(CASE_FILE.fullmatch(name)))


def _case_relative(run_id: str, started: datetime, index: int, case_key: str, table: str = "cases") -> str:
    # ASCII only: 120 characters are then 120 bytes, and the name (with write_atomic's temp prefix and suffix) stays
    # under the filesystem's 255 bytes whatever script the model's name is in
    safe_key = "".join(ch if ch.isascii() and ch.isalnum() or ch in "-_." else "_" for ch in case_key)[:120]
    return f"{run_folder(run_id, started, table)}/{index:05d}-{safe_key}.parquet"


def case_file(loc: Location, run_id: str, started: datetime, index: int, case_key: str) -> Path | str:
    """Where a case's row goes: a Path under a local folder, else a URI."""
    return loc.join(_case_relative(run_id, started, index, case_key))


def write_case(loc: Location, run_id: str, started: datetime, index: int, row: dict[str, Any]) -> Path | str:
    relative = _case_relative(run_id, started, index, row["case_key"])
    return write_at(loc, relative, _one_row(CASE_SCHEMA, row))


def write_ops(loc: Location, run_id: str, started: datetime, index: int, rows: list[dict[str, Any]]) -> Path | str:
    """A profiled case's nodes (``bench.results.rows.op_rows``), in one file named like its case file, under ops/."""
    relative = _case_relative(run_id, started, index, rows[0]["case_key"], "ops")
    return write_at(loc, relative, _rows(OP_SCHEMA, rows))


def write_run(loc: Location, run_id: str, row: dict[str, Any]) -> Path | str:
    return write_at(loc, f"runs/run_id={run_id}/run.parquet", _one_row(RUN_SCHEMA, row))


def visible(relative: str) -> bool:
    return relative.endswith(".parquet") and not any(p.startswith(IGNORED_PREFIXES) for p in relative.split("/"))


def is_compacted(path: str) -> bool:
    return path.rpartition("/")[2] == COMPACTED
