"""The complete runs' rows of the runs table in one file, so that reading the runs table opens one file, not one
per run (a fleet's year is 3,650 runs files: 0.74 s of DuckDB reading footers, most of listing its runs).

``_runs.parquet`` at the results root (outside runs/, so no listing of the table sees it; a bench that does not
know it reads the runs files as before) holds the rows of runs whose status was ``complete`` when it was written,
and in its metadata the file each row came from with that file's size and modification time. A reader
(:func:`readable`) takes it only while every file it covers is still listed with the same size and time (a
resumed run rewrites its file: then nothing of the cache is used until the next update) and its columns are the
current schema's; then the runs table is the cache plus the files it does not cover (runs still going, runs
finished since). :func:`update` folds in newly complete runs as each run's compaction finishes. A lost update
(two at once) only leaves a run uncovered, which the next one covers.
"""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from bench.results import layout
from bench.results.schema import RUN_SCHEMA
from bench.results.uri import Location

FILE = "_runs.parquet"
COVERED_KEY = b"bench.covered"  # {path relative to the results root: [size, mtime_ns]}
SCHEMA_KEY = b"bench.schema"  # the sha256 of the runs schema it was written with


def _schema_digest() -> str:
    return hashlib.sha256(RUN_SCHEMA.serialize().to_pybytes()).hexdigest()



def _stamp(info: pafs.FileInfo) -> list[int] | None:
    return [info.size, info.mtime_ns] if info.size is not None and info.mtime_ns is not None else None


def _covered(loc: Location) -> dict[str, list[int]] | None:
    """The cache's covered files as written, or None (none, unreadable, or of another schema)."""
    try:
        with loc.fs.open_input_file(loc.path(FILE)) as f:
            metadata = pq.read_schema(f).metadata or {}
    except (OSError, pa.ArrowException):
        return None
    if metadata.get(SCHEMA_KEY, b"").decode() != _schema_digest():
        return None
    try:
        return json.loads(metadata[COVERED_KEY])
    except (KeyError, ValueError):
        return None


def readable(loc: Location, infos: list[pafs.FileInfo]) -> tuple[str, list[str]] | None:
    """(the cache's path, the listed runs files it does not cover), or None where the cache does not describe
    ``infos`` (the runs table's files as listed now): then every file is read as before."""
    covered = _covered(loc)
    if not covered:
        return None
    listed = {loc.relative(i.path): i for i in infos}
    for path, stamp in covered.items():
        info = listed.get(path)
        if info is None or _stamp(info) != stamp:
            return None
    return loc.path(FILE), sorted(i.path for rel, i in listed.items() if rel not in covered)


def _run_id(relative: str) -> str | None:
    """The run of a runs file in the standard layout (``runs/run_id=R/run.parquet``: one row, run R); only
    those are cached, so that a cached row is known by its run id."""
    parts = relative.split("/")
    if len(parts) == 3 and parts[0] == "runs" and parts[1].startswith("run_id=") and parts[2] == "run.parquet":
        return parts[1][len("run_id="):] or None
    return None


def update(loc: Location, infos: list[pafs.FileInfo]) -> int:
    """Fold every complete run's file not yet covered into the cache (``infos``: the runs table's files as
    listed); returns how many were added. Rows the old cache holds for files since changed or gone are dropped
    and, if complete, read again."""
    old_covered = _covered(loc) or {}
    listed = {loc.relative(i.path): i for i in infos}
    kept = {p for p, stamp in old_covered.items() if p in listed and _stamp(listed[p]) == stamp}
    todo = [i for rel, i in listed.items() if rel not in kept and _stamp(i) is not None and _run_id(rel)]
    if not todo and kept == set(old_covered):
        return 0
    parts, covered = [], {p: old_covered[p] for p in kept}
    if kept:
        with loc.fs.open_input_file(loc.path(FILE)) as f:
            old = pq.read_table(f, schema=RUN_SCHEMA)
        runs = {_run_id(p) for p in kept}
        parts.append(old.filter(pa.array([r in runs for r in old.column("run_id").to_pylist()])))
    added = 0
    for info in todo:
        with loc.fs.open_input_file(info.path) as f:
            rows = pq.read_table(f, schema=RUN_SCHEMA)
        relative, stamp = loc.relative(info.path), _stamp(info)  # a stamp todo already has
        if stamp is not None and rows.num_rows == 1 and rows.column("status")[0].as_py() == "complete" \
                and rows.column("run_id")[0].as_py() == _run_id(relative):
            parts.append(rows)
            covered[relative] = stamp
            added += 1
    if added or kept != set(old_covered):  # runs still going were read for nothing: the cache stays as it is
        _write(loc, parts, covered)
    return added


def _write(loc: Location, parts: list[pa.Table], covered: dict[str, list[int]]) -> None:
    table = pa.concat_tables(parts) if parts else RUN_SCHEMA.empty_table()
    metadata = {**(RUN_SCHEMA.metadata or {}), COVERED_KEY: json.dumps(covered).encode(),
                SCHEMA_KEY: _schema_digest().encode()}
    layout.write_at(loc, FILE, table.replace_schema_metadata(metadata))
