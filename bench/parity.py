"""Output parity on every case: K fixed inputs, compared with fp32 reference outputs made once per model.

The reference is ONNX Runtime fp32 on the CPU with graph optimizations off, computed in its own worker
(so no second runtime's threads share a process with a timed one) and cached by model sha256, batch,
seed and K. The case's worker runs the same K inputs through its runtime after timing and compares.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from bench.accuracy import Parity, compare
from bench.case import Case
from bench.inputs import make_inputs

PARITY_INPUTS = 3
SEED_OFFSET = 1000  # parity inputs differ from the timing input, which is generated from the case's seed


def parity_inputs(case: Case) -> list[dict[str, np.ndarray]]:
    return [make_inputs(case.model.inputs, case.batch, case.seed + SEED_OFFSET + i) for i in range(PARITY_INPUTS)]


def reference_path(case: Case) -> Path:
    name = f"{case.model.sha256}-b{case.batch}-s{case.seed}-k{PARITY_INPUTS}.npz"
    return Path(case.cache_dir) / "reference" / name


def save_reference(case: Case, outputs: list[dict[str, np.ndarray]]) -> Path:
    target = reference_path(case)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **{f"{i}/{name}": array for i, out in enumerate(outputs) for name, array in out.items()})
    os.replace(tmp, target)
    return target


def load_reference(case: Case) -> list[dict[str, np.ndarray]] | None:
    path = reference_path(case)
    if not path.exists():
        return None
    outputs: list[dict[str, np.ndarray]] = [{} for _ in range(PARITY_INPUTS)]
    with np.load(path, allow_pickle=False) as data:
        for key in data.files:
            index, _, name = key.partition("/")
            outputs[int(index)][name] = data[key]
    return outputs


def _top1_agreement(outputs: list[dict], reference: list[dict]) -> float:
    """Share of samples whose argmax over the last axis of the first output matches the reference's."""
    name = sorted(reference[0])[0]
    hits = [np.argmax(o[name], axis=-1) == np.argmax(r[name], axis=-1) for o, r in zip(outputs, reference, strict=True)]
    return float(np.mean(np.concatenate([h.ravel() for h in hits])))


def summarize(results: list[Parity], top1: float | None) -> dict[str, Any]:
    """Worst case over the K inputs: the largest errors, the smallest cosine, the first failure's reason."""
    failed = [p for p in results if not p.accuracy_ok]
    return {
        "max_abs_error": max(p.max_abs_error for p in results),
        "max_rel_error": max(p.max_rel_error for p in results),
        "normalized_error": max(p.normalized_error for p in results),
        "cosine": min(p.cosine for p in results),
        "accuracy_ok": not failed,
        "reason": failed[0].reason if failed else "",
        "top1_agreement": top1,
        "parity_inputs": len(results),
    }


def check(case: Case, outputs: list[dict[str, np.ndarray]], classifier: bool) -> dict[str, Any]:
    reference = load_reference(case)
    if reference is None:
        return {"accuracy_ok": None, "reason": "no reference outputs (the reference worker failed)"}
    results = [compare(o, r, case.precision) for o, r in zip(outputs, reference, strict=True)]
    top1 = _top1_agreement(outputs, reference) if classifier and all(p.reason == "" or "tolerance" in p.reason
                                                                    for p in results) else None
    return summarize(results, top1)
