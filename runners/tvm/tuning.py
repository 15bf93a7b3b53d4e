"""MetaSchedule tuning of one model for one target, run by ``bench tune`` in a subprocess with a deadline. Imports
tvm.

The database goes to ``<cache>/tuning/tvm/<key>/`` (``bench.runners.tvm.database``), written in a temporary folder
beside it and renamed into place when complete, so a tuning killed at its deadline leaves nothing a run would use.
A database that already holds at least the trials asked for is reused, not tuned again.

Builds run in this process by default: TVM's LocalBuilder starts fresh worker processes for every batch of
candidates, and each spends 35-40 s importing ``tvm.s_tir.tensor_intrin`` on this kind of machine (FIELD.md), which
this process has imported already. ``builders > 0`` uses LocalBuilder with that many workers. Candidates are measured
by TVM's LocalRunner in its own worker process, on as many threads as the target has cores.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import tvm
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder
from tvm.s_tir.meta_schedule.builder.local_builder import default_build, default_export
from tvm.support.cc import get_cc

from bench.cache import sha256_file
from bench.case import Case
from bench.execution.convert import ConversionFailed
from bench.runners.tvm.compile import fused_for_tuning, host_target, import_onnx, tuning_target
from bench.runners.tvm.database import RECORDS, WORKLOAD, Tuning, input_shapes, read, tuning_folder, write_manifest
from bench.runners.tvm.database import find as find_database

MEASURE_TIMEOUT_S = 120  # one candidate's run in LocalRunner; the whole tuning has bench tune's deadline
BUILD_TIMEOUT_S = 300  # one batch in LocalBuilder's workers (their import alone takes 35-40 s)
SEED = 0


@derived_object
class InProcessBuilder(PyBuilder):
    """MetaSchedule's default build and export of each candidate, in this process (see the module docstring)."""

    def build(self, build_inputs: list) -> list:
        results = []
        for candidate in build_inputs:
            try:
                results.append(BuilderResult(default_export(default_build(candidate.mod, candidate.target, None)),
                                             None))
            except Exception as exc:  # one candidate that fails to build is MetaSchedule's to skip
                results.append(BuilderResult(None, f"in-process build: {type(exc).__name__}: {exc}"))
        return results


def _target(text: str | None) -> tvm.target.Target:
    if not text:
        return host_target()
    try:
        return tvm.target.Target(json.loads(text))
    except (ValueError, tvm.error.TVMError) as exc:
        raise ValueError(f"--target {text!r}: expected a TVM target as JSON, e.g. "
                         f'{{"kind": "llvm", "mcpu": "x86-64"}} ({exc})') from None


def _builder(builders: int):
    return InProcessBuilder() if builders == 0 else ms.builder.LocalBuilder(max_workers=builders,
                                                                            timeout_sec=BUILD_TIMEOUT_S)


def _tune_into(work: Path, case: Case, target: tvm.target.Target, trials: int, builders: int) -> int:
    """Tune into ``work`` for ``target`` (with num-cores); returns the number of tasks (fused operators)."""
    fused = fused_for_tuning(import_onnx(Path(case.model.path), case), target)
    tasks = ms.relax_integration.extract_tasks(fused, target)
    if not tasks:
        raise ConversionFailed("nothing to tune: the model has no operator MetaSchedule schedules")
    os.environ["TVM_NUM_THREADS"] = str(target.attrs["num-cores"])  # LocalRunner's worker measures on those cores
    runner = ms.runner.LocalRunner(timeout_sec=MEASURE_TIMEOUT_S)
    ms.relax_integration.tune_relax(fused, {}, target, str(work), max_trials_global=trials,
                                    num_trials_per_iter=min(trials, 64), builder=_builder(builders), runner=runner,
                                    seed=SEED)
    return len(tasks)


def _measured(records: Path) -> int:
    """Trials that ran and were measured: one record each (failed builds and runs leave none)."""
    return sum(1 for line in records.read_text().splitlines() if line.strip())


def tune(request: dict[str, Any]) -> dict[str, Any]:
    """One tuning (``bench tune``'s request: a case as JSON, trials, builders, target or None); its outcome."""
    case = Case.from_json(request["case"])
    target = _target(request.get("target"))
    trials, where = int(request["trials"]), str(target)
    outcome: dict[str, Any] = {"target": where, "tvm_version": tvm.__version__}
    folder = tuning_folder(case, where, tvm.__version__)
    found = find_database(case, where, tvm.__version__)
    if found and found.trials_asked >= trials:
        return {**outcome, "status": "reused", "trials": found.trials, "database": str(folder),
                "seconds": found.seconds}
    if get_cc() is None:
        return {**outcome, "status": "failed", "reason": "MetaSchedule links every candidate with a C compiler and "
                                                         "none was found (g++, gcc, clang or $CC)"}
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
    try:
        tuning = _tuned(work, case, target, trials, request.get("builders", 0))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(work, folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {**outcome, "status": "tuned", "trials": tuning.trials, "tasks": tuning.tasks, "database": str(folder),
            "seconds": tuning.seconds}


def _tuned(work: Path, case: Case, target: tvm.target.Target, trials: int, builders: int) -> Tuning:
    """Tune into ``work`` and write its manifest; the database as it reads back."""
    start = time.monotonic()
    tuned_for = tuning_target(target)
    tasks = _tune_into(work, case, tuned_for, trials, builders)
    records = work / RECORDS
    measured = _measured(records) if records.is_file() else 0
    if not measured or not (work / WORKLOAD).is_file():
        raise RuntimeError(f"MetaSchedule measured no trial of {trials}: every candidate failed to build or run")
    tuning = Tuning(case.model.name, case.model.sha256, input_shapes(case), str(target), tvm.__version__, measured,
                    trials, tasks, round(time.monotonic() - start, 1), sha256_file(records),
                    int(tuned_for.attrs["num-cores"]))
    shutil.rmtree(work / "logs", ignore_errors=True)  # MetaSchedule's per-task logs: the manifest sums them up
    write_manifest(work, tuning)
    if read(work) != tuning:
        raise RuntimeError("the tuning database did not read back")
    return tuning
