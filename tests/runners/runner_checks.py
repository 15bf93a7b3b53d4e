"""Checks shared by the runner tests."""

from __future__ import annotations


def int8_checked(row: dict) -> None:
    """An int8 row's outputs were checked against the fp32 reference and really differ from fp32; whether they stay
    inside the int8 tolerance is the row's finding (a quantizer's accuracy is measured, not expected)."""
    assert row["cosine"] is not None and row["cosine"] < 1.0 and row["parity_inputs"] > 0, row["cosine"]
    assert row["accuracy_ok"] is True or "outside int8 tolerance" in row["accuracy_reason"], row["accuracy_reason"]
    assert row["quant_recipe"], row["case_key"]  # every int8 row names its recipe (method, granularity, skips)
