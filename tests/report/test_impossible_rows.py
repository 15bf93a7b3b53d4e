"""Rows whose timings no measurement can produce (planted or corrupt: a negative or zero median, NaN, a p99 below
the median, a raw sample of -5 ns) are no results: compare, the DataFrame, the scenario picks and the report
leave them out, and name them once."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from report_fixtures import NOW, copy_results, planter, samples, stats_columns

import bench.results as r
from bench.cli import main

A = "tiny_mlp/onnxruntime/cpu/fp32/b1/t1/latency"
B = "tiny_cnn/onnxruntime/cpu/fp32/b1/t1/latency"


def two_runs(real: Path, tmp_path: Path, plant) -> tuple[Path, Path]:
    """base: both models ok; new: tiny_cnn ok, tiny_mlp as ``plant(planter)`` writes it."""
    base = planter(tmp_path / "base", "base-run", NOW, template_from=real)
    new = planter(tmp_path / "new", "new-run", NOW + timedelta(days=1), template_from=real)
    for p, seed in ((base, 1), (new, 2)):
        p.case(model="tiny_cnn", samples_ns=samples(2.0, seed=seed))
    base.case(model="tiny_mlp", samples_ns=samples(1.0, seed=3))
    plant(new)
    return tmp_path / "base", tmp_path / "new"


def statuses(markdown: str) -> dict[str, str]:
    rows = [line.split(" | ") for line in markdown.splitlines() if line.startswith("| tiny")]
    return {row[0].removeprefix("| "): row[1].strip("*") for row in rows}


@pytest.mark.parametrize("plant", [
    lambda p: p.case(model="tiny_mlp", samples_ns=[-s for s in samples(1.0, seed=4)]),  # every statistic negative
    lambda p: p.case(model="tiny_mlp", samples_ns=samples(1.0, seed=4), median_ms=0.0),
    lambda p: p.case(model="tiny_mlp", samples_ns=samples(1.0, seed=4), p99_ms=0.5),  # p99 below the median
    lambda p: p.case(model="tiny_mlp", samples_ns=samples(1.0, seed=4), median_ms=float("nan")),
    lambda p: p.case(model="tiny_mlp", samples_ns=[*samples(1.0, seed=4), -5],  # statistics fine, one sample not
                     **stats_columns(samples(1.0, seed=4))),
], ids=["negative", "zero-median", "p99-below-median", "nan-median", "negative-sample"])
def test_compare_never_judges_an_impossible_row(real_results, tmp_path, capsys, plant):
    base, new = two_runs(real_results, tmp_path, plant)
    assert main(["compare", str(base), str(new)]) == 0
    seen = capsys.readouterr()
    assert statuses(seen.out) == {A: "missing", B: "unchanged"}  # not "improved, -100.1%"
    assert "improved" not in seen.out and "-100" not in seen.out
    named = [line for line in seen.err.splitlines() if "left out 1 case row" in line]
    assert len(named) == 1 and A in named[0], seen.err


def test_load_scenarios_and_report_leave_impossible_rows_out_and_name_them_once(real_results, tmp_path):
    results = copy_results(real_results, tmp_path / "results")
    p = planter(results, "20261121T120000Z-bad", NOW + timedelta(days=1), template_from=real_results)
    p.case(model="tiny_mlp", samples_ns=[-s for s in samples(0.01, seed=1)])  # "fastest" by far, if believed
    p.case(model="tiny_cnn", samples_ns=samples(0.01, seed=2), median_ms=0.0, median_ci_low_ms=0.0)
    p.case(model="tiny_mlp", threads=2, samples_ns=samples(0.01, seed=3), min_ms=float("inf"))
    done = subprocess.run([sys.executable, "-c", """
import sys
import bench.results as r
df = r.load(sys.argv[1])
again = r.load(sys.argv[1])  # a second read of the same files names nothing again
print(sorted(set(df.run_id)), (df.median_ms > 0).all())
print(r.scenarios(df).value.tolist())
""", str(results)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    real = r.load(real_results)  # the picks are the real run's, as if nothing had been planted
    assert done.stdout.splitlines() == [f"{sorted(set(real.run_id))} True", str(r.scenarios(real).value.tolist())]
    assert done.stderr.count("\n") == 1 and "left out 3 case row(s) whose timings no measurement" in done.stderr
    assert "run 20261121T120000Z-bad case tiny_mlp/onnxruntime/cpu/fp32/b1/t1/latency" in done.stderr
    out = tmp_path / "site"
    report = subprocess.run([sys.executable, "-m", "bench", "report", "--results", str(results), "--out", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    assert report.stderr.count("left out 3 case row(s)") == 1, report.stderr
    assert "20261121T120000Z-bad" not in (out / "summary.md").read_text()
