from __future__ import annotations

import numpy as np

from bench.case import TimingPolicy
from bench.execution.stats import latency_stats, median_ci_ranks, median_with_ci
from bench.execution.timing import measure


def test_median_ci_ranks_match_the_binomial_table():
    # Exact 95% order-statistic intervals (1-based ranks): n=100 -> (40, 61); ours is that or a hair wider.
    lo, hi = median_ci_ranks(100)
    assert (lo + 1, hi + 1) in {(40, 61), (40, 62)}


def test_median_ci_contains_the_true_median_about_95_percent_of_the_time():
    rng = np.random.RandomState(0)
    hits = 0
    for _ in range(400):
        sample = rng.lognormal(0.0, 0.5, size=201)  # true median exp(0) = 1
        _, lo, hi = median_with_ci(sample)
        hits += lo <= 1.0 <= hi
    assert 0.92 <= hits / 400 <= 0.99


def test_summary_of_known_samples():
    s = latency_stats(np.array([1_000_000, 2_000_000, 3_000_000, 4_000_000, 5_000_000]))
    assert (s.median_ms, s.min_ms, s.max_ms, s.mean_ms, s.iterations) == (3.0, 1.0, 5.0, 3.0, 5)


def test_stopping_rule_stops_when_the_interval_is_tight():
    m = measure(lambda: sum(range(200)), TimingPolicy(min_iterations=10, min_time_s=0.05, max_time_s=5))
    assert m.stop_reason == "ci_reached" and len(m.samples_ns) >= 10


def test_stopping_rule_gives_up_at_max_time():
    rng = np.random.RandomState(1)
    sleeps = iter(rng.uniform(0, 2e-3, size=100_000))

    def noisy():
        end = __import__("time").perf_counter() + next(sleeps)
        while __import__("time").perf_counter() < end:
            pass

    policy = TimingPolicy(min_iterations=5, min_time_s=0.01, max_time_s=0.2, target_rel_ci=1e-6)
    m = measure(noisy, policy)
    assert m.stop_reason == "max_time" and 0.2e9 <= m.wall_ns < 1e9
