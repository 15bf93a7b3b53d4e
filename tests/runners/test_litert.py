"""LiteRT runner: ONNX -> onnx2torch -> litert-torch -> .tflite (or a model's shipped .tflite), run by LiteRT's
Interpreter with XNNPACK in real worker processes and checked against ORT fp32.

What it pins down: fp32 and int8 rows match the reference with the precision read back from the file's tensor
types (int8: a full-integer file calibrated on the shared calibration set), the graph fully delegated to XNNPACK
(an op XNNPACK lacks visibly left to LiteRT's own kernels), one thread read back as one; fp16 is an unsupported
row that says what XNNPACK computes; a shipped .tflite runs unconverted (its row says so), without litert-torch,
and is still checked against the ONNX file's reference; without litert-torch a case that needs converting is an
unavailable row with the install line; a model the onnx2torch bridge cannot convert is a conversion_failed row
that says the failure is the bridge's, not LiteRT's.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from runner_checks import int8_checked

from bench.results.uri import Location
from bench.runners.litert import CONVERTER_NEEDS, SPEC

pytestmark = pytest.mark.skipif(not SPEC.available().ok, reason=f"litert unavailable: {SPEC.available().reason}")
HAVE_CONVERTER = all(importlib.util.find_spec(m) for m, _ in CONVERTER_NEEDS)
needs_converter = pytest.mark.skipif(not HAVE_CONVERTER, reason="litert-torch not installed (litert-convert extra)")


def facts(row: dict) -> dict:
    return json.loads(row["runner_facts"])


def ok_row(row: dict, precision: str) -> dict:
    assert row["status"] == "ok", row.get("error") or row.get("stderr_tail")
    assert row["precision_used"] == precision, row["precision_used"]
    assert row["threads_used"] == row["threads"] == 1, row["threads_used"]
    assert row["timed_region"].startswith("interpreter.invoke()")
    found = facts(row)
    assert found["delegation"] == "full" and found["builtin_ops"] == 0 and found["delegate_nodes"] == 1, found
    return found


def test_spec_imports_no_runtime_or_converter():
    code = ("import sys; from bench.runners.litert import SPEC; SPEC.available(); SPEC.version(); "
            "print(sorted({'torch', 'ai_edge_litert', 'litert_torch', 'onnx2torch', 'jax'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@needs_converter
@pytest.mark.slow  # two litert-torch conversions in subprocesses (about 15 s each here)
def test_tiny_cnn_fp32_and_full_integer_int8_are_delegated_and_read_back_and_fp16_says_why_not(run_cases):
    rows = {r["precision"]: r for r in run_cases(["litert"], ["tiny_cnn"], precisions=["fp32", "fp16", "int8"])}
    fp32 = ok_row(rows["fp32"], "fp32")
    assert rows["fp32"]["accuracy_ok"] is True and rows["fp32"]["cosine"] >= 0.9999, rows["fp32"]["cosine"]
    assert rows["fp32"]["converter"] == "litert-torch" and fp32["tensor_types"].get("int8") is None, fp32
    assert "CONV_2D" in fp32["model_op_kinds"] and fp32["source"] == "converted"
    int8 = ok_row(rows["int8"], "int8")
    int8_checked(rows["int8"])
    assert int8["tensor_types"]["int8"] > 0, int8
    options = json.loads(rows["int8"]["conversion_options"])
    digest = options["calibration_sha256"]
    assert rows["int8"]["calibration_sha256"] == digest and len(digest) == 64
    assert "PT2EQuantizer" in options["quantizer"] and options["precision"] == "int8"
    assert rows["fp16"]["status"] == "unsupported" and "XNNPACK" in rows["fp16"]["error"], rows["fp16"]["error"]


def _tflite_chain(path: Path, bias: np.ndarray, middle: str | None = None) -> Path:
    """A .tflite of y = x + bias (or y = middle(x + bias) + bias) written with LiteRT's own flatbuffer schema, named
    as TensorFlow's converter names things (input_1, Identity) and without a signature, as some shipped files are:
    no converter needed."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as tfl

    def tensor(name: str, buffer: int) -> tfl.TensorT:
        t = tfl.TensorT()
        t.name, t.shape, t.type, t.buffer = name, list(bias.shape), tfl.TensorType.FLOAT32, buffer
        return t

    def operator(code: int, inputs: list[int], outputs: list[int]) -> tfl.OperatorT:
        op = tfl.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = code, inputs, outputs
        if code == 0:
            op.builtinOptionsType, op.builtinOptions = tfl.BuiltinOptions.AddOptions, tfl.AddOptionsT()
        return op

    def opcode(builtin: int) -> tfl.OperatorCodeT:
        code = tfl.OperatorCodeT()
        code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
        return code

    buffers = [tfl.BufferT() for _ in range(6)]
    buffers[2].data = list(bias.astype(np.float32).tobytes())
    graph = tfl.SubGraphT()
    graph.tensors = [tensor("input_1", 1), tensor("bias", 2), tensor("sum", 3), tensor("mid", 4), tensor("Identity", 5)]
    graph.inputs, graph.outputs = [0], [4 if middle else 2]
    graph.operators = [operator(0, [0, 1], [2])]
    codes = [opcode(tfl.BuiltinOperator.ADD)]
    if middle:
        graph.operators += [operator(1, [2], [3]), operator(0, [3, 1], [4])]
        codes.append(opcode(getattr(tfl.BuiltinOperator, middle)))
    else:
        graph.tensors = graph.tensors[:2] + [tensor("Identity", 3)]
    model = tfl.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, codes, [graph], buffers
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(builder.Output())
    return path


def _tiny_pair(tmp_path: Path, middle: tuple[str, str] | None = None) -> tuple[Path, Path]:
    """The same trained model as an ONNX file and as a .tflite, as a wheel that ships both would; ``middle``: an
    (ONNX, TFLite) op between two Adds."""
    bias = np.linspace(-1, 1, 8, dtype=np.float32).reshape(1, 8)
    nodes = [helper.make_node("Add", ["x", "b"], ["y" if middle is None else "s"])]
    if middle:
        nodes += [helper.make_node(middle[0], ["s"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])]
    graph = helper.make_graph(
        nodes, "shipped", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])], [numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx_path = tmp_path / "shipped.onnx"
    onnx_path.write_bytes(model.SerializeToString())
    return onnx_path, _tflite_chain(tmp_path / "shipped.tflite", bias, middle[1] if middle else None)


def _run_with_alternate(tmp_path: Path, cache_dir: Path, onnx_path: Path, tflite: Path) -> dict:
    """``bench run --model`` planned as usual, the model given its shipped .tflite as the zoo gives one."""
    from bench.plan import Overrides, plan
    from bench.registry import Registry
    from bench.run import RunInfo, RunOptions, execute
    from bench.suite import Suite, TimingConfig

    suite = Suite(name="shipped", models=["tiny_cnn"], runners=["litert"], precisions=["fp32"], threads=[1],
                  timeout_s=120, timing=TimingConfig(warmup_time_s=0.02, min_time_s=0.1, max_time_s=0.5))
    registry = Registry.default()
    planned = plan(suite, "test", Overrides(user_model=onnx_path), registry, cache_dir)  # the model, not tiny_cnn
    planned = [dataclasses.replace(p, case=dataclasses.replace(
        p.case, model=dataclasses.replace(p.case.model, alternates=(("tflite", str(tflite)),)))) for p in planned]
    rows = execute(planned, Location.resolve(tmp_path / "results"), RunInfo.new("test", []), registry,
                   stream=io.StringIO(), options=RunOptions(convert_ahead=False))
    assert len(rows) == 1
    return rows[0]


def test_a_shipped_tflite_runs_unconverted_and_is_checked_against_the_onnx_reference(tmp_path, cache_dir):
    onnx_path, tflite = _tiny_pair(tmp_path)
    row = _run_with_alternate(tmp_path, cache_dir, onnx_path, tflite)
    found = ok_row(row, "fp32")
    assert row["converter"] == "shipped .tflite" and found["source"] == "shipped .tflite", row["converter"]
    assert json.loads(row["conversion_options"])["file"] == "shipped.tflite" and found["model_op_kinds"] == {"ADD": 1}
    assert row["accuracy_ok"] is True and row["cosine"] >= 0.9999, (row["accuracy_reason"], row["cosine"])


def test_basic_pitchs_own_tflite_maps_its_renamed_outputs_and_scores_like_the_onnx_file(run_cases):
    """basic-pitch's wheel ships one trained model twice; the .tflite's signature renames the outputs (contour, note,
    onset) while its tensors keep the ONNX file's names (StatefulPartitionedCall:0..2): matched by position, the
    264-bin contour went where an 88-bin map belongs."""
    row = run_cases(["litert"], ["basic_pitch"])[0]
    assert row["status"] == "ok" and row["converter"] == "shipped .tflite", row.get("error")
    assert row["accuracy_ok"] is True and row["weights"] == "trained", row["accuracy_reason"]
    assert row["task_metric"] == "f1" and row["task_value"] >= 0.9, row["task_value"]  # ORT fp32 scores 0.929


def test_an_op_xnnpack_lacks_is_a_visibly_partial_delegation(tmp_path, cache_dir):
    """Add -> Sign -> Add: XNNPACK takes the two Adds as two partitions and leaves Sign to LiteRT's own kernels."""
    onnx_path, tflite = _tiny_pair(tmp_path, middle=("Sign", "SIGN"))
    row = _run_with_alternate(tmp_path, cache_dir, onnx_path, tflite)
    assert row["status"] == "ok" and row["accuracy_ok"] is True, (row.get("error"), row["accuracy_reason"])
    found = facts(row)
    assert found["delegation"] == "partial" and found["builtin_op_kinds"] == {"SIGN": 1}, found
    assert found["delegate_nodes"] == 2 and found["delegated_ops"] == 2, found


def test_without_litert_torch_a_case_to_convert_is_unavailable_and_says_how_to_install(tmp_path):
    """litert-torch hidden from the planner (None in sys.modules: importlib finds no such module): the fp32 and int8
    cases of a model without a shipped .tflite are unavailable rows naming the extra."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['litert_torch'] = None  # find_spec: None\n")
    code = ("from bench.plan import Overrides, plan; from bench.registry import Registry; from bench.suite import "
            "Suite; from pathlib import Path; import sys\n"
            "suite = Suite(name='s', models=['tiny_cnn'], runners=['litert'], precisions=['fp32', 'int8'])\n"
            "for p in plan(suite, 't', Overrides(), Registry.default(), Path(sys.argv[1]), build_models=False):\n"
            "    print(p.case.precision, p.skip_status, p.skip_reason)\n")
    env = {"PYTHONPATH": str(hide), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "cache")], capture_output=True, text=True,
                          env=env, check=True)
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2, done.stdout + done.stderr
    for line in lines:
        assert "unavailable" in line.lower() and "litert-torch" in line, line
        assert "pip install 'onnx-inference-bench[litert-convert]'" in line, line


@needs_converter
@pytest.mark.slow  # one converter subprocess (imports torch and onnx2torch)
def test_a_model_the_onnx2torch_bridge_cannot_convert_says_it_is_the_bridges_failure(save_graph, run_user_model,
                                                                                     tmp_path):
    path = save_graph(tmp_path / "hardmax.onnx", [helper.make_node("Hardmax", ["x"], ["y"])],
                      [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4])])
    row = run_user_model("litert", path)
    assert row["status"] == "conversion_failed", (row["status"], row.get("error"))
    assert row["error"].startswith("the ONNX -> PyTorch bridge (onnx2torch) failed, not LiteRT"), row["error"]
    assert "(op Hardmax)" in row["error"] and row["error"].endswith("(ops: Hardmax)"), row["error"]
