from __future__ import annotations

import numpy as np

from bench.execution.accuracy import TOLERANCES, compare

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
