"""Where a case's time goes outside its timed loop: the per-phase breakdown every row carries (worker start,
runner and runtime import, load + prepare + first inference, warm-up, parity, task accuracy, samples write), and
the median overhead per executed case, conversions excluded (``overhead_ms``). Target: under 1.0 s on 2 cores.
Printed (``-s``) for docs/PERFORMANCE.md; never asserted on time, only on the breakdown adding up.

Short mode (CI): ONNX Runtime and OpenVINO on a CNN and the PP-OCR classifier (its labelled set), 1 and all
threads. Full mode, the figures in PERFORMANCE.md: ``BENCH_MEASURE_FULL=1 .venv/bin/python -m pytest
benchmarks/test_case_overhead.py -m slow -s`` (the mobile suite's models on every CPU runner, fp32).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from bench.results import store
from bench.results.uri import Location

pytestmark = pytest.mark.slow
FULL = os.environ.get("BENCH_MEASURE_FULL") == "1"
PHASES = ("worker_start_ms", "import_ms", "convert_ms", "cold_start_ms", "warmup_ms", "timed_ms", "parity_ms",
          "task_ms", "write_ms", "overhead_ms")
MODELS = "mobile" if FULL else "tiny_cnn,ppocr_mobile_v2_cls"
RUNNERS = "onnxruntime,openvino,ncnn,mnn" if FULL else "onnxruntime,openvino"


def _run(results: Path, cache: Path) -> None:
    models = [] if MODELS == "mobile" else ["--models", MODELS]
    cmd = [sys.executable, "-m", "bench", "run", "--suite", "mobile", *models, "--runners", RUNNERS,
           "--precisions", "fp32", "--results", str(results), "--cache-dir", str(cache)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=3600)


def _table(rows: list[dict]) -> str:
    lines = ["| phase | median ms | max ms |", "|---|---|---|"]
    for phase in PHASES:
        values = [r[phase] for r in rows if r[phase] is not None]
        if values:
            lines.append(f"| {phase} | {statistics.median(values):.0f} | {max(values):.0f} |")
    return "\n".join(lines)


def test_every_executed_case_says_where_its_time_went(tmp_path):
    _run(tmp_path / "results", tmp_path / "cache")
    loc = Location.resolve(tmp_path / "results")
    rows = store.query(loc, f"SELECT case_key, wall_s, {', '.join(PHASES)} FROM cases "
                       "WHERE status = 'ok'").to_pylist()
    assert rows
    for r in rows:
        parts = [r[p] for p in PHASES if p not in ("overhead_ms", "timed_ms") and r[p] is not None] + [r["timed_ms"]]
        assert all(p >= 0 for p in parts), r
        assert sum(parts) <= r["wall_s"] * 1000, r  # the phases are inside the worker's wall time
        assert r["overhead_ms"] == pytest.approx(r["wall_s"] * 1000 - r["timed_ms"] - r["convert_ms"])
    print(f"\n{len(rows)} executed cases, load average {os.getloadavg()[0]:.1f}\n{_table(rows)}")
