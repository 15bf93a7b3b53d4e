"""OpenVINO runner: real OpenVINO inference in worker processes, checked against the ORT fp32 reference.

What it pins down: the precision asked is the precision read back from the compiled model; a precision the CPU
cannot do is an unsupported row (declared from the CPU's flags, and refused by the read-back when the declaration is
bypassed), never a bf16 row labelled fp16; the thread limit holds, the throughput scenario runs several requests
per timed call, models with ``If`` get static shapes or a clear row, and importing OpenVINO sends no telemetry.
Expectations come from the runner's own declaration over this CPU's flags (``SPEC.cpu_precision``), never from
the machine the tests were written on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from runner_checks import int8_checked

from bench.cpu import REFERENCE_CPUS, Cpu
from bench.results.uri import Location
from bench.runners.openvino import SPEC

pytestmark = pytest.mark.skipif(not SPEC.available().ok, reason=f"openvino unavailable: {SPEC.available().reason}")

HERE = Cpu.here()
HAS_BF16 = SPEC.cpu_precision("bf16", HERE).ok
OV_TYPES = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}


def facts(row: dict) -> dict:
    return json.loads(row["runner_facts"])


def ok_row(row: dict, precision: str) -> None:
    """A row that ran, reported the asked precision from the compiled model and matched the reference."""
    assert row["status"] == "ok", row.get("error") or row.get("stderr_tail")
    assert row["precision_used"] == precision
    assert facts(row)["options"]["read_back"]["inference_precision_hint"] == OV_TYPES[precision]
    assert row["accuracy_ok"] is True, (row["accuracy_reason"], row["cosine"], row["normalized_error"])
    assert row["threads_used"] == row["threads"]
    assert row["median_ms"] > 0 and row["convert_ms"] < 50  # reads ONNX directly: nothing to convert


def refused_by_read_back(row: dict, precision: str) -> None:
    """The hint read back as another precision: unsupported, both named, nothing timed."""
    assert row["status"] == "unsupported", (row["status"], row.get("error"))
    assert f"INFERENCE_PRECISION_HINT={OV_TYPES[precision]}" in row["error"], row["error"]
    assert "compiled model reports" in row["error"] and row.get("median_ms") is None


def ran_or_refused_by_read_back(row: dict, precision: str, tentative: bool) -> None:
    """Declared possible here: it ran in that precision, or (only where the flags could not tell) the read-back
    refused it."""
    if tentative and row["status"] == "unsupported":
        refused_by_read_back(row, precision)
        return
    ok_row(row, precision)
    assert row["cosine"] >= 0.99 and row["threads_ok"] is True
    assert facts(row)["runtime_node_precisions"].get(OV_TYPES[precision], 0) > 0  # some nodes really ran in it


def ok_fp32(row: dict) -> None:
    ok_row(row, "fp32")
    assert row["cosine"] >= 0.9999, row["cosine"]
    node_precisions = facts(row)["runtime_node_precisions"]
    assert "bf16" not in node_precisions and "f16" not in node_precisions, node_precisions


def test_spec_imports_nothing_from_openvino():
    code = "import sys, bench.registry; bench.registry.Registry.default(); print('openvino' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_precisions_are_read_back_or_declared_unsupported_and_no_telemetry(run_cases, tmp_path, monkeypatch):
    # A fresh HOME: a plain `import openvino` writes ~/intel/openvino_ga_cid and sends an event; the worker must not.
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    rows = {r["precision"]: r for r in run_cases(["openvino"], ["tiny_cnn"], precisions=["fp32", "bf16", "fp16"])}

    fp32 = rows["fp32"]
    ok_fp32(fp32)
    assert fp32["threads_ok"] is True, fp32["cpu_utilization"]
    assert fp32["runner_version"] == facts(fp32)["runtime_version"] and fp32["runner_version"][0].isdigit()
    read_back = facts(fp32)["options"]["read_back"]
    assert read_back["performance_hint"] == "LATENCY" and read_back["num_streams"] == 1
    assert read_back["inference_num_threads"] == 1 and fp32["items_per_iteration"] == 1
    assert facts(fp32)["options"]["asked"]["INFERENCE_PRECISION_HINT"] == "f32"
    assert fp32["timed_region"].startswith("latency: InferRequest.infer()")

    for row in rows.values():
        if row["status"] == "ok":
            assert facts(row)["openvino_telemetry_loaded"] is False
            assert facts(row)["telemetry"].startswith("blocked")
    assert not (home / "intel").exists(), sorted(p.name for p in (home / "intel").iterdir())

    assert fp32["precision_feature"] is None
    for precision in ("bf16", "fp16"):
        declared = SPEC.cpu_precision(precision, HERE)
        row = rows[precision]
        if declared.ok:
            assert row["precision_feature"] == declared.feature
            ran_or_refused_by_read_back(row, precision, declared.tentative)
        else:  # declared from the flags, before OpenVINO is asked: no row holds another precision's numbers
            assert row["status"] == "unsupported", row["status"]
            assert row["error"] == declared.reason
            assert row.get("median_ms") is None and row.get("precision_used") is None


# A CPU with every reduced precision OpenVINO knows: planning for it lets the worker's read-back decide on this one.
EVERYTHING = REFERENCE_CPUS["intel-xeon-sapphire-rapids"]


def test_a_substituted_precision_is_refused_by_the_read_back_when_the_declaration_is_bypassed(run_cases):
    rows = {r["precision"]: r for r in run_cases(["openvino"], ["tiny_cnn"], precisions=["bf16", "fp16"],
                                                  plan_cpu=EVERYTHING)}
    for precision, row in rows.items():
        declared = SPEC.cpu_precision(precision, HERE)
        if declared.ok:
            ran_or_refused_by_read_back(row, precision, declared.tentative)
        else:
            refused_by_read_back(row, precision)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="the throughput scenario needs 2 cores for 2 streams")
def test_throughput_runs_every_optimal_request_per_timed_call(run_cases):
    row = run_cases(["openvino"], ["tiny_cnn"], threads=[2], scenarios=["throughput"])[0]
    ok_fp32(row)
    read_back = facts(row)["options"]["read_back"]
    assert read_back["performance_hint"] == "THROUGHPUT"
    assert read_back["infer_requests_used"] == read_back["optimal_number_of_infer_requests"]
    assert row["items_per_iteration"] == row["batch"] * read_back["optimal_number_of_infer_requests"]
    assert row["items_per_iteration"] > row["batch"] and read_back["num_streams"] > 1
    assert row["throughput_per_s"] > 0 and row["threads_ok"] is True, row["cpu_utilization"]
    assert "AsyncInferQueue" in row["timed_region"]


@pytest.mark.slow
def test_mobilenet_v2_fp32_and_bf16(run_cases):
    rows = {r["precision"]: r for r in run_cases(["openvino"], ["mobilenet_v2"], precisions=["fp32", "bf16"])}
    ok_fp32(rows["fp32"])
    assert rows["fp32"]["threads_ok"] is True, rows["fp32"]["cpu_utilization"]
    if HAS_BF16:  # declared from this CPU's flags
        # Ran in bf16 for real (read back); whether it stays inside the bf16 tolerance is the row's finding.
        assert rows["bf16"]["status"] == "ok" and rows["bf16"]["precision_used"] == "bf16"
        assert rows["bf16"]["cosine"] >= 0.98, rows["bf16"]["cosine"]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["ppocr_mobile_v2_cls", "ppocr_v4_rec", "ppocr_v4_det"])
def test_ppocr_fp32_matches_reference(run_cases, model):
    row = run_cases(["openvino"], [model])[0]
    ok_fp32(row)
    assert row["threads_ok"] is True, row["cpu_utilization"]


@pytest.mark.slow
def test_silero_vad_gets_static_shapes_or_a_clear_row(run_cases):
    rows = {r["model"]: r for r in run_cases(["openvino"], ["silero_vad", "silero_vad_ifless"])}
    vad = rows["silero_vad"]
    if vad["status"] == "ok":
        ok_fp32(vad)
    else:  # OpenVINO 2026.4's ONNX frontend cannot convert its If, even with static shapes: say so, and which op
        assert vad["status"] == "conversion_failed", vad.get("error") or vad.get("stderr_tail")
        assert vad["error"].startswith("OpenVINO ONNX frontend") and "(ops: If)" in vad["error"], vad["error"]
    ifless = rows["silero_vad_ifless"]
    ok_fp32(ifless)  # static shapes, and the scalar sample-rate input bound as shape []
    options = facts(ifless)["options"]
    assert options["static_input_shapes"]["sr"] == [] and options["static_input_shapes"]["state"] == [2, 1, 128]


# ---- int8: NNCF post-training quantization ------------------------------------------------------------------

INT8 = SPEC.cpu_precision("int8", HERE)


def test_int8_is_quantized_by_nncf_reads_back_int8_kernels_and_hits_the_cache(run_cases):
    both = {(r["runner"], r["precision"]): r for r in run_cases(["openvino", "onnxruntime"], ["tiny_cnn"],
                                                                 precisions=["fp32", "int8"])}
    rows = {p: both["openvino", p] for p in ("fp32", "int8")}
    int8 = rows["int8"]
    assert int8["status"] == "ok", int8.get("error") or int8.get("stderr_tail")
    assert int8["precision_used"] == "int8" and int8["precision_feature"] == INT8.feature
    compute = facts(int8)["compute_layer_precisions"]
    assert compute.get("u8", 0) + compute.get("i8", 0) > 0, compute  # int8 kernels really ran
    assert facts(int8)["options"]["read_back"]["inference_precision_hint"] == "f32"  # the rest stays f32
    options = json.loads(int8["conversion_options"])
    assert int8["converter"] == "nncf" and int8["calibration_sha256"] == options["calibration_sha256"]
    assert (options["model_type"], options["preset"]) == (None, "PERFORMANCE")  # a CNN keeps NNCF's default
    assert int8["quant_recipe"] == options["recipe"] and "model_type default" in int8["quant_recipe"]
    assert int8["calibration_sha256"] == both["onnxruntime", "int8"]["calibration_sha256"]  # one set for all
    assert options["calibration_samples"] > 0 and options["openvino"] == int8["runner_version"]
    int8_checked(int8)
    assert facts(rows["fp32"])["compute_layer_precisions"].keys() <= {"f32"}
    again = run_cases(["openvino"], ["tiny_cnn"], precisions=["int8"])[0]
    assert again["conversion_cached"] is True and json.loads(again["conversion_options"]) == options


def tiny_transformer(save_graph, path, seq: int = 8, vocab: int = 50, dim: int = 16):
    """A BERT-shaped graph in miniature: word embeddings gathered by token id plus a token-type embedding gathered
    at constant ids (BERT's /embeddings/Gather_1, the op NNCF's default propagation trips on), LayerNormalization,
    one attention head (Softmax over a scaled MatMul of queries and keys) and a linear out."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.RandomState(31)
    weights = []

    def weight(name: str, *shape: int, values=None):
        array = (rng.random_sample(shape).astype(np.float32) - 0.5) * 0.5 if values is None else values
        weights.append(numpy_helper.from_array(array, name))
        return name

    node = helper.make_node
    nodes = [
        node("Gather", [weight("words", vocab, dim), "input_ids"], ["words_out"]),
        node("Gather", [weight("types", 2, dim), weight("type_ids", values=np.zeros((1, seq), np.int64))],
             ["types_out"]),
        node("Add", ["words_out", "types_out"], ["embedded"]),
        node("LayerNormalization", ["embedded", weight("gamma", values=np.ones(dim, np.float32)),
                                    weight("beta", values=np.zeros(dim, np.float32))], ["x"], axis=-1),
        *(node("MatMul", ["x", weight(f"w_{n}", dim, dim)], [n]) for n in "qkv"),
        node("Transpose", ["k"], ["k_t"], perm=[0, 2, 1]),
        node("MatMul", ["q", "k_t"], ["scores"]),
        node("Div", ["scores", weight("scale", values=np.array(dim ** 0.5, np.float32))], ["scaled"]),
        node("Softmax", ["scaled"], ["probs"], axis=-1),
        node("MatMul", ["probs", "v"], ["context"]),
        node("Add", ["context", "x"], ["residual"]),
        node("MatMul", ["residual", weight("w_out", dim, dim)], ["y"]),
    ]
    return save_graph(path, nodes, [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, seq])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, seq, dim])], weights)


def test_the_recipe_rule_reads_attention_from_the_graph(tmp_path, save_graph, cache_dir):
    """Issue 31's rule, stated on the row: attention (Softmax over a MatMul of two activations) -> NNCF's transformer
    scheme; a convolutional net, or a Softmax over a weight MatMul (a classifier head), keeps NNCF's default."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from bench.models.zoo import load_manifest, materialize
    from bench.runners.openvino.recipe import recipe_for

    transformer = recipe_for(tiny_transformer(save_graph, tmp_path / "bert.onnx"))
    assert (transformer.model_type, transformer.preset) == ("TRANSFORMER", "MIXED")
    assert "model_type TRANSFORMER (attention" in transformer.describe(16)
    cnn = recipe_for(materialize(load_manifest()["tiny_cnn"], cache_dir))
    assert (cnn.model_type, cnn.preset) == (None, "PERFORMANCE") and "model_type default" in cnn.describe(16)
    head = save_graph(tmp_path / "head.onnx", [helper.make_node("MatMul", ["x", "w"], ["logits"]),
                                                helper.make_node("Softmax", ["logits"], ["p"], axis=-1)],
                      [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                      [helper.make_tensor_value_info("p", TensorProto.FLOAT, [1, 4])],
                      [numpy_helper.from_array(np.ones((8, 4), np.float32), "w")])
    assert recipe_for(head).model_type is None


def test_a_transformer_gets_nncfs_transformer_type_and_quantizes(tmp_path, save_graph, run_user_model):
    """NNCF's default fails on BERT-shaped graphs (KeyError in quantizer propagation at the constant Gather, as on
    MiniLM's /embeddings/Gather_1); the rule gives it model_type TRANSFORMER, recorded in the key and on the row."""
    row = run_user_model("openvino", tiny_transformer(save_graph, tmp_path / "bert.onnx"), "--precisions", "int8")
    assert row["status"] == "ok", row.get("error") or row.get("stderr_tail")
    options = json.loads(row["conversion_options"])
    assert (options["model_type"], options["preset"]) == ("TRANSFORMER", "MIXED")
    assert row["quant_recipe"] == options["recipe"] and "model_type TRANSFORMER" in row["quant_recipe"]
    assert row["quant_limit"] is None
    compute = facts(row)["compute_layer_precisions"]
    assert compute.get("u8", 0) + compute.get("i8", 0) > 0, compute
    int8_checked(row)


@pytest.mark.slow
def test_silero_vad_int8_says_what_its_fp32_row_says(run_cases):
    """OpenVINO's ONNX frontend refuses silero_vad (its If) before NNCF sees it: the int8 row says that in the fp32
    row's words, one line, not the quantizer's traceback."""
    rows = {r["precision"]: r for r in run_cases(["openvino"], ["silero_vad"], precisions=["fp32", "int8"])}
    if rows["fp32"]["status"] == "ok":  # a later OpenVINO converts it: then int8 must not fail at the frontend
        assert not (rows["int8"].get("error") or "").startswith("OpenVINO ONNX frontend")
        return
    fp32, int8 = rows["fp32"], rows["int8"]
    assert fp32["status"] == int8["status"] == "conversion_failed", int8.get("error")
    assert int8["error"] == fp32["error"] and "(ops: If)" in int8["error"], int8["error"]
    assert "Traceback" not in int8["error"] and "\n" not in int8["error"]


def test_a_quantization_that_did_nothing_is_not_an_int8_row(tmp_path, save_graph, bench_cli):
    """A graph with nothing NNCF quantizes (Relu alone): no u8/i8 kernel runs, so the row says so."""
    from onnx import TensorProto, helper

    from bench.results import store

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])
    path = save_graph(tmp_path / "relu.onnx", [helper.make_node("Relu", ["x"], ["y"])], [x], [y])
    suite = tmp_path / "int8.toml"
    suite.write_text('name = "int8"\nmodels = ["tiny_cnn"]\nrunners = ["openvino"]\nprecisions = ["int8"]\n'
                     "[timing]\nmin_time_s = 0.05\nmax_time_s = 0.2\n")
    done = bench_cli("run", "--suite", str(suite), "--model", str(path), "--results", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr
    [row] = store.read_cases(Location.resolve(tmp_path / "r")).to_pylist()
    assert row["status"] == "unsupported" and "ran no int8 convolution or matmul" in row["error"], row["error"]
    assert row.get("median_ms") is None and row.get("precision_used") is None


def test_openvinos_refusal_names_the_model_folder_without_spelling_it_out(tmp_path):
    """OpenVINO ends its path in a quote ("outside the base directory '/x/y'"), with no "/" after the folder: the
    published error must still say <model folder>, never the user's path. The message is OpenVINO's own."""
    import numpy as np
    import onnx
    import openvino as ov
    from onnx import TensorProto, helper, numpy_helper

    from bench.case import Case, ModelRef
    from bench.results.rows import _scrubbed

    folder = tmp_path / "private-project"
    folder.mkdir()
    weights = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [weights])
    path = folder / "mine.onnx"
    onnx.save(helper.make_model(graph), path, save_as_external_data=True, location="w.bin", size_threshold=0)
    (folder / "w.bin").rename(tmp_path / "w.bin")
    model = onnx.load(path, load_external_data=False)
    model.graph.initializer[0].external_data[0].value = "../w.bin"  # the location: outside the model's folder
    onnx.save(model, path)
    with pytest.raises(RuntimeError) as refused:
        ov.Core().read_model(str(path))
    error = str(refused.value)
    assert f"outside the base directory '{folder}'" in error  # no "/" after the folder
    case = Case(ModelRef("mine", str(path), "0" * 64, (), source="user"), "openvino", "", "cpu", "fp32", 1, 1,
                "latency", cache_dir=str(tmp_path / "cache"))
    published = _scrubbed(error, case)
    assert "outside the base directory '<model folder>'" in published and str(folder) not in published, published
    assert _scrubbed(f"read {folder}-old/x.onnx and {folder}.", case) == f"read {folder}-old/x.onnx and <model folder>."
