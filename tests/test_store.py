"""Parquet written atomically per case, read back by column name through DuckDB."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench import store
from bench.schema import CASE_COLUMNS

NOW = datetime(2026, 11, 26, tzinfo=timezone.utc)


def row(key: str, **extra):
    return {"run_id": "r1", "timestamp": NOW, "case_key": key, "model": "m", "runner": "x", "status": "ok",
            "median_ms": 1.5, "samples_ns": [1, 2, 3], **extra}


def test_round_trip_keeps_types_and_samples(tmp_path):
    store.write_case(tmp_path, "r1", NOW, 0, row("a/1"))
    store.write_case(tmp_path, "r1", NOW, 1, row("b/2", batch=8, accuracy_ok=False))
    t = store.read_cases(tmp_path)
    assert t.num_rows == 2
    assert t.schema.field("batch").type == pa.int32() and t.schema.field("samples_ns").type == pa.list_(pa.int64())
    assert t.column("samples_ns").to_pylist()[0] == [1, 2, 3]
    assert t.column("schema_version").to_pylist() == [1, 1]
    assert store.read_cases(tmp_path, ["case_key"], run_id="r1").num_rows == 2
    assert store.read_cases(tmp_path, ["case_key"], run_id="other").num_rows == 0


def test_unknown_columns_are_refused(tmp_path):
    with pytest.raises(KeyError, match="not_a_column"):
        store.write_case(tmp_path, "r1", NOW, 0, row("a", not_a_column=1))


def test_files_of_older_schemas_merge_by_column_name(tmp_path):
    store.write_case(tmp_path, "r1", NOW, 0, row("new"))
    old = pa.table({"run_id": ["r0"], "case_key": ["old"], "median_ms": [2.0], "timestamp": [NOW]})
    pq.write_table(old, tmp_path / "cases" / "date=2026-11-26" / "run_id=r1" / "old.parquet")
    t = store.read_cases(tmp_path, ["case_key", "median_ms", "status"])
    assert sorted(t.column("case_key").to_pylist()) == ["new", "old"]


def test_half_written_files_are_invisible(tmp_path):
    store.write_case(tmp_path, "r1", NOW, 0, row("a"))
    partition = tmp_path / "cases" / "date=2026-11-26" / "run_id=r1"
    (partition / ".00001-b.parquet.123.tmp").write_bytes(b"PAR1 half a file")
    assert store.read_cases(tmp_path).num_rows == 1


def test_failed_write_leaves_no_file_and_keeps_earlier_rows(tmp_path):
    store.write_case(tmp_path, "r1", NOW, 0, row("a"))
    with pytest.raises(pa.ArrowInvalid):
        store.write_case(tmp_path, "r1", NOW, 1, row("b", batch="not an int"))
    assert store.read_cases(tmp_path).num_rows == 1
    assert all(not f.name.startswith(".") for f in tmp_path.rglob("*") if f.is_file())


def test_every_column_is_documented_with_a_unit_slot():
    assert len({c.name for c in CASE_COLUMNS}) == len(CASE_COLUMNS)
    assert all(c.description for c in CASE_COLUMNS)


def test_results_doc_is_current():
    from bench.schema import results_markdown

    doc = os.path.join(os.path.dirname(__file__), "..", "docs", "RESULTS.md")
    with open(doc) as f:
        assert f.read() == results_markdown(), "run: python -m bench.schema > docs/RESULTS.md"
