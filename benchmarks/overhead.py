"""Harness overhead per timed iteration, for one runner, in this process only (one runtime per process).

Usage: ``python benchmarks/overhead.py RUNNER CACHE_DIR`` prints JSON: the runtime's bare per-call time
(a plain perf_counter_ns loop around ``infer``) and the harness's (``bench.execution.timing.measure``), from
interleaved rounds on the 1-element ``tiny_add`` model.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from bench.case import Case, TimingPolicy
from bench.execution.inputs import make_inputs
from bench.execution.timing import measure
from bench.loading import load_object
from bench.models.zoo import load_manifest, model_ref
from bench.registry import Registry

CALLS = 20_000
ROUNDS = 7


def bare_ns_per_call(infer, calls: int) -> float:
    clock = time.perf_counter_ns
    start = clock()
    for _ in range(calls):
        infer()
    return (clock() - start) / calls


def harness_ns_per_call(infer, calls: int) -> float:
    # Fixed iteration count: the stopping rule would otherwise end at a different count each round.
    policy = TimingPolicy(min_iterations=calls, max_iterations=calls, min_time_s=0, max_time_s=1e9)
    m = measure(infer, policy)
    return m.wall_ns / len(m.samples_ns)


def main(runner_name: str, cache_dir: str) -> dict:
    spec = Registry.default().specs[runner_name]
    model = model_ref(load_manifest()["tiny_add"], Path(cache_dir))
    case = Case(model=model, runner=spec.name, implementation=spec.implementation, device="cpu",
                precision="fp32", batch=1, threads=1, scenario="latency", cache_dir=cache_dir)
    runner = load_object(spec.implementation)(case)
    runner.load(runner.convert(Path(model.path)))
    runner.prepare()
    runner.bind(make_inputs(model.inputs, 1, 0))
    bare_ns_per_call(runner.infer, CALLS)  # warm up
    bare, harness = [], []
    for _ in range(ROUNDS):  # interleaved, so drift on a shared machine hits both alike
        bare.append(bare_ns_per_call(runner.infer, CALLS))
        harness.append(harness_ns_per_call(runner.infer, CALLS))
    b, h = statistics.median(bare), statistics.median(harness)
    return {"runner": runner_name, "bare_ns": b, "harness_ns": h, "overhead_ns": h - b}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
