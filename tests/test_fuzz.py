"""Fuzzing the two loaders that read untrusted input: suite files and model files.

Either loader may accept an input or refuse it with a UserError (one clear line); any other exception is
a bug. Inputs that once crashed a loader are kept in tests/fixtures/fuzz/ and replayed here.
"""

from __future__ import annotations

import string
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.errors import UserError
from bench.models.user import parse_shapes, user_model
from bench.suite import parse_suite

FUZZ = Path(__file__).parent / "fixtures" / "fuzz"
TINY = Path(__file__).parent / "fixtures" / "tiny_dynamic.onnx"
KEYS = ["name", "models", "runners", "devices", "precisions", "batch_sizes", "threads", "scenarios",
        "timeout_s", "seed", "timing", "description", "colour"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**12), st.floats(allow_nan=True),
                    st.text(string.printable, max_size=12))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.sampled_from(KEYS + ["min_time_s", "max_time_s"]), inner, max_size=4), max_leaves=8)
settings_ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def accepts_or_refuses(load, *args) -> bool:
    try:
        load(*args)
    except UserError as exc:
        assert "\n" not in str(exc)
        return False
    return True


@settings_
@given(st.text(max_size=300))
def test_suite_loader_on_arbitrary_text(text):
    accepts_or_refuses(parse_suite, text, "fuzz.toml")


@settings_
@given(st.dictionaries(st.sampled_from(KEYS), values, max_size=8))
def test_suite_loader_on_structured_documents(doc):
    try:
        text = tomli_w.dumps({k: v for k, v in doc.items() if v is not None})
    except (TypeError, ValueError):
        return  # not expressible as TOML
    accepts_or_refuses(parse_suite, text, "fuzz.toml")


@settings_
@given(st.data())
def test_model_loader_on_mutated_models(tmp_path_factory, data):
    original = TINY.read_bytes()
    blob = bytearray(original)
    for _ in range(data.draw(st.integers(1, 8))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(blob)))
    path = tmp_path_factory.mktemp("fuzz") / "m.onnx"
    path.write_bytes(bytes(blob[:cut]))
    accepts_or_refuses(user_model, path, parse_shapes(["x:1x2x4"]))


@pytest.mark.parametrize("path", sorted(p for p in FUZZ.glob("*") if p.suffix != ".md"), ids=lambda p: p.name)
def test_kept_crashers_are_refused_cleanly(path):
    if path.suffix == ".toml":
        assert not accepts_or_refuses(parse_suite, path.read_text(errors="replace"), path.name)
    else:
        assert not accepts_or_refuses(user_model, path, parse_shapes(["x:1x2x4"]))
