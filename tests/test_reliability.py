"""Nothing lost when the run itself is killed or interrupted, or cannot write its results."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from bench import run as run_module
from bench.launcher import CASE_DIR_PREFIX, remove_stale_case_dirs
from bench.plan import Overrides, plan
from bench.registry import Registry
from bench.results import store
from bench.results.uri import Location
from bench.suite import load_suite

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
    return store.query(Location.resolve(results), "SELECT run_id FROM runs").column("run_id").to_pylist()[0]


def test_sigkill_keeps_finished_rows_and_resume_finishes_without_duplicates(tmp_path, cache_dir, bench_cli):
    proc = start_run(tmp_path, cache_dir)
    wait_for_rows(tmp_path / "out", 1)
    proc.kill()
    proc.communicate()
    results = tmp_path / "out"
    before = store.read_cases(Location.resolve(results), ["case_key", "status"]).to_pylist()
    assert 1 <= len(before) < 4 and all(r["status"] == "ok" for r in before)
    run_id = only_run_id(results)
    done = bench_cli("run", "--resume", run_id, "--results", "out")
    assert done.returncode == 0, done.stderr
    keys = store.read_cases(Location.resolve(results), ["case_key"], run_id=run_id).column("case_key").to_pylist()
    assert len(keys) == 4 == len(set(keys))
    run = store.query(Location.resolve(results), "SELECT status, cases_written FROM runs").to_pylist()[0]
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
    # the idle second before each case keeps the run alive when SIGTERM comes: four tiny cases can otherwise end
    # between the first row and the signal
    proc = start_run(tmp_path, cache_dir, "--cooldown", "1")
    wait_for_rows(tmp_path / "out", 1)
    workers = [c for c in psutil.Process(proc.pid).children(recursive=True)]
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "interrupted" in out and "--resume" in out
    time.sleep(0.2)
    assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    results = tmp_path / "out"
    loc = Location.resolve(results)
    assert store.query(loc, "SELECT status FROM runs").column("status").to_pylist() == ["interrupted"]
    assert store.read_cases(Location.resolve(results), ["status"]).num_rows >= 1
    assert not [f for f in results.rglob("*") if f.is_file() and f.name.startswith(".")]


def test_resume_refuses_plan_flags_and_unknown_runs(bench_cli):
    done = bench_cli("run", "--resume", "nope", "--threads", "2")
    assert done.returncode == 2 and "--resume replays the run's own flags; drop --threads" in done.stderr
    done = bench_cli("run", "--resume", "nope", "--results", "empty")
    assert done.returncode == 2 and "no runs in empty" in done.stderr


def test_unwritable_results_location_is_one_clear_error_and_keeps_earlier_results(tmp_path, bench_cli):
    assert bench_cli("run", "--suite", FAST, "--results", "out").returncode == 0
    before = store.read_cases(Location.resolve(tmp_path / "out")).num_rows
    (tmp_path / "out" / "runs").rename(tmp_path / "runs-moved")
    (tmp_path / "out" / "runs").write_text("a file where a folder must go")  # writes there now fail
    done = bench_cli("run", "--suite", FAST, "--results", "out")
    assert done.returncode == 2 and "cannot write results to out" in done.stderr
    assert done.stderr.count("\n") == 1
    assert store.read_cases(Location.resolve(tmp_path / "out")).num_rows == before


@pytest.mark.slow  # real runs, ~10-30 s
def test_resume_refuses_a_plan_that_is_no_longer_the_runs(bench_cli, tmp_path):
    suite = tmp_path / "mine.toml"
    fast = (Path(__file__).parent / "fixtures" / "fast.toml").read_text()
    suite.write_text(fast)
    assert bench_cli("run", "--suite", "mine.toml", "--results", "out").returncode == 0  # a relative path
    run_id = only_run_id(tmp_path / "out")
    assert bench_cli("run", "--resume", run_id, "--results", "out").returncode == 0  # the same plan: fine
    suite.write_text(fast.replace('models = ["tiny_mlp"]', 'models = ["tiny_cnn"]'))  # another file there now
    done = bench_cli("run", "--resume", run_id, "--results", "out")
    assert done.returncode == 2 and f"--resume {run_id}: its plan differs from the run's" in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1
    rows = store.read_cases(Location.resolve(tmp_path / "out"), ["case_key"]).column("case_key").to_pylist()
    assert rows == ["tiny_mlp/onnxruntime/cpu/fp32/b1/t1/latency"]  # nothing of the other plan was run


@pytest.mark.slow  # a real run, ~5-10 s
def test_resume_refuses_a_run_of_another_machine(bench_cli, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    assert bench_cli("run", "--suite", FAST, "--results", "out").returncode == 0
    run_id = only_run_id(tmp_path / "out")
    [run_file] = (tmp_path / "out" / "runs").glob(f"run_id={run_id}/*.parquet")
    table = pq.read_table(run_file)
    other = pa.array(["0123456789abcdef"] * table.num_rows, table.schema.field("machine_id").type)
    pq.write_table(table.set_column(table.schema.get_field_index("machine_id"), "machine_id", other), run_file)
    done = bench_cli("run", "--resume", run_id, "--results", "out")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"--resume {run_id}: the run belongs to machine 0123456789abcdef (" in done.stderr
    assert "resume it on that machine" in done.stderr
    # before: the run was taken over, its environment rewritten with this machine's
    loc = Location.resolve(tmp_path / "out")
    assert store.query(loc, "SELECT machine_id FROM runs").column(0).to_pylist() == ["0123456789abcdef"]


def test_a_run_stopped_by_an_error_is_marked_failed_not_running(cache_dir, tmp_path, monkeypatch):
    suite = load_suite(str(Path(__file__).parent / "fixtures" / "fast.toml"))
    planned = plan(suite, "fast", Overrides(models=["tiny_mlp", "tiny_cnn"]), Registry.default(), cache_dir)
    real = run_module._run_one
    calls = []

    def second_case_fails(*args):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")  # e.g. the disk filled up mid-run
        return real(*args)

    monkeypatch.setattr(run_module, "_run_one", second_case_fails)
    info = run_module.RunInfo.new("fast", [])
    with pytest.raises(OSError):
        run_module.execute(planned, Location.resolve(tmp_path), info, Registry.default(), stream=io.StringIO())
    run = store.query(Location.resolve(tmp_path), "SELECT status, cases_written FROM runs").to_pylist()
    assert run == [{"status": "failed", "cases_written": 1}]  # and its first row is kept


@pytest.mark.slow  # real runs, ~10-30 s
@pytest.mark.parametrize("damage", ["garbage", "valid_but_wrong"])
def test_a_damaged_fp32_reference_is_rebuilt_not_trusted(bench_cli, tmp_path, damage):
    import numpy as np

    args = ("run", "--suite", str(Path(__file__).parent / "fixtures" / "fast.toml"), "--cache-dir", "cache")
    assert bench_cli(*args, "--results", "first").returncode == 0
    [reference] = (tmp_path / "cache" / "reference").glob("*.npz")
    assert reference.with_suffix(".sha256").read_text() != ""
    if damage == "garbage":
        reference.write_bytes(b"not a zip at all")
    else:  # the file parses, the numbers are wrong: every runner would be flagged wrong against it
        with np.load(reference) as data:
            np.savez(reference, **{k: np.zeros_like(v) for k, v in data.items()})
    done = bench_cli(*args, "--results", "second")
    assert done.returncode == 0, done.stderr
    [row] = store.read_cases(Location.resolve(tmp_path / "second"), ["status", "accuracy_ok"]).to_pylist()
    assert row == {"status": "ok", "accuracy_ok": True}  # against a rebuilt reference


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 1 MiB filesystem (tmpfs, mounted for the test and unmounted after), so that a full disk is the
    kernel's ENOSPC, not a mock; skipped where mounting is not permitted (not root, no CAP_SYS_ADMIN)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True,
                             text=True, timeout=30)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def fill(folder: Path) -> Path:
    """Write into ``folder`` until its filesystem is full (ENOSPC); returns the filler."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == 28, exc
    return filler


@pytest.mark.slow  # real runs, ~10-20 s
def test_a_full_disk_stop_names_the_run_and_how_to_resume_it(tiny_disk, cache_dir, tmp_path, bench_cli):
    results = tiny_disk / "out"
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", "--suite", FAST, "--results", str(results)],
                            cwd=tmp_path, env={**os.environ, "BENCH_CACHE_DIR": str(cache_dir)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(results.glob("runs/run_id=*/run.parquet")):  # the run's row is written before any case runs
        if time.monotonic() > deadline or proc.poll() is not None:  # never wait unbounded on a run that hangs
            proc.kill()
            pytest.fail(f"no run row within 60 s, or the run ended first: {proc.communicate(timeout=30)}")
        time.sleep(0.005)
    filler = fill(tiny_disk)  # the disk fills up while the first case runs
    out, err = proc.communicate(timeout=120)
    run_id = next(results.glob("runs/run_id=*")).name.removeprefix("run_id=")
    assert proc.returncode == 2 and "No space left on device" in err, (out, err)
    assert (f"run {run_id} stopped (No space left on device) after 0 cases; finished rows are in {results}. Free "
            f"space there, then continue with: bench run --resume {run_id} --results {results}") in out + err
    filler.unlink()
    done = bench_cli("run", "--resume", run_id, "--results", str(results))
    assert done.returncode == 0, done.stderr
    assert store.query(Location.resolve(results), "SELECT status, cases_written FROM runs").to_pylist() == [
        {"status": "complete", "cases_written": 1}]
