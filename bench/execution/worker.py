"""The worker: runs one case in a fresh process and writes a typed result into a folder, never to stdout.

Usage (by the launcher only): ``python -m bench.execution.worker case|reference CASE_JSON OUT_DIR``.

Files written to OUT_DIR: ``samples.npy`` (int64 ns per timed iteration) and then ``result.json``,
renamed into place last so that the parent never reads a half-written result.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.case import Case
from bench.contract import Accuracy, Phases, RunnerFacts, Status, Timing, WorkerResult
from bench.execution import parity, task_eval
from bench.execution.convert import ConversionFailed
from bench.execution.inputs import make_inputs
from bench.execution.parity import parity_inputs
from bench.execution.stats import LatencyStats
from bench.execution.timing import measure, warm_up
from bench.files import write_bytes_atomic
from bench.loading import load_object
from bench.plugin import Runner, Unsupported


def _timed_ms(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter_ns()
    value = fn()
    return value, (time.perf_counter_ns() - start) / 1e6


def _run_parity(runner: Runner, case: Case) -> Accuracy:
    """After timing: the K parity inputs through the same prepared runtime, compared with the reference."""
    outputs = runner.run_each(parity_inputs(case))
    return parity.check(case, outputs, classifier="classification" in case.model.task)


def run_case(case: Case, out_dir: Path) -> WorkerResult:
    runner: Runner = load_object(case.implementation)(case)
    model_path = Path(case.model.path)
    artifact, convert_ms = _timed_ms(lambda: runner.convert(model_path))
    _, load_ms = _timed_ms(lambda: runner.load(artifact))
    _, prepare_ms = _timed_ms(runner.prepare)
    inputs = make_inputs(case.model.inputs, case.batch, case.seed)
    runner.bind(inputs)
    _, first_ms = _timed_ms(runner.infer)
    throughput = case.scenario == "throughput"
    infer = runner.infer_concurrent if throughput else runner.infer
    warmup_iterations = warm_up(infer, case.timing)
    m = measure(infer, case.timing)
    accuracy = _run_parity(runner, case)
    task = task_eval.evaluate(runner, case)
    facts = RunnerFacts.of({**runner.facts(), **(runner.conversion.facts() if runner.conversion else {})})
    runner.close()
    np.save(out_dir / "samples.npy", m.samples_ns)
    timing = Timing(
        latency=LatencyStats.from_samples_ns(m.samples_ns),
        phases=Phases(convert_ms, load_ms, prepare_ms, first_ms, warmup_iterations),
        wall_ns=m.wall_ns, cpu_ns=m.cpu_ns, stop_reason=m.stop_reason,
        items_per_iteration=case.batch * (runner.concurrent_requests if throughput else 1),
        timed_region=runner.timed_region,
    )
    return WorkerResult(Status.OK, timing=timing, facts=facts, accuracy=accuracy, task=task)


def run_reference(case: Case, out_dir: Path) -> WorkerResult:
    """fp32 outputs from ONNX Runtime on CPU with graph optimizations off: the yardstick for every case."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(case.model.path, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    outputs = [dict(zip(names, session.run(names, inputs), strict=True)) for inputs in parity_inputs(case)]
    return WorkerResult(Status.OK, reference=str(parity.save_reference(case, outputs)))


MODES = {"case": run_case, "reference": run_reference}


def main(argv: list[str]) -> int:
    mode, case_file, out_dir = argv[0], Path(argv[1]), Path(argv[2])
    case = Case.from_json(case_file.read_text())
    try:
        result = MODES[mode](case, out_dir)
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
