"""Task accuracy inside the worker, after timing: the zoo's labelled sets through the runtime under test.

Only the real trained models have labelled data (``bench.models.tasks``); other models get None. Scored at
batch 1, the shape every runner was prepared for at batch 1; other batch sizes are not scored.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from pathlib import Path

import numpy as np

from bench.case import Case
from bench.contract import TaskScore
from bench.files import write_bytes_atomic
from bench.plugin import Runner


def outputs_digest(outputs: list[dict[str, np.ndarray]]) -> str:
    """sha256 of outputs, bit for bit (names, dtypes, shapes, bytes, in order)."""
    digest = hashlib.sha256()
    for output in outputs:
        for name, array in output.items():
            array = np.ascontiguousarray(array)
            digest.update(f"{name}|{array.dtype}|{array.shape}|".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()


def _score_file(case: Case, runtime_version: str | None, digest: str) -> Path | None:
    """Where a score of these exact outputs is kept: the same model, runtime and version, precision, device and
    batch that gave bit-identical parity outputs scores the labelled set identically in all but name."""
    if not case.cache_dir:
        return None
    identity = [case.model.sha256, case.runner, runtime_version, case.precision, case.device, case.batch,
                case.seed, case.task_samples, _task_code(), digest]
    key = hashlib.sha256(json.dumps(identity).encode()).hexdigest()
    return Path(case.cache_dir) / "task-scores" / f"{key}.json"


@functools.cache
def _task_code() -> str:
    """sha256 of the labelled sets' and scorers' code and data (bench.models.tasks) and of what draws them: a
    kept score is of the set and the scoring this code makes, so any change to them scores afresh."""
    import importlib.metadata

    import bench.models.tasks as tasks

    digest = hashlib.sha256()
    for renderer in ("pillow", "matplotlib"):  # the crops are drawn with Pillow in matplotlib's fonts
        digest.update(f"{renderer} {importlib.metadata.version(renderer)}\0".encode())
    try:  # mir_eval matches basic_pitch's notes
        digest.update(f"mir_eval {importlib.metadata.version('mir_eval')}\0".encode())
    except importlib.metadata.PackageNotFoundError:
        pass
    for path in sorted(Path(tasks.__file__).parent.iterdir()):
        if path.is_file() and path.suffix in (".py", ".txt"):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _reused(path: Path | None) -> TaskScore | None:
    try:
        return TaskScore(**json.loads(path.read_text())) if path else None
    except (OSError, ValueError, TypeError):  # absent, or a damaged file: score again
        return None


def evaluate(runner: Runner, case: Case, digest: str | None = None, runtime_version: str | None = None
             ) -> TaskScore | None:
    """The task's score, or None for a model without labelled data. With ``digest`` (of the parity outputs), a
    score kept for bit-identical outputs is reused and says whose it was, instead of running the set again."""
    if case.model.generated_inputs or case.batch != 1:
        return None
    from bench.models.tasks import DEFAULT_N, task_for
    from bench.models.zoo import load_manifest

    task = task_for(case.model.name)
    if task is None:
        return None
    path = _score_file(case, runtime_version, digest) if digest else None
    kept = _reused(path)
    if kept:
        return dataclasses.replace(kept, task_reused_from=kept.task_reused_from or "?")
    n = min(DEFAULT_N[case.model.name], case.task_samples or DEFAULT_N[case.model.name])
    data = task.dataset(load_manifest()[case.model.name], n, seed=case.seed)
    metrics = task.score(runner.run_each(data.inputs), data.labels)
    score = TaskScore(task.primary_metric, float(metrics[task.primary_metric]), len(data.inputs),
                      json.dumps(metrics, sort_keys=True))
    if path:
        kept_score = dataclasses.replace(score, task_reused_from=case.key)
        write_bytes_atomic(path, json.dumps(dataclasses.asdict(kept_score)).encode())
    return score
