"""ONNX Runtime: fp32 on CPU, int8 variants from its own quantizer, the throughput scenario, honest refusals."""

from __future__ import annotations

import json

import pytest


def test_int8_variant_is_quantized_recorded_and_cached(run_cases):
    rows = {r["precision"]: r for r in run_cases(["onnxruntime"], ["tiny_cnn"], precisions=["fp32", "int8"])}
    fp32, int8 = rows["fp32"], rows["int8"]
    assert fp32["status"] == int8["status"] == "ok"
    assert fp32["precision_used"] == "fp32" and fp32["converter"] is None and fp32["accuracy_ok"] is True
    assert int8["precision_used"] == "int8" and int8["converter"] == "onnxruntime.quantization"
    assert json.loads(int8["conversion_options"])["format"] == "QDQ"
    assert json.loads(int8["runner_facts"])["model_nodes"]["DequantizeLinear"] > 0
    assert int8["accuracy_ok"] is True and 0.95 <= int8["cosine"] < 1.0  # really quantized, still close
    again = run_cases(["onnxruntime"], ["tiny_cnn"], precisions=["int8"])[0]
    assert again["conversion_cached"] is True


def test_throughput_runs_one_request_per_thread(run_cases):
    row = run_cases(["onnxruntime"], ["tiny_cnn"], threads=[2], scenarios=["throughput"])[0]
    facts = json.loads(row["runner_facts"])
    assert row["status"] == "ok" and row["items_per_iteration"] == 2 and facts["concurrent_requests"] == 2
    assert facts["options"]["intra_op_num_threads"] == 1 and row["threads_used"] == 2
    assert row["threads_ok"] is True and row["accuracy_ok"] is True and row["throughput_per_s"] > 0


def test_fp16_on_cpu_and_cuda_without_a_gpu_are_rows_with_reasons(run_cases):
    rows = run_cases(["onnxruntime"], ["tiny_mlp"], precisions=["fp16"])
    assert rows[0]["status"] == "unsupported" and "fp16 runs on cuda" in rows[0]["error"]


@pytest.mark.slow
def test_int8_costs_recognition_accuracy_and_is_flagged(run_cases):
    """The point of checking outputs: PP-OCRv4 rec quantized with default static settings reads far worse."""
    rows = {r["precision"]: r for r in run_cases(["onnxruntime"], ["ppocr_v4_rec"], precisions=["fp32", "int8"])}
    assert rows["fp32"]["task_metric"] == "exact_match" and rows["fp32"]["task_value"] >= 0.9
    assert rows["int8"]["status"] == "ok" and rows["int8"]["task_value"] < rows["fp32"]["task_value"]


def test_cuda_without_onnxruntime_gpu_is_unavailable_with_the_reason(run_cases):
    row = run_cases(["onnxruntime"], ["tiny_mlp"], devices=["cuda"])[0]
    assert row["status"] == "unavailable"
    assert "onnxruntime-gpu" in row["error"] or "NVIDIA driver" in row["error"]
