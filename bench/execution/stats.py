"""Latency statistics from raw per-iteration samples (nanoseconds in, milliseconds out)."""

from __future__ import annotations

import math

import numpy as np

from bench.contract import LatencyStats

Z95 = 1.959964


def median_ci_ranks(n: int, z: float = Z95) -> tuple[int, int]:
    """0-based ranks of the distribution-free confidence interval of the median (binomial, normal approx).

    1-based ranks j = floor(n/2 - z*sqrt(n)/2) and k = ceil(n/2 + z*sqrt(n)/2) + 1; n=100 gives (40, 61).

    Needs no assumption about the latency distribution, which is skewed and often multi-modal.
    """
    half = z * math.sqrt(n) / 2.0
    lo = max(0, math.floor(n / 2.0 - half) - 1)
    hi = min(n - 1, math.ceil(n / 2.0 + half))
    return lo, hi


def median_with_ci(samples: np.ndarray) -> tuple[float, float, float]:
    """Median and its 95% interval, by partial sort (O(n)) so it is cheap enough to call while timing."""
    n = len(samples)
    lo, hi = median_ci_ranks(n)
    mid = n // 2
    part = np.partition(samples, (lo, mid, hi))
    return float(part[mid]), float(part[lo]), float(part[hi])


def relative_ci_half_width(samples: np.ndarray) -> float:
    median, lo, hi = median_with_ci(samples)
    return (hi - lo) / 2.0 / median if median > 0 else math.inf


def latency_stats(samples_ns: np.ndarray) -> LatencyStats:
    """The summary of one case's timed iterations (nanoseconds in, milliseconds out)."""
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    median, lo, hi = median_with_ci(ms)
    p90, p95, p99 = np.percentile(ms, [90, 95, 99])
    mean = float(ms.mean())
    std = float(ms.std(ddof=1)) if len(ms) > 1 else 0.0
    return LatencyStats(
        iterations=len(ms),
        median_ms=median,
        median_ci_low_ms=lo,
        median_ci_high_ms=hi,
        mean_ms=mean,
        std_ms=std,
        min_ms=float(ms.min()),
        max_ms=float(ms.max()),
        p90_ms=float(p90),
        p95_ms=float(p95),
        p99_ms=float(p99),
        cv=std / mean if mean > 0 else 0.0,
    )
