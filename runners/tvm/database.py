"""Where a TVM tuning database lives and what it holds. Imports nothing from tvm.

A database is MetaSchedule's two JSON files (workloads, tuning records) plus ``TUNING.json``, under
``<cache>/tuning/tvm/<key>/``, where the key hashes the model's sha256, its input shapes, the TVM version and the
target string: what a compiled schedule depends on. MetaSchedule itself looks records up by workload only, never by
target, so the folder's key is what keeps a database tuned for one CPU off another. ``TUNING.json`` holds the
sha256 of the records file; a folder whose records no longer match (or that lacks it) is not a database.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.cache import sha256_file
from bench.case import Case

WORKLOAD, RECORDS, MANIFEST = "database_workload.json", "database_tuning_record.json", "TUNING.json"
LAYOUT = 1  # bump when what a database folder holds changes


def input_shapes(case: Case) -> dict[str, dict[str, Any]]:
    """Each model input at the case's batch: what TVM compiles for (its shapes are static)."""
    return {i.name: {"shape": list(i.shape_at(case.batch)), "dtype": i.dtype} for i in case.model.inputs}


def tuning_key(case: Case, target: str, tvm_version: str) -> str:
    blob = json.dumps([LAYOUT, case.model.sha256, input_shapes(case), tvm_version, target], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def tuning_folder(case: Case, target: str, tvm_version: str) -> Path:
    return Path(case.cache_dir) / "tuning" / "tvm" / tuning_key(case, target, tvm_version)


@dataclass(frozen=True)
class Tuning:
    """A finished tuning: what was tuned, for which target, how many trials ran, and the records' hash."""

    model: str
    model_sha256: str
    inputs: dict[str, dict[str, Any]]
    target: str
    tvm_version: str
    trials: int  # trials measured (MetaSchedule may stop below the budget when a task's space is exhausted)
    trials_asked: int
    tasks: int
    seconds: float
    records_sha256: str
    num_cores: int  # the num-cores MetaSchedule tuned for (measured on that many threads)

    @property
    def label(self) -> str:
        return f"tuned: {self.trials} trials"

    def summary(self) -> dict[str, Any]:
        """What a compiled artifact's key and a row's options hold of it."""
        return {"trials": self.trials, "records_sha256": self.records_sha256}


def write_manifest(folder: Path, tuning: Tuning) -> None:
    (folder / MANIFEST).write_text(json.dumps(asdict(tuning), indent=1, sort_keys=True))


def read(folder: Path) -> Tuning | None:
    """The database in ``folder``, or None when there is none, or when its files do not match its manifest."""
    try:
        tuning = Tuning(**json.loads((folder / MANIFEST).read_text()))
        intact = (folder / WORKLOAD).is_file() and sha256_file(folder / RECORDS) == tuning.records_sha256
    except (OSError, ValueError, TypeError):
        return None
    return tuning if intact else None


def find(case: Case, target: str, tvm_version: str) -> Tuning | None:
    """The database tuned for this case's model and shapes on ``target`` with this TVM, if there is one."""
    tuning = read(tuning_folder(case, target, tvm_version))
    # The key already says so; the manifest's own words are checked too, so a folder copied under another key lies
    # to nobody.
    if tuning and (tuning.target, tuning.tvm_version, tuning.model_sha256) == (target, tvm_version, case.model.sha256):
        return tuning
    return None
