"""The models built in code (models/manifest/built.toml): byte-identical rebuilds, and finite,
non-degenerate outputs on ONNX Runtime at the manifest's shapes."""

from __future__ import annotations

import hashlib
import sys
from importlib import import_module
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from bench.models.zoo import load_manifest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MANIFEST = Path(__file__).resolve().parents[2] / "models" / "manifest" / "built.toml"
ENTRIES = {m["name"]: m for m in tomllib.loads(MANIFEST.read_text())["model"]}
LARGE = {"resnet18", "resnet50", "minilm_l6_encoder"}  # builds or runs take seconds
NAMES = [pytest.param(n, marks=pytest.mark.slow) if n in LARGE else n for n in ENTRIES]
VOCAB = 30522
PADDED_TAIL = 32  # token positions masked out in the transformer inputs


def _builder(spec: str):
    module, function = spec.split(":")
    return getattr(import_module(module), function)


@pytest.fixture(scope="module")
def built():
    """name -> ModelProto, each model built once for the module."""
    cache: dict[str, onnx.ModelProto] = {}

    def get(name: str) -> onnx.ModelProto:
        if name not in cache:
            cache[name] = _builder(ENTRIES[name]["builder"])()
        return cache[name]

    return get


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _inputs(entry: dict, seed: int) -> dict[str, np.ndarray]:
    """The brief's test inputs: normal(0, 1) images; random token ids with a padded tail in the mask."""
    rng = np.random.RandomState(seed)
    feeds = {}
    for spec in entry["inputs"]:
        shape = spec["shape"]
        if spec["dtype"] == "float32":
            feeds[spec["name"]] = rng.standard_normal(shape).astype(np.float32)
        elif spec["name"] == "attention_mask":
            mask = np.ones(shape, dtype=np.int64)
            mask[:, -PADDED_TAIL:] = 0
            feeds[spec["name"]] = mask
        else:
            feeds[spec["name"]] = rng.randint(0, VOCAB, size=shape).astype(np.int64)
    return feeds


def _check_logits(logits: np.ndarray, other: np.ndarray) -> None:
    assert logits.shape == (1, 1000)
    row = logits[0].astype(np.float64)
    assert 0.3 < row.std() < 10, row.std()
    probs = np.exp(row - row.max())
    probs /= probs.sum()
    assert probs.max() < 0.9, probs.max()
    # the input matters: two images differ by a fair share of the spread over classes, not by noise
    assert np.abs(logits - other).mean() > 0.1 * row.std()


def _check_hidden_state(hidden: np.ndarray, other: np.ndarray) -> None:
    assert hidden.shape == (1, 128, 384)
    per_token_std = hidden.std(axis=-1)
    assert np.all((per_token_std > 0.5) & (per_token_std < 2)), "LayerNorm output should be near unit scale"
    assert hidden[0].std(axis=0).mean() > 0.1, "tokens should not all look alike"
    assert np.abs(hidden - other).mean() > 0.1


def _check_detections(boxes: np.ndarray, scores: np.ndarray, other_scores: np.ndarray) -> None:
    assert boxes.shape == (1, 2100, 4) and scores.shape == (1, 2100, 80)
    assert np.all(boxes[..., 2:] > boxes[..., :2]), "x2 > x1 and y2 > y1"
    assert 0 < scores.min() and scores.max() < 1 and scores.std() > 0.005
    assert np.abs(scores - other_scores).mean() > 0.1 * scores.std()


def test_manifest_entries_follow_the_zoo_format():
    zoo = load_manifest()
    for name, entry in ENTRIES.items():
        assert zoo[name].source == "built" and zoo[name].sha256 == entry["sha256"]
        module, function = entry["builder"].split(":")
        assert module.startswith("bench.models.builders.") and function == f"build_{name}"
        assert entry["opset"] == 17 and "seeded random weights" in entry["license"]
        assert "RandomState(" in entry["provenance"] and entry["outputs"]
        assert all(spec["shape"][0] == 1 for spec in entry["inputs"])


@pytest.mark.parametrize("name", NAMES)
def test_rebuild_is_byte_identical_to_the_manifest(name, built):
    first = built(name).SerializeToString()
    assert hashlib.sha256(first).hexdigest() == ENTRIES[name]["sha256"]
    again = _builder(ENTRIES[name]["builder"])().SerializeToString()  # a second build in this process
    assert again == first


@pytest.mark.parametrize("name", NAMES)
def test_graph_conventions(name, built):
    model = built(name)
    assert model.ir_version == 8 and model.producer_name == "bench.models"
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    entry = ENTRIES[name]
    assert [i.name for i in model.graph.input] == [spec["name"] for spec in entry["inputs"]]
    assert [o.name for o in model.graph.output] == [spec["name"] for spec in entry["outputs"]]
    for value in [*model.graph.input, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        assert dims[0].dim_param == "batch", value.name
        assert all(d.dim_value > 0 for d in dims[1:]), f"{value.name}: only the batch axis is symbolic"
    for spec, value in zip(entry["inputs"], model.graph.input, strict=True):
        assert [d.dim_value for d in value.type.tensor_type.shape.dim[1:]] == spec["shape"][1:]


@pytest.mark.parametrize("name", NAMES)
def test_outputs_are_finite_and_not_degenerate(name, built):
    session = _session(built(name))
    entry = ENTRIES[name]
    first = session.run(None, _inputs(entry, seed=0))
    second = session.run(None, _inputs(entry, seed=1))
    for out in [*first, *second]:
        assert np.all(np.isfinite(out))
    if entry["outputs"][0]["name"] == "logits":
        _check_logits(first[0], second[0])
    elif name == "det_320":
        _check_detections(first[0], first[1], second[1])
    else:
        _check_hidden_state(first[0], second[0])


@pytest.mark.parametrize("name", NAMES)
def test_batch_of_two_matches_two_single_runs(name, built):
    """The symbolic batch axis really is one: no Reshape or Expand pins it to 1."""
    session = _session(built(name))
    entry = ENTRIES[name]
    singles = [_inputs(entry, seed) for seed in (0, 1)]
    batch = {key: np.concatenate([s[key] for s in singles]) for key in singles[0]}
    together = session.run(None, batch)
    apart = [session.run(None, s) for s in singles]
    for i, out in enumerate(together):
        expected = np.concatenate([a[i] for a in apart])
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.slow
def test_padded_tokens_do_not_change_the_others(built):
    """The attention mask is applied: changing ids under the padded tail leaves other tokens as they were."""
    session = _session(built("minilm_l6_encoder"))
    feeds = _inputs(ENTRIES["minilm_l6_encoder"], seed=0)
    changed = dict(feeds, input_ids=feeds["input_ids"].copy())
    changed["input_ids"][:, -PADDED_TAIL:] = 0
    (a,), (b,) = session.run(None, feeds), session.run(None, changed)
    np.testing.assert_allclose(a[:, :-PADDED_TAIL], b[:, :-PADDED_TAIL], atol=1e-5)
    assert np.abs(a[:, -PADDED_TAIL:] - b[:, -PADDED_TAIL:]).max() > 0.1
