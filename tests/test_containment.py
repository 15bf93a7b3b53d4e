"""What a case starts ends with the case: no process of bench's is set up in ``preexec_fn``, a daemon a runner
leaves behind is killed when the case ends or is killed, and a spawned worker dies with its launcher."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.forkserver import ForkServer, available
from bench.launcher import run_worker
from bench.plan import Overrides, plan
from bench.registry import Registry
from bench.runners.onnxruntime import SPEC as ORT
from bench.suite import load_suite
from bench.tune import TuneStatus, run_tuner

ROOT = Path(__file__).parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
linux_only = pytest.mark.skipif(not available(), reason="subreapers, death signals and pidfds are Linux's")


def _case(spec, cache_dir: Path, **overrides):
    suite = load_suite(str(FIXTURES / "fast.toml"))
    [planned] = plan(suite, "fast.toml", Overrides(runners=[spec.name], **overrides), Registry([ORT, spec]), cache_dir)
    return planned.case


def _gone(pid: int, seconds: float = 0.0) -> bool:
    """No such process, or only its zombie (dead, not yet collected), within ``seconds``."""
    end = time.monotonic() + seconds
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            return True
        if state == "Z" or time.monotonic() >= end:
            return state == "Z"
        time.sleep(0.05)


def test_no_process_of_benchs_is_set_up_in_preexec_fn():
    sources = [p for folder in ("bench", "runners", "models", "scripts") for p in (ROOT / folder).rglob("*.py")]
    found = [f"{path.relative_to(ROOT)}:{node.lineno}" for path in sources
             for node in ast.walk(ast.parse(path.read_text(), str(path)))
             if isinstance(node, ast.keyword) and node.arg == "preexec_fn"]
    assert sources and not found, f"preexec_fn is unsafe in a process with threads: {found}"


@linux_only
@pytest.mark.parametrize("forked", [True, False], ids=["forked", "spawned"])
@pytest.mark.parametrize("hangs", [False, True], ids=["ends", "deadline"])
def test_a_daemon_the_case_started_ends_with_the_case(fakes, cache_dir, tmp_path, forked, hangs):
    case = _case(fakes.DAEMON_HANGS if hangs else fakes.DAEMON, cache_dir, timeout_s=8)
    with ForkServer() as server:
        outcome = run_worker(case, server=server if forked else None)
        _, daemon = map(int, (tmp_path / "daemon.pids").read_text().split())
        assert _gone(daemon), f"daemon {daemon} outlived its case"  # at once: before the next case, server still up
    assert outcome.status == ("timeout" if hangs else "ok"), outcome
    assert outcome.started_by == ("fork server" if forked else "fresh interpreter")


@linux_only
def test_a_spawned_worker_dies_with_its_launcher(fakes, cache_dir, tmp_path):
    case = _case(fakes.DAEMON_HANGS, cache_dir, timeout_s=120)
    (tmp_path / "case.json").write_text(case.to_json())
    code = ("import sys; from pathlib import Path; from bench.case import Case; from bench.launcher import run_worker; "
            "run_worker(Case.from_json(Path(sys.argv[1]).read_text()))")
    launcher = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "case.json")])
    pids = tmp_path / "daemon.pids"
    try:
        end = time.monotonic() + 60
        while not pids.exists() and time.monotonic() < end and launcher.poll() is None:
            time.sleep(0.1)
        worker, _ = map(int, pids.read_text().split())
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait(timeout=10)
        assert _gone(worker, 10), "the spawned worker outlived its launcher"
    finally:
        launcher.kill()
        launcher.wait(timeout=10)
        if pids.exists():  # with its launcher killed no subreaper is left to end the daemon: the test does
            subprocess.run(["kill", "-9", pids.read_text().split()[1]], stderr=subprocess.DEVNULL)


@linux_only
def test_a_tuner_past_its_deadline_is_killed_with_its_group_and_its_daemon(fakes, tmp_path):
    """``bench tune``'s subprocess lives as a case's worker does (launcher.spawn and wait): past the deadline its
    process group is killed, and a daemon that left the group is ended by the subreaper above it."""
    start = time.monotonic()
    outcome = run_tuner("fake_runners:tuner_that_hangs", {}, timeout_s=5)
    assert outcome["status"] == TuneStatus.TIMEOUT and "passed its 5 s deadline" in outcome["reason"], outcome
    assert time.monotonic() - start < 30
    tuner, worker, daemon = map(int, (tmp_path / "records.jsonl").read_text().split())
    for pid, what in ((tuner, "tuner"), (worker, "build worker in its group"), (daemon, "daemon outside its group")):
        assert _gone(pid, seconds=2), f"the {what} ({pid}) outlived the tuning's deadline"


@linux_only
def test_a_tuner_dies_with_bench_tune(fakes, tmp_path):
    code = "from bench.tune import run_tuner; run_tuner('fake_runners:tuner_that_hangs', {}, timeout_s=120)"
    launcher = subprocess.Popen([sys.executable, "-c", code])
    record = tmp_path / "records.jsonl"
    try:
        end = time.monotonic() + 60
        while not record.exists() and time.monotonic() < end and launcher.poll() is None:
            time.sleep(0.1)
        tuner, *left = map(int, record.read_text().split())
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait(timeout=10)
        assert _gone(tuner, seconds=10), "the tuner outlived bench tune"
    finally:
        launcher.kill()
        launcher.wait(timeout=10)
        for pid in left if record.exists() else []:  # orphans of a killed bench tune: init's now, ended here
            _kill_quietly(pid)


def _kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
