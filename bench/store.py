"""The results store: a hive-partitioned parquet dataset, one file per finished case.

Each file is written to a hidden temp name, fsynced, then renamed, so readers (whose globs match only
``*.parquet``) never see a half-written file, and a run killed at any point keeps every finished case.
Reading merges all files by column name with DuckDB, so files from older schema versions still load.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from bench.schema import CASE_SCHEMA, RUN_SCHEMA, SCHEMA_VERSION


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_table_atomic(table: pa.Table, target: Path) -> Path:
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


def _one_row(schema: pa.Schema, row: dict[str, Any]) -> pa.Table:
    unknown = set(row) - set(schema.names)
    if unknown:
        raise KeyError(f"columns not in the schema: {sorted(unknown)}")
    row = {**row, "schema_version": SCHEMA_VERSION}
    return pa.Table.from_pylist([row], schema=schema)


def case_file(results: Path, run_id: str, started: datetime, index: int, case_key: str) -> Path:
    safe_key = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in case_key)[:120]
    partition = results / "cases" / f"date={started:%Y-%m-%d}" / f"run_id={run_id}"
    return partition / f"{index:05d}-{safe_key}.parquet"


def write_case(results: Path, run_id: str, started: datetime, index: int, row: dict[str, Any]) -> Path:
    return write_table_atomic(_one_row(CASE_SCHEMA, row), case_file(results, run_id, started, index, row["case_key"]))


def write_run(results: Path, run_id: str, row: dict[str, Any]) -> Path:
    return write_table_atomic(_one_row(RUN_SCHEMA, row), results / "runs" / f"run_id={run_id}" / "run.parquet")


def _glob(results: Path, table: str) -> str:
    return str(results / table / "**" / "*.parquet").replace("'", "''")  # quoted inside SQL


def has_table(results: Path, table: str) -> bool:
    return any((results / table).glob("**/*.parquet"))


def query(results: Path, sql: str, params: list[Any] | None = None) -> pa.Table:
    """Run SQL over the dataset; ``cases`` and ``runs`` are views over all of its files."""
    con = duckdb.connect()
    try:
        for table in ("cases", "runs"):
            if has_table(results, table):
                source = f"read_parquet('{_glob(results, table)}', hive_partitioning=true, union_by_name=true)"
                con.execute(f"CREATE VIEW {table} AS SELECT * FROM {source}")
        relation = con.sql(sql, params=params or None)
        # DuckDB 2 has to_arrow_table; older releases call it arrow().
        return (getattr(relation, "to_arrow_table", None) or relation.arrow)()
    finally:
        con.close()


def read_cases(results: Path, columns: list[str] | None = None, run_id: str | None = None) -> pa.Table:
    if not has_table(results, "cases"):
        return CASE_SCHEMA.empty_table()
    select = ", ".join(f'"{c}"' for c in columns) if columns else "*"
    where, params = ("WHERE run_id = ?", [run_id]) if run_id else ("", [])
    return query(results, f"SELECT {select} FROM cases {where} ORDER BY timestamp", params)
