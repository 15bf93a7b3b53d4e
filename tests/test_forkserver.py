"""The fork server: each case still gets a fresh process of its own, with the isolation a spawned worker has."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import telemetry
from bench.forkserver import ForkRequest, ForkServer, available
from bench.launcher import run_worker
from bench.plan import Overrides, plan
from bench.registry import Registry
from bench.results.uri import Location
from bench.run import RunInfo, execute
from bench.runners.onnxruntime import SPEC as ORT
from bench.suite import load_suite

FIXTURES = Path(__file__).parent / "fixtures"
pytestmark = pytest.mark.skipif(not available(), reason="fork server needs Linux fork and pidfd_open")


def _cases(spec, cache_dir: Path, **overrides):
    registry = Registry([ORT] if spec is ORT else [ORT, spec])
    suite = load_suite(str(FIXTURES / "fast.toml"))
    return [p.case for p in plan(suite, "fast.toml", Overrides(runners=[spec.name], **overrides), registry, cache_dir)]


def _records(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]


def test_the_server_has_imported_no_runtime():
    modules = {spec.module.partition(".")[0] for spec in Registry.default().specs.values()}
    code = "import sys, importlib; from bench.forkserver import PRELOADED; from bench.execution.worker import main; " \
           "[importlib.import_module(m) for m in PRELOADED]; print('\\n'.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(done.stdout.split())
    assert modules and "onnxruntime" in modules
    assert not modules & {m.partition(".")[0] for m in loaded}


def test_each_forked_worker_is_fresh_and_isolated_like_a_spawned_one(fakes, cache_dir, tmp_path):
    [case] = _cases(fakes.RECORDS, cache_dir, max_memory_mb=4096)
    cpu = sorted(os.sched_getaffinity(0))[-1]
    pinned = dataclasses.replace(case, cpus=(cpu,))
    with ForkServer() as server:
        outcomes = [run_worker(c, server=server) for c in (case, pinned)]
    spawned = run_worker(case)
    assert [o.status for o in outcomes + [spawned]] == ["ok"] * 3, [o.error for o in outcomes]
    assert [o.started_by for o in outcomes + [spawned]] == ["fork server", "fork server", "fresh interpreter"]
    first, second, fresh = _records(tmp_path)
    assert len({first["pid"], second["pid"], fresh["pid"]}) == 3
    for record in (first, second, fresh):
        assert record["marker_imported"] is False  # the first case's import is not in the second case's process
        assert record["session_leader"] and record["stdin_is_null"] and record["telemetry"] == "1"
        assert record["address_space_cap"] == 4096 * 2**20
    assert second["cpus"] == [cpu] and first["cpus"] == sorted(os.sched_getaffinity(0))
    assert outcomes[0].peak_rss_mb > 10 and outcomes[0].result.timing.phases.worker_start_ms is not None


def test_a_changed_environment_restarts_the_server(fakes, cache_dir, tmp_path, monkeypatch):
    [case] = _cases(fakes.RECORDS, cache_dir)
    with ForkServer() as server:
        monkeypatch.setenv("BENCH_TEST_MARK", "first")
        run_worker(case, server=server)
        monkeypatch.setenv("BENCH_TEST_MARK", "second")
        run_worker(case, server=server)
    assert [r["mark"] for r in _records(tmp_path)] == ["first", "second"]


def test_a_server_that_dies_takes_its_worker_and_the_next_case_gets_a_new_one(fakes, cache_dir):
    [killer] = _cases(fakes.KILLS_PARENT, cache_dir, timeout_s=30)
    [good] = _cases(ORT, cache_dir)
    with ForkServer() as server:
        lost = run_worker(killer, server=server)
        after = run_worker(good, server=server)
    assert lost.status == "crashed" and lost.signal == "SIGKILL", lost  # the server's death killed it at once
    assert lost.peak_rss_mb is None  # its server took the figure with it: unknown, never 0
    assert lost.wall_s < 20
    assert after.status == "ok" and after.started_by == "fork server"


@pytest.mark.parametrize("forked", [True, False], ids=["forked", "spawned"])
def test_a_child_that_cannot_be_set_up_is_an_error_row_with_its_reason(cache_dir, forked):
    [case] = _cases(ORT, cache_dir)
    unpinnable = dataclasses.replace(case, cpus=(os.cpu_count() + 4096,))
    with ForkServer() as server:  # spawned: the worker sets itself up, so a failure is its row, not the run's crash
        outcome = run_worker(unpinnable, server=server if forked else None)
    assert outcome.status == "error" and outcome.exit_code == 70, outcome
    assert "sched_setaffinity" in outcome.stderr_tail or "Invalid argument" in outcome.stderr_tail


def test_a_server_that_never_answers_is_killed_and_the_run_spawns_its_workers(cache_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(ForkServer, "command", ("sleep", "300"))  # started, silent: as a child stopped before exec
    monkeypatch.setattr(ForkServer, "start_deadline_s", 2.0)
    suite = load_suite(str(FIXTURES / "fast.toml"))
    planned = plan(suite, "fast.toml", Overrides(runners=["onnxruntime"]), Registry([ORT]), cache_dir)
    start = time.monotonic()
    rows = execute(planned, Location.resolve(tmp_path), RunInfo.new("fast", []), Registry([ORT]), stream=io.StringIO())
    assert rows and all(r["status"] == "ok" for r in rows), rows
    assert time.monotonic() - start < 60  # one missed deadline (2 s), not the 300 s the server would take to exit


@pytest.mark.parametrize("stall_at", ["pid", "reap"])
def test_a_server_that_stops_answering_mid_case_is_killed_and_the_case_still_has_its_row(stall_at, cache_dir,
                                                                                          monkeypatch):
    monkeypatch.setattr(ForkServer, "command", (sys.executable, str(FIXTURES / "stalling_forkserver.py"), stall_at))
    monkeypatch.setattr(ForkServer, "answer_deadline_s", 2.0)
    [case] = _cases(ORT, cache_dir)
    start = time.monotonic()
    with ForkServer() as server:
        stalled = run_worker(case, server=server)
        after = run_worker(case, server=server)
    assert time.monotonic() - start < 60
    assert stalled.status == "ok" and after.status == "ok", (stalled, after)
    # no pid: the case is spawned instead; no reap: the worker's own result stands, its exit code unknown
    assert stalled.started_by == ("fresh interpreter" if stall_at == "pid" else "fork server")
    assert server.failed and after.started_by == "fresh interpreter"


def test_a_forked_worker_is_waited_for_without_a_pidfd_too(cache_dir, monkeypatch):
    """No pidfd for the worker (out of file descriptors): the wait sleeps on the server's pipe, whose next answer
    is the worker's reap, as it sleeps in Popen's wait for a spawned one (both are a launcher.Worker)."""
    [case] = _cases(ORT, cache_dir)

    def no_pidfd(pid: int, flags: int = 0) -> int:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    with ForkServer() as server:
        outcome = run_worker(case, server=server)
    assert outcome.status == "ok" and outcome.started_by == "fork server", outcome


def _request(tmp_path: Path, **changes) -> ForkRequest:
    fields = {"mode": "case", "case_file": str(tmp_path / "case.json"), "out_dir": str(tmp_path),
              "stdout": str(tmp_path / "stdout.log"), "stderr": str(tmp_path / "stderr.log"), "max_memory_mb": None,
              "cpus": (0,), "spawned_at_ns": time.time_ns()}
    return ForkRequest(**{**fields, **changes})


def test_a_malformed_request_is_refused_with_its_reason_and_the_server_goes_on(tmp_path):
    valid = json.loads(_request(tmp_path).to_line())
    malformed = {
        b"not json": "fork request: not JSON: b'not json'",
        b'["case"]': "fork request: expected a JSON object, got list",
        b'{"mode": "case"}': "fork request: missing case_file, out_dir, stdout, stderr, max_memory_mb, cpus, "
                             "spawned_at_ns",
        json.dumps({**valid, "cpus": "0-3"}).encode(): 'fork request: cpus: expected a list of CPU numbers, got "0-3"',
        json.dumps({**valid, "max_memory_mb": True}).encode(): "fork request: max_memory_mb: expected null or an "
                                                                "integer >= 0, got true",
        json.dumps({**valid, "shell": "rm -rf /"}).encode(): "fork request: unknown key shell",
    }
    with ForkServer() as server:
        server._start(telemetry.switched_off())
        for line, reason in malformed.items():
            server._proc.stdin.write(line + b"\n")
            server._proc.stdin.flush()
            assert server.read(30) == {"refused": reason}
        assert server._proc.poll() is None  # refused, not crashed: the server serves the next request


def test_a_refused_request_is_spawned_instead_and_the_server_given_up(tmp_path):
    with ForkServer() as server:
        assert server.fork(_request(tmp_path, mode="bench")) is None  # the launcher spawns this case's worker
        assert server.failed and server._proc is None


def test_the_server_dies_with_its_launcher(tmp_path):
    code = ("import sys, time; from bench import telemetry; from bench.forkserver import ForkServer; "
            "s = ForkServer(); s._start(telemetry.switched_off()); print(s._proc.pid, flush=True); time.sleep(60)")
    launcher = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([launcher.stdout], [], [], 60)  # the launcher's own start is bounded too
        assert ready, "the launcher printed no fork server pid within 60 s"
        server = int(launcher.stdout.readline())
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait(timeout=10)
        assert _gone_within(server, 10), "the fork server outlived its launcher"
    finally:
        launcher.kill()
        launcher.stdout.close()


def _gone_within(pid: int, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            return True
        if state == "Z":  # dead, waiting for a parent (init, or a subreaper) to collect it
            return True
        time.sleep(0.05)
    return False
