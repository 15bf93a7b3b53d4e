from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One model cache for the whole test session, never the user's."""
    return tmp_path_factory.mktemp("cache")


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
