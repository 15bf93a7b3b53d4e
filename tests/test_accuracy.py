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
