"""TensorRT runner: what can be checked without a GPU runs everywhere (availability reasons, unavailable rows,
/proc detection, reading the engine inspector and parser errors); real engines run where tensorrt and an NVIDIA GPU
are present, and are skipped with that reason elsewhere.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import json
import subprocess
import sys

import pytest

from bench import listing
from bench.case import Case, ModelRef
from bench.models.zoo import load_manifest
from bench.nvidia import cuda_device, gpu_models
from bench.plan import Overrides, plan
from bench.registry import Registry
from bench.results.uri import Location
from bench.run import RunInfo, execute
from bench.runners.tensorrt import SPEC, strongly_typed_only
from bench.runners.tensorrt.layers import layer_precisions, parser_failure, precision_problem
from bench.suite import Suite, TimingConfig

HAS_GPU_STACK = importlib.util.find_spec("tensorrt") is not None and SPEC.available().ok
needs_gpu = pytest.mark.skipif(not HAS_GPU_STACK, reason="needs tensorrt and an NVIDIA GPU")


def facts(row: dict) -> dict:
    return json.loads(row["runner_facts"])


def run_suite(cache_dir, tmp_path, **fields) -> list[dict]:
    suite = Suite(**{"name": "gpu-test", "runners": ["tensorrt"], "devices": ["cuda"],
                     "timing": TimingConfig(warmup_time_s=0.05, min_time_s=0.2, max_time_s=1.0), **fields})
    reg = Registry.default()
    planned = plan(suite, "test", Overrides(), reg, cache_dir)
    return execute(planned, Location.resolve(tmp_path / "results"), RunInfo.new("test", []), reg, stream=io.StringIO())


# ---- everywhere ----------------------------------------------------------------------------------------------


def test_spec_imports_nothing_from_tensorrt_or_cuda():
    code = ("import sys; from bench.runners.tensorrt import SPEC; SPEC.available(); SPEC.detect_devices(); "
            "SPEC.version(); print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorrt', 'cuda')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_list_runners_says_what_is_missing():
    [line] = [line for line in listing.runners().splitlines() if line.startswith("tensorrt ")]
    available = SPEC.available()
    if available.ok:
        assert "available" in line and "cuda" in line
    else:
        assert "not installed" in line and available.reason in line, line
    if importlib.util.find_spec("tensorrt") is None:
        assert available.reason.startswith("not installed: tensorrt")
        assert "NVIDIA's own package index" in available.reason


def test_a_planned_case_without_the_stack_is_an_unavailable_row(cache_dir, tmp_path):
    available = SPEC.available()
    if available.ok:
        pytest.skip("this machine can run tensorrt")
    [row] = run_suite(cache_dir, tmp_path, models=["tiny_cnn"])
    assert row["status"] == "unavailable" and row["error"] == available.reason
    assert row["runner"] == "tensorrt" and row["device"] == "cuda" and row.get("median_ms") is None


def test_threads_and_strong_typing_are_declared_limits():
    case = Case(model=ModelRef("m", "", "0" * 64, ()), runner="tensorrt", implementation=SPEC.implementation,
                device="cuda", precision="fp32", batch=1, threads=2, scenario="latency")
    assert "one host thread" in SPEC.unsupported_reason(case)
    assert SPEC.unsupported_reason(dataclasses.replace(case, threads=1)) is None
    assert strongly_typed_only("11.4.0.106") and not strongly_typed_only("10.13.0.35")
    assert not strongly_typed_only(None) and not strongly_typed_only("dev")


def test_nvidia_devices_are_read_from_proc(tmp_path):
    assert cuda_device(tmp_path).reason == f"no NVIDIA driver ({tmp_path / 'version'} is absent)"
    (tmp_path / "version").write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  570.86.15\n")
    assert cuda_device(tmp_path).reason.startswith("no NVIDIA GPU")
    gpu = tmp_path / "gpus" / "0000:01:00.0"
    gpu.mkdir(parents=True)
    (gpu / "information").write_text("Model: \t\t NVIDIA H100 80GB HBM3\nIRQ:   \t\t 42\nBus Location: \t 01:00.0\n")
    assert cuda_device(tmp_path).ok and gpu_models(tmp_path) == ["NVIDIA H100 80GB HBM3"]


# Shaped like the engine inspector's JSON at ProfilingVerbosity.DETAILED (TensorRT developer guide, "Engine Inspector").
INSPECTOR = {"Layers": [
    {"Name": "conv1 + relu1", "LayerType": "CaskConvolution",
     "Outputs": [{"Name": "a", "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}]},
    {"Name": "reformat", "LayerType": "Reformat",
     "Outputs": [{"Name": "b", "Format/Datatype": "Row major linear FP32"}]},
    {"Name": "fc", "LayerType": "CaskGemm", "Outputs": [{"Name": "c", "Format/Datatype": "Row major linear FP32"}]},
    {"Name": "shape", "LayerType": "Shuffle", "Outputs": [{"Name": "d", "Format/Datatype": "Row major linear Int64"}]},
    {"Name": "q", "LayerType": "Scale", "Outputs": [{"Name": "e", "Format/Datatype": "Row major linear UInt8"}]},
], "Bindings": ["input", "output"]}


def test_layer_precisions_come_from_the_inspector_and_judge_the_engine():
    counts = layer_precisions(INSPECTOR)
    assert counts == {"fp16": 1, "fp32": 1, "int64": 1, "uint8": 1}  # the Reformat layer is not counted
    assert precision_problem("fp16", counts) is None
    assert "reduced-precision layers" in precision_problem("fp32", counts)
    assert "no bf16 kernel" in precision_problem("bf16", counts)
    assert precision_problem("fp32", {"fp32": 3, "int64": 1}) is None
    assert "DETAILED" in precision_problem("fp32", layer_precisions({"Layers": ["conv1", "fc"]}))


def test_parser_errors_become_one_message_with_the_ops():
    message, ops = parser_failure([
        {"node": "If_0", "op": "If", "code": "UNSUPPORTED_NODE", "desc": "No importer registered for op: If"},
        {"node": "", "op": "", "code": "MODEL_DESERIALIZE_FAILED", "desc": "bad file"},
        {"node": "If_1", "op": "If", "code": "UNSUPPORTED_NODE", "desc": "again"},
    ])
    assert ops == ["If"]
    assert message.startswith("TensorRT ONNX parser: node 'If_0' (op If): UNSUPPORTED_NODE: No importer")
    assert "MODEL_DESERIALIZE_FAILED: bad file" in message


# ---- with tensorrt and an NVIDIA GPU --------------------------------------------------------------------------


def ok_row(row: dict, precision: str) -> dict:
    assert row["status"] == "ok", row.get("error") or row.get("stderr_tail")
    assert row["precision_used"] == precision and row["accuracy_ok"] is True, (row["accuracy_reason"], row["cosine"])
    assert row["converter"] == "tensorrt" and row["threads_ok"] is True
    f = facts(row)
    assert f["options"]["build"]["flags"]["TF32"] is False
    style = f["trtexec_style"]
    assert style["iterations"] == 100 and 0 < style["gpu_compute"]["median"] <= style["host_latency"]["median"]
    return f


@needs_gpu
def test_tiny_cnn_fp32_and_fp16_engines_match_then_hit_the_cache(cache_dir, tmp_path):
    rows = {r["precision"]: r for r in run_suite(cache_dir, tmp_path, models=["tiny_cnn"],
                                                 precisions=["fp32", "fp16"])}
    f32 = ok_row(rows["fp32"], "fp32")
    assert set(f32["layer_precisions"]) <= {"fp32", "int32", "int64", "bool"}, f32["layer_precisions"]
    assert rows["fp32"]["cosine"] >= 0.9999
    f16 = ok_row(rows["fp16"], "fp16")
    assert f16["layer_precisions"].get("fp16", 0) > 0
    again = run_suite(cache_dir, tmp_path / "again", models=["tiny_cnn"])[0]
    assert again["status"] == "ok" and again["conversion_cached"] is True


@needs_gpu
def test_silero_vad_builds_or_names_the_op(cache_dir, tmp_path):
    if "silero_vad" not in load_manifest():
        pytest.skip("model silero_vad not in the zoo yet")
    row = run_suite(cache_dir, tmp_path, models=["silero_vad"])[0]
    assert row["status"] in ("ok", "conversion_failed", "unsupported"), (row["status"], row.get("error"))
    if row["status"] == "ok":
        ok_row(row, "fp32")


@needs_gpu
@pytest.mark.slow
def test_mobilenet_v2_at_batch_8(cache_dir, tmp_path):
    row = run_suite(cache_dir, tmp_path, models=["mobilenet_v2"], batch_sizes=[8])[0]
    f = ok_row(row, "fp32")
    assert f["options"]["build"]["profile"]["input"] == [[8, 3, 224, 224]] * 3
