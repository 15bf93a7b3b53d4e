"""PyTorch runner: onnx2torch conversion and eager PyTorch in real worker processes, checked against ORT fp32.

What it pins down: fp32 rows match the reference with every fp32-math switch read back as "ieee" (no TF32, no
implicit bf16), one thread is one thread, bf16 runs only where the CPU has it natively and is read back from the
module, a model onnx2torch cannot convert is a conversion_failed row naming the op, and cuda without a GPU or
with a CPU-only torch is an unavailable row that says which.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.cpu import Cpu
from bench.models.zoo import load_manifest
from bench.runners.pytorch import SPEC

pytestmark = pytest.mark.skipif(not SPEC.available().ok, reason=f"pytorch unavailable: {SPEC.available().reason}")

HERE = Cpu.here()
NATIVE_BF16 = SPEC.cpu_precision("bf16", HERE).ok  # from this CPU's flags, as the planner decides


def need(*models: str) -> None:
    zoo = load_manifest()
    for name in models:
        if name not in zoo:
            pytest.skip(f"model {name} not in the zoo yet")


def facts(row: dict) -> dict:
    return json.loads(row["runner_facts"])


def ok_row(row: dict, precision: str) -> None:
    assert row["status"] == "ok", row.get("error") or row.get("stderr_tail")
    assert row["precision_used"] == precision
    assert row["accuracy_ok"] is True, (row["model"], row["accuracy_reason"], row["cosine"], row["normalized_error"])
    assert row["threads_used"] == row["threads"] and row["threads_ok"] is True, row["cpu_utilization"]
    options = facts(row)["options"]
    assert options["num_interop_threads"] == 1 and options["inference_mode"] is True
    assert set(options["fp32_math"].values()) <= {"ieee", False, "highest"}, options["fp32_math"]
    assert row["converter"] == "onnx2torch" and row["runner_version"] == facts(row)["runtime_version"]
    assert row["timed_region"].startswith("module(*inputs)")


def test_spec_imports_nothing_from_torch():
    code = ("import sys; from bench.runners.pytorch import SPEC; from bench.case import Case; SPEC.available(); "
            "SPEC.detect_devices(); SPEC.version(); print(sorted({'torch', 'onnx2torch'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_tiny_cnn_fp32_matches_then_hits_the_cache_and_bf16_is_native_or_refused(run_cases):
    rows = {r["precision"]: r for r in run_cases(["pytorch"], ["tiny_cnn"], precisions=["fp32", "bf16", "fp16"])}
    fp32 = rows["fp32"]
    ok_row(fp32, "fp32")
    assert fp32["cosine"] >= 0.9999 and facts(fp32)["parameter_dtypes"] == {"torch.float32": 7, "torch.int64": 1}
    report = facts(fp32)["conversion_report"]
    assert report["onnx_ops"]["Conv"] == 1 and report["torch_modules"]["Conv2d"] == 1, report
    assert json.loads(fp32["conversion_options"])["torch"] == facts(fp32)["runtime_version"]

    for precision, dtype in (("bf16", "torch.bfloat16"), ("fp16", "torch.float16")):
        row, declared = rows[precision], SPEC.cpu_precision(precision, HERE)
        if declared.ok:
            ok_row(row, precision)
            assert row["precision_feature"] == declared.feature and "native" in declared.feature
            assert row["conversion_cached"] is True  # the conversion check does not depend on the precision
            assert facts(row)["parameter_dtypes"][dtype] == 7 and 0.99 <= row["cosine"] < 1.0
        else:
            assert row["status"] == "unsupported" and row["error"] == declared.reason, row["error"]
            assert f"no native {precision}" in row["error"]


def test_the_worker_refuses_a_precision_this_cpu_lacks_when_the_plan_is_for_another(run_cases):
    lacking = [p for p in ("bf16", "fp16") if not SPEC.cpu_precision(p, HERE).ok]
    if not lacking:
        pytest.skip(f"{HERE.label()} computes bf16 and fp16 natively: nothing to refuse")
    everything = Cpu(HERE.arch, HERE.flags | {"avx512_bf16", "avx512_fp16", "bf16", "asimdhp"})
    for row in run_cases(["pytorch"], ["tiny_cnn"], precisions=lacking, plan_cpu=everything):
        assert row["status"] == "unsupported", (row["status"], row.get("error"))
        assert f"no native {row['precision']}" in row["error"] and row.get("median_ms") is None


def test_model_onnx2torch_cannot_convert_is_a_conversion_failed_row(run_cases):
    need("silero_vad")
    row = run_cases(["pytorch"], ["silero_vad"])[0]
    assert row["status"] == "conversion_failed", (row["status"], row.get("error"))
    assert "(op If)" in row["error"] and row["error"].endswith("(ops: If)"), row["error"]
    assert "the ONNX -> PyTorch bridge, not the runtime" in row["error"], row["error"]  # onnx2torch's, not torch's
    assert row["source_path"] == "ONNX -> onnx2torch -> eager"
    assert row.get("median_ms") is None


def test_cuda_without_a_usable_gpu_is_an_unavailable_row(run_cases):
    cuda = SPEC.detect_devices()["cuda"]
    if cuda.ok:
        pytest.skip("this machine has a GPU and a CUDA build of torch")
    [row] = run_cases(["pytorch"], ["tiny_cnn"], devices=["cuda"])
    assert row["status"] == "unavailable" and row["error"] == f"device 'cuda': {cuda.reason}"
    assert "CPU-only build" in cuda.reason or "NVIDIA" in cuda.reason


@pytest.mark.slow
def test_paddle_exported_model_with_constant_node_weights_converts_and_matches(run_cases):
    need("ppocr_mobile_v2_cls")
    row = run_cases(["pytorch"], ["ppocr_mobile_v2_cls"])[0]
    # onnx2torch reads a Conv's weight only from initializers: without the move it failed at the first Conv
    ok_row(row, "fp32")
    assert facts(row)["conversion_report"]["constants_moved_to_initializers"] > 0
    assert json.loads(row["conversion_options"])["prepare"].startswith("tensor-valued Constant nodes")


@pytest.mark.slow
def test_mobilenet_v2_fp32_matches_the_reference(run_cases):
    need("mobilenet_v2")
    row = run_cases(["pytorch"], ["mobilenet_v2"])[0]
    ok_row(row, "fp32")
    assert row["cosine"] >= 0.9999 and row["top1_agreement"] == 1.0, (row["cosine"], row["top1_agreement"])


@pytest.mark.slow
def test_transformer_that_does_not_run_through_in_bf16_is_unsupported(run_cases):
    need("minilm_l6_encoder")
    if not NATIVE_BF16:
        pytest.skip("this CPU has no native bf16")
    row = run_cases(["pytorch"], ["minilm_l6_encoder"], precisions=["bf16"])[0]
    # onnx2torch keeps the attention mask's Cast(to=FLOAT) in fp32; it meets bf16 activations in a MatMul
    assert row["status"] == "unsupported" and "does not run in bf16" in row["error"], (row["status"], row["error"])


@pytest.mark.skipif(not SPEC.detect_devices()["cuda"].ok, reason="needs a CUDA build of torch and an NVIDIA GPU")
def test_cuda_fp32_has_tf32_off_and_fp16_runs_in_fp16(run_cases):
    rows = {r["precision"]: r for r in run_cases(["pytorch"], ["tiny_cnn"], devices=["cuda"],
                                                 precisions=["fp32", "fp16"], max_time_s=1.0)}
    ok_row(rows["fp32"], "fp32")
    fp32_math = facts(rows["fp32"])["options"]["fp32_math"]
    assert fp32_math.get("cudnn.conv.fp32_precision", "ieee") == "ieee"  # PyTorch's default there is "tf32"
    assert fp32_math.get("cudnn.allow_tf32", False) is False
    ok_row(rows["fp16"], "fp16")
    assert facts(rows["fp16"])["options"]["device"] != "cpu"
