"""ExecuTorch runner: onnx2torch -> torch.export -> XNNPACK lowering -> .pte, run in real worker processes and
checked against ORT fp32.

What it pins down: fp32 and int8 rows match the reference with the delegation read from the lowered program
(fully delegated tiny CNN; int8 carries quantize ops and the shared calibration set's hash), a model with an op
XNNPACK lacks is visibly a partial delegation with that op counted on the portable side, one thread is one thread,
and onnx2torch's constant shape tensors become static so that torch.export can trace them.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from runner_checks import int8_checked

from bench.runners.executorch import SPEC

pytestmark = pytest.mark.skipif(not SPEC.available().ok, reason=f"executorch unavailable: {SPEC.available().reason}")


def facts(row: dict) -> dict:
    return json.loads(row["runner_facts"])


def ok_row(row: dict, precision: str) -> dict:
    assert row["status"] == "ok", row.get("error") or row.get("stderr_tail")
    assert row["precision_used"] == precision and row["converter"] == "executorch"
    assert row["threads_used"] == row["threads"] == 1, row["threads_used"]
    assert row["timed_region"].startswith("method.execute(inputs)")
    found = facts(row)
    assert found["options"]["backend_available"] is True and found["delegates"] == {"XnnpackBackend": 1}, found
    return found


def test_spec_imports_nothing_from_torch_or_executorch():
    code = ("import sys; from bench.runners.executorch import SPEC; SPEC.available(); SPEC.version(); "
            "print(sorted({'torch', 'executorch', 'onnx2torch', 'torchao'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.slow  # imports torch and onnx2torch in the test process: seconds
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
def test_constant_reshape_split_and_resize_inputs_become_static_so_torch_export_traces_them(tmp_path):
    import torch

    from bench.runners.pytorch.conversion import convert_model

    nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"]),
             helper.make_node("Split", ["r", "sizes"], ["a", "b"], axis=1), helper.make_node("Mul", ["a", "b"], ["m"]),
             helper.make_node("Resize", ["m", "roi", "scales"], ["y"], mode="nearest", nearest_mode="floor",
                              coordinate_transformation_mode="asymmetric")]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 1, 6])],
        [numpy_helper.from_array(np.array([0, 2, 3], np.int64), "shape"),  # 0: the input's own dimension
         numpy_helper.from_array(np.array([1, 1], np.int64), "sizes"),
         numpy_helper.from_array(np.array([], np.float32), "roi"),  # absent, as Paddle exports it: 0 elements
         numpy_helper.from_array(np.array([1, 1, 2], np.float32), "scales")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "reshape_split.onnx"
    path.write_bytes(model.SerializeToString())
    module, _ = convert_model(path)
    x = torch.arange(12, dtype=torch.float32).reshape(2, 6)
    with pytest.raises(Exception, match="data-dependent"):
        torch.export.export(module, (x,))
    from bench.runners.executorch.static import bake_constant_shapes

    expected = module(x)
    assert bake_constant_shapes(module) == {"OnnxReshape": 1, "OnnxResize": 1, "OnnxSplit13": 1}
    assert all(b.numel() for b in module.buffers())  # the unread constants went (ExecuTorch refuses empty ones)
    exported = torch.export.export(module, (x,)).module()
    assert torch.equal(exported(x), expected) and expected.shape == (2, 1, 6)


@pytest.mark.slow  # two export + lowering subprocesses (about 20 s each here)
def test_tiny_cnn_fp32_is_fully_delegated_and_int8_is_quantized_on_the_shared_calibration_set(run_cases):
    rows = {r["precision"]: r for r in run_cases(["executorch"], ["tiny_cnn"], precisions=["fp32", "int8"])}
    fp32 = ok_row(rows["fp32"], "fp32")
    assert rows["fp32"]["accuracy_ok"] is True and rows["fp32"]["cosine"] >= 0.9999
    assert fp32["delegation"] == "full" and fp32["portable_ops"] == 0 and fp32["delegated_ops"] >= 3, fp32
    assert fp32["delegated_op_kinds"]["aten.convolution.default"] == 1 and fp32["quantize_ops"] == 0
    int8 = ok_row(rows["int8"], "int8")
    int8_checked(rows["int8"])
    assert int8["quantize_ops"] > 0 and int8["delegation"] == "full", int8
    options = json.loads(rows["int8"]["conversion_options"])
    digest = options["calibration_sha256"]
    assert rows["int8"]["calibration_sha256"] == digest and len(digest) == 64
    assert options["precision"] == "int8" and "XNNPACKQuantizer" in options["quantizer"]


@pytest.mark.slow  # one export + lowering subprocess
def test_an_op_xnnpack_lacks_makes_a_visibly_partial_delegation(save_graph, run_user_model, tmp_path):
    weight = numpy_helper.from_array(np.random.default_rng(0).normal(size=(4, 3, 3, 3)).astype(np.float32), "w")
    path = save_graph(tmp_path / "conv_erf.onnx",
                      [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Erf", ["c"], ["y"])],
                      [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])], [weight])
    row = run_user_model("executorch", path)
    found = ok_row(row, "fp32")
    assert row["accuracy_ok"] is True, (row["accuracy_reason"], row["cosine"])
    assert found["delegation"] == "partial" and found["portable_op_kinds"] == {"aten.erf.default": 1}, found
    assert found["delegated_op_kinds"] == {"aten.convolution.default": 1}, found
