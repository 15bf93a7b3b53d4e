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


def _flat(outputs: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    return np.concatenate([np.asarray(outputs[n], dtype=np.float64).ravel() for n in names])


def compare(outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray], precision: str) -> Parity:
    """Compare all outputs at once; names and shapes must match the reference exactly."""
    names = sorted(reference)
    if sorted(outputs) != names:
        return Parity(np.inf, np.inf, np.inf, 0.0, False, f"outputs {sorted(outputs)} != reference {names}")
    for n in names:
        if np.shape(outputs[n]) != np.shape(reference[n]):
            shapes = f"{np.shape(outputs[n])} != {np.shape(reference[n])}"
            return Parity(np.inf, np.inf, np.inf, 0.0, False, f"output {n!r} shape {shapes}")
    out, ref = _flat(outputs, names), _flat(reference, names)
    if not np.all(np.isfinite(out)):
        return Parity(np.inf, np.inf, np.inf, 0.0, False, "non-finite values in outputs")
    diff = np.abs(out - ref)
    scale = float(np.max(np.abs(ref))) or 1.0
    # Relative error guarded by a floor of 1e-3 of the output scale, so near-zero references don't explode it.
    rel = diff / np.maximum(np.abs(ref), 1e-3 * scale)
    parity = dict(
        max_abs_error=float(diff.max(initial=0.0)),
        max_rel_error=float(rel.max(initial=0.0)),
        normalized_error=float(diff.max(initial=0.0)) / scale,
        cosine=_cosine(out, ref),
    )
    tol = TOLERANCES[precision]
    ok = parity["cosine"] >= tol.min_cosine and parity["normalized_error"] <= tol.max_normalized_error
    reason = "" if ok else f"outside {precision} tolerance (cosine >= {tol.min_cosine}, " \
        f"normalized error <= {tol.max_normalized_error})"
    return Parity(**parity, accuracy_ok=ok, reason=reason)
