"""PP-OCRv4 text recognition: rendered text-line crops, CTC greedy decoding, exact match and character accuracy.

Pre- and post-processing follow RapidOCR 1.4.4 (``ch_ppocr_rec/text_recognize.py``, ``ch_ppocr_rec/utils.py``),
itself a port of PaddleOCR's: the crop is resized to the input height keeping its aspect (width rounded up,
capped at the input width), scaled to (x / 255 - 0.5) / 0.5 and zero-padded on the right; the model's
characters come from its ``character`` metadata, with the CTC blank inserted at index 0 and a space appended
at the end (6623 + 2 = 6625 classes); decoding takes the argmax per step, merges repeats and drops blanks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.models.tasks import TaskData
from bench.models.tasks.render import render_crop, resize_bilinear, to_bgr_chw

if TYPE_CHECKING:
    from bench.models.zoo import ZooModel

CHARACTER_FILE = "ppocr_v4_rec_character.txt"


@lru_cache(maxsize=1)
def load_characters() -> tuple[str, ...]:
    """The decoding table: blank, then the ``character`` metadata of ppocr_v4_rec (kept here as a file, so
    scoring needs no model file; tests check it against the model), then the space that PaddleOCR appends."""
    text = (resources.files("bench.models.tasks") / CHARACTER_FILE).read_text(encoding="utf-8")
    return ("blank", *text.splitlines(), " ")


def characters_from_model(path: Path) -> tuple[str, ...]:
    """The same table read from an ONNX file's metadata, as RapidOCR 1.4.x does."""
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return ("blank", *meta["character"].splitlines(), " ")


def line_input(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """An RGB uint8 crop as a [1, 3, height, width] float32 input (RapidOCR ``resize_norm_img``)."""
    ratio = image.shape[1] / image.shape[0]
    resized_w = min(width, math.ceil(height * ratio))
    chw = to_bgr_chw(resize_bilinear(image, height, resized_w)).astype(np.float32) / 255.0
    padded = np.zeros((1, 3, height, width), np.float32)
    padded[0, :, :, :resized_w] = (chw - 0.5) / 0.5
    return padded


def ctc_greedy(probs: np.ndarray, characters: tuple[str, ...]) -> str:
    """Best path: argmax per time step, repeats merged, blanks (index 0) dropped."""
    best = probs.reshape(-1, probs.shape[-1]).argmax(axis=-1)
    keep = np.ones(best.shape, bool)
    keep[1:] = best[1:] != best[:-1]
    keep &= best != 0
    return "".join(characters[i] if i < len(characters) else "\ufffd" for i in best[keep])


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, one row at a time (labels are short)."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def text_metrics(predicted: list[str], labels: list[str]) -> dict[str, float]:
    """PaddleOCR's RecMetric on whole strings: exact-match rate, and character accuracy
    1 - mean(edit distance / max(len(prediction), len(label))).

    Spaces between words count (RecMetric's default drops them all); spaces at the ends of a prediction do
    not: the model reads the crop's blank margins as spaces, and no label starts or ends with one.
    """
    predicted = [p.strip(" ") for p in predicted]
    if not labels:
        return {"exact_match": 0.0, "char_accuracy": 0.0}
    exact = sum(p == t for p, t in zip(predicted, labels, strict=True))
    norm = sum(edit_distance(p, t) / max(len(p), len(t), 1) for p, t in zip(predicted, labels, strict=True))
    return {"exact_match": exact / len(labels), "char_accuracy": 1.0 - norm / len(labels)}


def first_output(output: dict[str, np.ndarray]) -> np.ndarray:
    """The model's first output (PaddleOCR models have one; runners return outputs in graph order)."""
    return np.asarray(next(iter(output.values())))


@dataclass(frozen=True)
class TextRecognition:
    """Rendered words, numbers and mixed tokens (one to two words), one crop per call at batch 1."""

    primary_metric: str = "exact_match"
    characters: tuple[str, ...] = field(default_factory=load_characters, repr=False)

    def dataset(self, model: ZooModel, n: int, seed: int) -> TaskData:
        spec = model.inputs[0]
        height, width = spec.shape[-2:]
        rng = np.random.RandomState(seed)
        crops = [render_crop(rng, max_ratio=width / height, max_words=2) for _ in range(n)]
        return TaskData([{spec.name: line_input(c, height, width)} for c, _ in crops], [t for _, t in crops])

    def score(self, outputs: list[dict[str, np.ndarray]], labels: list[Any]) -> dict[str, float]:
        predicted = [ctc_greedy(first_output(o), self.characters) for o in outputs]
        return text_metrics(predicted, list(labels))
