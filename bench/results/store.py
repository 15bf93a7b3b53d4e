"""The results store: a hive-partitioned parquet dataset, one file per finished case, local or remote.

``results`` is a folder or a URI (``s3://bucket/prefix``, ``file://``, ``gs://``, ...; see :mod:`bench.results.uri`).
Where each file goes and how it is written whole is :mod:`bench.results.layout` (its writers stay importable from
here: ``store.write_case``, ``store.write_run``). A complete run's per-case files are merged into one
``compacted.parquet`` (:mod:`bench.results.compaction`); where a folder holds one, readers see only it.

Reading lists the ``*.parquet`` files (hidden and ``_`` names skipped) and registers each table in DuckDB as a
view with the current schema, so files of older schema versions merge by column name (missing columns read as
null): local files through DuckDB's own parquet reader, remote ones as a ``pyarrow.dataset`` over pyarrow's
filesystems (so remote results need no DuckDB extension). Either way DuckDB pushes column selection and filters
into the scan, and ``run_id = ?`` prunes whole partitions.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import stat
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from bench.cache import ownership_problem
from bench.errors import UserError
from bench.files import first_line
from bench.results import layout, runs_cache
from bench.results.layout import IGNORED_PREFIXES, PARTITIONS, is_compacted
from bench.results.schema import CASE_SCHEMA, OP_SCHEMA, RUN_SCHEMA
from bench.results.uri import Location

# ops: the per-op profile pass's nodes (--profile), one file per profiled case beside its case file
SCHEMAS = {"cases": CASE_SCHEMA, "runs": RUN_SCHEMA, "ops": OP_SCHEMA}
# Where the store's users (tests, benchmarks) have always found the writers and the compacted file's name.
COMPACTED, case_file, write_at = layout.COMPACTED, layout.case_file, layout.write_at
write_case, write_run, write_table_atomic = layout.write_case, layout.write_run, layout.write_table_atomic


def machine_join(runs: str = "runs") -> str:
    """For SQL over ``cases c``: each case's run's machine (one row of ``runs`` per run_id, so that a duplicated
    runs file cannot duplicate cases); ``runs`` may name a table given to :func:`query` with the runs table's
    run_id, machine_id and machine_label."""
    return f"""LEFT JOIN (SELECT run_id, any_value(machine_id) AS machine_id,
                            any_value(machine_label) AS machine_label
                     FROM {runs} GROUP BY run_id) m ON c.run_id = m.run_id"""


MACHINE_JOIN = machine_join()
# A case's machine as every reader names it: the run's --machine-label, else its machine_id.
MACHINE = "coalesce(m.machine_label, m.machine_id)"
GLOB_CHARACTERS = "*?[{"  # DuckDB's read_parquet expands these even in a list of paths


def exists(loc: Location) -> bool:
    """The results root exists (a folder, or a prefix with objects under it)."""
    return _given(loc).is_dir()


def _given(loc: Location) -> Location:
    """The store reads a Location, resolved once where a user named the results (``Location.resolve``); a folder
    given here is a caller's mistake, said as such rather than as an AttributeError deep in a read."""
    if not isinstance(loc, Location):
        raise TypeError(f"expected a Location, got {type(loc).__name__} {loc!r}: resolve it once with "
                        "bench.results.uri.Location.resolve (bench.results.load takes a folder or URI)")
    return loc


# --- reading ---------------------------------------------------------------------------------------------

def _one_copy(paths: list[str]) -> list[str]:
    """Where a folder holds a compacted file, only that file: its per-case files are copies awaiting deletion."""
    compacted = {p.rpartition("/")[0] for p in paths if is_compacted(p)}
    return [p for p in paths if p.rpartition("/")[0] not in compacted or is_compacted(p)]


def finished_infos(loc: Location, relative: str) -> list[pafs.FileInfo]:
    """Every finished parquet file under ``relative`` (paths inside ``loc.fs``, sizes, times), sorted by path."""
    base = loc.path(relative)
    try:
        infos = _local_infos(loc, relative) if loc.local is not None else \
            loc.fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    except OSError as exc:
        raise UserError(f"cannot read results at {loc}: {first_line(exc)}") from None
    return sorted((i for i in infos if i.type == pafs.FileType.File and layout.visible(i.path[len(base) + 1:])),
                  key=lambda i: i.path)


def _local_infos(loc: Location, relative: str) -> list[pafs.FileInfo]:
    """The files under ``relative`` in a local folder, found without following a symbolic link below the results
    root: bench writes none, and one there (a loop, or a way out of the tree) would multiply rows or read files
    that are no results. Links met are named once on stderr."""
    base, links = loc.path(relative), []
    parts = [p for p in relative.split("/") if p]
    above = [f"{loc.root}/{'/'.join(parts[:i + 1])}" for i in range(len(parts))]
    if any(os.path.islink(folder) for folder in above[1:]):  # below the table's own folder (cases/, runs/)
        links.append(base)
        walked: Iterable[tuple[str, list[str], list[str]]] = ()
    else:
        walked = os.walk(base, onerror=_raise)  # followlinks=False: a linked folder is listed, never entered
    infos = []
    for folder, dirs, files in walked:
        links += [f"{folder}/{d}" for d in dirs if os.path.islink(f"{folder}/{d}")]
        infos += _folder_infos(folder, files, links)
    _name_links(links)
    return infos


def _folder_infos(folder: str, names: list[str], links: list[str]) -> list[pafs.FileInfo]:
    """The regular files among ``names`` in ``folder`` (links appended to ``links``). A file deleted between the
    folder's listing and its stat was compacted away, and a compaction writes its merged file before it deletes
    any: the folder is listed again, and the merged file is in it then."""
    for _ in range(MAX_RELISTS + 1):
        found, linked = [], []
        try:
            for name in names:
                info = os.lstat(f"{folder}/{name}")
                if stat.S_ISLNK(info.st_mode):
                    linked.append(f"{folder}/{name}")
                elif stat.S_ISREG(info.st_mode):
                    found.append(pafs.FileInfo(f"{folder}/{name}", pafs.FileType.File, size=info.st_size,
                                               mtime_ns=info.st_mtime_ns))
        except FileNotFoundError:
            try:
                names = [e.name for e in os.scandir(folder) if not e.is_dir(follow_symlinks=False)]
            except FileNotFoundError:  # the folder itself is gone: it has no files
                return []
            continue
        links += linked
        return found
    raise OSError(f"files under {folder} kept vanishing while it was listed {MAX_RELISTS + 1} times")


def _raise(exc: OSError) -> None:
    if not isinstance(exc, FileNotFoundError):  # a folder that is not there has no files
        raise exc


def _name_links(links: list[str]) -> None:
    unseen = [link for link in links if link not in _WARNED]
    if unseen:  # once per process: a report lists the same folders many times
        _WARNED.update(unseen)
        print(f"bench: ignored {len(unseen)} symbolic link(s) inside the results (bench writes none; they are not "
              f"followed): {'; '.join(unseen[:5])}" + (f"; and {len(unseen) - 5} more" if len(unseen) > 5 else ""),
              file=sys.stderr)


def finished_files(loc: Location, relative: str) -> list[str]:
    """Paths (inside ``loc.fs``) of every finished parquet file under ``relative``, compacted copies included."""
    return [i.path for i in finished_infos(loc, relative)]


def _read_files(loc: Location, table: str) -> list[str]:
    """What a query of the whole table reads: its files, and for the runs table the complete runs' cache in place
    of the files it covers (bench.results.runs_cache)."""
    if table != "runs":
        return _files(loc, table)
    infos = finished_infos(loc, table)
    cached = runs_cache.readable(loc, infos)
    return [cached[0], *cached[1]] if cached else [i.path for i in infos]


def _files(loc: Location, table: str) -> list[str]:
    """The table's files as readers see them: one copy of each row."""
    return _one_copy(finished_files(loc, table))


def visible_files(loc: Location, table: str) -> list[str]:
    """The table's files as every query sees them (see :func:`_one_copy`)."""
    return _files(loc, table)


def _run_files(loc: Location, table: str, run_ids: Sequence[str]) -> list[str] | None:
    """The table's files of ``run_ids`` only, found without listing every run's folder (a fleet's year is
    thousands): the date folders, then ``date=*/run_id=R`` looked up in one call. None where the layout is not
    the standard one (the caller then lists every file and lets the query's filter choose)."""
    wanted = list(dict.fromkeys(run_ids))
    if any(not r or "/" in r or "\\" in r or r.startswith(".") for r in wanted):
        return None
    if table == "runs":
        folders = [f"runs/run_id={r}" for r in wanted]
    else:
        try:
            dates = loc.fs.get_file_info(pafs.FileSelector(loc.path(table), allow_not_found=True))
        except OSError as exc:
            raise UserError(f"cannot read results at {loc}: {first_line(exc)}") from None
        dates = [i for i in dates if not i.base_name.startswith(IGNORED_PREFIXES)]
        if any(i.type != pafs.FileType.Directory or not i.base_name.startswith("date=") for i in dates):
            return None
        folders = [f"{table}/{d.base_name}/run_id={r}" for d in dates for r in wanted]
    if len(folders) > MAX_LOOKUPS:  # many runs: one listing of everything is cheaper than a look-up per folder
        names = {f"run_id={r}" for r in wanted}
        return [p for p in _files(loc, table) if p.rsplit("/", 2)[-2] in names]
    found = loc.fs.get_file_info([loc.path(f) for f in folders]) if folders else []
    folders = [f for f, info in zip(folders, found, strict=True) if info.type == pafs.FileType.Directory]
    return sorted(_one_copy([p for folder in folders for p in finished_files(loc, folder)]))


MAX_LOOKUPS = 2_000


def has_table(loc: Location, table: str) -> bool:
    return bool(_files(_given(loc), table))


def _full_schema(table: str) -> pa.Schema:
    """The table's current schema plus its partition columns: what every query sees, whatever the files hold."""
    schema = SCHEMAS[table]
    for f in PARTITIONS[table]:
        if f.name not in schema.names:
            schema = schema.append(f)
    return schema


def _dataset(loc: Location, table: str, files: list[str]) -> ds.Dataset:
    """The table's files as one pyarrow dataset with :func:`_full_schema`."""
    return ds.dataset(
        files, schema=_full_schema(table), format="parquet", filesystem=loc.fs,
        partitioning=ds.partitioning(PARTITIONS[table], flavor="hive"), partition_base_dir=loc.path(table),
    )


@functools.cache
def _duckdb_types(table: str) -> tuple[tuple[str, str], ...]:
    """(column, DuckDB type) of :func:`_full_schema`, as DuckDB maps the arrow types."""
    con = duckdb.connect()
    try:
        con.register("empty", _full_schema(table).empty_table())
        return tuple((name, kind) for name, kind, *_ in con.sql("DESCRIBE empty").fetchall())
    finally:
        con.close()


@functools.cache
def _private(folder: Path) -> bool:
    """``folder`` is a real folder of this user's that nobody else can write into."""
    try:
        info = folder.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and not ownership_problem(info)


@functools.cache
def _template_root() -> Path:
    """Where the schema templates live: this user's own folder in the system temp dir (mode 0700), never one
    another local user could have made or can write (a planted file there would be read as results); failing
    that, a fresh private folder for this process."""
    folder = Path(tempfile.gettempdir(), f"bench-schema-{os.getuid()}")
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError:
        return Path(tempfile.mkdtemp(prefix="bench-schema-"))
    return folder if _private(folder) else Path(tempfile.mkdtemp(prefix="bench-schema-"))


def _template_path(table: str) -> Path:
    digest = hashlib.sha256(SCHEMAS[table].serialize().to_pybytes()).hexdigest()[:16]
    folders = [f"{f.name}={'1970-01-01' if f.type == pa.date32() else '_'}" for f in PARTITIONS[table]]
    return Path(_template_root(), digest, table, *folders, "empty.parquet")


def _template(table: str) -> str:
    """An empty file with the table's current schema, in the table's partition layout, written once per schema.

    DuckDB takes the columns and types of a list of files from the first one and matches the others to it by
    name, reading only the footers a query needs; with this file first, every query sees the current schema.
    """
    path = _template_path(table)
    if not path.exists():  # checked every time: a temp cleaner may have taken it
        layout.write_local(SCHEMAS[table].empty_table(), path)
    elif pq.read_metadata(path).num_rows:  # an empty template it must be, whoever wrote it
        path.unlink()
        layout.write_local(SCHEMAS[table].empty_table(), path)
    return str(path)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _native_view(con: duckdb.DuckDBPyConnection, name: str, table: str, files: list[str], by_name: bool) -> None:
    """The view ``name`` over local files of ``table`` through DuckDB's own parquet reader (it reads a footer about 15x
    faster than pyarrow's dataset scan, which is most of what reading a history of a thousand files costs).

    Files are matched to :func:`_template` by column name. A file of an older schema that lacks a column a query
    reads fails that query; ``by_name`` (the retry) unions every file's columns instead, which reads every
    footer first, and casts them to the current types.
    """
    hive = ", ".join(f"{name}: {kind}" for name, kind in _duckdb_types(table) if name in PARTITIONS[table].names)
    paths = ", ".join(_literal(f) for f in [_template(table), *files])
    source = f"read_parquet([{paths}], hive_partitioning = true, union_by_name = {by_name}, hive_types = {{{hive}}})"
    select = ", ".join(f'CAST("{n}" AS {kind}) AS "{n}"' for n, kind in _duckdb_types(table)) if by_name else "*"
    con.execute(f'CREATE VIEW "{name}" AS SELECT {select} FROM {source}')


def _in_layout(loc: Location, table: str, path: str) -> bool:
    """``path`` sits at ``table/key=value/.../file`` with exactly the table's partition keys, in order."""
    folders = path[len(loc.path(table)) + 1:].split("/")[:-1]
    return [f.partition("=")[0] for f in folders] == PARTITIONS[table].names


def _readable_natively(loc: Location, table: str, files: list[str]) -> bool:
    """Local files in the standard layout whose paths DuckDB will not expand as globs. Anything else (remote,
    or stray files with other partition folders, which DuckDB refuses to mix) is read through pyarrow."""
    return loc.local is not None and all(
        _in_layout(loc, table, f) and not any(ch in f for ch in GLOB_CHARACTERS) for f in files)


KEYS = {"cases": "case_key", "runs": "run_id", "ops": "case_key"}

# Values no timing can produce. A case row holding one was planted or corrupted: it is no result (no pick, no
# comparison, no chart), so every cases view leaves it out and the first query that meets it names it once. Empty
# (null) values are fine: a failed case has none. Checked: the values a pick, a tie or a comparison is made of (the
# median and its CI, p99, min, throughput, cold start, peak memory). Not checked here: mean, std, max, p90/p95
# (shown, never ranked) and raw samples (bench compare checks those where it reads them): each column read costs
# every query over a fleet's history about 0.3 s per 10M rows.
POSITIVE = ("median_ms", "median_ci_low_ms", "median_ci_high_ms", "min_ms", "p99_ms", "throughput_per_s")
NON_NEGATIVE = ("cold_start_ms", "peak_rss_mb")
ORDERED = (("min_ms", "median_ms"), ("median_ci_low_ms", "median_ms"), ("median_ms", "median_ci_high_ms"))


def impossible(alias: str = "") -> str:
    """SQL: the row holds a timing no measurement can produce (NaN, infinite, <= 0, out of order); never null.
    ``alias``: the table's alias in the query ("c" gives c."median_ms"). (DuckDB orders NaN above infinity, so
    ``x < 'inf'`` is false for both.)"""
    col = (lambda name: f'{alias}."{name}"') if alias else (lambda name: f'"{name}"')
    tests = [f"NOT ({col(c)} > 0 AND {col(c)} < 'inf'::DOUBLE)" for c in POSITIVE]
    tests += [f"NOT ({col(c)} >= 0 AND {col(c)} < 'inf'::DOUBLE)" for c in NON_NEGATIVE]
    tests += [f"{col(low)} > {col(high)}" for low, high in ORDERED]
    # a p99 below the median: numpy's p99 of 2 samples interpolates below the upper median bench records
    tests.append(f"{col('p99_ms')} < {col('median_ms')} AND {col('iterations')} > 2")
    return "(" + " OR ".join(f"coalesce({t}, false)" for t in tests) + ")"


def _register_cache(con: duckdb.DuckDBPyConnection, loc: Location, name: str, path: str) -> None:
    """The runs cache (one file of the current runs schema, no partition folders) as the view ``name``."""
    if loc.local is not None and not any(ch in path for ch in GLOB_CHARACTERS):
        con.execute(f'CREATE VIEW "{name}" AS SELECT * FROM read_parquet({_literal(path)})')
    else:
        con.register(name, ds.dataset([path], schema=RUN_SCHEMA, format="parquet", filesystem=loc.fs))


def _register(con: duckdb.DuckDBPyConnection, loc: Location, table: str, files: list[str], by_name: bool) -> None:
    cache = loc.path(runs_cache.FILE) if table == "runs" else None
    cached = cache in files
    files = [f for f in files if f != cache]
    if not files and not cached:
        con.register(table, _full_schema(table).empty_table())
        return
    raw = f"_{table}_files"
    if not files:
        con.register(raw, _full_schema(table).empty_table())
    elif _readable_natively(loc, table, files):
        _native_view(con, raw, table, files, by_name)
    else:  # pyarrow reads through its filesystem, DuckDB scans the dataset (no DuckDB extension needed)
        con.register(raw, _dataset(loc, table, files))
    if cache is not None and cached:
        _register_cache(con, loc, "_runs_cache", cache)
        con.execute(f'CREATE VIEW "_{table}_all" AS SELECT * FROM "{raw}" UNION ALL BY NAME SELECT * FROM _runs_cache')
        raw = f"_{table}_all"
    # a row without its key is no row of ours (another tool's parquet matched by name): never a ghost case
    possible = f" AND NOT {impossible()}" if table == "cases" else ""
    con.execute(f'CREATE VIEW "{table}" AS SELECT * FROM "{raw}" WHERE "{KEYS[table]}" IS NOT NULL{possible}')
    if table == "cases":
        _name_impossible(con, loc, raw, tuple(files))


def _name_impossible(con: duckdb.DuckDBPyConnection, loc: Location, raw: str, files: tuple[str, ...]) -> None:
    """One stderr line naming the case rows that :func:`impossible` leaves out, once per process per row; the
    scan is made once per set of files (a report runs many queries over the same ones)."""
    if files in _CHECKED:
        return
    _CHECKED.add(files)
    # the usual answer is none, found from the numeric columns alone: names (strings) are read only after one
    if not con.execute(f'SELECT count(*) FROM "{raw}" WHERE {impossible()}').fetchall()[0][0]:
        return
    bad = con.execute(f'SELECT run_id, case_key, count(*) OVER () FROM "{raw}" WHERE "case_key" IS NOT NULL '
                      f"AND {impossible()} ORDER BY run_id, case_key LIMIT 5").fetchall()
    names = [f"run {run_id} case {key}" for run_id, key, _ in bad]
    if not names or {f"{loc} {n}" for n in names} <= _WARNED:
        return
    _WARNED.update(f"{loc} {n}" for n in names)
    more = f"; and {bad[0][2] - len(names)} more" if bad[0][2] > len(names) else ""
    print(f"bench: left out {bad[0][2]} case row(s) whose timings no measurement can produce (NaN, infinite, zero "
          f"or negative, or out of order; planted or corrupt): {'; '.join(names)}{more}", file=sys.stderr)


_CHECKED: set[tuple[str, ...]] = set()


def _sql(loc: Location, listed: dict[str, list[str]], sql: str, params: list[Any] | None,
         by_name: bool = False, given: Mapping[str, pa.Table] | None = None) -> pa.Table:
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")  # it draws on stderr even when that is a CI log
        for table, files in listed.items():
            _register(con, loc, table, files, by_name)
        if given:
            # A view's size is estimated from its first file, the empty template, so DuckDB would make a join's
            # hash table of the whole history rather than of the small table given (1.7 GB at 10M rows).
            con.execute("SET disabled_optimizers = 'build_side_probe_side'")
        for name, rows in (given or {}).items():
            con.register(name, rows)
        relation = con.sql(sql, params=params or None)
        # DuckDB 2 has to_arrow_table; older releases call it arrow().
        return (getattr(relation, "to_arrow_table", None) or relation.arrow)()
    finally:
        con.close()


def query(loc: Location, sql: str, params: list[Any] | None = None, *, run_ids: Sequence[str] | None = None,
          given: Mapping[str, pa.Table] | None = None) -> pa.Table:
    """Run SQL over the dataset; ``cases`` and ``runs`` are views over all of its files (empty if none).

    ``run_ids``: the views hold only those runs' files (a query about two runs of a year-long history then
    neither lists nor opens the others). ``given``: more tables by name, already read (a report reads the runs
    table once and joins every later query against it instead of reading thousands of runs files again).

    A failed read is tried again, listing the files again and matching every file's columns by name: a file
    of an older schema may lack a column the query reads, or a file listed may have been deleted meanwhile by a
    compaction (which wrote its rows to another file first). While files keep vanishing between listing and
    reading (a compaction of many runs), it re-lists up to ``MAX_RELISTS`` times. If a read still fails, every
    file's footer is read and the ones that are no parquet of the table (0 bytes, garbage, a foreign schema)
    are left out and named.
    """
    _given(loc)
    tables = [table for table in SCHEMAS if re.search(rf"\b{table}\b", sql)]  # list only what the SQL reads

    def files(table: str) -> list[str]:
        some = _run_files(loc, table, run_ids) if run_ids is not None else None
        return _read_files(loc, table) if some is None else some

    for attempt in range(MAX_RELISTS + 1):
        try:
            return _sql(loc, {table: files(table) for table in tables}, sql, params, attempt > 0, given)
        except (duckdb.Error, OSError) as exc:
            if attempt > 0 and not _vanished(exc):
                break
            time.sleep(0.01 * attempt)  # a compaction's delete of one folder's files takes milliseconds
    # one unreadable file must not stop every reader: leave it out, say so
    listed = {table: _readable(loc, table, files(table)) for table in tables}
    return _sql(loc, listed, sql, params, True, given)


MAX_RELISTS = 20
_VANISHED = re.compile(r"No files found|No such file|does not exist|Cannot open file", re.IGNORECASE)


def _vanished(exc: Exception) -> bool:
    """The error of a file listed and then deleted before it was read."""
    return isinstance(exc, FileNotFoundError) or bool(_VANISHED.search(str(exc)))


def _readable(loc: Location, table: str, files: list[str]) -> list[str]:
    """``files`` less those that are not parquet files of ``table`` (empty, truncated, random bytes, or another
    tool's parquet without the table's key column), each named once on stderr."""
    key = KEYS[table]
    good: list[str] = []
    bad: list[str] = []
    for path in files:
        try:
            with loc.fs.open_input_file(path) as f:
                names = pq.read_schema(f).names
        except (OSError, pa.ArrowException) as exc:
            bad.append(f"{path} ({first_line(exc)})")
            continue
        (good if key in names else bad).append(path if key in names else f"{path} (no {key} column)")
    unseen = [b for b in bad if b not in _WARNED]
    if unseen:  # once per process: a report runs many queries over the same files
        _WARNED.update(unseen)
        print(f"bench: skipped {len(bad)} unreadable {table} file(s): {'; '.join(bad[:5])}"
              + (f"; and {len(bad) - 5} more" if len(bad) > 5 else ""), file=sys.stderr)
    return good


_WARNED: set[str] = set()


def column_list(columns: Iterable[str]) -> str:
    """A SQL select list of quoted column names."""
    return ", ".join(f'"{c}"' for c in columns)


def read_cases(loc: Location, columns: list[str] | None = None, run_id: str | None = None) -> pa.Table:
    select = column_list(columns) if columns else "*"
    where, params = ("WHERE run_id = ?", [run_id]) if run_id else ("", [])
    return query(loc, f"SELECT {select} FROM cases {where} ORDER BY timestamp", params)


def previous_and_latest(loc: Location) -> list[dict[str, Any]]:
    """Per machine (machine_id) and suite: its latest complete run and the one before, as ``base`` and ``new``.

    What a nightly compares: each machine against its own previous night, never against another machine.
    """
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
