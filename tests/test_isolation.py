"""Every way a worker can fail becomes a row, and the run goes on. Fake runners are the fixtures here."""

from __future__ import annotations

import io
import time
from pathlib import Path

import psutil
import pytest

from bench.launcher import _interpret
from bench.plan import Overrides, plan
from bench.registry import Registry
from bench.results import store
from bench.results.uri import Location
from bench.run import RunInfo, execute
from bench.runners.onnxruntime import SPEC as ORT
from bench.suite import load_suite

FIXTURES = Path(__file__).parent / "fixtures"


def run_with(specs, cache_dir: Path, results: Path, timeout_s: float = 60):
    registry = Registry([ORT, *specs])
    names = [s.name for s in specs] + ["onnxruntime"]
    suite = load_suite(str(FIXTURES / "fast.toml"))
    planned = plan(suite, "fast.toml", Overrides(runners=names, timeout_s=timeout_s), registry, cache_dir)
    rows = execute(planned, Location.resolve(results), RunInfo.new("fast", []), registry, stream=io.StringIO())
    return {r["runner"]: r for r in rows}


def test_crash_exit_and_bad_output_are_rows_and_the_run_goes_on(fakes, cache_dir, tmp_path):
    rows = run_with([fakes.SEGFAULTS, fakes.EXITS, fakes.NO_RESULT, fakes.RAISES], cache_dir, tmp_path)
    assert rows["segfaults"]["status"] == "crashed" and rows["segfaults"]["signal"] == "SIGSEGV"
    assert rows["exits"]["status"] == "error" and rows["exits"]["exit_code"] == 3
    assert "the runtime gave up" in rows["exits"]["stderr_tail"]
    assert rows["no_result"]["status"] == "bad_output" and rows["no_result"].get("median_ms") is None
    assert rows["raises"]["status"] == "error" and "FancyOp" in rows["raises"]["error"]
    assert "RuntimeError" in rows["raises"]["stderr_tail"]
    assert rows["onnxruntime"]["status"] == "ok"  # the good case after the bad ones still ran
    stored = store.read_cases(Location.resolve(tmp_path), ["runner", "status"]).to_pylist()
    assert sorted(r["status"] for r in stored) == ["bad_output", "crashed", "error", "error", "ok"]


def test_a_plain_sigkill_is_not_called_oom_without_the_kernels_record(fakes, cache_dir, tmp_path):
    from bench.launcher import _interpret, oom_kills

    row = run_with([fakes.SIGKILLED], cache_dir, tmp_path)["sigkilled"]
    assert row["signal"] == "SIGKILL" and row["status"] == "crashed", row  # low memory, and no OOM kill recorded
    known = "no OOM kill recorded in its cgroup" if oom_kills() is not None else "no OOM record readable here"
    assert row["error"] == f"worker killed by SIGKILL (sender unknown; {known})"
    oom = _interpret(tmp_path, False, -9, 1, oom_killed=1)  # what the kernel's count rising means
    assert oom.status == "oom" and "OOM killer" in oom.error


def test_hang_with_grandchild_is_killed_whole(fakes, cache_dir, tmp_path, monkeypatch):
    pid_file = tmp_path / "child.pid"
    monkeypatch.setenv("BENCH_TEST_CHILD_PID_FILE", str(pid_file))
    start = time.monotonic()
    rows = run_with([fakes.HANGS], cache_dir, tmp_path / "out", timeout_s=3)
    assert rows["hangs"]["status"] == "timeout" and "3 s" in rows["hangs"]["error"]
    assert time.monotonic() - start < 30
    child = int(pid_file.read_text())
    time.sleep(0.2)
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
    assert rows["onnxruntime"]["status"] == "ok"


def test_wrong_outputs_are_flagged_but_keep_their_timing(fakes, cache_dir, tmp_path):
    rows = run_with([fakes.ZEROS], cache_dir, tmp_path)
    assert rows["zeros"]["status"] == "ok" and rows["zeros"]["median_ms"] > 0
    assert rows["zeros"]["accuracy_ok"] is False and "tolerance" in rows["zeros"]["accuracy_reason"]
    assert rows["onnxruntime"]["accuracy_ok"] is True


def test_unavailable_and_unsupported_cases_are_rows(fakes, cache_dir, tmp_path):
    rows = run_with([fakes.NotInstalledSpec(), fakes.GpuOnlySpec()], cache_dir, tmp_path)
    assert rows["not_installed"]["status"] == "unavailable"
    assert "pip install no-such-runtime" in rows["not_installed"]["error"]
    assert rows["gpu_only"]["status"] == "unsupported" and "no device 'cpu'" in rows["gpu_only"]["error"]


@pytest.mark.parametrize(
    "content",
    [b"\x00\xff garbage", b'{"no_status": 1}', b"[1, 2, 3]", b'{"status": "ok", "latency": {}}'],
)
def test_garbage_result_files_are_bad_output(tmp_path, content):
    (tmp_path / "result.json").write_bytes(content)
    outcome = _interpret(tmp_path, timed_out=False, returncode=0, timeout_s=1)
    assert outcome.status == "bad_output" and outcome.samples_ns is None


def test_enormous_or_zero_latency_output_is_bad_output(tmp_path):
    import numpy as np

    with open(tmp_path / "result.json", "wb") as f:  # sparse: 1 GiB on paper, read never
        f.truncate(2**30)
    assert _interpret(tmp_path, False, 0, 1).status == "bad_output"
    from bench.contract import Phases, Status, Timing, WorkerResult
    from bench.execution.stats import latency_stats

    phases = Phases(convert_ms=0, load_ms=0, prepare_ms=0, first_inference_ms=0, warmup_iterations=0)
    timing = Timing(latency_stats(np.ones(10, dtype=np.int64)), phases, 1, 1, "x", 1, "x")
    (tmp_path / "result.json").write_text(WorkerResult(Status.OK, timing=timing).to_json())  # a well-formed result
    np.save(tmp_path / "samples.npy", np.zeros(10, dtype=np.int64))
    outcome = _interpret(tmp_path, False, 0, 1)
    assert outcome.status == "bad_output" and "positive" in outcome.error


def test_memory_cap_makes_an_oom_row_not_a_timeout(fakes, cache_dir, tmp_path):
    registry = Registry([ORT, fakes.HOGS])
    suite = load_suite(str(FIXTURES / "fast.toml"))
    overrides = Overrides(runners=["hogs", "onnxruntime"], max_memory_mb=2048, timeout_s=60)
    planned = plan(suite, "fast.toml", overrides, registry, cache_dir)
    results = Location.resolve(tmp_path)
    rows = {r["runner"]: r for r in execute(planned, results, RunInfo.new("fast", []), registry, io.StringIO())}
    assert rows["hogs"]["status"] == "oom", rows["hogs"]
    assert rows["onnxruntime"]["status"] == "ok"  # the same cap leaves room for a real case


def test_a_failure_under_the_memory_cap_says_the_cap_was_in_force(fakes, cache_dir, tmp_path):
    registry = Registry([ORT, fakes.GIVES_UP])
    suite = load_suite(str(FIXTURES / "fast.toml"))
    overrides = Overrides(runners=["gives_up"], max_memory_mb=2048, timeout_s=60)
    planned = plan(suite, "fast.toml", overrides, registry, cache_dir)
    [row] = execute(planned, Location.resolve(tmp_path), RunInfo.new("fast", []), registry, io.StringIO())
    assert row["status"] == "error" and "arena could not grow" in row["error"]  # its own words, not called oom
    assert "under --max-memory 2048 MB" in row["error"] and "a failed allocation can end this way" in row["error"]


def test_a_worker_flooding_stderr_is_stopped_at_the_log_cap_with_its_reason(fakes, cache_dir, tmp_path, monkeypatch):
    from bench import launcher

    monkeypatch.setattr(launcher, "LOG_CAP_BYTES", 16 * 2**20)
    start = time.monotonic()
    rows = run_with([fakes.FLOODS], cache_dir, tmp_path, timeout_s=120)
    row = rows["floods"]
    assert row["status"] == "error" and row["error"].startswith("stderr passed 16 MB ("), row["error"]
    written_mb = float(row["error"].split("(")[1].split(" MB")[0])
    assert written_mb < 16 + 300  # at most one check's worth (1 s at ~100 MB/s, plus slack) past the cap
    assert "the runtime says this again" in row["stderr_tail"]  # the tail is still there to read
    assert time.monotonic() - start < 60  # long before its 120 s deadline
    assert rows["onnxruntime"]["status"] == "ok"
