"""Output parity against the fp32 reference: the numbers, and the one tolerance table that judges them."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    min_cosine: float
    max_normalized_error: float  # max |out - ref| / max |ref|


# One place for every precision's tolerance; docs/RESULTS.md documents it. fp16 keeps 11 significant bits,
# bf16 only 8: through 50+ layers bf16 errors reach ~10% of the output scale while cosine stays near 0.99
# (OpenVINO bf16 on MobileNetV2: cosine 0.9916, normalized error 0.15). Cosine is the main judge; the
# normalized error catches a few wildly wrong elements that cosine would average away. fp32 allows 5e-3:
# fast convolution algorithms (Winograd) legitimately differ by ~1e-3 of the scale (MNN fp32 on PP-OCRv4 det:
# 1.15e-3, cosine 0.9999999997, identical detection F1), while real breakage is orders of magnitude larger.
TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(min_cosine=0.9999, max_normalized_error=5e-3),
    "fp16": Tolerance(min_cosine=0.995, max_normalized_error=0.1),
    "bf16": Tolerance(min_cosine=0.99, max_normalized_error=0.2),
    "int8": Tolerance(min_cosine=0.95, max_normalized_error=0.3),
    "int8_weights": Tolerance(min_cosine=0.95, max_normalized_error=0.3),
}


@dataclass(frozen=True)
class Parity:
    max_abs_error: float
    max_rel_error: float
    normalized_error: float
    cosine: float
    accuracy_ok: bool
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 and nb == 0.0:
        return 1.0
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0))


def _one(out: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """The numbers for one output, on its own scale."""
    out, ref = np.asarray(out, dtype=np.float64).ravel(), np.asarray(ref, dtype=np.float64).ravel()
    diff = np.abs(out - ref)
    scale = float(np.max(np.abs(ref), initial=0.0)) or 1.0
    # Relative error guarded by a floor of 1e-3 of the output scale, so near-zero references don't explode it.
    rel = diff / np.maximum(np.abs(ref), 1e-3 * scale)
    return dict(max_abs_error=float(diff.max(initial=0.0)), max_rel_error=float(rel.max(initial=0.0)),
                normalized_error=float(diff.max(initial=0.0)) / scale, cosine=_cosine(out, ref))


def _within(numbers: dict[str, float], precision: str) -> bool:
    tol = TOLERANCES[precision]
    return numbers["cosine"] >= tol.min_cosine and numbers["normalized_error"] <= tol.max_normalized_error


def compare(outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray], precision: str) -> Parity:
    """Each output against its own reference and scale (a detector's scores, at most 0.17, must not hide behind
    its boxes in pixels); names and shapes must match the reference exactly. The row gets the worst output's
    numbers: the lowest cosine and the largest errors, and the reason names the output that failed."""
    names = sorted(reference)
    if sorted(outputs) != names:
        return Parity(np.inf, np.inf, np.inf, 0.0, False, f"outputs {sorted(outputs)} != reference {names}")
    for n in names:
        if np.shape(outputs[n]) != np.shape(reference[n]):
            shapes = f"{np.shape(outputs[n])} != {np.shape(reference[n])}"
            return Parity(np.inf, np.inf, np.inf, 0.0, False, f"output {n!r} shape {shapes}")
        if not np.all(np.isfinite(np.asarray(outputs[n], dtype=np.float64))):
            return Parity(np.inf, np.inf, np.inf, 0.0, False, f"non-finite values in output {n!r}")
    each = {n: _one(outputs[n], reference[n]) for n in names}
    worst = dict(max_abs_error=max(e["max_abs_error"] for e in each.values()),
                 max_rel_error=max(e["max_rel_error"] for e in each.values()),
                 normalized_error=max(e["normalized_error"] for e in each.values()),
                 cosine=min(e["cosine"] for e in each.values()))
    failed = [n for n in names if not _within(each[n], precision)]
    tol = TOLERANCES[precision]
    reason = "" if not failed else (
        f"outside {precision} tolerance (cosine >= {tol.min_cosine}, normalized error <= "
        f"{tol.max_normalized_error})" + (f" in output {failed[0]!r}" if len(names) > 1 else ""))
    return Parity(**worst, accuracy_ok=not failed, reason=reason)
