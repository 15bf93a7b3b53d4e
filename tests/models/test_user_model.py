"""`--model PATH` with the user's own ONNX file: dynamic shapes, external data, and bad files."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from bench.errors import UserError
from bench.models.user import parse_shapes, user_model
from bench.results.uri import Location


def dynamic_model(path, external: bool = False):
    w = numpy_helper.from_array(np.arange(16, dtype=np.float32).reshape(4, 4) / 16, "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "user",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "rows", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "rows", 4])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if external:
        onnx.save(model, str(path), save_as_external_data=True, location="weights.bin", size_threshold=0)
    else:
        onnx.save(model, str(path))
    return path


def test_dynamic_dimension_needs_shape(tmp_path):
    path = dynamic_model(tmp_path / "m.onnx")
    with pytest.raises(UserError, match=r"input 'x' has unknown dimension.*--shape x:"):
        user_model(path, {})
    ref = user_model(path, parse_shapes(["x:1x7x4"]))
    assert ref.inputs[0].shape == (1, 7, 4) and ref.inputs[0].batch_axis == 0 and ref.source == "user"


@pytest.mark.parametrize(
    "shape, message",
    [("y:1x7x4", r"not in the model; its inputs are \['x'\]"), ("x:1x7", "has 2 dims"),
     # the batch would be lost: the suite's batch_sizes set it (it ran at 1 while the MACs counted 256)
     ("x:256x7x4", r"sets the batch axis \(dim 0, 'batch' in the model\) to 256; give it as 1 and the batch "
                   r"with --batch-sizes 256")],
)
def test_wrong_shapes_name_the_input(tmp_path, shape, message):
    path = dynamic_model(tmp_path / "m.onnx")
    with pytest.raises(UserError, match=message):
        user_model(path, parse_shapes([shape]))


@pytest.mark.parametrize("text", ["x", "x:", "x:1xa", "x:0x3", ":1x2", "x:1_6x16", "x:\u0661x16", "x:+1x16", "x: 1x16"])
def test_bad_shape_flags(text):
    with pytest.raises(UserError, match="expected NAME:DxDx"):
        parse_shapes([text])


def test_bad_files_are_one_clear_error(tmp_path):
    good = dynamic_model(tmp_path / "good.onnx").read_bytes()
    (tmp_path / "text.onnx").write_text("hello, I am not a model")
    (tmp_path / "cut.onnx").write_bytes(good[: len(good) // 2])
    for name, message in [("missing.onnx", "not found"), ("text.onnx", "ONNX"), ("cut.onnx", "ONNX")]:
        with pytest.raises(UserError, match=message) as err:
            user_model(tmp_path / name, parse_shapes(["x:1x2x4"]))
        assert name in str(err.value)


def test_external_data_is_found_or_named_when_missing(tmp_path):
    path = dynamic_model(tmp_path / "ext.onnx", external=True)
    assert user_model(path, parse_shapes(["x:1x2x4"])).inputs[0].shape == (1, 2, 4)
    (tmp_path / "weights.bin").unlink()
    with pytest.raises(UserError, match="weights.bin: external data file of tensor 'w' not found"):
        user_model(path, parse_shapes(["x:1x2x4"]))


def test_user_model_runs_end_to_end_with_external_data(bench_cli, tmp_path):
    path = dynamic_model(tmp_path / "ext.onnx", external=True)
    done = bench_cli("run", "--suite", "smoke", "--model", str(path), "--shape", "x:1x3x4", "--threads", "1",
                     "--results", "out")
    assert done.returncode == 0, done.stderr
    assert "ext/onnxruntime/cpu/fp32/b1/t1/latency  ok" in done.stdout


def test_bad_model_file_through_the_cli(bench_cli, tmp_path):
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x01garbage")
    done = bench_cli("run", "--model", "bad.onnx", "--results", "out")
    assert done.returncode == 2 and "bad.onnx" in done.stderr and done.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_a_shape_the_model_rejects_is_an_error_row(bench_cli, tmp_path):
    from bench.results import store

    path = dynamic_model(tmp_path / "m.onnx")
    done = bench_cli("run", "--suite", "smoke", "--model", str(path), "--shape", "x:1x3x5", "--threads", "1",
                     "--results", "out")
    assert done.returncode == 0, done.stderr
    row = store.read_cases(Location.resolve(tmp_path / "out"), ["status", "error", "median_ms"]).to_pylist()[0]
    assert row["status"] == "error" and row["median_ms"] is None and row["error"]


def test_an_input_without_any_shape_needs_one_and_takes_it(tmp_path):
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "noshape",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],  # no shape field
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    path = tmp_path / "noshape.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(UserError, match=r"input 'x' has no shape in the model; give it with --shape x:"):
        user_model(path, {})
    ref = user_model(path, parse_shapes(["x:1x8"]))  # it was fed a 0-d scalar, and --shape could not fix it
    assert ref.inputs[0].shape == (1, 8) and ref.inputs[0].batch_axis is None


def test_a_model_name_over_the_filesystems_limit_is_one_line_blaming_the_model(bench_cli, tmp_path):
    path = tmp_path / ("m" * 300 + ".onnx")  # no filesystem here holds it: what the user typed is the culprit
    done = bench_cli("run", "--model", str(path), "--results", "out")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"{path}: cannot read the model file (the name 'mmm" in done.stderr
    assert "is 305 bytes; the filesystem takes at most 255 a name" in done.stderr
    assert "cache" not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow  # an int8 quantization, ~10 s
def test_a_model_name_at_the_filesystems_limit_just_runs(bench_cli, tmp_path):
    from bench.results import store

    path = dynamic_model(tmp_path / ("é" * 125 + ".onnx"))  # 130 characters, 255 bytes: the most a name can be
    assert len(path.name.encode()) == 255
    done = bench_cli("run", "--suite", "smoke", "--model", str(path), "--shape", "x:1x3x4", "--runners", "onnxruntime",
                     "--precisions", "fp32,int8", "--threads", "1", "--scenarios", "latency", "--results", "out")
    assert done.returncode == 0, done.stderr
    rows = store.read_cases(Location.resolve(tmp_path / "out"), ["precision", "status", "error"]).to_pylist()
    assert sorted((r["precision"], r["status"]) for r in rows) == [("fp32", "ok"), ("int8", "ok")], rows
