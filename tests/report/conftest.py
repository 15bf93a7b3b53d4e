"""Real results from a real run, once for the report and compare tests (helpers: report_fixtures.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FAST = Path(__file__).parent.parent / "fixtures" / "fast.toml"


@pytest.fixture(scope="package")
def real_results(tmp_path_factory, cache_dir) -> Path:
    """One real run of the fast suite (tiny_mlp and tiny_cnn, 1 and 2 threads): four ok rows."""
    root = tmp_path_factory.mktemp("real")
    env = {**os.environ, "BENCH_CACHE_DIR": str(cache_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--suite", str(FAST), "--models", "tiny_mlp,tiny_cnn",
         "--threads", "1,2", "--results", "results"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return root / "results"
