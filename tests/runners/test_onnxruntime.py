"""ONNX Runtime: fp32 on CPU, int8 variants from its own quantizer, the throughput scenario, honest refusals."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from bench.cpu import Cpu
from bench.runners.onnxruntime import SPEC

HERE = Cpu.here()


def test_int8_variant_is_quantized_recorded_and_cached(run_cases):
    rows = {r["precision"]: r for r in run_cases(["onnxruntime"], ["tiny_cnn"], precisions=["fp32", "int8"])}
    fp32, int8 = rows["fp32"], rows["int8"]
    assert fp32["status"] == int8["status"] == "ok"
    assert fp32["precision_used"] == "fp32" and fp32["converter"] is None and fp32["accuracy_ok"] is True
    assert int8["precision_used"] == "int8" and int8["converter"] == "onnxruntime.quantization"
    assert json.loads(int8["conversion_options"])["format"] == "QDQ"
    assert len(int8["calibration_sha256"]) == 64 and fp32["calibration_sha256"] is None
    # the recipe on the row (issue 31): the quantizer's method and granularity; nothing bounds ORT's int8 here
    assert "QDQ" in int8["quant_recipe"] and "per channel" in int8["quant_recipe"] and "MinMax" in int8["quant_recipe"]
    assert int8["quant_limit"] is None and fp32["quant_recipe"] is None
    assert json.loads(int8["runner_facts"])["model_nodes"]["DequantizeLinear"] > 0
    assert int8["accuracy_ok"] is True and 0.95 <= int8["cosine"] < 1.0  # really quantized, still close
    assert fp32["precision_feature"] is None and int8["precision_feature"] == SPEC.cpu_precision("int8", HERE).feature
    again = run_cases(["onnxruntime"], ["tiny_cnn"], precisions=["int8"])[0]
    assert again["conversion_cached"] is True


def test_throughput_runs_one_request_per_thread(run_cases):
    row = run_cases(["onnxruntime"], ["tiny_cnn"], threads=[2], scenarios=["throughput"])[0]
    facts = json.loads(row["runner_facts"])
    assert row["status"] == "ok" and row["items_per_iteration"] == 2 and facts["concurrent_requests"] == 2
    assert facts["options"]["intra_op_num_threads"] == 1 and row["threads_used"] == 2
    assert row["threads_ok"] is True and row["accuracy_ok"] is True and row["throughput_per_s"] > 0


def test_fp16_on_the_cpu_runs_where_declared_and_read_back_or_is_an_unsupported_row(run_cases):
    declared = SPEC.cpu_precision("fp16", HERE)
    row = run_cases(["onnxruntime"], ["tiny_cnn"], precisions=["fp16"])[0]
    if not declared.ok:
        assert row["status"] == "unsupported" and row["error"] == declared.reason
    elif row["status"] == "unsupported":  # declared from the flags, refused by the optimized graph's read-back
        assert "optimized graph read back" in row["error"], row["error"]
    else:
        assert row["status"] == "ok" and row["precision_used"] == "fp16", row.get("error")
        weights = json.loads(row["runner_facts"])["optimized_weight_types"]
        assert 2 * weights["float16"] >= sum(weights.values()), weights


def test_the_optimized_graph_read_back_agrees_with_the_fp16_declaration(cache_dir, tmp_path):
    """What the declaration rests on: where it says no, ORT's optimizer casts the fp16 weights back to fp32 (on
    MobileNetV2's 52 convolutions too, measured). If a new ORT keeps fp16 kernels here, this fails."""
    import onnxruntime as ort

    from bench.execution.variants import make_fp16
    from bench.models.zoo import load_manifest, model_ref
    from bench.runners.onnxruntime.runner import optimized_weight_types

    path = tmp_path / "fp16.onnx"
    make_fp16(None, Path(model_ref(load_manifest()["tiny_cnn"], cache_dir).path), path)
    weights = optimized_weight_types(path, ort.SessionOptions(), "CPUExecutionProvider")
    assert sum(weights.values()) >= 2, weights  # the Conv and the Gemm
    kept_fp16 = 2 * weights.get("float16", 0) >= sum(weights.values())
    assert kept_fp16 == SPEC.cpu_precision("fp16", HERE).ok, (weights, HERE.label())


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


def test_weights_stored_as_constants_are_quantized_per_channel_as_weights(tmp_path):
    """PP-OCR's export keeps every weight in a Constant node at opset 12: ORT's quantizer then treats the weights as
    activations (per tensor, at run time). bench's preparation makes them initializers at opset 13 first."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from bench.execution.variants import _prepared

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Constant", [], ["w"], value=weight),
             helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])])
    src = tmp_path / "constants.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)]), str(src))
    prepared = _prepared(src, tmp_path)
    model = onnx.load(str(prepared))
    assert [n.op_type for n in model.graph.node] == ["Conv"] and model.opset_import[0].version == 13

    class Reader(CalibrationDataReader):
        samples = iter([{"x": rng.normal(size=(1, 3, 8, 8)).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.samples, None)

    dst = tmp_path / "int8.onnx"
    quantize_static(str(prepared), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
    quantized = onnx.load(str(dst))
    int8 = [t for t in quantized.graph.initializer if t.data_type == TensorProto.INT8]
    assert [4, 3, 3, 3] in [list(t.dims) for t in int8]  # the weight itself stored int8
    axes = [a.i for n in quantized.graph.node if n.op_type == "DequantizeLinear" for a in n.attribute
            if a.name == "axis"]
    assert axes == [0]  # per output channel
    ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])  # and it loads


def test_a_failure_row_names_the_users_folder_without_spelling_it_out(run_user_model, save_graph, tmp_path):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    folder = tmp_path / "private-project"
    folder.mkdir()
    path = save_graph(folder / "mine.onnx", [helper.make_node("FancyOp", ["x"], ["y"])], [x], [y])
    row = run_user_model("onnxruntime", path)
    assert row["status"] != "ok"
    published = (row["error"] or "") + (row["stderr_tail"] or "")
    assert "<model folder>/mine.onnx" in published and str(folder) not in published, published[-600:]
