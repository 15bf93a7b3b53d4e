"""`bench coverage`: one cell per model x runner x precision, the worst outcome of its cases."""

from __future__ import annotations

from datetime import datetime, timezone

from bench.report.coverage import matrix
from bench.results import store
from bench.results.uri import Location

NOW = datetime(2026, 11, 26, tzinfo=timezone.utc)


def write(results, index, model, runner, precision, status, accuracy_ok=None, error=None):
    key = f"{model}/{runner}/cpu/{precision}/b1/t1/latency"
    row = {"run_id": "r1", "timestamp": NOW, "case_key": key, "model": model, "runner": runner, "device": "cpu",
           "precision": precision, "batch": 1, "threads": 1, "scenario": "latency", "status": status,
           "accuracy_ok": accuracy_ok, "error": error, "median_ms": 1.0 if status == "ok" else None}
    store.write_case(Location.resolve(results), "r1", NOW, index, row)


def test_matrix_shows_each_outcome(tmp_path, bench_cli):
    write(tmp_path, 0, "m1", "a", "fp32", "ok", True)
    write(tmp_path, 1, "m1", "a", "int8", "ok", False)
    write(tmp_path, 2, "m1", "b", "fp32", "conversion_failed", error="pnnx failed")
    write(tmp_path, 3, "m2", "a", "fp32", "crashed")
    write(tmp_path, 4, "m2", "b", "fp32", "unsupported")
    lines = matrix(Location.resolve(tmp_path)).splitlines()
    assert lines[0].split() == ["model", "a/fp32", "a/int8", "b/fp32"]
    assert lines[1].split() == ["m1", "ok", "WRONG", "convert-fail"]
    assert lines[2].split() == ["m2", "crash", "-"]  # m2 has no a/int8 case: blank cell
    done = bench_cli("coverage", "--results", str(tmp_path))
    assert done.returncode == 0 and "convert-fail" in done.stdout


def test_fastest_passing_case_per_precision_follows_the_matrix(tmp_path):
    write(tmp_path, 0, "m1", "a", "fp32", "ok", True)
    write(tmp_path, 1, "m1", "b", "int8", "ok", True)
    write(tmp_path, 2, "m1", "a", "int8", "ok", False)  # wrong: never the fastest int8
    text = matrix(Location.resolve(tmp_path))
    fastest = text.split("fastest passing case per precision:\n")[1].splitlines()
    assert fastest[0].split()[:4] == ["machine", "model", "config", "precision"]
    rows = {line.split()[6]: line.split() for line in fastest[1:]}  # by precision (config is 4 words)
    assert rows["fp32"][7] == "a" and rows["int8"][7] == "b" and rows["int8"][-1] == "1"
