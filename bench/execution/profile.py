"""The per-op profile pass (``--profile``, a suite's ``profile = true``): after the timed loop and parity, never
inside them, the runner runs the case's inputs a few more times under its runtime's own profiler
(``Runner.profile``), and this module keeps each node's median time over the runs.

The first profiled run is dropped: ONNX Runtime profiles in a session of its own, made for the pass, whose first run
is cold, and the other profilers set themselves up on their first call. ``total_ms`` is the median over the kept
runs of the per-run sum of node times, which the row checks against the case's own median
(``bench.results.rows``: ``profile_coverage``). A runner without a profiler, or whose profiler fails, leaves the
case's timing as it was: the profile's ``note`` says why there are no ops.
"""

from __future__ import annotations

import gc
import statistics
import traceback
from collections import defaultdict

import numpy as np

from bench.contract import OpSummary, OpTime, Profile
from bench.plugin import NoProfiler, Runner

PASS_MS = 1000.0  # what the kept runs aim to last: a 1 ms model gets MAX_RUNS, a 1 s model MIN_RUNS
MIN_RUNS, MAX_RUNS = 3, 20


def profile_runs(median_ms: float) -> int:
    """Kept runs for a case whose median is ``median_ms``."""
    return int(min(MAX_RUNS, max(MIN_RUNS, PASS_MS // max(median_ms, 1e-3))))


def profile_pass(runner: Runner, inputs: dict[str, np.ndarray], median_ms: float) -> Profile:
    """The pass: ``profile_runs`` kept runs and one dropped first; a missing or failing profiler is a note."""
    runs = profile_runs(median_ms)
    enabled = gc.isenabled()
    gc.disable()  # as in the timed loop: the profilers make Python objects per op, and a collection is no op's time
    try:
        times = runner.profile(inputs, runs + 1)
    except NoProfiler as exc:
        return Profile(note=str(exc))
    except Exception as exc:  # the case's timing and parity stand: the profiler failing is said on its row
        traceback.print_exc(limit=10)  # lands in the row's stderr_tail
        return Profile(note=f"the profile pass failed: {type(exc).__name__}: {exc}")
    finally:
        if enabled:
            gc.enable()
    return summarize(times)


def summarize(times: list[OpTime]) -> Profile:
    """Each node's median over the runs after the first, and the median of the per-run totals."""
    kept = [t for t in times if t.run > 0]
    if not kept:
        return Profile(note="the profiler reported no op after its first run")
    totals: dict[int, float] = defaultdict(float)
    by_node: dict[tuple[str, str], list[OpTime]] = defaultdict(list)
    for t in kept:
        totals[t.run] += t.ms
        by_node[(t.node, t.op_type)].append(t)
    ops = tuple(OpSummary(node=node, op_type=op_type, kernel=seen[0].kernel, precision=seen[0].precision,
                          median_ms=_per_run_median(seen), runs=len({t.run for t in seen}))
                for (node, op_type), seen in by_node.items())
    ordered = tuple(sorted(ops, key=lambda o: -o.median_ms))
    return Profile(runs=len(totals), total_ms=statistics.median(totals.values()), ops=ordered)


def _per_run_median(seen: list[OpTime]) -> float:
    """The node's median over runs, a node reported several times in one run (a loop body) summed per run."""
    per_run: dict[int, float] = defaultdict(float)
    for t in seen:
        per_run[t.run] += t.ms
    return statistics.median(per_run.values())
