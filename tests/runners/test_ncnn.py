"""ncnn runner: real pnnx conversions and real ncnn inference in worker processes, checked against ORT fp32."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

from bench.cpu import REFERENCE_CPUS, Cpu
from bench.runners.ncnn import SPEC

pytestmark = pytest.mark.skipif(not SPEC.available().ok, reason=f"ncnn runner unavailable: {SPEC.available().reason}")
FP16 = SPEC.cpu_precision("fp16", Cpu.here())  # the planner's answer for this CPU, from its flags



def ok_fp32(row: dict) -> None:
    """An fp32 row that ran, matched the reference and recorded how it was converted."""
    assert row["status"] == "ok", row.get("error") or row.get("stderr_tail")
    assert row["accuracy_ok"] is True and row["cosine"] >= 0.9999, (row["accuracy_reason"], row["cosine"])
    assert row["precision_used"] == "fp32" and row["threads_used"] == row["threads"]
    assert row["converter"] == "pnnx" and row["converter_version"]
    options = json.loads(row["conversion_options"])
    assert options["fp16"] == 0 and options["inputshape"].startswith("[1,")
    facts = json.loads(row["runner_facts"])
    assert facts["options"]["use_fp16_arithmetic"] is False and facts["options"]["use_fp16_storage"] is False
    assert facts["options"]["use_bf16_storage"] is False and facts["options"]["num_threads"] == row["threads"]
    assert row["timed_region"].startswith("Extractor")


def artifact_files(cache_dir: Path, name: str) -> list[Path]:
    return sorted((cache_dir / "artifacts" / "ncnn").glob(f"*/{name}"))


def test_tiny_models_match_reference_then_hit_the_cache_and_rebuild_a_corrupt_one(run_cases, cache_dir):
    first = {r["model"]: r for r in run_cases(["ncnn"], ["tiny_cnn", "tiny_mlp"])}
    for row in first.values():
        ok_fp32(row)
        assert row["threads_ok"] is True, row["cpu_utilization"]
        assert row["median_ms"] > 0
    assert json.loads(first["tiny_cnn"]["runner_facts"])["io_names"] == {"input": "in0", "logits": "out0"}

    again = run_cases(["ncnn"], ["tiny_cnn"])[0]
    ok_fp32(again)
    assert again["conversion_cached"] is True

    bins = artifact_files(cache_dir, "model.ncnn.bin")
    assert bins, "no ncnn artifact in the cache"
    for path in bins:  # truncate every cached weight file: each must be noticed and rebuilt
        path.write_bytes(path.read_bytes()[:100])
    rebuilt = run_cases(["ncnn"], ["tiny_cnn"])[0]
    ok_fp32(rebuilt)
    assert rebuilt["conversion_cached"] is False


def test_fp16_runs_where_declared_and_is_an_unsupported_row_elsewhere(run_cases):
    rows = {r["precision"]: r for r in run_cases(["ncnn"], ["tiny_cnn"], precisions=["fp16", "fp32"])}
    ok_fp32(rows["fp32"])
    fp16 = rows["fp16"]
    if not FP16.ok:
        assert fp16["status"] == "unsupported" and fp16["error"] == FP16.reason
        return
    assert fp16["status"] == "ok" and fp16["precision_used"] == "fp16", fp16.get("error")
    assert fp16["accuracy_ok"] is True and fp16["precision_feature"] == FP16.feature
    options = json.loads(fp16["runner_facts"])["options"]
    assert options["use_fp16_arithmetic"] is True and options["use_fp16_storage"] is True


@pytest.mark.skipif(FP16.ok, reason="this CPU has fp16 arithmetic: nothing for the worker to refuse")
def test_the_worker_refuses_fp16_when_the_plan_is_for_an_fp16_cpu(run_cases):
    row = run_cases(["ncnn"], ["tiny_cnn"], precisions=["fp16"], plan_cpu=REFERENCE_CPUS["arm-v8.2-fp16"])[0]
    assert row["status"] == "unsupported" and row["error"] == FP16.reason and row.get("median_ms") is None


def test_batch_above_one_is_declared_unsupported(run_cases):
    rows = run_cases(["ncnn"], ["tiny_cnn"], batch_sizes=[2])
    assert rows[0]["status"] == "unsupported" and "batch 1" in rows[0]["error"]


# ---- your own models: graphs built here, run through the real plan and workers ----------------------------





def test_an_op_ncnn_lacks_is_a_conversion_failure_naming_it(run_user_model, tmp_path, save_graph):
    # pnnx exits 0 on Hardmax but writes it as a layer type that ncnn does not have.
    f = TensorProto.FLOAT
    path = save_graph(tmp_path / "hardmax.onnx", [helper.make_node("Hardmax", ["x"], ["y"])],
                      [helper.make_tensor_value_info("x", f, [1, 8])], [helper.make_tensor_value_info("y", f, [1, 8])])
    row = run_user_model("ncnn", path)
    assert row["status"] == "conversion_failed"
    assert "Hardmax" in row["error"] and "ops: Hardmax" in row["error"]


def test_an_in_place_first_layer_never_changes_the_bound_input(run_user_model, tmp_path, save_graph):
    # x * 2 becomes an in-place BinaryOp: if it wrote into the bound input, each timed call would double the
    # input again and the outputs would drift far from the reference.
    f = TensorProto.FLOAT
    eye = np.eye(4, dtype=np.float32).reshape(4, 4, 1, 1)
    path = save_graph(
        tmp_path / "inplace.onnx",
        [helper.make_node("Mul", ["x", "two"], ["m"]), helper.make_node("Conv", ["m", "w"], ["y"])],
        [helper.make_tensor_value_info("x", f, [1, 4, 8, 8])], [helper.make_tensor_value_info("y", f, [1, 4, 8, 8])],
        [helper.make_tensor("two", f, [], [2.0]), helper.make_tensor("w", f, eye.shape, eye.ravel().tolist())],
    )
    row = run_user_model("ncnn", path)
    ok_fp32(row)
    assert row["iterations"] >= 10


# ---- real trained and built models (slow) -----------------------------------------------------------------


@pytest.mark.slow
def test_a_model_pnnx_cannot_convert_is_a_row_and_the_run_goes_on(run_cases):
    rows = {r["model"]: r for r in run_cases(["ncnn"], ["silero_vad", "tiny_cnn"])}
    failed = rows["silero_vad"]
    assert failed["status"] == "conversion_failed", failed.get("error")
    assert failed["error"].startswith("pnnx failed (") and len(failed["error"]) > len("pnnx failed (exit code 255): ")
    ok_fp32(rows["tiny_cnn"])


@pytest.mark.slow
def test_ppocr_models_match_reference_with_fp32_weights(run_cases):
    models = ["ppocr_v4_det", "ppocr_v4_rec", "ppocr_mobile_v2_cls"]
    for row in run_cases(["ncnn"], models, max_time_s=2.0):
        ok_fp32(row)
        assert row["threads_ok"] is True, (row["model"], row["cpu_utilization"])


@pytest.mark.slow
def test_mobilenet_v2_matches_reference_on_one_and_two_threads(run_cases):
    for row in run_cases(["ncnn"], ["mobilenet_v2"], threads=(1, 2), max_time_s=1.0):
        ok_fp32(row)
        assert row["threads_ok"] is True, (row["threads"], row["cpu_utilization"])
