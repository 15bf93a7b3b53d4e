"""Nothing leaves the machine: a run of each installed runner, quantizers included, with one fresh HOME and none
of the opt-outs in its environment (CI=true alone would silence ONNX Runtime), writes no vendor file under HOME
and connects to nothing but loopback, under strace. bench itself must switch the telemetry off."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bench.registry import Registry

# Every opt-out a user's environment might already hold: the run must not depend on any of them.
OPT_OUTS = ("CI", "ORT_DISABLE_TELEMETRY", "NNCF_CI", "DO_NOT_TRACK")
STRACE_INSTALL = "apt-get install strace (scripts/install test does it as root)"
# Runs traced at once: on 2 cores, 3 overlap one run's timed loop with the others' imports and conversions.
RUNS_AT_ONCE = 3
CONNECT = re.compile(r'connect\(\d+, \{sa_family=AF_INET6?, sin6?_port=htons\((\d+)\), .*?"([0-9a-f.:]+)"')
SUITE = """
name = "privacy"
models = ["tiny_cnn"]
runners = ["*"]
precisions = {precisions}
threads = [1]
timeout_s = 300

[timing]
warmup_time_s = 0.02
min_time_s = {min_time_s}
max_time_s = {max_time_s}
"""


def strace() -> str:
    found = shutil.which("strace")
    if not found:
        pytest.fail(f"strace not found: the privacy test needs it. Install: {STRACE_INSTALL}", pytrace=False)
    return found


def run_traced(tmp_path: Path, cache_dir: Path, precisions: list[str], min_time_s: float,
               flags: tuple[str, ...] = (), runners: tuple[str, ...] = ()) -> tuple[Path, str]:
    """``bench run`` under strace, one run per entry of ``runners`` (a runner, or several joined by commas; default:
    every registered runner), RUNS_AT_ONCE at a time, each with ``flags`` added: what is checked is each process, not
    its timing, and one run after another left a core idle through each case's timed loop and traced imports
    (ExecuTorch's 33 s, torch.compile's 62 s). Returns the shared HOME and every run's trace."""
    home = tmp_path / "home"
    home.mkdir()
    suite = tmp_path / "privacy.toml"
    suite.write_text(SUITE.format(precisions=precisions, min_time_s=min_time_s, max_time_s=min_time_s + 1))
    env = {k: v for k, v in os.environ.items() if k not in OPT_OUTS}
    env.update(HOME=str(home), BENCH_CACHE_DIR=str(cache_dir), XDG_CACHE_HOME=str(home / ".cache"))
    tracer = strace()

    def run_one(runner: str) -> str:
        log, results = tmp_path / f"strace-{runner}.log", tmp_path / "results" / runner
        cmd = [tracer, "-f", "-qq", "-e", "trace=connect", "-o", str(log), sys.executable, "-m", "bench", "run",
               "--suite", str(suite), "--runners", runner, "--results", str(results), "--cache-dir", str(cache_dir),
               *flags]
        done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{runner}: {done.stderr[-2000:]}"
        return log.read_text()

    with ThreadPoolExecutor(RUNS_AT_ONCE) as pool:
        traces = list(pool.map(run_one, runners or sorted(Registry.default().specs)))
    return home, "".join(traces)


def outside_connections(trace: str) -> list[str]:
    """connect() calls to anything but loopback, and any to a DNS port (a name lookup is the first step out)."""
    found = []
    for port, address in CONNECT.findall(trace):
        loopback = address.startswith("127.") or address in ("::1", "::ffff:127.0.0.1")
        if not loopback or port == "53":
            found.append(f"{address}:{port}")
    return found


@pytest.mark.slow  # about a minute: every runner at fp32 and int8, quantizers included, under strace
def test_a_run_of_every_runner_and_quantizer_writes_nothing_home_and_connects_nowhere(tmp_path, cache_dir):
    home, trace = run_traced(tmp_path, cache_dir, ["fp32", "int8"], min_time_s=0.1)
    written = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())
    assert written == [], written  # e.g. .cache/Microsoft/DeveloperTools/.onnxruntime/deviceid, intel/openvino_ga_cid
    assert outside_connections(trace) == [], outside_connections(trace)


@pytest.mark.slow
def test_a_long_case_outlives_the_telemetry_delay_without_a_lookup(tmp_path, cache_dir):
    """ONNX Runtime resolves its events host ~5-10 s after import: a 12 s case would show that lookup."""
    home, trace = run_traced(tmp_path, cache_dir, ["fp32"], min_time_s=12)
    assert outside_connections(trace) == [], outside_connections(trace)
    assert not (home / ".cache" / "Microsoft").exists()


@pytest.mark.slow  # about a minute and a half: the factory probed and exported, a reference, two cases
def test_a_model_from_pytorch_is_exported_and_run_without_writing_home_or_connecting(tmp_path, cache_dir):
    """torch.onnx.export (dynamo, onnxscript) and the factory's module in eager PyTorch: the converters bench
    adds for ``bench run --torch``."""
    pytest.importorskip("onnxscript")
    fixture = Path(__file__).parent / "fixtures" / "torch_cnn.py"
    home, trace = run_traced(tmp_path, cache_dir, ["fp32"], min_time_s=0.1, flags=(
        "--torch", f"{fixture}:make", "--shape", "x:1x3x16x16"), runners=("onnxruntime,pytorch",))
    written = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())
    assert written == [], written
    assert outside_connections(trace) == [], outside_connections(trace)


@pytest.mark.slow  # two litert-torch conversions (jax, its converter) under strace: about a minute
@pytest.mark.skipif(importlib.util.find_spec("litert_torch") is None, reason="litert-torch not installed")
def test_litert_torch_conversion_writes_nothing_home_and_connects_nowhere(tmp_path):
    """A cache of its own, so that the conversions run here (the session's cache may hold them already)."""
    home, trace = run_traced(tmp_path, tmp_path / "cache", ["fp32", "int8"], min_time_s=0.1, runners=("litert",))
    written = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())
    assert written == [], written
    assert outside_connections(trace) == [], outside_connections(trace)
    assert sorted((tmp_path / "cache" / "artifacts" / "litert").glob("*/model.tflite")), "nothing was converted"
