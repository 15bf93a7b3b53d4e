"""Compaction: a complete run's per-case files merged into one file per run.

``bench run`` writes one file per case, so that a run killed at any point keeps every finished case. Reading
costs about a millisecond per file, so a year of a fleet's nightly runs (~1,000,000 cases) would take minutes
to read as per-case files and a second as per-run files. Once a run is complete nothing more is written under
its id, and its partition folder is rewritten as one ``compacted.parquet``:

1. read the folder's files (a leftover compacted file included) with the current schema,
2. write ``compacted.parquet`` whole (temp name + rename locally, one PUT on an object store),
3. check its row count, then delete the per-case files.

Readers never count a row twice: from the moment step 2's file exists, the store lists only it for that folder
(``store._one_copy``). A compaction killed before step 3 leaves copies that the next ``bench compact`` merges
and deletes; a reader that listed a file just deleted re-lists once (``store.query``). Interrupted runs are
left alone, so ``--resume`` keeps adding per-case files that readers see.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from bench.errors import UserError
from bench.files import first_line
from bench.results import layout, runs_cache, store, summary
from bench.results.schema import CASE_SCHEMA
from bench.results.uri import Location


@dataclass(frozen=True)
class Compacted:
    runs: int  # partition folders rewritten
    files: int  # per-case files merged and deleted


def _read(loc: Location, files: list[str]) -> pa.Table:
    return ds.dataset(files, schema=CASE_SCHEMA, format="parquet", filesystem=loc.fs).to_table()


def _identity(table: pa.Table) -> list[tuple]:
    return list(zip(table.column("case_key").to_pylist(), table.column("timestamp").to_pylist(), strict=True))


def _merged(loc: Location, per_case: list[str], compacted: list[str]) -> pa.Table:
    """The folder's rows once each: per-case rows already in a leftover compacted file are its copies."""
    table = _read(loc, per_case)
    if compacted:
        kept = _read(loc, compacted)
        known = set(_identity(kept))
        table = pa.concat_tables([kept, table.filter(pa.array([i not in known for i in _identity(table)]))])
    return table.take(pc.sort_indices(table, [("timestamp", "ascending"), ("case_key", "ascending")]))


def _rows_in(loc: Location, path: str) -> int:
    with loc.fs.open_input_file(path) as f:
        return pq.ParquetFile(f).metadata.num_rows


class UnknownSchema(OSError):
    """A file with columns this bench does not know (written by a newer one): merging would drop them."""


def _check_known(loc: Location, files: list[str]) -> None:
    known = set(CASE_SCHEMA.names) | set(layout.PARTITIONS["cases"].names)
    for path in files:
        with loc.fs.open_input_file(path) as f:
            extra = sorted(set(pq.read_schema(f).names) - known)
        if extra:
            raise UnknownSchema(f"{loc.join(path[len(loc.path('')):].strip('/'))} has columns this bench does not "
                                f"know ({', '.join(extra[:5])}): left as it is (compact it with the bench that "
                                "wrote it)")


def _bench_files(loc: Location, folder: str, files: list[str]) -> list[str]:
    """``files`` that bench wrote in ``folder`` itself (named as it names them); any other file is named on stderr
    and left alone: compaction deletes what it merges, and a file bench did not write is not bench's to delete."""
    ours = [f for f in files if f.rpartition("/")[0] == loc.path(folder)
            and layout.written_by_bench(folder, f.rpartition("/")[2])]
    foreign = [f for f in files if f not in ours]
    if foreign:
        print(f"bench compact: left alone {len(foreign)} file(s) bench did not write: "
              + "; ".join(str(loc.join(loc.relative(f))) for f in foreign[:5])
              + (f"; and {len(foreign) - 5} more" if len(foreign) > 5 else ""), file=sys.stderr)
    return ours


def compact_folder(loc: Location, folder: str, files: list[str]) -> int:
    """Merge ``files`` (paths inside ``loc.fs``, all in ``folder``) into the folder's compacted file and delete
    the per-case ones; returns how many were deleted. Only files bench wrote are merged (``_bench_files``). A
    folder that is already one compacted file is left alone, and so is one holding a file of a schema newer than
    this bench's (``UnknownSchema``): nothing is deleted that was not carried over whole."""
    files = _bench_files(loc, folder, files)
    per_case = [f for f in files if not layout.is_compacted(f)]
    if not per_case:
        return 0
    _check_known(loc, files)
    table = _merged(loc, per_case, [f for f in files if layout.is_compacted(f)])
    target = f"{folder}/{layout.COMPACTED}"
    layout.write_at(loc, target, table)
    written = _rows_in(loc, loc.path(target))
    if written != table.num_rows:
        raise OSError(f"{loc.join(target)} holds {written} rows, expected {table.num_rows}; per-case files kept")
    for path in per_case:
        loc.fs.delete_file(path)
    return len(per_case)


def _folders(loc: Location, files: list[str]) -> dict[str, list[str]]:
    """Files grouped by partition folder, the folder relative to the results root."""
    root = loc.path("")
    folders: dict[str, list[str]] = {}
    for path in files:
        folders.setdefault(path.rpartition("/")[0][len(root):].strip("/"), []).append(path)
    return folders


def compact_run(loc: Location, run_id: str, started: datetime) -> Compacted:
    """Compact one complete run (``bench run`` calls this as a run completes)."""
    folder = layout.run_folder(run_id, started)
    deleted = compact_folder(loc, folder, store.finished_files(loc, folder))
    _summarise(loc)
    return Compacted(int(bool(deleted)), deleted)


def _summarise(loc: Location, check_machines: bool = False) -> None:
    """Fold the compacted runs into the readers' summary (bench.results.summary) and the complete runs into the
    runs table's cache (bench.results.runs_cache). Either left behind only makes the next reader open more
    files, so a failure here is named, never raised."""
    updates = {"the results summary": lambda: summary.update(loc, check_machines),
               "the runs table's cache": lambda: runs_cache.update(loc, store.finished_infos(loc, "runs"))}
    for name, update in updates.items():
        try:
            update()
        except (OSError, duckdb.Error, pa.ArrowException, UserError) as exc:
            print(f"bench: {name} was not updated ({first_line(exc)}); readers read every file", file=sys.stderr)


def _complete_runs(loc: Location) -> set[str]:
    rows = store.query(loc, "SELECT run_id FROM runs WHERE status = 'complete'").to_pylist()
    return {r["run_id"] for r in rows}


def compact_all(loc: Location) -> Compacted:
    """Compact every complete run that still has per-case files (``bench compact``); other runs are left alone."""
    complete = _complete_runs(loc)
    runs = files = 0
    for folder, paths in _folders(loc, store.finished_files(loc, "cases")).items():
        if folder.rpartition("run_id=")[2] in complete:
            try:
                deleted = compact_folder(loc, folder, paths)
            except UnknownSchema as exc:  # the other runs still compact; this one is named
                print(f"bench compact: {exc}", file=sys.stderr)
                continue
            runs, files = runs + int(bool(deleted)), files + deleted
    _summarise(loc, check_machines=True)
    return Compacted(runs, files)
