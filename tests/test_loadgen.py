"""The server and offline scenarios through MLPerf LoadGen: a real tiny CNN on ONNX Runtime, run by the real CLI
(each case in its own worker), LoadGen deciding VALID; and the suite's [loadgen] table checked at the edge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.errors import UserError
from bench.results import store
from bench.results.uri import Location
from bench.suite import parse_suite

pytest.importorskip("mlperf_loadgen")

BOUND_MS = 100  # generous: a loaded CI machine delays threads by tens of ms; the test is of the path
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
p99_ms = 200
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
    return {r["scenario"]: r for r in store.read_cases(Location.resolve(folder / "results")).to_pylist()}


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


def test_the_search_fits_in_half_the_cases_deadline_whichever_sets_it():
    from bench.plan import Overrides, plan
    from bench.registry import Registry

    suite = parse_suite(SUITE.replace("search_time_s = 20", "search_time_s = 500"), "suite.toml")
    assert suite.loadgen.policy("tiny_cnn", suite.timeout_s).search_time_s == 60  # timeout_s 120
    assert suite.loadgen.policy("other", 1000).search_time_s == 500
    assert suite.loadgen.policy("other", 1000).p99_bound_ms == 200  # the suite's default; tiny_cnn has its own
    assert suite.loadgen.policy("tiny_cnn", 1).p99_bound_ms == BOUND_MS
    planned = plan(suite, "s", Overrides(timeout_s=30), Registry.default(), Path("/nonexistent"), build_models=False)
    assert {p.case.loadgen.search_time_s for p in planned} == {15}  # --timeout 30


def test_an_unknown_loadgen_key_names_it():
    with pytest.raises(UserError, match="loadgen.p99"):
        parse_suite(SUITE.replace("p99_ms = 200", "p99 = 200"), "suite.toml")


# --- the driver and the search, on a request of known cost (LoadGen for real, no runtime) ---------------------

def busy(seconds: float):
    """A request that holds its thread for ``seconds`` (sleep: the GIL is free, as a runtime's call leaves it)."""
    import time

    return lambda _slot: time.sleep(seconds)


def test_the_search_brackets_the_highest_valid_qps_within_its_budget(tmp_path):
    import time

    from bench.case import LoadGenPolicy
    from bench.execution import loadgen

    policy = LoadGenPolicy(p99_bound_ms=20.0, min_duration_s=0.3, min_queries=500, search_time_s=8.0)
    driver = loadgen.Driver(busy(0.001), slots=1, from_issue=True)
    try:
        start = time.monotonic()
        runs = loadgen.search_server(driver, policy, 2000.0, tmp_path, start + policy.search_time_s)
        took = time.monotonic() - start
    finally:
        driver.close()
    trials = [r.trial for r in runs]
    valid = [t.target_qps for t in trials if t.valid]
    invalid = [t for t in trials if not t.valid]
    assert valid and invalid and took < policy.search_time_s + 3  # no trial starts that would end past the budget
    assert all(t.target_qps > max(valid) for t in invalid)  # a bisection: every INVALID target above every VALID
    assert max(valid) < 1000  # one request at a time of >= 1 ms: no more than 1000 QPS can hold a bound
    assert (tmp_path / "server-0" / loadgen.SUMMARY).is_file()


def test_a_request_that_raises_ends_the_trial_with_its_error_instead_of_a_hang(tmp_path):
    from bench.case import LoadGenPolicy
    from bench.execution import loadgen

    def broken(_slot: int) -> None:
        raise RuntimeError("the runtime failed")

    driver = loadgen.Driver(broken, slots=2, from_issue=False)
    try:
        with pytest.raises(RuntimeError, match="the runtime failed"):
            loadgen.run_trial(driver, "offline", 1000.0, LoadGenPolicy(min_duration_s=0.1, min_queries=10), tmp_path)
    finally:
        driver.close()


def test_invalid_reason_names_what_loadgen_found_wanting():
    from bench.case import LoadGenPolicy
    from bench.execution.loadgen import invalid_reason

    policy = LoadGenPolicy(p99_bound_ms=15.0, min_queries=500)
    assert invalid_reason({"result_validity": "VALID"}, policy) == ""
    why = invalid_reason({"result_validity": "INVALID", "result_perf_constraints_met": False,
                          "early_stopping_met": False, "early_stopping_result": " * Run unsuccessful.  * Processed 9"},
                         policy)
    assert why == "p99 latency over the 15 ms bound; early stopping not satisfied: Run unsuccessful. Processed 9"


def test_a_request_slower_than_the_bound_skips_the_search_and_says_why(tmp_path):
    from bench.case import Case, InputSpec, LoadGenPolicy, ModelRef
    from bench.execution import loadgen

    policy = LoadGenPolicy(p99_bound_ms=5.0, min_duration_s=0.1, min_queries=20, search_time_s=60.0)
    case = Case(model=ModelRef("m", "/m.onnx", "a" * 64, (InputSpec("x", (1, 4), "float32", -1, 1),)), runner="r",
                implementation="x:Y", device="cpu", precision="fp32", batch=32, threads=1, scenario="server",
                loadgen=policy, cache_dir=str(tmp_path / "cache"))
    _, result = loadgen.run(case, busy(0.02), 1, 20.0, tmp_path)
    assert result.qps is None and not result.valid and "a request takes 20 ms alone" in result.reason
    assert [t.scenario for t in result.trials] == ["offline"]  # no server trial: none could hold 5 ms
    assert result.driver_ceiling_qps and result.p99_bound_ms == 5.0


def test_the_drivers_ceiling_is_measured_once_and_a_damaged_cache_entry_measured_again(tmp_path):
    from bench.execution import loadgen

    first = loadgen.driver_ceiling(str(tmp_path), 2, tmp_path / "logs")
    entry = loadgen._ceiling_file(str(tmp_path), 2)
    assert first > 0 and json.loads(entry.read_text())["qps"] == first
    assert loadgen.driver_ceiling(str(tmp_path), 2, tmp_path / "logs") == first  # cached: not measured again
    entry.write_text("{not json")
    again = loadgen.driver_ceiling(str(tmp_path), 2, tmp_path / "logs")
    assert again > 0 and json.loads(entry.read_text())["qps"] == again
