"""MNN runner: real conversions with the wheel's compiled converter and real MNN inference in worker processes,
checked against ORT fp32."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from onnx import TensorProto, helper
from runner_checks import int8_checked

from bench.cache import sha256_file
from bench.cpu import REFERENCE_CPUS, Cpu
from bench.launcher import run_worker
from bench.models.zoo import load_manifest, model_ref
from bench.plan import Overrides, plan
from bench.registry import Registry
from bench.results import store
from bench.results.uri import Location
from bench.runners.mnn import SPEC
from bench.suite import Suite

pytestmark = pytest.mark.skipif(not SPEC.available().ok, reason=f"MNN runner unavailable: {SPEC.available().reason}")
HERE = Cpu.here()
FP16 = SPEC.cpu_precision("fp16", HERE)  # the planner's answer for this CPU, from its flags



def ran(row: dict) -> None:
    assert row["status"] == "ok", row.get("error") or row.get("stderr_tail")
    assert row["median_ms"] > 0 and row["threads_used"] == row["threads"]
    assert row["threads_ok"] is True, (row["model"], row["threads"], row["cpu_utilization"])
    assert row["timed_region"].startswith("Module.onForward")
    assert row["converter_version"] == metadata.version("MNN")
    options = json.loads(row["conversion_options"])
    options = options.get("source_conversion", options)  # int8: the fp32 conversion it was quantized from
    assert options["fp16_weights"] is False
    assert options["weightQuantBits"] == (8 if row["precision"] == "int8_weights" else 0)
    assert options["useGeluApproximation"] == 0  # the converter's default swaps exact GELU for tanh's
    facts = json.loads(row["runner_facts"])
    assert facts["options"]["numThread"] == row["threads"]


def ok_fp32(row: dict) -> None:
    """An fp32 row that ran, matched the reference and recorded how it was converted and run."""
    ran(row)
    assert row["accuracy_ok"] is True and row["cosine"] >= 0.9999, (row["model"], row["accuracy_reason"], row["cosine"])
    assert row["precision_used"] == "fp32"
    assert json.loads(row["runner_facts"])["options"]["precision"] == "high"


def test_tiny_models_match_reference_then_hit_the_cache(run_cases):
    first = {r["model"]: r for r in run_cases(["mnn"], ["tiny_cnn", "tiny_mlp"])}
    for row in first.values():
        ok_fp32(row)
    again = run_cases(["mnn"], ["tiny_cnn"])[0]
    ok_fp32(again)
    assert again["conversion_cached"] is True
    assert again["convert_ms"] < first["tiny_cnn"]["convert_ms"] or first["tiny_cnn"]["conversion_cached"]


@pytest.mark.skipif(FP16.ok, reason="this CPU has fp16 arithmetic: the unsupported answer is for others")
def test_fp16_without_fp16_arithmetic_is_declared_unsupported_not_run_as_fp32(run_cases):
    rows = {r["precision"]: r for r in run_cases(["mnn"], ["tiny_cnn"], precisions=["fp16", "fp32"])}
    assert rows["fp16"]["status"] == "unsupported" and rows["fp16"]["error"] == FP16.reason
    assert "fp16" in rows["fp16"]["error"] and "fp32 kernels" in rows["fp16"]["error"]
    ok_fp32(rows["fp32"])


@pytest.mark.skipif(FP16.ok, reason="this CPU has fp16 arithmetic: nothing for the worker to refuse")
def test_the_worker_refuses_fp16_when_the_plan_is_for_an_fp16_cpu(run_cases):
    row = run_cases(["mnn"], ["tiny_cnn"], precisions=["fp16"], plan_cpu=REFERENCE_CPUS["arm-v8.2-fp16"])[0]
    assert row["status"] == "unsupported" and row["error"] == FP16.reason and row.get("median_ms") is None


@pytest.mark.skipif(not FP16.ok, reason="needs a CPU with ARMv8.2 FP16 arithmetic (fphp and asimdhp)")
def test_fp16_runs_in_low_precision_where_the_cpu_has_it(run_cases):
    row = run_cases(["mnn"], ["tiny_cnn"], precisions=["fp16"])[0]
    ran(row)
    assert row["precision_used"] == "fp16" and row["accuracy_ok"] is True
    assert row["precision_feature"] == FP16.feature
    assert json.loads(row["runner_facts"])["options"]["precision"] == "low"


# What the fp16 decision rests on: on a CPU without fp16 arithmetic, MNN's "low" precision gives bit-identical
# outputs to "high". If a new MNN starts computing in fp16 or bf16 here, this fails and the declaration must change.
LOW_EQUALS_HIGH = """
import sys
import numpy as np
import MNN.expr as F
import MNN.nn as nn

outputs = {}
for precision in ("high", "low"):
    runtime = nn.create_runtime_manager(({"backend": "CPU", "numThread": 1, "precision": precision},))
    module = nn.load_module_from_file(sys.argv[1], ["input"], ["logits"], runtime_manager=runtime)
    x = F.placeholder([1, 3, 32, 32], F.NCHW, F.float)
    x.write(np.random.RandomState(0).uniform(-2, 2, (1, 3, 32, 32)).astype(np.float32))
    outputs[precision] = np.array(module.onForward([x])[0].read(), copy=True)
sys.exit(0 if np.array_equal(outputs["high"], outputs["low"]) else 3)
"""


@pytest.mark.skipif(FP16.ok, reason="this CPU has fp16 arithmetic")
def test_low_precision_is_bit_identical_to_high_on_this_cpu(cache_dir, tmp_path):
    from bench.runners.mnn.runner import CONVERT_SCRIPT, CONVERTER_ARGS

    onnx_path = model_ref(load_manifest()["tiny_cnn"], cache_dir).path
    mnn_path = tmp_path / "tiny_cnn.mnn"
    subprocess.run([sys.executable, "-c", CONVERT_SCRIPT, onnx_path, str(mnn_path), *CONVERTER_ARGS],
                   check=True, capture_output=True, timeout=120)
    done = subprocess.run([sys.executable, "-c", LOW_EQUALS_HIGH, str(mnn_path)], capture_output=True, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])


def test_the_converter_process_cannot_load_mnns_python_tools(tmp_path, save_graph):
    """The telemetry lives in MNN/tools/utils/log.py; the converter process must neither load it nor be able to."""
    from bench.runners.mnn.runner import CONVERT_SCRIPT, CONVERTER_ARGS

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    src = save_graph(tmp_path / "relu.onnx", [helper.make_node("Relu", ["x"], ["y"])], [x], [y])
    dst = tmp_path / "relu.mnn"
    check = "\nloaded = [m for m, v in sys.modules.items() if v is not None and m.split('.')[0] in ('MNN', 'socket')]" \
        "\nassert not loaded, loaded"
    done = subprocess.run([sys.executable, "-c", CONVERT_SCRIPT + check, str(src), str(dst), *CONVERTER_ARGS],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert dst.stat().st_size > 0
    blocked = CONVERT_SCRIPT.split("import _tools")[0] + "import MNN.tools.utils.log"
    refused = subprocess.run([sys.executable, "-c", blocked, "a", "b"], capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "No module named 'MNN" in refused.stderr, refused.stderr


# ---- models that cannot convert --------------------------------------------------------------------------



def tiny_cnn_case(cache_dir: Path):
    suite = Suite(name="mnn-bad-file", models=["tiny_cnn"], runners=["mnn"], timeout_s=120)
    return plan(suite, "test", Overrides(), Registry.default(), cache_dir)[0].case


@pytest.mark.parametrize("content", [b"\x08\x07 this is not a protobuf \xff\xfe", b"", b"not a model\n"])
def test_a_file_that_is_not_onnx_is_a_conversion_failure_not_a_crash(cache_dir, tmp_path, content):
    # The planner refuses such a file from the command line; here it reaches the converter (a zoo entry gone
    # bad, a plugin's own model): _tools.mnnconvert returns True even then, so only the missing file tells.
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)
    case = tiny_cnn_case(cache_dir)
    case = dataclasses.replace(case, model=dataclasses.replace(case.model, name="bad", path=str(bad),
                                                               sha256=sha256_file(bad)))
    outcome = run_worker(case)
    assert outcome.status == "conversion_failed", (outcome.error, outcome.stderr_tail)
    assert outcome.error.startswith("MNNConvert wrote no model") and "onnx" in outcome.error.lower()
    assert not list((cache_dir / "artifacts" / "mnn").glob(".tmp-*")), "a failed conversion left a temp folder"




def test_an_op_mnn_lacks_is_a_conversion_failure_naming_it(run_user_model, tmp_path, save_graph):
    f = TensorProto.FLOAT
    path = save_graph(tmp_path / "fancy.onnx", [helper.make_node("MyFancyOp", ["x"], ["y"])],
                      [helper.make_tensor_value_info("x", f, [1, 8])], [helper.make_tensor_value_info("y", f, [1, 8])])
    row = run_user_model("mnn", path)
    assert row["status"] == "conversion_failed"
    assert "Not Support" in row["error"] and "ops: MyFancyOp" in row["error"]


def test_a_refused_conversion_is_cached_for_the_next_case_and_run_until_retry_failed(
        bench_cli, cache_dir, tmp_path, save_graph):
    # An op of its own, so no other test of this session has recorded this model's failure first.
    f = TensorProto.FLOAT
    path = save_graph(tmp_path / "refused.onnx", [helper.make_node("OpForTheFailureCache", ["x"], ["y"])],
                      [helper.make_tensor_value_info("x", f, [1, 8])], [helper.make_tensor_value_info("y", f, [1, 8])])
    suite = tmp_path / "suite.toml"
    suite.write_text('name = "refused"\nmodels = ["tiny_cnn"]\nrunners = ["mnn"]\nthreads = [1, 2]\n')

    def run(*args: str) -> list[dict]:
        results = tmp_path / f"results-{len(list(tmp_path.glob('results-*')))}"
        # each case converts in its own worker: what a case says of a failure an earlier one recorded
        # (tests/test_ahead.py: the pass ahead of timing records it before either case)
        done = bench_cli("run", "--suite", str(suite), "--model", str(path), "--results", str(results),
                         "--no-convert-ahead", *args)
        assert done.returncode == 0, done.stderr
        return sorted(store.read_cases(Location.resolve(results)).to_pylist(), key=lambda r: r["threads"])

    first, second = run()  # two thread counts, one conversion: the second case reuses the first's failure
    records = [r for r in (cache_dir / "artifacts" / "mnn").glob("*.failed.json") if "ForTheFailure" in r.read_text()]
    assert [json.loads(r.read_text())["message"] for r in records] == [first["error"].split(" (ops:")[0]]
    for row in (first, second):
        assert row["status"] == "conversion_failed" and "ops: OpForTheFailureCache" in row["error"], row["error"]
    assert "cached failure" not in first["error"]
    assert second["error"].startswith(first["error"].split(" (ops:")[0] + " (cached failure from ")
    assert f"delete <cache>/artifacts/mnn/{records[0].name} or run with --retry-failed" in second["error"]
    again = run("--threads", "1")[0]  # the next run too
    assert "(cached failure from " in again["error"]
    retried = run("--threads", "1", "--retry-failed")[0]
    assert retried["status"] == "conversion_failed" and "cached failure" not in retried["error"]


# ---- real trained and built models (slow) -----------------------------------------------------------------


@pytest.mark.slow
def test_ppocr_models_match_reference(run_cases):
    models = ["ppocr_v4_det", "ppocr_v4_rec", "ppocr_mobile_v2_cls"]
    for row in run_cases(["mnn"], models, max_time_s=2.0):
        ok_fp32(row)


@pytest.mark.slow
def test_mobilenet_v2_matches_reference_on_one_and_two_threads(run_cases):
    for row in run_cases(["mnn"], ["mobilenet_v2"], threads=(1, 2), max_time_s=1.0):
        ok_fp32(row)


@pytest.mark.slow
def test_silero_vad_runs_its_control_flow_through_the_module_api(run_cases):
    # If and LSTM become subgraphs that MNN's Session API refuses; the Module API runs them, and they match.
    models = ["silero_vad", "silero_vad_ifless"]
    for row in run_cases(["mnn"], models):
        ok_fp32(row)


@pytest.mark.slow
def test_silero_vad_sequence_variant_converts_but_is_flagged_wrong(run_user_model, cache_dir, tmp_path):
    # Known MNN 3.6 fault: this variant converts and runs, and its LSTM state output `hn` comes back with
    # wrong values (and shape [1,128,1,1] for ONNX's [1,?,128]). The row must keep its timing and say WRONG.
    from bench.models.fetch import wheel_member

    wheel = load_manifest()["silero_vad"].wheel
    member = wheel["member"].replace("silero_vad.onnx", "silero_vad_16k_sequence.onnx")
    path = tmp_path / "silero_vad_16k_sequence.onnx"
    path.write_bytes(wheel_member(wheel["package"], wheel["version"], member, cache_dir))
    row = run_user_model("mnn", path, "--shape", "input:1x576")
    ran(row)
    assert row["accuracy_ok"] is False and "tolerance" in row["accuracy_reason"], row["accuracy_reason"]
    assert json.loads(row["runner_facts"])["outputs_reshaped"] == {"hn": [[1, 128, 1, 1], [1, 1, 128]]}


# ---- int8: MNN's own post-training quantizer -----------------------------------------------------------------

def test_int8_is_quantized_read_back_from_the_file_and_close_to_fp32(run_cases):
    both = {(r["runner"], r["precision"]): r for r in run_cases(["mnn", "onnxruntime"], ["tiny_cnn"],
                                                                 precisions=["fp32", "int8"])}
    int8 = both["mnn", "int8"]
    ran(int8)
    assert int8["precision_used"] == "int8" and int8["precision_feature"] == SPEC.cpu_precision("int8", HERE).feature
    readback = json.loads(int8["runner_facts"])["int8_readback"]
    assert readback["int8_convolutions"] > 0 and readback["convolutions"] >= readback["int8_convolutions"]
    options = json.loads(int8["conversion_options"])
    assert int8["converter"].startswith("mnnquant") and options["feature_quantize_method"] == "EMA"
    assert int8["calibration_sha256"] == both["onnxruntime", "int8"]["calibration_sha256"]  # one set for all
    int8_checked(int8)
    assert json.loads(both["mnn", "fp32"]["runner_facts"])["int8_readback"] is None
    again = run_cases(["mnn"], ["tiny_cnn"], precisions=["int8"])[0]
    assert again["conversion_cached"] is True


def test_int8_weights_stores_int8_weights_computes_float_and_says_so(run_cases):
    row = run_cases(["mnn"], ["tiny_cnn"], precisions=["int8_weights"])[0]
    ran(row)
    facts = json.loads(row["runner_facts"])
    readback = facts["int8_readback"]  # from the converted file: int8 weights, float activations
    assert readback["int8_weight_convolutions"] == readback["convolutions"] > 0, readback
    assert readback["int8_convolutions"] == 0 and facts["compute_precision"].startswith("fp32")
    assert row["precision_used"] == "int8_weights" and row["calibration_sha256"] is None  # nothing calibrated
    assert row["precision_feature"] == SPEC.cpu_precision("int8_weights", HERE).feature
    assert row["cosine"] < 1.0 and row["parity_inputs"] > 0  # the weights really were rounded
    assert row["accuracy_ok"] is True or "outside int8_weights tolerance" in row["accuracy_reason"]
