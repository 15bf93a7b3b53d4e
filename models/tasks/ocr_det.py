"""PP-OCRv4 text detection (DB): rendered pages with known line boxes, precision / recall / F1 at IoU 0.5.

Preprocessing is PaddleOCR's for this model (``configs/det/ch_PP-OCRv4``, ``tools/infer/predict_det.py``):
the OpenCV (BGR) image scaled by 1/255 and normalized with the ImageNet mean and std applied in that
channel order, then CHW. RapidOCR 1.4.4 differs here: its config.yaml sets mean = std = 0.5 for det.
The pages are drawn at the input size, so no resize is needed.

Postprocessing follows RapidOCR's ``DBPostProcess`` (thresh 0.3, 2x2 dilation, box_thresh 0.5,
unclip_ratio 1.6, min_size 3) for axis-aligned text, without OpenCV or pyclipper: connected components
(8-connected, like ``cv2.findContours``) take the place of contours, and their bounding box the place of
``minAreaRect``; a box grows on every side by area * unclip_ratio / perimeter, which is what the round-joined
polygon offset does to a rectangle once ``minAreaRect`` is taken again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.models.tasks import TaskData
from bench.models.tasks.ocr_rec import first_output
from bench.models.tasks.render import render_page, to_bgr_chw

if TYPE_CHECKING:
    from bench.models.zoo import ZooModel

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)

Box = tuple[float, float, float, float]  # x0, y0, x1, y1


def page_input(image: np.ndarray) -> np.ndarray:
    """An RGB uint8 page as the [1, 3, H, W] float32 input; mean/std index B, G, R as in PaddleOCR."""
    chw = to_bgr_chw(image).astype(np.float32) / 255.0
    return ((chw - IMAGENET_MEAN[:, None, None]) / IMAGENET_STD[:, None, None])[None]


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Horizontal runs of set pixels: row, first column, last column + 1 (row-major order)."""
    edges = np.diff(np.pad(mask, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    rows, starts = np.nonzero(edges == 1)
    _, ends = np.nonzero(edges == -1)
    return rows, starts, ends


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def components(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Bounding boxes (x0, y0, x1, y1 inclusive) of the 8-connected components of a boolean mask.

    Run-length union-find: each run is joined to the runs of the row above that touch it, diagonals too.
    A probability map has a few runs per line per row, so the Python loop stays small.
    """
    rows, starts, ends = _runs(mask)
    parent = list(range(len(rows)))
    row_begin = np.searchsorted(rows, np.arange(mask.shape[0] + 1))
    for r in range(1, mask.shape[0]):
        above, here = range(row_begin[r - 1], row_begin[r]), range(row_begin[r], row_begin[r + 1])
        for i in here:
            for j in above:
                if starts[j] <= ends[i] and starts[i] <= ends[j]:  # overlap, or touch at a corner
                    parent[_find(parent, i)] = _find(parent, j)
    boxes: dict[int, list[int]] = {}
    for i in range(len(rows)):
        b = boxes.setdefault(_find(parent, i), [starts[i], rows[i], ends[i] - 1, rows[i]])
        b[0], b[1] = min(b[0], starts[i]), min(b[1], rows[i])
        b[2], b[3] = max(b[2], ends[i] - 1), max(b[3], rows[i])
    return [tuple(int(v) for v in b) for b in boxes.values()]


def db_boxes(prob: np.ndarray, thresh: float = 0.3, box_thresh: float = 0.5, unclip_ratio: float = 1.6) -> list[Box]:
    """Text line boxes from a DB probability map [H, W]."""
    mask = prob > thresh
    # cv2.dilate with a 2x2 kernel anchors at (1, 1): each pixel takes the max of itself, left, up, up-left.
    grown = mask.copy()
    grown[1:, :] |= mask[:-1, :]
    grown[:, 1:] |= mask[:, :-1]
    grown[1:, 1:] |= mask[:-1, :-1]
    height, width = prob.shape
    boxes = []
    for x0, y0, x1, y1 in components(grown):
        w, h = x1 - x0, y1 - y0  # minAreaRect over pixel centres
        if min(w, h) < 3 or prob[y0 : y1 + 1, x0 : x1 + 1].mean() < box_thresh:
            continue
        d = w * h * unclip_ratio / (2 * (w + h))
        if min(w, h) + 2 * d < 5:
            continue
        boxes.append((max(x0 - d, 0.0), max(y0 - d, 0.0), min(x1 + d, width), min(y1 + d, height)))
    return boxes


def iou(a: Box, b: Box) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def matches(predicted: list[Box], truth: list[Box], threshold: float = 0.5) -> list[float]:
    """IoUs of the one-to-one matches at IoU >= threshold, best pairs first (greedy, as ICDAR-style
    evaluators do)."""
    pairs = sorted(((iou(p, t), i, j) for i, p in enumerate(predicted) for j, t in enumerate(truth)), reverse=True)
    used_p, used_t, hits = set(), set(), []
    for value, i, j in pairs:
        if value < threshold:
            break
        if i not in used_p and j not in used_t:
            used_p.add(i), used_t.add(j)
            hits.append(value)
    return hits


def detection_metrics(predicted: list[list[Box]], truth: list[list[Box]]) -> dict[str, float]:
    """Precision, recall and F1 over all boxes of all pages (micro average), and the mean IoU of the
    matches: it moves when a runtime shifts box edges by a pixel, long before F1 does."""
    hits = [v for p, t in zip(predicted, truth, strict=True) for v in matches(p, t)]
    n_pred, n_true = sum(map(len, predicted)), sum(map(len, truth))
    precision = len(hits) / n_pred if n_pred else 0.0
    recall = len(hits) / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "mean_iou": float(np.mean(hits)) if hits else 0.0}


@dataclass(frozen=True)
class TextDetection:
    """Rendered pages of 2 to 9 lines of one to four tokens each; the labels are the line boxes."""

    primary_metric: str = "f1"

    def dataset(self, model: ZooModel, n: int, seed: int) -> TaskData:
        spec = model.inputs[0]
        height, width = spec.shape[-2:]
        rng = np.random.RandomState(seed)
        pages = [render_page(rng, height, width) for _ in range(n)]
        return TaskData([{spec.name: page_input(p.image)} for p in pages], [list(p.boxes) for p in pages])

    def score(self, outputs: list[dict[str, np.ndarray]], labels: list[Any]) -> dict[str, float]:
        maps = [first_output(o) for o in outputs]
        predicted = [db_boxes(m.reshape(m.shape[-2:])) for m in maps]
        return detection_metrics(predicted, [[tuple(map(float, b)) for b in boxes] for boxes in labels])
