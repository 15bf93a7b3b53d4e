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


def _first_run(folder: Path, *flags: str) -> tuple[float, float | None, dict[str, str]]:
    """Wall seconds of ``bench run`` on an empty cache, the seconds until its first model's picks were printed
    (the line ``<model> done: ...``; None where none was), and each case's status."""
    cmd = [sys.executable, "-m", "bench", "run", "--suite", "mobile", *([] if FULL else SHORT),
           "--results", str(folder / "results"), "--cache-dir", str(folder / "cache"), *flags]
    started, first_picks, errors = time.monotonic(), None, folder / "stderr.txt"
    folder.mkdir(parents=True, exist_ok=True)
    with errors.open("w") as err, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:  # ends when the run does: bench run is bounded by its cases' deadlines
            if first_picks is None and " done: " in line:
                first_picks = time.monotonic() - started
    assert proc.returncode == 0, errors.read_text()[-2000:]
    seconds = time.monotonic() - started
    rows = store.query(Location.resolve(folder / "results"), "SELECT case_key, status FROM cases").to_pylist()
    return seconds, first_picks, {r["case_key"]: r["status"] for r in rows}


def test_time_to_a_first_answer_with_and_without_converting_ahead(benchmark, tmp_path):
    def measure() -> dict[str, float | None]:
        without, _, answered_without = _first_run(tmp_path / "without", "--no-convert-ahead")
        ahead, first_picks, answered_ahead = _first_run(tmp_path / "ahead")
        assert answered_ahead == answered_without  # the same cases, the same statuses
        assert first_picks is not None and first_picks <= ahead  # each model's picks, as its cases end
        return {"without_s": without, "ahead_s": ahead, "first_picks_s": first_picks, "cases": len(answered_ahead),
                "load_avg_1m": os.getloadavg()[0]}

    result = benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    print(f"\nfirst answer, {result['cases']} cases ({'mobile' if FULL else 'tiny models'}): "
          f"{result['without_s']:.1f} s converting in each case, {result['ahead_s']:.1f} s converting ahead, "
          f"the first model's picks after {result['first_picks_s']:.1f} s (load average {result['load_avg_1m']:.1f})")
