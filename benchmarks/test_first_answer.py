"""Time to a first answer: ``bench run`` on an empty cache, with the conversions made ahead of timing (several at a
time, bench/ahead.py) and without (``--no-convert-ahead``: each case converts in its own worker, one after
another). Both runs start from an empty cache of their own, so both convert everything. Printed (``-s``) for
docs/PERFORMANCE.md and kept in the benchmark's extra_info; asserted only on both runs answering the same cases.

Short mode (CI): tiny_cnn on the converting CPU runners (ONNX Runtime's int8, ncnn, MNN) at the mobile suite's
precisions, one thread (each converter once; two models at both thread counts took 64 s of CI for the same
check). ``BENCH_MEASURE_FULL=1``: the mobile suite itself (about 13 minutes without the pass on a quiet 2-core
machine: run it there, never beside other work).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.results import store
from bench.results.uri import Location

pytestmark = pytest.mark.slow
FULL = os.environ.get("BENCH_MEASURE_FULL") == "1"
SHORT = ["--models", "tiny_cnn", "--runners", "onnxruntime,ncnn,mnn", "--threads", "1"]


def _first_run(folder: Path, *flags: str) -> tuple[float, dict[str, str]]:
    """Wall seconds of ``bench run`` on an empty cache, and each case's status."""
    cmd = [sys.executable, "-m", "bench", "run", "--suite", "mobile", *([] if FULL else SHORT),
           "--results", str(folder / "results"), "--cache-dir", str(folder / "cache"), *flags]
    started = time.monotonic()
    subprocess.run(cmd, check=True, capture_output=True, timeout=7200)
    seconds = time.monotonic() - started
    rows = store.query(Location.resolve(folder / "results"), "SELECT case_key, status FROM cases").to_pylist()
    return seconds, {r["case_key"]: r["status"] for r in rows}


def test_time_to_a_first_answer_with_and_without_converting_ahead(benchmark, tmp_path):
    def measure() -> dict[str, float]:
        without, answered_without = _first_run(tmp_path / "without", "--no-convert-ahead")
        ahead, answered_ahead = _first_run(tmp_path / "ahead")
        assert answered_ahead == answered_without  # the same cases, the same statuses
        return {"without_s": without, "ahead_s": ahead, "cases": len(answered_ahead),
                "load_avg_1m": os.getloadavg()[0]}

    result = benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    print(f"\nfirst answer, {result['cases']} cases ({'mobile' if FULL else 'tiny models'}): "
          f"{result['without_s']:.1f} s converting in each case, {result['ahead_s']:.1f} s converting ahead "
          f"(load average {result['load_avg_1m']:.1f})")
