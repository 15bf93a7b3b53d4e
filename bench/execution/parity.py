"""Output parity on every case: K fixed inputs, compared with fp32 reference outputs made once per model.

The reference is ONNX Runtime fp32 on the CPU with graph optimizations off, computed in its own worker
(so no second runtime's threads share a process with a timed one) and cached by model sha256, batch,
seed and K. The case's worker runs the same K inputs through its runtime after timing and compares.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from bench.cache import sha256_file
from bench.case import Case
from bench.contract import Accuracy
from bench.execution.accuracy import Parity, compare
from bench.execution.inputs import make_inputs
from bench.files import write_atomic

PARITY_INPUTS = 3
SEED_OFFSET = 1000  # parity inputs differ from the timing input, which is generated from the case's seed
# Bump when the parity inputs change, so references cached from the old inputs are never compared with new ones.
INPUTS_VERSION = 2
# The reference file's layout: arrays keyed "sample/output index", the output names beside them as JSON. Names as
# keys (layout 1) lost everything from a NUL on (zip member names end there), which made every runner WRONG.
LAYOUT = 2
NAMES = "names.json"


def _stack(samples: list[dict[str, np.ndarray]], case: Case) -> dict[str, np.ndarray]:
    """Batch-1 samples -> one batch, along each input's batch axis (inputs without one are shared)."""
    axes = {i.name: i.batch_axis for i in case.model.inputs}
    return {
        name: samples[0][name] if axes[name] is None
        else np.ascontiguousarray(np.concatenate([s[name] for s in samples], axis=axes[name]))
        for name in samples[0]
    }


def parity_inputs(case: Case) -> list[dict[str, np.ndarray]]:
    """K realistic inputs (rendered text for OCR, images, token ids with a mask, speech-like audio) for zoo
    models; seeded uniform values within the declared ranges for the user's own models."""
    seed = case.seed + SEED_OFFSET
    if case.model.generated_inputs:
        return [make_inputs(case.model.inputs, case.batch, seed + i) for i in range(PARITY_INPUTS)]
    from bench.models.tasks import sample_inputs
    from bench.models.zoo import load_manifest

    samples = sample_inputs(load_manifest()[case.model.name], PARITY_INPUTS * case.batch, seed)
    return [_stack(samples[i * case.batch:(i + 1) * case.batch], case) for i in range(PARITY_INPUTS)]


def reference_path(case: Case) -> Path:
    name = f"{case.model.sha256}-b{case.batch}-s{case.seed}-k{PARITY_INPUTS}-v{INPUTS_VERSION}-l{LAYOUT}.npz"
    return Path(case.cache_dir) / "reference" / name


def _hash_path(path: Path) -> Path:
    return path.with_suffix(".sha256")


def save_reference(case: Case, outputs: list[dict[str, np.ndarray]]) -> Path:
    """The fp32 outputs, and beside them their file's sha256: a reference is a cache entry like a model, checked
    before every use (a corrupted one was never rebuilt and made every case of its model an error)."""
    arrays = {f"{i}/{j}": array for i, out in enumerate(outputs) for j, array in enumerate(out.values())}
    arrays[NAMES] = np.frombuffer(json.dumps([list(out) for out in outputs]).encode(), dtype=np.uint8)
    path = write_atomic(reference_path(case), lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]  # numpy's stub: **kwds beside allow_pickle
    write_atomic(_hash_path(path), lambda f: f.write(sha256_file(path).encode()))
    return path


def reference_ok(case: Case) -> bool:
    """The reference exists and matches the hash written with it (the parent rebuilds it otherwise)."""
    path = reference_path(case)
    try:
        return _hash_path(path).read_text().strip() == sha256_file(path)
    except OSError:
        return False


def load_reference(case: Case) -> list[dict[str, np.ndarray]] | None:
    path = reference_path(case)
    if not path.exists():
        return None
    if _hash_path(path).exists() and not reference_ok(case):
        raise ValueError(f"fp32 reference {path} does not match its sha256 ({_hash_path(path).name}): corrupted "
                         "since it was written; the next run rebuilds it")
    try:
        with np.load(path, allow_pickle=False) as data:
            names = json.loads(data[NAMES].tobytes())
            outputs = [{name: data[f"{i}/{j}"] for j, name in enumerate(sample)} for i, sample in enumerate(names)]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:  # truncated or garbage bytes
        raise ValueError(f"fp32 reference {path} is unreadable ({exc}); the next run rebuilds it") from None
    return outputs


def _top1_agreement(outputs: list[dict], reference: list[dict]) -> float:
    """Share of samples whose argmax over the last axis of the first output matches the reference's."""
    name = sorted(reference[0])[0]
    hits = [np.argmax(o[name], axis=-1) == np.argmax(r[name], axis=-1) for o, r in zip(outputs, reference, strict=True)]
    return float(np.mean(np.concatenate([h.ravel() for h in hits])))


def summarize(results: list[Parity], top1: float | None) -> Accuracy:
    """Worst case over the K inputs: the largest errors, the smallest cosine, the first failure's reason."""
    failed = [p for p in results if not p.accuracy_ok]
    return Accuracy(
        max_abs_error=max(p.max_abs_error for p in results),
        max_rel_error=max(p.max_rel_error for p in results),
        normalized_error=max(p.normalized_error for p in results),
        cosine=min(p.cosine for p in results),
        accuracy_ok=not failed,
        reason=failed[0].reason if failed else "",
        top1_agreement=top1,
        parity_inputs=len(results),
    )


def check(case: Case, outputs: list[dict[str, np.ndarray]], classifier: bool) -> Accuracy:
    reference = load_reference(case)
    if reference is None:
        return Accuracy(accuracy_ok=None, reason="no reference outputs (the reference worker failed)")
    results = [compare(o, r, case.precision) for o, r in zip(outputs, reference, strict=True)]
    top1 = _top1_agreement(outputs, reference) if classifier and all(p.reason == "" or "tolerance" in p.reason
                                                                    for p in results) else None
    return summarize(results, top1)
