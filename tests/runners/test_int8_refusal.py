"""A quantizer that silently quantizes nothing makes a float model: every int8 runner must refuse to call that row
int8. The model here has no convolution, matmul or weight at all (Sin -> Cos), so no quantizer can touch it; each
runner's read-back of what it made (QDQ nodes, int8 runtime layers, int8 convolutions in the file) has to say so."""

from __future__ import annotations

import importlib.util

import pytest
from onnx import TensorProto, helper

from bench.registry import Registry

REFUSALS = {  # runner -> what its read-back says, in its own words
    ("onnxruntime", "int8"): "no QDQ nodes",
    ("openvino", "int8"): "ran no int8 convolution or matmul",
    ("mnn", "int8"): "left no convolution with int8 activations",
    ("mnn", "int8_weights"): "stored no convolution's weights as int8",
    ("ncnn", "int8"): "left no convolution with int8 parameters",
    ("litert", "int8"): "int8 .tflite holds no integer tensor",
}
SPECS = Registry.builtin().specs


def _available(runner: str, precision: str) -> bool:
    spec = SPECS[runner]
    return spec.available().ok and spec.precision_available(precision).ok and (
        runner != "litert" or importlib.util.find_spec("litert_torch") is not None)  # its converter's extra


@pytest.mark.slow  # real runs, ~10-30 s
@pytest.mark.parametrize(("runner", "precision"), [
    pytest.param(r, p, marks=pytest.mark.skipif(not _available(r, p), reason=f"{r} {p} not available here"))
    for r, p in REFUSALS])
def test_a_model_the_quantizer_left_float_is_not_an_int8_row(run_user_model, save_graph, tmp_path, runner, precision):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])
    nodes = [helper.make_node("Sin", ["x"], ["s"]), helper.make_node("Cos", ["s"], ["y"])]
    path = save_graph(tmp_path / "nothing_to_quantize.onnx", nodes, [x], [y])
    row = run_user_model(runner, path, "--precisions", precision)
    assert row["status"] == "unsupported" and REFUSALS[runner, precision] in row["error"], row["error"]
    assert row["median_ms"] is None and row["precision_used"] is None
