"""The worker: runs one case in a fresh process and writes a typed result into a folder, never to stdout.

Usage (by the launcher only): ``python -m bench.execution.worker case|reference|convert CASE_JSON OUT_DIR``
(``convert``: only the runner's conversion into the cache, for ``bench run``'s pass ahead of timing).

Files written to OUT_DIR: ``samples.npy`` (int64 ns per timed iteration) and then ``result.json``,
renamed into place last so that the parent never reads a half-written result.

A spawned worker sets itself up first thing, before numpy and the runner import (numpy's threads take the CPUs
of the thread that starts them): its death signal, address-space cap and CPUs, from the environment the launcher
gave it (``bench.containment``; never in ``preexec_fn``, which is unsafe in a launcher with threads).
"""

from __future__ import annotations

from bench import containment

containment.set_up_from_environment()
# ruff: noqa: E402  (every import below comes after the set-up above, on purpose)

import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench import topology
from bench.case import LOADGEN_SCENARIOS, Case
from bench.contract import (
    SPAWNED_AT_ENV,
    WORKER_MODES,
    Accuracy,
    ConversionFailed,
    LoadGenRun,
    Phases,
    RunnerFacts,
    Status,
    Timing,
    WorkerResult,
)
from bench.execution import parity, task_eval
from bench.execution.inputs import make_inputs
from bench.execution.parity import parity_inputs
from bench.execution.profile import profile_pass
from bench.execution.stats import latency_stats
from bench.execution.timing import Measurement, measure, warm_up
from bench.files import write_bytes_atomic
from bench.loading import load_object
from bench.plugin import Runner, Unsupported


def _timed_ms(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter_ns()
    value = fn()
    return value, (time.perf_counter_ns() - start) / 1e6


def _run_parity(runner: Runner, case: Case) -> tuple[Accuracy, str]:
    """After timing: the K parity inputs through the same prepared runtime, compared with the reference; and the
    outputs' digest, which lets task accuracy reuse the score of bit-identical outputs."""
    outputs = runner.run_each(parity_inputs(case))
    accuracy = parity.check(case, outputs, classifier="classification" in case.model.task)
    return accuracy, task_eval.outputs_digest(outputs)


def _worker_start_ms(main_ns: int) -> float | None:
    """Spawn (the launcher's clock, passed in the environment) to main(): what starting a worker costs."""
    spawned = os.environ.get(SPAWNED_AT_ENV, "")
    return (main_ns - int(spawned)) / 1e6 if spawned.isdigit() else None


def run_case(case: Case, out_dir: Path, started_ms: float | None = None) -> WorkerResult:
    implementation, import_ms = _timed_ms(lambda: load_object(case.implementation))
    runner: Runner = implementation(case)
    model_path = Path(case.model.path)
    artifact, convert_ms = _timed_ms(lambda: runner.convert(model_path))
    _, load_ms = _timed_ms(lambda: runner.load(artifact))
    _, prepare_ms = _timed_ms(runner.prepare)
    inputs = make_inputs(case.model.inputs, case.batch, case.seed)
    runner.bind(inputs)
    _, first_ms = _timed_ms(runner.infer)
    throughput = case.scenario == "throughput"
    infer = runner.infer_concurrent if throughput else runner.infer
    warmup_iterations, warmup_ms = _timed_ms(lambda: warm_up(infer, case.timing))
    if case.scenario in LOADGEN_SCENARIOS:
        alone_ms = warmup_ms / warmup_iterations if warmup_iterations else first_ms  # one request, nothing beside
        m, lg_run = _loadgen(runner, case, out_dir, alone_ms)
    else:
        m, lg_run = measure(infer, case.timing), None
    cpus = tuple(sorted(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else ()
    freq_ratio = topology.frequency_ratio(cpus)  # read while the loop's heat is still there
    (accuracy, digest), parity_ms = _timed_ms(lambda: _run_parity(runner, case))
    # Read back once (some runners read their converted file): the task score's key needs the runtime version.
    facts = RunnerFacts.of({**runner.facts(), **(runner.conversion.facts() if runner.conversion else {})})
    task, task_ms = _timed_ms(lambda: task_eval.evaluate(runner, case, digest, facts.runtime_version))
    latency = latency_stats(m.samples_ns)
    profile, profile_ms = _timed_ms(lambda: profile_pass(runner, inputs, latency.median_ms)) if case.profile \
        else (None, None)
    runner.close()
    _, write_ms = _timed_ms(lambda: np.save(out_dir / "samples.npy", m.samples_ns))
    timing = Timing(
        latency=latency,
        phases=Phases(convert_ms=convert_ms, load_ms=load_ms, prepare_ms=prepare_ms, first_inference_ms=first_ms,
                      warmup_iterations=warmup_iterations, worker_start_ms=started_ms, import_ms=import_ms,
                      warmup_ms=warmup_ms, parity_ms=parity_ms, task_ms=task_ms if task else None, write_ms=write_ms,
                      profile_ms=profile_ms),
        wall_ns=m.wall_ns, cpu_ns=m.cpu_ns, stop_reason=m.stop_reason,
        items_per_iteration=case.batch * (runner.concurrent_requests if throughput else 1),
        timed_region=LOADGEN_REGION if lg_run else runner.timed_region, cpus=cpus, cpu_freq_ratio=freq_ratio,
    )
    return WorkerResult(Status.OK, timing=timing, facts=facts, accuracy=accuracy, task=task, loadgen=lg_run,
                        profile=profile)


# What a server or offline row's samples are (bench.execution.loadgen.Driver): one per LoadGen query
LOADGEN_REGION = ("one LoadGen query through bench's driver: server, from LoadGen's issue to the completion (queueing "
                  "included); offline, the request alone (infer_request on one of the requests in flight)")


def _loadgen(runner: Runner, case: Case, out_dir: Path, alone_ms: float) -> tuple[Measurement, LoadGenRun]:
    """The server or offline scenario through MLPerf LoadGen; the samples and clock of the trial it reports."""
    from bench.execution import loadgen

    reported, lg_run = loadgen.run(case, runner.infer_request, runner.concurrent_requests, alone_ms, out_dir)
    return Measurement(reported.latencies_ns, reported.wall_ns, reported.cpu_ns, "loadgen"), lg_run


def run_reference(case: Case, out_dir: Path) -> WorkerResult:
    """fp32 outputs from ONNX Runtime on CPU with graph optimizations off: the yardstick for every case; for a model
    from PyTorch (``bench run --torch``), the module's own fp32 eager outputs instead."""
    if case.model.torch_factory:
        from bench.models.torchsource import module_outputs

        outputs = module_outputs(case.model, parity_inputs(case))
        return WorkerResult(Status.OK, reference=str(parity.save_reference(case, outputs)))
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(case.model.path, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    outputs = [dict(zip(names, session.run(names, inputs), strict=True)) for inputs in parity_inputs(case)]
    return WorkerResult(Status.OK, reference=str(parity.save_reference(case, outputs)))


def run_conversion(case: Case) -> WorkerResult:
    """The runner's conversion alone, into the cache (``bench.ahead``): nothing loaded, nothing timed but the
    conversion itself, whose facts and time come back for the rows of the cases that use the artifact."""
    runner: Runner = load_object(case.implementation)(case)
    _, convert_ms = _timed_ms(lambda: runner.convert(Path(case.model.path)))
    made = runner.conversion.facts() if runner.conversion else {}
    return WorkerResult(Status.OK, facts=RunnerFacts.of({**made, "convert_ms": convert_ms}))


def _run(mode: str, case: Case, out_dir: Path, started_ms: float | None) -> WorkerResult:
    if mode == "case":
        return run_case(case, out_dir, started_ms)
    if mode == "convert":
        return run_conversion(case)
    if mode == "reference":
        return run_reference(case, out_dir)
    raise ValueError(f"unknown worker mode {mode!r} (expected one of {', '.join(WORKER_MODES)})")


def main(argv: list[str]) -> int:
    started_ms = _worker_start_ms(time.time_ns())
    mode, case_file, out_dir = argv[0], Path(argv[1]), Path(argv[2])
    case = Case.from_json(case_file.read_text())
    try:
        result = _run(mode, case, out_dir, started_ms)
    except MemoryError:
        traceback.print_exc(limit=5)
        result = WorkerResult(Status.OOM, "MemoryError: the worker ran out of memory")
    except Unsupported as exc:
        result = WorkerResult(Status.UNSUPPORTED, str(exc))
    except ConversionFailed as exc:
        ops = f" (ops: {', '.join(exc.ops)})" if exc.ops else ""
        result = WorkerResult(Status.CONVERSION_FAILED, f"{exc}{ops}")
    except Exception as exc:  # a runner failing is a result, not a crash of the worker
        traceback.print_exc(limit=20)  # lands in the row's stderr_tail
        result = WorkerResult(Status.ERROR, f"{type(exc).__name__}: {exc}")
    write_bytes_atomic(out_dir / "result.json", result.to_json().encode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
