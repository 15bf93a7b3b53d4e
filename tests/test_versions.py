"""The version axis (bench.environments): a runner's releases side by side in one run, each in a uv environment of
its own made before timing, the worker on that environment's interpreter, and `bench compare --by version`.

The slow test installs real releases from the package index (small wheels; uv's own cache makes a repeat a hardlink
copy); the others need no index at all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import options
from bench.cli import main
from bench.environments import Environment, Environments, Release, same_release
from bench.results import load

SUITE = """
name = "versions"
models = ["tiny_mlp"]
runners = {runners}
threads = [1]
timeout_s = 120

[versions]
{versions}

[timing]
warmup_time_s = 0.02
min_time_s = 0.1
max_time_s = 0.5
"""
# What an unreachable package index looks like to uv: nothing listens on port 9 (discard), and no retry waits
NO_INDEX = {"UV_INDEX_URL": "http://127.0.0.1:9/simple/", "UV_DEFAULT_INDEX": "http://127.0.0.1:9/simple/",
            "UV_HTTP_RETRIES": "0"}
# A planted slowdown, as a release that got slower would be: every inference of ONNX Runtime sleeps 2 ms first
PLANT = """import time

import onnxruntime


def _slowed(run):
    def slow(self, *args, **kwargs):
        time.sleep(0.002)
        return run(self, *args, **kwargs)
    return slow


for _name in ("run", "run_with_iobinding"):
    setattr(onnxruntime.InferenceSession, _name, _slowed(getattr(onnxruntime.InferenceSession, _name)))
"""


def _suite(tmp_path: Path, versions: str, runners: str = '["onnxruntime"]') -> Path:
    path = tmp_path / "versions.toml"
    path.write_text(SUITE.format(versions=versions, runners=runners))
    return path


def _bench(tmp_path: Path, cache: Path, *args: str, env: dict[str, str] | None = None,
           timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "BENCH_CACHE_DIR": str(cache), **(env or {})}, timeout=timeout)


def _rows(results: Path) -> dict[str, dict]:
    return {r["case_key"]: r for r in load(results).to_dict("records")}


def test_versions_flag_names_releases_per_distribution():
    assert options.versions("onnxruntime==1.30.0,1.31.0, openvino==2026.3.0") == {
        "onnxruntime": ["1.30.0", "1.31.0"], "openvino": ["2026.3.0"]}


def test_a_timing_of_another_release_than_the_one_asked_for_is_an_error():
    """Where the worker's runtime reads back another release (an environment that does not hold the one asked for),
    the row is an error, never a timing labelled with the wrong release."""
    release = Release("onnxruntime", "1.30.0")
    made = Environments({release: Environment("/envs/onnxruntime-1.30.0/bin/python", made_ms=1500.0)})
    ok = {"status": "ok", "runner_version": "1.30.0", "median_ms": 1.0}
    assert made.mark(release, ok) == {**ok, "runtime_env_ms": 1500.0}
    wrong = made.mark(release, {**ok, "runner_version": "1.32.0"})
    assert wrong["status"] == "error"
    assert wrong["error"].startswith("asked for onnxruntime==1.30.0, but the worker's runtime says 1.32.0")
    assert same_release("2.13.0+cpu", "2.13.0") and same_release("2026.3.0", "2026.3")
    assert not same_release("1.3", "1.30")


def test_each_release_is_a_case_of_its_own(tmp_path, cache_dir):
    done = _bench(tmp_path, cache_dir, "run", "--versions", "onnxruntime==1.30.0,1.31.0", "--runners",
                  "onnxruntime,openvino", "--models", "tiny_mlp", "--threads", "1", "--dry-run")
    assert done.returncode == 0, done.stderr
    keys = [line for line in done.stdout.splitlines() if line.startswith("tiny_mlp/")]
    assert keys == ["tiny_mlp/onnxruntime/cpu/fp32/b1/t1/latency/v1.30.0",
                    "tiny_mlp/onnxruntime/cpu/fp32/b1/t1/latency/v1.31.0",
                    "tiny_mlp/openvino/cpu/fp32/b1/t1/latency"]  # a runner not named keeps its key and release


@pytest.mark.parametrize(("args", "says"), [
    (["--versions", "onnxrt==1.30.0"], "versions: no runner of this plan is the distribution 'onnxrt'"),
    (["--versions", "onnxruntime==1.30.0,1.30.0"], "--versions: key 'versions': Value error, onnxruntime: listed "
                                                   "more than once: 1.30.0"),
    (["--versions", "onnxruntime==1.30;rm"], "versions.onnxruntime.0"),
    (["--versions", "==1.30.0"], "--versions: expected DIST==VERSION"),
])
def test_a_bad_version_axis_is_one_line(capsys, args, says):
    assert main(["run", "--runners", "onnxruntime", "--dry-run", *args]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1, err


def test_no_package_index_makes_the_case_unavailable(tmp_path):
    """Nothing cached, no index reachable: the release's case is an unavailable row saying so, and the run
    completes."""
    cache = tmp_path / "cache"
    suite = _suite(tmp_path, 'onnxruntime = ["1.29.0"]')
    done = _bench(tmp_path, cache, "run", "--suite", str(suite), "--results", str(tmp_path / "results"),
                  env={**NO_INDEX, "UV_CACHE_DIR": str(tmp_path / "uv-cache")}, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    [row] = _rows(tmp_path / "results").values()
    assert row["status"] == "unavailable"
    assert row["runtime_version_requested"] == "1.29.0"
    assert row["error"].startswith("onnxruntime==1.29.0: no package index reachable to make its environment")
    assert "nothing is downloaded once timing starts" in row["error"]
    assert not list((cache / "envs").glob("onnxruntime-1.29.0-*")), "no half-made environment left to reuse"


@pytest.mark.slow
def test_three_onnxruntime_releases_and_one_openvino_side_by_side_then_compared(tmp_path, monkeypatch):
    """One run, three ONNX Runtime releases and an OpenVINO one, each in its own environment: a row each, with the
    release the worker read back; a second run reuses the environments with no index at all; a slowdown planted in
    one release is what `bench compare --by version` names."""
    cache, results = tmp_path / "cache", tmp_path / "results"
    # uv's own cache where it keeps it for this user (bench's default is in its cache folder, fresh here): a repeat
    # of the test downloads nothing
    monkeypatch.setenv("UV_CACHE_DIR", os.environ.get("UV_CACHE_DIR") or str(Path.home() / ".cache" / "uv"))
    releases = ["1.30.0", "1.31.0", "1.32.0"]
    suite = _suite(tmp_path, f'onnxruntime = {releases}\nopenvino = ["2026.3.0"]', '["onnxruntime", "openvino"]')
    first = _bench(tmp_path, cache, "run", "--suite", str(suite), "--results", str(results))
    assert first.returncode == 0, first.stdout + first.stderr
    rows = _rows(results)
    for release in releases:
        row = rows[f"tiny_mlp/onnxruntime/cpu/fp32/b1/t1/latency/v{release}"]
        assert (row["status"], row["runner_version"], row["runtime_version_requested"]) == ("ok", release, release)
        assert row["runtime_env_ms"] > 0  # made in this run, before timing
    openvino = rows["tiny_mlp/openvino/cpu/fp32/b1/t1/latency/v2026.3.0"]
    assert (openvino["status"], openvino["runner_version"]) == ("ok", "2026.3.0")

    [slowed] = (cache / "envs").glob("onnxruntime-1.31.0-*")
    site = next(slowed.glob("lib/python*/site-packages"))
    (site / "_plant.py").write_text(PLANT)
    (site / "_plant.pth").write_text("import _plant\n")
    second = _bench(tmp_path, cache, "run", "--suite", str(suite), "--results", str(results), env=NO_INDEX)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "0 made, 4 already made" in second.stdout
    again = _rows(results)
    assert all(r["status"] == "ok" and r["runtime_env_ms"] != r["runtime_env_ms"] for r in again.values())  # NaN

    compared = _bench(tmp_path, cache, "compare", "--by", "version", "--results", str(results))
    assert compared.returncode == 1, compared.stdout + compared.stderr  # a newer release regressed
    table = compared.stdout
    assert "## bench compare: onnxruntime 1.30.0 → onnxruntime 1.31.0" in table
    assert "| tiny_mlp/onnxruntime/cpu/fp32/b1/t1/latency | **regressed** |" in table
    assert "onnxruntime 1.30.0 → 1.31.0:" in table and "slower" in table
    assert "onnxruntime 1.31.0 → 1.32.0:" in table and "faster" in table
