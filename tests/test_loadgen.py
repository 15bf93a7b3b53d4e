"""The server and offline scenarios through MLPerf LoadGen: a real tiny CNN on ONNX Runtime, run by the real CLI
(each case in its own worker), LoadGen deciding VALID; and the suite's [loadgen] table checked at the edge."""

from __future__ import annotations

import json

import pytest

from bench.errors import UserError
from bench.results import store
from bench.suite import parse_suite

pytest.importorskip("mlperf_loadgen")

BOUND_MS = 50
SUITE = f"""
name = "loadgen"
models = ["tiny_cnn"]
runners = ["onnxruntime"]
threads = [2]
scenarios = ["server", "offline"]
timeout_s = 120

[timing]
warmup_time_s = 0.1

[loadgen]
p99_ms = 100
p99_ms_by_model = {{ tiny_cnn = {BOUND_MS} }}
min_duration_s = 0.5
search_time_s = 20
"""


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> dict[str, dict]:
    import os
    import subprocess
    import sys

    folder = tmp_path_factory.mktemp("loadgen")
    (folder / "suite.toml").write_text(SUITE)
    # LoadGen reads ./audit.config unless told another file: a stray one must not change bench's settings
    (folder / "audit.config").write_text("*.*.min_duration = 3000\n")
    env = {**os.environ, "BENCH_CACHE_DIR": str(folder / "cache")}
    done = subprocess.run([sys.executable, "-m", "bench", "run", "--suite", "suite.toml", "--results", "results"],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return {r["scenario"]: r for r in store.read_cases(folder / "results").to_pylist()}


@pytest.mark.slow
def test_server_finds_a_loadgen_valid_qps_at_the_models_p99_bound_with_its_trials(rows):
    row = rows["server"]
    assert row["status"] == "ok" and row["stop_reason"] == "loadgen", row["error"]
    assert row["loadgen_valid"] is True and row["loadgen_reason"] == ""
    assert row["loadgen_p99_bound_ms"] == BOUND_MS and 0 < row["loadgen_p99_ms"] <= BOUND_MS
    assert row["loadgen_p50_ms"] <= row["loadgen_p90_ms"] <= row["loadgen_p99_ms"]
    assert row["loadgen_qps"] > 0 and row["throughput_per_s"] == row["loadgen_qps"]  # batch 1
    trials = json.loads(row["loadgen_trials"])
    assert row["loadgen_trial_count"] == len(trials) and trials[0]["scenario"] == "offline"  # the ceiling first
    server = [t for t in trials if t["scenario"] == "server"]
    assert server and max(t["target_qps"] for t in server if t["valid"]) == row["loadgen_qps"]
    assert all(t["target_qps"] < trials[0]["achieved_qps"] for t in server)  # bisected below the offline ceiling
    settings = json.loads(row["loadgen_settings"])
    assert row["loadgen_version"].startswith("6.") and settings["scenario"] == "Server"
    assert settings["min_duration_ms"] == 500 and settings["target_latency_ns"] == BOUND_MS * 1_000_000
    assert "Result is : VALID" in row["loadgen_summary_log"] and '"result_validity"' in row["loadgen_detail_log"]
    assert row["driver_ceiling_qps"] > 0 and row["loadgen_requests_in_flight"] == 2
    assert row["iterations"] == next(t["queries"] for t in server if t["target_qps"] == row["loadgen_qps"])


@pytest.mark.slow
def test_offline_gives_loadgens_samples_per_second(rows):
    row = rows["offline"]
    assert row["status"] == "ok" and row["loadgen_valid"] is True and row["loadgen_p99_bound_ms"] is None
    assert row["loadgen_qps"] > 0 and row["throughput_per_s"] == row["loadgen_qps"]
    assert "Scenario : Offline" in row["loadgen_summary_log"] and row["driver_ceiling_qps"] > 0
    assert row["accuracy_ok"] is True  # parity runs after LoadGen, on the same session


def test_a_search_longer_than_the_case_deadline_is_one_line_naming_the_keys():
    text = SUITE.replace("search_time_s = 20", "search_time_s = 120")
    with pytest.raises(UserError, match="search_time_s .* must be below timeout_s"):
        parse_suite(text, "suite.toml")


def test_an_unknown_loadgen_key_names_it():
    with pytest.raises(UserError, match="loadgen.p99"):
        parse_suite(SUITE.replace("p99_ms = 100", "p99 = 100"), "suite.toml")
