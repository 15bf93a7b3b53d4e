from __future__ import annotations

import numpy as np
import pytest

from bench.execution.accuracy import TOLERANCES, compare
from bench.results.uri import Location

REF = {"y": np.linspace(-1, 1, 1000).astype(np.float32)}


def test_identical_outputs_pass():
    p = compare({"y": REF["y"].copy()}, REF, "fp32")
    assert p.accuracy_ok and p.max_abs_error == 0 and p.cosine == 1.0


def test_a_known_perturbation_is_measured():
    out = REF["y"].copy()
    out[10] += 0.125
    p = compare({"y": out}, REF, "fp32")
    assert abs(p.max_abs_error - 0.125) < 1e-6 and abs(p.normalized_error - 0.125) < 1e-6
    assert not p.accuracy_ok
    assert compare({"y": out}, REF, "int8").accuracy_ok  # within the loosest tolerance


def test_zeros_nan_and_shape_mismatch_fail():
    assert not compare({"y": np.zeros(1000, np.float32)}, REF, "fp32").accuracy_ok
    nan = REF["y"].copy()
    nan[0] = np.nan
    assert "non-finite" in compare({"y": nan}, REF, "fp16").reason
    assert "shape" in compare({"y": REF["y"][:10]}, REF, "fp32").reason
    assert "outputs" in compare({"z": REF["y"]}, REF, "fp32").reason


def test_tolerances_loosen_with_precision():
    order = ["fp32", "fp16", "int8"]
    cos = [TOLERANCES[p].min_cosine for p in order]
    assert cos == sorted(cos, reverse=True)


def test_a_broken_small_output_cannot_hide_behind_a_large_one(cache_dir):
    """The built detector: boxes in pixels (up to ~340), scores at most ~0.17. Judged on one scale, zeroed or
    random scores passed with cosine 0.99999994; each output is now judged on its own."""
    import onnxruntime as ort

    from bench.models.tasks import sample_inputs
    from bench.models.zoo import load_manifest, materialize

    model = load_manifest()["det_320"]
    session = ort.InferenceSession(str(materialize(model, cache_dir)), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    reference = dict(zip(names, session.run(None, sample_inputs(model, 1, 7)[0]), strict=True))
    assert compare({k: v.copy() for k, v in reference.items()}, reference, "int8").accuracy_ok
    rng = np.random.default_rng(0)
    for broken in (np.zeros_like(reference["scores"]), rng.uniform(0, 0.17, reference["scores"].shape)):
        p = compare({"boxes": reference["boxes"], "scores": broken.astype(np.float32)}, reference, "int8")
        assert not p.accuracy_ok and "in output 'scores'" in p.reason, (p.cosine, p.reason)
        assert p.cosine < 0.95  # the worst output's cosine is the row's


def test_reference_outputs_keep_their_names_exactly(tmp_path):
    from bench.case import Case, InputSpec, ModelRef
    from bench.execution.parity import PARITY_INPUTS, load_reference, save_reference

    model = ModelRef("m", "/m.onnx", "a" * 64, (InputSpec("x", (1, 4), "float32", -1, 1),), "user")
    case = Case(model=model, runner="r", implementation="x:Y", device="cpu", precision="fp32", batch=1, threads=1,
                scenario="latency", cache_dir=str(tmp_path))
    names = ["y\0evil", "y", "a/b", "", "10", "2"]  # a NUL cut the name, and "y\0evil" then overwrote "y"
    outputs = [{name: np.full(3, 10 * i + j, np.float32) for j, name in enumerate(names)}
               for i in range(PARITY_INPUTS)]
    save_reference(case, outputs)
    loaded = load_reference(case)
    assert [list(out) for out in loaded] == [names] * PARITY_INPUTS
    assert all(np.array_equal(loaded[i][n], outputs[i][n]) for i in range(PARITY_INPUTS) for n in names)


@pytest.mark.slow  # a real run, ~5 s
def test_an_output_name_with_a_nul_is_not_flagged_wrong(bench_cli, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from bench.results import store

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y\0evil"])], "nul",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y\0evil", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "nul.onnx"))
    done = bench_cli("run", "--model", "nul.onnx", "--runners", "onnxruntime", "--precisions", "fp32",
                     "--threads", "1", "--scenarios", "latency", "--results", "out")
    assert done.returncode == 0, done.stderr
    loc = Location.resolve(tmp_path / "out")
    rows = store.read_cases(loc, ["status", "accuracy_ok", "accuracy_reason"]).to_pylist()
    assert rows == [{"status": "ok", "accuracy_ok": True, "accuracy_reason": ""}]
