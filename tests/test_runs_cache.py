"""The runs table's cache: one file for the complete runs' rows, used only while it still describes the files."""

from __future__ import annotations

import io
import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.parquet as pq

from bench.plan import Overrides, plan
from bench.registry import Registry
from bench.results import runs_cache, store
from bench.results.uri import Location
from bench.run import RunInfo, execute
from bench.runners.onnxruntime import SPEC as ORT
from bench.suite import load_suite

FIXTURES = Path(__file__).parent / "fixtures"
START = datetime(2026, 12, 1, tzinfo=timezone.utc)
EVERY = "SELECT run_id, status, machine_label, timestamp FROM runs ORDER BY run_id"


def _write(root: Path, index: int, status: str, label: str = "x86") -> str:
    run_id = f"r{index:03d}"
    loc = Location.resolve(root)
    store.write_run(loc, run_id, {"run_id": run_id, "timestamp": START + timedelta(hours=index), "status": status,
                                   "machine_id": "m1", "machine_label": label})
    return run_id


def _update(root: Path) -> int:
    loc = Location.resolve(root)
    return runs_cache.update(loc, store.finished_infos(loc, "runs"))


def _uses_cache(root: Path) -> bool:
    loc = Location.resolve(root)
    return runs_cache.readable(loc, store.finished_infos(loc, "runs")) is not None


def _uncached(root: Path) -> list[dict]:
    (root / runs_cache.FILE).rename(root / "aside.parquet")
    try:
        return store.query(Location.resolve(root), EVERY).to_pylist()
    finally:
        (root / "aside.parquet").rename(root / runs_cache.FILE)


def test_complete_runs_are_read_from_one_file_and_the_rest_from_their_own(tmp_path):
    for i in range(5):
        _write(tmp_path, i, "complete")
    _write(tmp_path, 5, "running")
    assert _update(tmp_path) == 5 and _update(tmp_path) == 0
    assert _uses_cache(tmp_path)
    assert pq.read_metadata(tmp_path / runs_cache.FILE).num_rows == 5  # the running run stays a file of its own
    rows = store.query(Location.resolve(tmp_path), EVERY).to_pylist()
    assert rows == _uncached(tmp_path) and len(rows) == 6
    assert [r["status"] for r in rows] == ["complete"] * 5 + ["running"]
    assert store.previous_and_latest(Location.resolve(tmp_path))[0]["new"] == "r004"


def test_a_rewritten_or_deleted_runs_file_is_never_read_from_a_stale_cache(tmp_path):
    for i in range(3):
        _write(tmp_path, i, "complete")
    _update(tmp_path)
    os.utime(tmp_path / "runs/run_id=r001/run.parquet", ns=(1, 1))  # a resumed run rewrites its file
    _write(tmp_path, 1, "complete", label="relabelled")
    assert not _uses_cache(tmp_path)
    loc = Location.resolve(tmp_path)
    assert [r["machine_label"] for r in store.query(loc, EVERY).to_pylist()] == ["x86", "relabelled", "x86"]
    assert _update(tmp_path) == 1 and _uses_cache(tmp_path)  # the next update reads that file again
    loc = Location.resolve(tmp_path)
    assert [r["machine_label"] for r in store.query(loc, EVERY).to_pylist()] == ["x86", "relabelled", "x86"]
    shutil.rmtree(tmp_path / "runs/run_id=r002")
    assert [r["run_id"] for r in store.query(Location.resolve(tmp_path), EVERY).to_pylist()] == ["r000", "r001"]
    _update(tmp_path)
    assert _uses_cache(tmp_path) and pq.read_metadata(tmp_path / runs_cache.FILE).num_rows == 2


def test_a_cache_of_another_schema_is_ignored(tmp_path):
    _write(tmp_path, 0, "complete")
    _update(tmp_path)
    table = pq.read_table(tmp_path / runs_cache.FILE)
    metadata = {**table.schema.metadata, runs_cache.SCHEMA_KEY: b"an older schema"}
    pq.write_table(table.replace_schema_metadata(metadata), tmp_path / runs_cache.FILE)
    assert not _uses_cache(tmp_path) and len(store.query(Location.resolve(tmp_path), EVERY)) == 1


def test_a_completed_run_folds_itself_into_the_cache(cache_dir, tmp_path):
    registry = Registry([ORT])
    suite = load_suite(str(FIXTURES / "fast.toml"))
    planned = plan(suite, "fast.toml", Overrides(runners=["onnxruntime"]), registry, cache_dir)
    run = RunInfo.new("fast", [])
    execute(planned, Location.resolve(tmp_path), run, registry, stream=io.StringIO())
    assert _uses_cache(tmp_path)
    [row] = store.query(Location.resolve(tmp_path), "SELECT run_id, status FROM runs").to_pylist()
    assert row == {"run_id": run.run_id, "status": "complete"}
    assert runs_cache.FILE not in [Path(f).name for f in store.visible_files(Location.resolve(tmp_path), "runs")]
