"""Tiny models for smoke tests: real graphs that every runtime runs in microseconds."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8


def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name)


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="bench.models", producer_version="1"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def build_tiny_mlp() -> onnx.ModelProto:
    """Gemm -> Relu -> Gemm -> Softmax on 64 features: a 1-layer classifier with 10 classes."""
    rng = np.random.RandomState(1)
    w1 = rng.standard_normal((64, 128)) * np.sqrt(2.0 / 64)
    w2 = rng.standard_normal((128, 10)) * np.sqrt(1.0 / 128)
    nodes = [
        helper.make_node("Gemm", ["input", "w1", "b1"], ["h"]),
        helper.make_node("Relu", ["h"], ["h_relu"]),
        helper.make_node("Gemm", ["h_relu", "w2", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 10])],
        [_init("w1", w1), _init("b1", np.zeros(128)), _init("w2", w2), _init("b2", np.zeros(10))],
    )
    return _model(graph)


def build_tiny_cnn() -> onnx.ModelProto:
    """Conv -> BatchNormalization -> Relu -> GlobalAveragePool -> Flatten -> Gemm on 3x32x32 images."""
    rng = np.random.RandomState(2)
    conv_w = rng.standard_normal((16, 3, 3, 3)) * np.sqrt(2.0 / 27)
    fc_w = rng.standard_normal((10, 16)) * np.sqrt(1.0 / 16)
    nodes = [
        helper.make_node("Conv", ["input", "conv_w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "bn_g", "bn_b", "bn_m", "bn_v"], ["bn"]),
        helper.make_node("Relu", ["bn"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        [
            _init("conv_w", conv_w),
            _init("bn_g", np.ones(16)),
            _init("bn_b", np.zeros(16)),
            _init("bn_m", np.zeros(16)),
            _init("bn_v", np.ones(16)),
            _init("fc_w", fc_w),
            _init("fc_b", np.zeros(10)),
        ],
    )
    return _model(graph)


def build_tiny_add() -> onnx.ModelProto:
    """One Add of a single element: the runtime's per-call overhead and nothing else."""
    nodes = [helper.make_node("Add", ["input", "one"], ["output"])]
    graph = helper.make_graph(
        nodes,
        "tiny_add",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 1])],
        [_init("one", np.ones((1, 1)))],
    )
    return _model(graph)
