"""Nothing lost when the run itself is killed or interrupted, or cannot write its results."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench.launcher import CASE_DIR_PREFIX, remove_stale_case_dirs
from bench.results import store

FAST = str(Path(__file__).parent / "fixtures" / "fast.toml")
FOUR_CASES = ["--suite", FAST, "--models", "tiny_mlp,tiny_cnn", "--threads", "1,2"]


def start_run(tmp_path: Path, cache_dir: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "BENCH_CACHE_DIR": str(cache_dir)}
    return subprocess.Popen(
        [sys.executable, "-m", "bench", "run", *FOUR_CASES, "--results", "out", *args],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_for_rows(results: Path, count: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if len(list((results / "cases").rglob("*.parquet"))) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} rows after {timeout_s} s")


def only_run_id(results: Path) -> str:
    return store.query(results, "SELECT run_id FROM runs").column("run_id").to_pylist()[0]


def test_sigkill_keeps_finished_rows_and_resume_finishes_without_duplicates(tmp_path, cache_dir, bench_cli):
    proc = start_run(tmp_path, cache_dir)
    wait_for_rows(tmp_path / "out", 1)
    proc.kill()
    proc.communicate()
    results = tmp_path / "out"
    before = store.read_cases(results, ["case_key", "status"]).to_pylist()
    assert 1 <= len(before) < 4 and all(r["status"] == "ok" for r in before)
    run_id = only_run_id(results)
    done = bench_cli("run", "--resume", run_id, "--results", "out")
    assert done.returncode == 0, done.stderr
    keys = store.read_cases(results, ["case_key"], run_id=run_id).column("case_key").to_pylist()
    assert len(keys) == 4 == len(set(keys))
    run = store.query(results, "SELECT status, cases_written FROM runs").to_pylist()[0]
    assert run == {"status": "complete", "cases_written": 4}
    assert not list(Path(tempfile.gettempdir()).glob(f"{CASE_DIR_PREFIX}*.{proc.pid}-*"))  # the killed run's, swept


def test_case_folders_of_dead_runs_are_swept_and_live_ones_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    ns = os.stat("/proc/self/ns/pid").st_ino
    dead = tmp_path / f"{CASE_DIR_PREFIX}{ns}.{gone.stdout.strip()}-abc"
    live = tmp_path / f"{CASE_DIR_PREFIX}{ns}.{os.getpid()}-def"
    container = tmp_path / f"{CASE_DIR_PREFIX}{ns + 1}.{gone.stdout.strip()}-ghi"  # pids of another namespace
    other = tmp_path / f"{CASE_DIR_PREFIX}not-a-pid"
    for folder in (dead, live, container, other):
        (folder / "case.json").parent.mkdir()
        (folder / "case.json").write_text("{}")
    assert remove_stale_case_dirs() == 1
    assert not dead.exists() and live.exists() and container.exists() and other.exists()


def test_sigterm_reaps_the_worker_keeps_rows_and_marks_the_run(tmp_path, cache_dir):
    proc = start_run(tmp_path, cache_dir)
    wait_for_rows(tmp_path / "out", 1)
    workers = [c for c in psutil.Process(proc.pid).children(recursive=True)]
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "interrupted" in out and "--resume" in out
    time.sleep(0.2)
    assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    results = tmp_path / "out"
    assert store.query(results, "SELECT status FROM runs").column("status").to_pylist() == ["interrupted"]
    assert store.read_cases(results, ["status"]).num_rows >= 1
    assert not [f for f in results.rglob("*") if f.is_file() and f.name.startswith(".")]


def test_resume_refuses_plan_flags_and_unknown_runs(bench_cli):
    done = bench_cli("run", "--resume", "nope", "--threads", "2")
    assert done.returncode == 2 and "--resume replays the run's own flags; drop --threads" in done.stderr
    done = bench_cli("run", "--resume", "nope", "--results", "empty")
    assert done.returncode == 2 and "no runs in empty" in done.stderr


def test_unwritable_results_location_is_one_clear_error_and_keeps_earlier_results(tmp_path, bench_cli):
    assert bench_cli("run", "--suite", FAST, "--results", "out").returncode == 0
    before = store.read_cases(tmp_path / "out").num_rows
    (tmp_path / "out" / "runs").rename(tmp_path / "runs-moved")
    (tmp_path / "out" / "runs").write_text("a file where a folder must go")  # writes there now fail
    done = bench_cli("run", "--suite", FAST, "--results", "out")
    assert done.returncode == 2 and "cannot write results to out" in done.stderr
    assert done.stderr.count("\n") == 1
    assert store.read_cases(tmp_path / "out").num_rows == before
