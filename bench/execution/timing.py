"""The harness owns the clock: warm-up, the timed loop and the adaptive stopping rule live here alone.

Runners only expose ``infer()``; nothing else runs between two timed calls except appending a sample,
and the stopping rule is evaluated at geometrically spaced checkpoints so its cost stays a few percent
of the run and never sits inside a timed region.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bench.case import TimingPolicy
from bench.execution.stats import relative_ci_half_width

NS = 1_000_000_000


@dataclass(frozen=True)
class Measurement:
    samples_ns: np.ndarray
    wall_ns: int
    cpu_ns: int
    stop_reason: str


def warm_up(infer: Callable[[], object], policy: TimingPolicy) -> int:
    """Run until both the warm-up time and iteration count are reached; returns the iterations run."""
    clock = time.perf_counter_ns
    deadline = clock() + int(policy.warmup_time_s * NS)
    count = 0
    while count < policy.warmup_iterations or clock() < deadline:
        infer()
        count += 1
    return count


def _stop_reason(samples: list[int], elapsed_ns: int, policy: TimingPolicy) -> str | None:
    if len(samples) >= policy.max_iterations:
        return "max_iterations"
    if len(samples) < policy.min_iterations or elapsed_ns < policy.min_time_s * NS:
        return None
    if relative_ci_half_width(np.asarray(samples, dtype=np.int64)) <= policy.target_rel_ci:
        return "ci_reached"
    if elapsed_ns >= policy.max_time_s * NS:
        return "max_time"
    return None


def _next_checkpoint(now_ns: int, start_ns: int) -> int:
    # Check at least every 100 ms, then every quarter of the elapsed time: O(log t) checks in all.
    return now_ns + max(NS // 10, (now_ns - start_ns) // 4)


def measure(infer: Callable[[], object], policy: TimingPolicy) -> Measurement:
    """Time ``infer`` call by call until the stopping rule says the median is known well enough."""
    clock = time.perf_counter_ns
    samples: list[int] = []
    append = samples.append
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        cpu_start = time.process_time_ns()
        start = clock()
        checkpoint = start
        while True:
            t0 = clock()
            infer()
            t1 = clock()
            append(t1 - t0)
            if t1 >= checkpoint:
                reason = _stop_reason(samples, t1 - start, policy)
                if reason:
                    break
                checkpoint = _next_checkpoint(clock(), start)
        wall = clock() - start
        cpu = time.process_time_ns() - cpu_start
    finally:
        if gc_was_enabled:
            gc.enable()
    return Measurement(np.asarray(samples, dtype=np.int64), wall, cpu, reason)
