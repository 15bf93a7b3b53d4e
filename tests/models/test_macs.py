"""bench.models.macs: parameter and MAC counts from the graph, checked by hand and against published figures."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from bench.models.builders.mobilenet import build_mobilenet_v2
from bench.models.builders.resnet import build_resnet50
from bench.models.builders.tiny import build_tiny_cnn
from bench.models.builders.transformer import build_vit_tiny_16_224
from bench.models.macs import ModelCost, count_cost
from bench.results.uri import Location


def _weight(name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array(np.zeros(shape, dtype=np.float32), name)


def _model(nodes, inputs, outputs, initializers) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "hand", inputs, outputs, initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _conv_gemm_model() -> onnx.ModelProto:
    """[N, 3, 8, 8] -> Conv 3x3 pad 1 to 4 channels -> Flatten (4 * 8 * 8 = 256) -> Gemm to 10."""
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"]),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["y"], transB=1),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        [_weight("w", 4, 3, 3, 3), _weight("b", 4), _weight("fc_w", 10, 256), _weight("fc_b", 10)],
    )


def test_conv_and_gemm_by_hand():
    cost = count_cost(_conv_gemm_model(), {"x": [2, 3, 8, 8]})
    conv = 2 * 4 * (8 * 8) * (3 * 3 * 3)  # batch * out channels * output pixels * (in channels * kernel) = 13824
    gemm = 2 * 10 * 256  # batch * out features * in features = 5120
    assert cost == ModelCost(params=4 * 27 + 4 + 10 * 256 + 10, macs=conv + gemm, unknown_ops=0)
    assert cost.macs == 18944 and cost.params == 2682


def test_depthwise_and_grouped_conv_count_only_the_channels_each_filter_reads():
    nodes = [
        helper.make_node("Conv", ["x", "dw"], ["d"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=8),
        helper.make_node("Conv", ["d", "gw"], ["y"], kernel_shape=[1, 1], strides=[2, 2], group=2),
    ]
    model = _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 4, 4])],
        [_weight("dw", 8, 1, 3, 3), _weight("gw", 16, 4, 1, 1)],
    )
    depthwise = 8 * (8 * 8) * 9  # channels * pixels * 3x3 taps = 4608
    grouped = 16 * (4 * 4) * 4  # out channels * output pixels (stride 2) * (8 / 2 groups) inputs = 1024
    assert count_cost(model, {"x": [1, 8, 8, 8]}).macs == depthwise + grouped


def test_batched_matmul_and_transposed_gemm():
    nodes = [
        helper.make_node("MatMul", ["a", "b"], ["ab"]),  # [N, 3, 5, 7] @ [7, 4] -> [N, 3, 5, 4]
        helper.make_node("MatMul", ["q", "k"], ["qk"]),  # [N, 2, 6, 8] @ [N, 2, 8, 6] -> [N, 2, 6, 6]
        helper.make_node("Gemm", ["g", "gw"], ["gy"], transA=1),  # [9, N]^T @ [9, 5] -> [N, 5]
    ]
    model = _model(
        nodes,
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 3, 5, 7]),
            helper.make_tensor_value_info("q", TensorProto.FLOAT, ["N", 2, 6, 8]),
            helper.make_tensor_value_info("k", TensorProto.FLOAT, ["N", 2, 8, 6]),
            helper.make_tensor_value_info("g", TensorProto.FLOAT, [9, "N"]),
        ],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("ab", "qk", "gy")],
        [_weight("b", 7, 4), _weight("gw", 9, 5)],
    )
    shapes = {"a": [2, 3, 5, 7], "q": [2, 2, 6, 8], "k": [2, 2, 8, 6], "g": [9, 2]}
    expected = 2 * 3 * 5 * 4 * 7 + 2 * 2 * 6 * 6 * 8 + 2 * 5 * 9
    assert count_cost(model, shapes) == ModelCost(params=7 * 4 + 9 * 5, macs=expected)


def test_dynamic_spatial_dims_take_the_given_shape():
    """A model exported with every dimension dynamic, as many real ones are."""
    model = _conv_gemm_model()
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    model.graph.input[0].type.tensor_type.shape.dim[3].dim_param = "W"
    assert count_cost(model, {"x": [2, 3, 8, 8]}).macs == 18944


def test_ops_left_without_shapes_are_skipped_and_counted():
    model = _conv_gemm_model()
    cost = count_cost(model, {})  # batch stays symbolic: neither op has a concrete shape
    assert cost.macs == 0 and cost.unknown_ops == 2 and cost.params == 2682


def test_shape_computations_of_old_opsets_are_folded():
    """Shape -> Cast -> Slice -> Cast -> Concat -> Reshape at opset 11, as paddle2onnx writes a flatten: ONNX's
    own data propagation leaves the Reshape (hence the MatMul after it) unknown there."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Cast", ["shape"], ["shape32"], to=TensorProto.INT32),
        helper.make_node("Slice", ["shape32", "zero", "one"], ["batch32"]),
        helper.make_node("Cast", ["batch32"], ["batch"], to=TensorProto.INT64),
        helper.make_node("Concat", ["batch", "minus_one"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["y"]),
    ]
    ints = [
        numpy_helper.from_array(np.array(v, dtype=t), n)
        for n, v, t in [("zero", [0], np.int32), ("one", [1], np.int32), ("minus_one", [-1], np.int64)]
    ]
    graph = helper.make_graph(
        nodes,
        "old",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 200, 1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        [*ints, _weight("w", 200, 2)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    assert count_cost(model, {"x": [3, 200, 1, 1]}) == ModelCost(params=400, macs=3 * 200 * 2)


def test_unknown_input_names_and_wrong_ranks_are_refused():
    with pytest.raises(ValueError, match="not a graph input"):
        count_cost(_conv_gemm_model(), {"images": [1, 3, 8, 8]})
    with pytest.raises(ValueError, match="rank"):
        count_cost(_conv_gemm_model(), {"x": [1, 3, 8]})


def test_the_model_is_not_modified():
    model = build_tiny_cnn()
    before = model.SerializeToString()
    cost = count_cost(model, {"input": [1, 3, 32, 32]})
    assert model.SerializeToString() == before
    assert cost.macs == 16 * 32 * 32 * 27 + 10 * 16


def test_shape_computations_are_followed():
    """ViT expands its class token to the batch through Shape -> Concat -> Expand; every MatMul counts."""
    cost = count_cost(build_vit_tiny_16_224(), {"input": [1, 3, 224, 224]})
    assert cost.unknown_ops == 0
    assert cost.macs == pytest.approx(1.26e9, rel=0.02)  # timm: 1.26 GMACs
    assert cost.params == pytest.approx(5.72e6, rel=0.01)


@pytest.mark.slow
def test_resnet50_matches_the_published_4_1_gmacs():
    cost = count_cost(build_resnet50(), {"input": [1, 3, 224, 224]})
    assert cost.macs == pytest.approx(4.1e9, rel=0.1) and cost.unknown_ops == 0
    assert cost.params == pytest.approx(25.6e6, rel=0.01)  # torchvision 25.56M, less the folded BN shifts


def test_mobilenet_v2_matches_the_published_0_30_gmacs():
    cost = count_cost(build_mobilenet_v2(), {"input": [1, 3, 224, 224]})
    assert cost.macs == pytest.approx(0.30e9, rel=0.1) and cost.unknown_ops == 0
    assert cost.params == pytest.approx(3.50e6, rel=0.01)


@pytest.mark.slow
def test_a_real_exported_model_from_the_zoo(cache_dir):
    """PP-OCRv4 recognition, exported by paddle2onnx at opset 12 with dynamic axes and its weights in
    Constant nodes: every op gets a shape, and the weights count."""
    from bench.models.zoo import load_manifest, materialize

    entry = load_manifest()["ppocr_v4_rec"]
    model = onnx.load(str(materialize(entry, cache_dir)))
    cost = count_cost(model, {spec.name: list(spec.shape) for spec in entry.inputs})
    assert cost.unknown_ops == 0
    assert 2e6 < cost.params < 4e6  # no initializers at all: weights sit in Constant nodes
    assert 0.3e9 < cost.macs < 1.5e9


def _untaken_huge_branch(path=None) -> onnx.ModelProto:
    """An If whose never-taken branch expands a 1x1 input to 2^22 x 2^22 and squares it: 2^66 MACs declared, past
    int64, while the model itself runs in microseconds."""
    n = 1 << 22
    shape = numpy_helper.from_array(np.array([n, n], dtype=np.int64))
    then_branch = helper.make_graph(
        [helper.make_node("Constant", [], ["shape"], value=shape), helper.make_node("Expand", ["x", "shape"], ["big"]),
         helper.make_node("MatMul", ["big", "big"], ["square"]),
         helper.make_node("ReduceSum", ["square"], ["t"], keepdims=0)],
        "then", [], [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)])
    else_branch = helper.make_graph([helper.make_node("ReduceSum", ["x"], ["e"], keepdims=0)], "else", [],
                                    [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)])
    model = _model(
        [helper.make_node("Constant", [], ["cond"], value=numpy_helper.from_array(np.array(False))),
         helper.make_node("If", ["cond"], ["y"], then_branch=then_branch, else_branch=else_branch)],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [],
    )
    model.ir_version = 8
    if path is not None:
        onnx.save(model, str(path))
    return model


def test_a_count_past_int64_is_unknown():
    assert count_cost(_untaken_huge_branch(), {"x": [1, 1]}).macs is None


@pytest.mark.slow  # a real run, ~5 s
def test_a_count_past_int64_runs_and_writes_its_row(bench_cli, tmp_path):
    from bench.results import store

    _untaken_huge_branch(tmp_path / "huge.onnx")
    done = bench_cli("run", "--model", "huge.onnx", "--runners", "onnxruntime", "--precisions", "fp32",
                     "--threads", "1", "--scenarios", "latency", "--results", "out")
    assert done.returncode == 0, done.stderr  # was: OverflowError in the row writer after the case ran, 0 rows
    rows = store.read_cases(Location.resolve(tmp_path / "out"), ["status", "model_macs", "achieved_gflops"]).to_pylist()
    assert rows == [{"status": "ok", "model_macs": None, "achieved_gflops": None}]
