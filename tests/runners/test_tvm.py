"""Apache TVM runner and ``bench tune``: real compilations, real MetaSchedule tuning and real Relax VM inference in
worker processes, checked against ORT fp32.

What it pins down: a compiled model matches the reference, compiles in prepare (cold start includes it) and a second
case loads the cached library instead (the row says cached, prepare drops); one thread is one thread (read back
from TVM's pool); every row says untuned or tuned; an op TVM lacks is a conversion_failed row naming it; a tuning
database is written, reused by runs and by a second ``bench tune``, and keyed by the target; a model TVM cannot
take is a conversion_failed line and a tuning past its deadline a timeout line with exit code 1, never a traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

from bench.runners.tvm import SPEC

pytestmark = pytest.mark.skipif(not SPEC.available().ok, reason=f"tvm unavailable: {SPEC.available().reason}")
F = TensorProto.FLOAT


def facts(row: dict) -> dict:
    return json.loads(row["runner_facts"])


def ok_row(row: dict, label: str = "untuned") -> None:
    assert row["status"] == "ok", row.get("error") or row.get("stderr_tail")
    assert row["accuracy_ok"] is True and row["cosine"] >= 0.9999, (row["accuracy_reason"], row["cosine"])
    assert row["precision_used"] == "fp32" and row["threads_used"] == row["threads"]
    assert row["converter"] == "tvm.compile" and row["converter_version"] == row["runner_version"]
    assert facts(row)["report_label"] == label
    assert json.loads(row["conversion_options"])["target"].startswith('{"kind":"llvm"')


def test_spec_imports_nothing_from_tvm():
    code = ("import sys; from bench.runners.tvm import SPEC; SPEC.available(); SPEC.version(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tvm', 'tvm_ffi')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_tiny_cnn_compiles_in_prepare_then_loads_the_cached_library_on_two_threads(run_cases):
    first = run_cases(["tvm"], ["tiny_cnn"])[0]
    ok_row(first)
    assert first["conversion_cached"] is False and json.loads(first["conversion_options"])["tuning"] == "untuned"
    assert first["threads_ok"] is True, first["cpu_utilization"]
    again = run_cases(["tvm"], ["tiny_cnn"], threads=(2,))[0]  # threads are TVM's pool, not part of the library
    ok_row(again)
    assert again["conversion_cached"] is True
    assert again["prepare_ms"] < first["prepare_ms"] / 2, (first["prepare_ms"], again["prepare_ms"])
    assert first["cold_start_ms"] >= first["prepare_ms"]  # the compilation is part of the cold start


def test_an_op_tvm_lacks_is_a_conversion_failure_naming_it(run_user_model, tmp_path, save_graph):
    path = save_graph(tmp_path / "det.onnx", [helper.make_node("Det", ["x"], ["y"])],
                      [helper.make_tensor_value_info("x", F, [1, 3, 3])], [helper.make_tensor_value_info("y", F, [1])])
    row = run_user_model("tvm", path)
    assert row["status"] == "conversion_failed", row.get("error")
    assert "Det" in row["error"] and "ops: Det" in row["error"]


# ---- bench tune: one real MetaSchedule tuning of a one-op model (slow) -----------------------------------------


def matmul_graph(path: Path, save_graph, seed: int = 0) -> Path:
    """One MatMul: one tuning task, so 2 trials tune all of it (``seed``: other weights, another model)."""
    w = np.random.RandomState(seed).rand(64, 32).astype(np.float32)
    x, y = helper.make_tensor_value_info("x", F, [1, 64]), helper.make_tensor_value_info("y", F, [1, 32])
    return save_graph(path, [helper.make_node("MatMul", ["x", "w"], ["y"])], [x], [y],
                      [helper.make_tensor("w", F, w.shape, w.ravel().tolist())])


def tune(bench_cli, path: Path, *args: str):
    return bench_cli("tune", "--runner", "tvm", "--model", str(path), *args, timeout=600)


def database_folder(stdout: str) -> Path:
    [line] = [line for line in stdout.splitlines() if ": tuned: " in line]
    return Path(line.rsplit("-> ", 1)[1].strip())


@pytest.mark.slow  # about a minute: MetaSchedule imports TVM's tensor intrinsics (20-40 s) and measures 2 trials
def test_a_tuning_database_is_written_keyed_by_target_and_reused(bench_cli, run_user_model, save_graph, tmp_path):
    from bench.case import Case
    from bench.models.user import user_model
    from bench.runners.tvm.database import find, read, tuning_folder

    path = matmul_graph(tmp_path / "mm.onnx", save_graph)
    done = tune(bench_cli, path, "--trials", "2")
    assert done.returncode == 0 and ": tuned: 2 trials" in done.stdout, done.stdout + done.stderr[-2000:]
    folder = database_folder(done.stdout)
    tuning = read(folder)
    assert tuning is not None and tuning.trials == 2 and tuning.tasks == 1 and tuning.num_cores >= 1

    row = run_user_model("tvm", path)
    ok_row(row, label="tuned: 2 trials")
    assert facts(row)["tuning"]["applied"] == {"tasks": 1, "tasks_with_records": 1}
    assert json.loads(row["conversion_options"])["tuning"]["records_sha256"] == tuning.records_sha256

    again = tune(bench_cli, path, "--trials", "2")
    assert again.returncode == 0 and ": reused: 2 trials" in again.stdout, again.stdout

    # The key is the target string: where a run for this target looks, and nothing for another target ...
    case = Case(user_model(path, {}), "tvm", SPEC.implementation, "cpu", "fp32", 1, 1, "latency",
                cache_dir=str(folder.parents[2]))
    assert tuning_folder(case, tuning.target, tuning.tvm_version) == folder
    assert find(case, tuning.target, tuning.tvm_version) == tuning
    other = json.dumps({**json.loads(tuning.target), "mcpu": "x86-64"})
    assert tuning_folder(case, other, tuning.tvm_version) != folder and find(case, other, tuning.tvm_version) is None
    # ... and a database whose manifest names another target is not used under this target's key.
    manifest = folder / "TUNING.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "target": other}))
    assert read(folder) is not None and find(case, tuning.target, tuning.tvm_version) is None


@pytest.mark.slow  # 15-20 s: two tuner subprocesses that import TVM
def test_a_model_tvm_refuses_or_a_tuning_past_its_deadline_is_a_line_with_its_reason(bench_cli, save_graph,
                                                                                     tmp_path):
    det = save_graph(tmp_path / "det.onnx", [helper.make_node("Det", ["x"], ["y"])],
                     [helper.make_tensor_value_info("x", F, [1, 3, 3])], [helper.make_tensor_value_info("y", F, [1])])
    refused = tune(bench_cli, det, "--trials", "2")  # what TVM cannot take is said as `bench run` says it
    assert refused.returncode == 0 and "Traceback" not in refused.stdout + refused.stderr, refused.stderr[-2000:]
    assert "det b1: conversion_failed: TVM's ONNX frontend has no converter for Det (ops: Det)" in refused.stdout

    late = tune(bench_cli, matmul_graph(tmp_path / "mm.onnx", save_graph, seed=1), "--trials", "2", "--timeout", "1")
    assert late.returncode == 1 and "mm b1: timeout: passed its 1 s deadline" in late.stdout, late.stdout


def test_tune_refuses_a_runner_without_a_tuning_step_in_one_line(bench_cli):
    done = bench_cli("tune", "--runner", "onnxruntime", "--models", "tiny_mlp", "--trials", "2")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "has no tuning step (runners with one: tvm)" in done.stderr
    assert bench_cli("tune", "--runner", "tvm", "--models", "tiny_mlp", "--trials", "0").returncode == 2
