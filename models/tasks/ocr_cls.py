"""PP-OCR text-line orientation (0 or 180 degrees): rendered crops, half of them turned upside down.

Preprocessing is the recognizer's (RapidOCR 1.4.4 ``ch_ppocr_cls/text_cls.py``: resize to height 48 keeping
aspect, width capped at 192, (x / 255 - 0.5) / 0.5, zero pad on the right); the output is [N, 2]
probabilities of the labels ``['0', '180']`` (config.yaml ``label_list``), so the class is the argmax.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.models.tasks import TaskData
from bench.models.tasks.ocr_rec import first_output, line_input
from bench.models.tasks.render import render_crop

if TYPE_CHECKING:
    from bench.models.zoo import ZooModel

LABELS = ("0", "180")


@dataclass(frozen=True)
class TextOrientation:
    """Rendered single tokens; label 1 (180 degrees) for the crops rotated by half a turn."""

    primary_metric: str = "accuracy"

    def dataset(self, model: ZooModel, n: int, seed: int) -> TaskData:
        spec = model.inputs[0]
        height, width = spec.shape[-2:]
        rng = np.random.RandomState(seed)
        inputs, labels = [], []
        for _ in range(n):
            crop, _ = render_crop(rng, max_ratio=width / height)
            turned = int(rng.randint(2))
            inputs.append({spec.name: line_input(np.rot90(crop, 2 * turned), height, width)})
            labels.append(turned)
        return TaskData(inputs, labels)

    def score(self, outputs: list[dict[str, np.ndarray]], labels: list[Any]) -> dict[str, float]:
        predicted = np.array([int(first_output(o).reshape(-1).argmax()) for o in outputs], dtype=np.int64)
        truth = np.asarray(labels, dtype=np.int64)
        if truth.size == 0:
            return {"accuracy": 0.0, "accuracy_upright": 0.0, "accuracy_rotated": 0.0}
        right = predicted == truth
        return {
            "accuracy": float(right.mean()),
            # Per class, so a model that always answers "0" cannot hide behind a balanced mean.
            "accuracy_upright": float(right[truth == 0].mean()) if (truth == 0).any() else 0.0,
            "accuracy_rotated": float(right[truth == 1].mean()) if (truth == 1).any() else 0.0,
        }
