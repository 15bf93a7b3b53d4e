"""Compaction: one file per complete run, and no reader ever counts a row twice or misses one."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench.results import store
from bench.results.compaction import Compacted, compact_all, compact_run
from bench.results.uri import Location

NOW = datetime(2026, 11, 26, tzinfo=timezone.utc)
FOLDER = "cases/date=2026-11-26/run_id=r1"


def row(key: str, **extra):
    return {"run_id": "r1", "timestamp": NOW, "case_key": key, "status": "ok", "median_ms": 1.0, **extra}


def a_run(results, status: str, keys=("a", "b", "c")) -> None:
    loc = Location.resolve(results)
    for index, key in enumerate(keys):
        store.write_case(loc, "r1", NOW, index, row(key, timestamp=NOW + timedelta(seconds=index)))
    store.write_run(loc, "r1", {"run_id": "r1", "timestamp": NOW, "status": status})


def names(results) -> list[str]:
    return sorted(f.name for f in (results / FOLDER).iterdir())


def keys(results) -> list[str]:
    return store.read_cases(Location.resolve(results), ["case_key"]).column("case_key").to_pylist()


def test_only_complete_runs_are_compacted(tmp_path):
    a_run(tmp_path, "interrupted")  # --resume will add per-case files to it: leave it alone
    assert compact_all(Location.resolve(tmp_path)) == Compacted(runs=0, files=0)
    assert names(tmp_path) == ["00000-a.parquet", "00001-b.parquet", "00002-c.parquet"]
    store.write_run(Location.resolve(tmp_path), "r1", {"run_id": "r1", "timestamp": NOW, "status": "complete"})
    assert compact_all(Location.resolve(tmp_path)) == Compacted(runs=1, files=3)
    assert names(tmp_path) == [store.COMPACTED] and keys(tmp_path) == ["a", "b", "c"]
    assert compact_all(Location.resolve(tmp_path)) == Compacted(runs=0, files=0)  # nothing left to do


def test_a_compaction_killed_before_deleting_leaves_one_visible_copy(tmp_path):
    a_run(tmp_path, "complete")
    merged = store.read_cases(Location.resolve(tmp_path)).drop_columns(["date"])
    store.write_at(Location.resolve(tmp_path), f"{FOLDER}/{store.COMPACTED}", merged)  # step 2 done, then killed
    assert len(names(tmp_path)) == 4 and keys(tmp_path) == ["a", "b", "c"]  # never six rows
    loc = Location.resolve(tmp_path)
    assert compact_all(loc) == Compacted(runs=1, files=3)  # the next compaction deletes the copies
    assert names(tmp_path) == [store.COMPACTED] and keys(tmp_path) == ["a", "b", "c"]


def test_a_reader_whose_files_were_compacted_away_reads_again(tmp_path, monkeypatch):
    a_run(tmp_path, "complete")
    real_sql = store._sql
    calls = []

    def compaction_between_listing_and_reading(*args, **kwargs):
        if not calls:
            compact_run(Location.resolve(tmp_path), "r1", NOW)  # deletes the files this reader has just listed
        calls.append(args[1])
        return real_sql(*args, **kwargs)

    monkeypatch.setattr(store, "_sql", compaction_between_listing_and_reading)
    assert keys(tmp_path) == ["a", "b", "c"]
    assert [len(listed["cases"]) for listed in calls] == [3, 1]  # failed on a gone file, then re-listed


def test_older_schema_files_keep_their_values_and_rows_keep_their_order(tmp_path):
    a_run(tmp_path, "complete", keys=("b", "c"))
    old = pa.table({"run_id": ["r1"], "case_key": ["a"], "median_ms": [2.0], "timestamp": [NOW - timedelta(1)]})
    pq.write_table(old, tmp_path / FOLDER / "00009-old.parquet")
    compact_run(Location.resolve(tmp_path), "r1", NOW)
    got = pq.read_table(tmp_path / FOLDER / store.COMPACTED)
    assert got.column("case_key").to_pylist() == ["a", "b", "c"]  # by timestamp
    assert got.column("median_ms").to_pylist() == [2.0, 1.0, 1.0] and got.column("status").to_pylist()[0] is None


def test_bench_compact_merges_what_earlier_versions_left_per_case(bench_cli, tmp_path):
    results = tmp_path / "out"
    missing = bench_cli("compact", "--results", "out")
    assert missing.returncode == 2 and missing.stderr.strip() == "bench: error: no results at out"
    a_run(results, "complete")
    done = bench_cli("compact", "--results", "out")
    assert done.returncode == 0 and "compacted 1 runs: 3 case files merged into 1" in done.stdout
    assert names(results) == [store.COMPACTED] and keys(results) == ["a", "b", "c"]


def test_a_failed_compaction_warns_once_without_the_noise_hint(tmp_path, monkeypatch):
    import io

    from bench import run as run_module
    from bench.progress import Display

    def refuse(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(run_module, "compact_run", refuse)
    out = io.StringIO()
    info = run_module.RunInfo.new("test", [])
    run_module._compact(Location.resolve(tmp_path), info, Display(0, out))
    text = out.getvalue()
    assert f"warning: could not compact run {info.run_id}" in text and "bench compact` retries" in text
    assert "--strict" not in text and "noisy" not in text  # that hint is for noise warnings only


def test_a_file_of_a_newer_schema_is_never_merged_away(tmp_path, capsys):
    a_run(tmp_path, "complete")
    newer = pq.read_table(tmp_path / FOLDER / "00001-b.parquet")
    newer = newer.append_column("energy_joules", pa.array([0.25]))  # a column a later bench added
    pq.write_table(newer, tmp_path / FOLDER / "00001-b.parquet")
    assert compact_all(Location.resolve(tmp_path)) == Compacted(runs=0, files=0)
    err = capsys.readouterr().err
    assert "00001-b.parquet has columns this bench does not know (energy_joules)" in err
    assert names(tmp_path) == ["00000-a.parquet", "00001-b.parquet", "00002-c.parquet"]  # nothing lost
    assert pq.read_table(tmp_path / FOLDER / "00001-b.parquet").column("energy_joules").to_pylist() == [0.25]


@pytest.mark.slow  # a few seconds: 40 runs of files, compacted while a reader reads them over and over
def test_a_reader_sees_every_row_once_while_many_runs_are_compacted(tmp_path):
    import subprocess
    import sys

    for r in range(40):
        run_id = f"r{r:02d}"
        for index in range(8):
            store.write_case(Location.resolve(tmp_path), run_id, NOW, index, {**row(f"k{index}"), "run_id": run_id})
        store.write_run(Location.resolve(tmp_path), run_id, {"run_id": run_id, "timestamp": NOW, "status": "complete"})
    compact = subprocess.Popen([sys.executable, "-m", "bench", "compact", "--results", str(tmp_path)])
    counts = []
    try:
        while compact.poll() is None or not counts:
            counts.append(store.read_cases(Location.resolve(tmp_path), ["case_key"]).num_rows)
    finally:  # a failed read must not leave the compaction running into the next test
        if compact.poll() is None:
            compact.kill()
    assert compact.wait(timeout=60) == 0
    assert set(counts) == {320}, sorted(set(counts))  # never a row missing or twice, never an error
    assert len(list(tmp_path.rglob("compacted.parquet"))) == 40


def test_a_symlink_loop_inside_the_results_is_never_followed(bench_cli, tmp_path):
    """A loop multiplied every row (972 for 12) and killed `bench compact`; a link out of the tree read files that
    are no results. Neither is followed, both are named once, and compaction leaves them alone."""
    results = tmp_path / "out"
    a_run(results, "complete")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    pq.write_table(pa.table({"run_id": ["r1"], "case_key": ["stranger"], "timestamp": [NOW]}),
                   outside / "00009-stranger.parquet")
    (results / "cases/date=2026-11-26/loop").symlink_to("..")
    (results / FOLDER / "out").symlink_to(outside)
    (results / FOLDER / "00010-link.parquet").symlink_to(outside / "00009-stranger.parquet")
    assert sorted(keys(results)) == ["a", "b", "c"]
    done = bench_cli("compact", "--results", "out")
    assert done.returncode == 0 and "compacted 1 runs: 3 case files merged into 1" in done.stdout, done.stderr
    named = [line for line in done.stderr.splitlines() if "symbolic link" in line]
    assert len(named) == 1 and "ignored 3 symbolic link(s)" in named[0], done.stderr
    assert names(results) == ["00010-link.parquet", store.COMPACTED, "out"] and keys(results) == ["a", "b", "c"]
    assert (outside / "00009-stranger.parquet").exists()


@pytest.mark.parametrize("foreign", ["metrics.parquet", "runs/r1/metrics.parquet", "sub/00003-d.parquet"])
def test_compaction_merges_and_deletes_only_files_bench_wrote(tmp_path, capsys, foreign):
    a_run(tmp_path, "complete")
    planted = tmp_path / FOLDER / foreign
    planted.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"run_id": ["r1"], "case_key": ["d"], "timestamp": [NOW], "median_ms": [1.0]}), planted)
    assert compact_run(Location.resolve(tmp_path), "r1", NOW) == Compacted(runs=1, files=3)  # as a run completes
    assert planted.exists(), "a file bench did not write was deleted"
    compacted = pq.read_table(tmp_path / FOLDER / store.COMPACTED).column("case_key").to_pylist()
    assert compacted == ["a", "b", "c"]
    assert f"bench compact: left alone 1 file(s) bench did not write: {planted}\n" in capsys.readouterr().err
    loc = Location.resolve(tmp_path)
    store.write_case(loc, "r1", NOW, 5, row("e"))  # a later per-case file: `bench compact` merges it alone
    assert compact_all(Location.resolve(tmp_path)) == Compacted(runs=1, files=1)
    assert planted.exists()
    assert sorted(pq.read_table(tmp_path / FOLDER / store.COMPACTED).column("case_key").to_pylist()) == [*"abce"]


def test_a_bench_like_folder_elsewhere_is_not_compacted(tmp_path, capsys):
    a_run(tmp_path, "complete")
    planted = tmp_path / "cases/mirror/runs/run_id=r1/00000-x.parquet"  # named like bench's, in no run folder
    planted.parent.mkdir(parents=True)
    pq.write_table(pa.table({"run_id": ["r1"], "case_key": ["x"], "timestamp": [NOW]}), planted)
    assert compact_all(Location.resolve(tmp_path)) == Compacted(runs=1, files=3)
    assert planted.exists() and not (planted.parent / store.COMPACTED).exists()
    assert str(planted) in capsys.readouterr().err


def test_a_file_compacted_away_while_its_folder_is_listed_is_read_once_from_the_merged_file(tmp_path, monkeypatch):
    """The race CI met: a reader lists a run's folder, a compaction merges and deletes its files, the reader's stat
    of a listed file finds nothing. The folder is listed again, and its rows are read once, from the merged file."""
    loc = Location.resolve(tmp_path)
    for index in range(4):
        store.write_case(loc, "r1", NOW, index, {**row(f"k{index}"), "run_id": "r1"})
    store.write_run(loc, "r1", {"run_id": "r1", "timestamp": NOW, "status": "complete"})
    real, started = store.os.lstat, []

    def compacting_lstat(path, *args, **kwargs):
        if not started and str(path).endswith(".parquet") and "/cases/" in str(path):
            started.append(path)
            compact_run(loc, "r1", NOW)  # between the folder's listing and this stat
        return real(path, *args, **kwargs)

    monkeypatch.setattr(store.os, "lstat", compacting_lstat)
    keys = store.read_cases(loc, ["case_key"]).column("case_key").to_pylist()
    assert started and sorted(keys) == ["k0", "k1", "k2", "k3"]
