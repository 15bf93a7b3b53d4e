"""Noisy machines are named, recorded with the run, and refused under --strict."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bench import noise
from bench.results import store
from bench.results.uri import Location

FAST = str(Path(__file__).parent / "fixtures" / "fast.toml")


def test_probes_answer_unknown_rather_than_fail():
    report = noise.check(cpus=2)
    assert report.governors and report.turbo in {"on", "off", "unknown"}
    assert report.swap_used_mb >= 0 and isinstance(report.warnings, list)


def test_a_spinning_process_is_named_and_strict_refuses(bench_cli, tmp_path):
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert any(f"pid {spinner.pid}" in p for p in noise.busy_processes())
        done = bench_cli("run", "--suite", FAST, "--strict", "--results", "out")
        assert done.returncode == 2 and "noisy machine (--strict)" in done.stderr and "busy processes" in done.stderr
        assert not (tmp_path / "out").exists()
        done = bench_cli("run", "--suite", FAST, "--results", "out")
        assert done.returncode == 0 and "warning: busy processes" in done.stdout
        loc = Location.resolve(tmp_path / "out")
        warnings = store.query(loc, "SELECT noise_warnings FROM runs").to_pylist()[0]["noise_warnings"]
        assert any("busy processes" in w for w in warnings)
    finally:
        spinner.kill()
        spinner.wait()


def test_unstable_flags_spread_and_unconverged_samples():
    assert noise.unstable(0.2, "ci_reached") and noise.unstable(0.01, "max_time")
    assert not noise.unstable(0.01, "ci_reached")
