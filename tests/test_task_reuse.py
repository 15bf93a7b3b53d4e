"""Task accuracy is scored once per distinct output set: a case whose parity outputs are bit-identical to an
earlier case's (same model, runtime and version, precision, device, batch) reuses that score and names the case;
other outputs are scored again. Real ONNX Runtime, real PP-OCR classifier and its labelled crops."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow
MODEL = "ppocr_mobile_v2_cls"


def test_the_same_outputs_reuse_the_score_and_say_whose_it_is(run_cases):
    first = run_cases(["onnxruntime"], [MODEL])[0]
    again = run_cases(["onnxruntime"], [MODEL])[0]
    assert first["status"] == again["status"] == "ok"
    assert again["task_reused_from"] == first["case_key"]  # scored by the first run (or an earlier one)
    assert again["task_value"] == first["task_value"] and again["task_n"] == first["task_n"]
    assert json.loads(again["task_metrics"]) == json.loads(first["task_metrics"])
    assert again["task_ms"] < first["task_ms"] or first["task_reused_from"]


def test_other_outputs_are_scored_again(run_cases):
    fp32, int8 = sorted(run_cases(["onnxruntime"], [MODEL], precisions=["fp32", "int8"]),
                        key=lambda r: r["precision"] != "fp32")
    assert int8["status"] == "ok" and int8["task_reused_from"] in ("", int8["case_key"])
    assert int8["task_reused_from"] != fp32["case_key"]
