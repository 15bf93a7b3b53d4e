from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.results.uri import Location

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One model cache for the whole test session, never the user's."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def fakes(monkeypatch, tmp_path):
    """tests/fixtures/fake_runners.py importable here and in every worker; what its runners record (the
    worker's pid and mode, a daemon's pid) lands in ``tmp_path`` (records.jsonl, daemon.pids)."""
    monkeypatch.syspath_prepend(str(FIXTURES))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FIXTURES), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("BENCH_TEST_RECORD_FILE", str(tmp_path / "records.jsonl"))
    monkeypatch.setenv("BENCH_TEST_DAEMON_FILE", str(tmp_path / "daemon.pids"))
    import fake_runners

    return fake_runners


@pytest.fixture
def bench_cli(cache_dir, tmp_path):
    """Run ``python -m bench ...`` for real, in a subprocess, as a user would."""

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        env = {**os.environ, "BENCH_CACHE_DIR": str(cache_dir)}
        return subprocess.run(
            [sys.executable, "-m", "bench", *args], cwd=tmp_path, env=env,
            capture_output=True, text=True, timeout=timeout,
        )

    return run


@pytest.fixture
def run_cases(cache_dir, tmp_path):
    """Plan and run real cases (each in its own worker) and return their rows; for runner tests.

    Example: ``rows = run_cases(["openvino"], ["tiny_cnn"], precisions=["fp32", "bf16"])``. ``plan_cpu``: plan as
    if on another CPU (a ``bench.cpu.Cpu``), so that the workers' own read-backs are what refuses a case.
    ``convert_ahead``: off by default, so that each case converts in its own worker and its row says so (what a
    runner's conversion tests check); tests/test_ahead.py runs the pass.
    """
    import io

    from bench.plan import Overrides, plan
    from bench.registry import Registry
    from bench.run import RunInfo, RunOptions, execute
    from bench.suite import Suite, TimingConfig

    def run(runners, models, precisions=("fp32",), threads=(1,), scenarios=("latency",), batch_sizes=(1,),
            timeout_s=300.0, max_time_s=0.5, extra_specs=(), devices=("cpu",), plan_cpu=None, convert_ahead=False):
        suite = Suite(
            name="test", models=list(models), runners=list(runners), precisions=list(precisions), devices=list(devices),
            threads=list(threads), scenarios=list(scenarios), batch_sizes=list(batch_sizes), timeout_s=timeout_s,
            timing=TimingConfig(warmup_time_s=0.02, min_time_s=0.1, max_time_s=max_time_s),
        )
        registry = Registry.default()
        for spec in extra_specs:
            registry.register(spec)
        planned = plan(suite, "test", Overrides(), registry, cache_dir, cpu=plan_cpu)
        results = Location.resolve(tmp_path / "results")
        return execute(planned, results, RunInfo.new("test", []), registry, stream=io.StringIO(),
                       options=RunOptions(convert_ahead=convert_ahead))

    return run
