"""Parquet written atomically per case, read back by column name through DuckDB."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from bench.results import store
from bench.results.schema import CASE_COLUMNS
from bench.results.uri import Location

NOW = datetime(2026, 11, 26, tzinfo=timezone.utc)


def row(key: str, **extra):
    return {"run_id": "r1", "timestamp": NOW, "case_key": key, "model": "m", "runner": "x", "status": "ok",
            "median_ms": 1.5, "samples_ns": [1, 2, 3], **extra}


def test_round_trip_keeps_types_and_samples(tmp_path):
    store.write_case(Location.resolve(tmp_path), "r1", NOW, 0, row("a/1"))
    store.write_case(Location.resolve(tmp_path), "r1", NOW, 1, row("b/2", batch=8, accuracy_ok=False))
    t = store.read_cases(Location.resolve(tmp_path))
    assert t.num_rows == 2
    assert t.schema.field("batch").type == pa.int32() and t.schema.field("samples_ns").type == pa.list_(pa.int64())
    assert t.column("samples_ns").to_pylist()[0] == [1, 2, 3]
    assert t.column("schema_version").to_pylist() == [1, 1]
    assert store.read_cases(Location.resolve(tmp_path), ["case_key"], run_id="r1").num_rows == 2
    assert store.read_cases(Location.resolve(tmp_path), ["case_key"], run_id="other").num_rows == 0


def test_unknown_columns_are_refused(tmp_path):
    with pytest.raises(KeyError, match="not_a_column"):
        store.write_case(Location.resolve(tmp_path), "r1", NOW, 0, row("a", not_a_column=1))


def test_files_of_older_schemas_merge_by_column_name(tmp_path):
    store.write_case(Location.resolve(tmp_path), "r1", NOW, 0, row("new"))
    old = pa.table({"run_id": ["r0"], "case_key": ["old"], "median_ms": [2.0], "timestamp": [NOW]})
    pq.write_table(old, tmp_path / "cases" / "date=2026-11-26" / "run_id=r1" / "old.parquet")
    t = store.read_cases(Location.resolve(tmp_path), ["case_key", "median_ms", "status"])
    assert sorted(t.column("case_key").to_pylist()) == ["new", "old"]


def test_half_written_files_are_invisible(tmp_path):
    store.write_case(Location.resolve(tmp_path), "r1", NOW, 0, row("a"))
    partition = tmp_path / "cases" / "date=2026-11-26" / "run_id=r1"
    (partition / ".00001-b.parquet.123.tmp").write_bytes(b"PAR1 half a file")
    assert store.read_cases(Location.resolve(tmp_path)).num_rows == 1


def test_failed_write_leaves_no_file_and_keeps_earlier_rows(tmp_path):
    store.write_case(Location.resolve(tmp_path), "r1", NOW, 0, row("a"))
    with pytest.raises(pa.ArrowInvalid):
        store.write_case(Location.resolve(tmp_path), "r1", NOW, 1, row("b", batch="not an int"))
    assert store.read_cases(Location.resolve(tmp_path)).num_rows == 1
    assert all(not f.name.startswith(".") for f in tmp_path.rglob("*") if f.is_file())


def test_every_column_is_documented_with_a_unit_slot():
    assert len({c.name for c in CASE_COLUMNS}) == len(CASE_COLUMNS)
    assert all(c.description for c in CASE_COLUMNS)


def test_the_store_takes_a_location_resolved_once_and_says_so_when_given_a_folder(tmp_path):
    """A folder is resolved where a user names it (bench.cli's --results, bench.results.load); a store function
    handed one instead says what to do in one line, not an AttributeError from deep in a read."""
    for call in (lambda: store.query(tmp_path, "SELECT 1"), lambda: store.exists(str(tmp_path)),
                 lambda: store.has_table(tmp_path, "cases")):
        with pytest.raises(TypeError, match=r"^expected a Location, got PosixPath|^expected a Location, got str"):
            call()
    assert not store.exists(Location.resolve(tmp_path / "nothing"))


# --- many machines, many nights: one dataset ---------------------------------------------------------------

def night(results, run_id: str, machine_id: str, label: str, when: datetime, median_ms: float) -> None:
    loc = Location.resolve(results)
    store.write_run(loc, run_id, {"run_id": run_id, "timestamp": when, "machine_id": machine_id, "suite": "server",
                                  "machine_label": label, "cpu_model": "Same CPU @ 2.0GHz", "status": "complete"})
    store.write_case(loc, run_id, when, 0, row("m/cpu/fp32", run_id=run_id, timestamp=when, median_ms=median_ms))


def test_results_of_two_machines_of_one_model_merge_and_stay_distinguishable(tmp_path):
    later = NOW + timedelta(days=1)
    # Each machine writes its own result set (as it would to the shared prefix); a sync copies them together.
    night(tmp_path / "a", "a1", "machine-a", "x86-avx512", NOW, 1.0)
    night(tmp_path / "a", "a2", "machine-a", "x86-avx512", later, 1.1)
    night(tmp_path / "b", "b1", "machine-b", "x86-avx512", NOW, 2.0)
    night(tmp_path / "c", "c1", "machine-c", "arm64", later, 3.0)
    merged = tmp_path / "fleet"
    for part in "abc":
        shutil.copytree(tmp_path / part, merged, dirs_exist_ok=True)  # file names never collide: run_id is in them
    trends = store.query(Location.resolve(merged), """
        SELECT r.machine_id, r.machine_label, list(c.median_ms ORDER BY c.date) AS medians
        FROM cases c JOIN runs r USING (run_id) GROUP BY ALL ORDER BY r.machine_id""").to_pylist()
    assert trends == [
        {"machine_id": "machine-a", "machine_label": "x86-avx512", "medians": [1.0, 1.1]},
        {"machine_id": "machine-b", "machine_label": "x86-avx512", "medians": [2.0]},
        {"machine_id": "machine-c", "machine_label": "arm64", "medians": [3.0]},
    ]
    # what the nightly compares: each machine with its own previous night, never with its twin
    pairs = store.previous_and_latest(Location.resolve(merged))
    assert pairs == [{"machine_id": "machine-a", "machine_label": "x86-avx512", "suite": "server", "base": "a1",
                      "new": "a2"}]
    loc = Location.resolve(merged)
    one_night = store.read_cases(loc, ["run_id"], run_id="b1")  # partition pruning: only b1's file is read
    assert one_night.column("run_id").to_pylist() == ["b1"]


def test_machine_id_tells_two_machines_of_one_model_apart(monkeypatch):
    from bench import envinfo

    def machine(machine_id: str) -> str:
        real = envinfo.read_text
        monkeypatch.setattr(envinfo, "read_text", lambda path: machine_id if path == "/etc/machine-id" else real(path))
        try:
            return envinfo.machine_id()
        finally:
            monkeypatch.setattr(envinfo, "read_text", real)

    first, again, other = machine("0" * 32), machine("0" * 32), machine("1" * 32)
    assert first == again != other and len(first) == 16 and "0" * 8 not in first  # stable, distinct, hashed


# --- where results live ------------------------------------------------------------------------------------

def test_local_locations_keep_paths_and_everything_else_is_a_uri(tmp_path):
    loc = Location.resolve("results")
    assert loc.local == Path("results") and loc.join("runs/x.parquet") == Path("results/runs/x.parquet")
    assert str(loc) == "results" and loc.root == str(Path("results").absolute())
    expected = tmp_path / "cases" / "date=2026-11-26" / "run_id=r" / "00003-a_b_c.parquet"
    assert store.case_file(Location.resolve(tmp_path), "r", NOW, 3, "a/b c") == expected
    s3 = Location.resolve("s3://bucket/prefix/?region=eu-west-1")
    assert s3.root == "bucket/prefix" and not s3.local and s3.object_store
    assert s3.join("runs/x.parquet") == "s3://bucket/prefix/runs/x.parquet?region=eu-west-1"
    loc = Location.resolve(tmp_path / "nothing")
    assert not store.exists(loc) and not store.has_table(loc, "cases")


def test_a_remote_filesystem_with_folders_writes_a_temp_name_then_moves(tmp_path):
    # HDFS-like: not local, not an object store (a SubTreeFileSystem stands in for it here)
    loc = Location(pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem()), "res", "hdfs://namenode/res")
    assert not loc.object_store and loc.local is None
    written = store.write_case(loc, "r1", NOW, 0, row("a"))
    assert written == "hdfs://namenode/res/cases/date=2026-11-26/run_id=r1/00000-a.parquet"
    with pytest.raises(pa.ArrowInvalid):
        store.write_case(loc, "r1", NOW, 1, row("b", batch="not an int"))
    assert store.read_cases(loc, ["case_key"]).to_pylist() == [{"case_key": "a"}]
    assert [f.name for f in (tmp_path / "res").rglob("*") if f.is_file()] == ["00000-a.parquet"]


def test_duckdb_reads_the_standard_layout_itself_and_pyarrow_reads_the_rest(tmp_path):
    glob_like = tmp_path / "nightly[1]*"  # DuckDB would expand these characters as a glob
    for results in (tmp_path / "plain", glob_like):
        store.write_case(Location.resolve(results), "r1", NOW, 0, row("a"))
        store.write_run(Location.resolve(results), "r1", {"run_id": "r1", "timestamp": NOW, "status": "complete"})
    stray = tmp_path / "plain" / "cases" / "run_id=r0"  # no date= folder: DuckDB refuses to mix partition layouts
    stray.mkdir(parents=True)
    pq.write_table(pa.table({"case_key": ["b"], "run_id": ["r0"], "timestamp": [NOW]}), stray / "b.parquet")

    def native(results, table):
        loc = Location.resolve(results)
        return store._readable_natively(loc, table, store._files(loc, table))

    assert native(tmp_path / "plain", "runs")
    assert not native(tmp_path / "plain", "cases") and not native(glob_like, "cases")
    loc = Location.resolve(tmp_path / "plain")
    assert store.query(loc, "SELECT case_key, date FROM cases ORDER BY case_key").to_pylist() == [
        {"case_key": "a", "date": NOW.date()}, {"case_key": "b", "date": None}]
    sql = "SELECT c.case_key, c.date, r.status FROM cases c JOIN runs r USING (run_id)"
    loc = Location.resolve(glob_like)
    assert store.query(loc, sql).to_pylist() == [{"case_key": "a", "date": NOW.date(), "status": "complete"}]


def _plant_bad_files(results: Path) -> Path:
    folder = Path(store.case_file(Location.resolve(results), "junk", NOW, 0, "x")).parent
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "00001-empty.parquet").write_bytes(b"")
    (folder / "00002-garbage.parquet").write_bytes(bytes(range(256)) * 12)
    pq.write_table(pa.table({"x": [1, 2]}), folder / "00003-foreign.parquet")
    return folder


def test_bad_files_are_named_and_left_out_by_every_reader(tmp_path, capsys, bench_cli):
    store.write_case(Location.resolve(tmp_path), "r1", NOW, 0, row("a/1", accuracy_ok=True))
    _plant_bad_files(tmp_path)
    assert store.read_cases(Location.resolve(tmp_path), ["case_key"]).to_pylist() == [{"case_key": "a/1"}]
    err = capsys.readouterr().err
    assert "skipped 3 unreadable cases file(s)" in err and "00001-empty.parquet" in err and "no case_key" in err
    for args in (["coverage"], ["report", "--out", str(tmp_path / "page")]):
        done = bench_cli(*args, "--results", str(tmp_path))
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.count("skipped 3 unreadable") == 1  # named once, not once per query


def test_another_tools_parquet_alone_adds_no_ghost_rows(tmp_path):
    store.write_case(Location.resolve(tmp_path), "r1", NOW, 0, row("a/1"))
    folder = Path(store.case_file(Location.resolve(tmp_path), "junk", NOW, 0, "x")).parent
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"model": ["ghost"], "median_ms": [0.0]}), folder / "00009-foreign.parquet")
    loc = Location.resolve(tmp_path)
    assert store.read_cases(loc, ["case_key", "model"]).to_pylist() == [{"case_key": "a/1", "model": "m"}]


PLANT = """
import os, sys, pyarrow as pa
from datetime import datetime, timezone
from pathlib import Path
from bench.results import store
from bench.results.schema import CASE_SCHEMA
from bench.results.uri import Location

results, mode = Location.resolve(Path(sys.argv[1])), sys.argv[2]
store.write_case(results, "r1", datetime(2026, 11, 26, tzinfo=timezone.utc), 0, {"run_id": "r1", "case_key": "real"})
shared = Path(os.environ["TMPDIR"], f"bench-schema-{os.getuid()}")
shared.mkdir(mode=0o700)
os.chmod(shared, 0o777 if mode == "shared" else 0o700)  # as another user could have made it, or our own
template = store._template_path("cases")
if mode == "shared":  # what a planted file would be, in the folder it found
    template = Path(shared, *template.parts[len(Path(store._template_root()).parts):])
template.parent.mkdir(parents=True, exist_ok=True)
planted = pa.Table.from_pylist([{"case_key": "planted", "run_id": "r1", "median_ms": 0.0}], CASE_SCHEMA)
import pyarrow.parquet as pq
pq.write_table(planted, template)
print(sorted(store.read_cases(results, ["case_key"]).column("case_key").to_pylist()))
"""


@pytest.mark.parametrize("mode", ["shared", "own"])
def test_rows_planted_in_the_temp_folder_are_never_read_as_results(tmp_path, mode):
    import os
    import subprocess
    import sys

    temp = tmp_path / "tmp"
    temp.mkdir()
    done = subprocess.run([sys.executable, "-c", PLANT, str(tmp_path / "results"), mode], capture_output=True,
                          text=True, env={**os.environ, "TMPDIR": str(temp)}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['real']"
