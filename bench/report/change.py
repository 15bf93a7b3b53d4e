"""Is a change of one case's median latency real? The statistics of ``bench compare`` (and of the scenario table's
ties, :mod:`bench.report.scenarios`), on the raw samples of both sides (each cut by the caller to at most
``MAX_SAMPLES`` evenly spaced iterations, and here to an odd count):

* ``change`` = median(NEW) / median(BASE) - 1 (positive: slower).
* a 95% percentile-bootstrap CI of ``change`` from ``RESAMPLES`` seeded resamples of each side. The median
  of a resample of n (odd) sorted values is their J-th value, with P(J <= j) = P(Binomial(n, j/n) >= (n+1)/2),
  so each resample's median is drawn exactly from that distribution: the same result as resampling the
  values, at O(n + resamples) cost instead of O(n x resamples).
* ``p``: the two-sided Mann-Whitney U test (scipy.stats.mannwhitneyu) of the two sample sets.

With threshold t (``--threshold 5%`` gives t = 0.05), a case is

* **regressed** when change > t AND the CI's lower bound > t AND p < ALPHA (0.01): slower by more than
  the threshold, and neither the interval nor the rank test leaves room for noise;
* **improved** when change < -t AND the CI's upper bound < -t AND p < ALPHA;
* **unchanged** otherwise (its note says "inconclusive" when |change| > t but the CI or p does not agree);
* **broken** when BASE ran with correct outputs and NEW did not run, or gave wrong outputs;
* **fixed** the other way round; **failing** when neither side ran; **no_samples** when a side has none.
"""

from __future__ import annotations

import functools
import math
import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.contract import Status

MAX_SAMPLES = 2001  # per side; odd, so a median is one order statistic
RESAMPLES = 10_000
ALPHA = 0.01
SEED = 20240601


def cut_sql(max_samples: int = MAX_SAMPLES, column: str = "samples_ns") -> str:
    """The cut in DuckDB, for readers of the store (``bench compare``, the report's scenario ties): at most
    ``max_samples`` evenly spaced samples, every step-th from the first."""
    step = f"greatest(1, ceil(len({column}) / {max_samples}))::BIGINT"
    return f"list_slice({column}, 1, len({column}), {step})"


def cut(samples_ns: Sequence[int], max_samples: int = MAX_SAMPLES) -> list[int]:
    """The same cut (:func:`cut_sql`) of samples already in memory (the rows a run ends with)."""
    return list(samples_ns[::max(1, math.ceil(len(samples_ns) / max_samples))])


@dataclass
class Change:
    case_key: str
    status: str
    base_ms: float | None = None
    new_ms: float | None = None
    change: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    note: str = ""
    new_row: dict[str, Any] | None = field(default=None, repr=False)
    cause: str = ""  # the runtime version change this case ran across, e.g. "onnxruntime 1.32.0 → 1.33.0"


def _odd(x: np.ndarray) -> np.ndarray:
    return x if len(x) % 2 else x[:-1]


@functools.lru_cache(maxsize=64)
def _median_index_cdf(n: int) -> np.ndarray:
    """P(J <= j) = P(Bin(n, j/n) >= (n+1)/2), j = 1..n: the same for every case with n samples, so made once."""
    from scipy.stats import binom

    cdf = binom.sf((n - 1) // 2, n, np.arange(1, n + 1) / n)
    cdf[-1] = 1.0
    cdf.flags.writeable = False  # shared by every caller
    return cdf


def bootstrap_medians(sorted_x: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """Medians of ``resamples`` bootstrap resamples of ``sorted_x`` (odd length), drawn exactly (see module doc)."""
    return sorted_x[np.searchsorted(_median_index_cdf(len(sorted_x)), rng.random(resamples), side="left")]


def change_with_ci(base_ns, new_ns, rng: np.random.Generator, resamples: int = RESAMPLES) -> tuple[float, ...]:
    """(change, ci_low, ci_high) of median(new) / median(base) - 1, 95% percentile bootstrap."""
    b, n = np.sort(_odd(np.asarray(base_ns, dtype=np.float64))), np.sort(_odd(np.asarray(new_ns, dtype=np.float64)))
    change = float(np.median(n) / np.median(b) - 1)
    ratios = bootstrap_medians(n, rng, resamples) / bootstrap_medians(b, rng, resamples) - 1
    low, high = np.percentile(ratios, [2.5, 97.5])
    return change, float(low), float(high)


def classify(change: float, low: float, high: float, p: float, t: float) -> tuple[str, str]:
    if change > t and low > t and p < ALPHA:
        return "regressed", ""
    if change < -t and high < -t and p < ALPHA:
        return "improved", ""
    if abs(change) > t:
        why = f"CI [{low:+.1%}, {high:+.1%}] includes ±{t:.1%}" if low <= t <= high or low <= -t <= high \
            else f"p={p:.2g} >= {ALPHA}"
        return "unchanged", f"inconclusive: {why}"
    return "unchanged", ""


def ran_correctly(row: dict[str, Any]) -> bool:
    return row.get("status") == Status.OK and row.get("accuracy_ok") is not False


def compare_case(key: str, b: dict, n: dict, t: float, seed: int = SEED, p_value: float | None = None) -> Change:
    """One case of both runs; ``p_value``, where given, is the rank test's (from :func:`rank_test_p_values`)."""
    base_ms, new_ms = b.get("median_ms"), n.get("median_ms")
    if not ran_correctly(b) or not ran_correctly(n):
        status = {(True, False): "broken", (False, True): "fixed"}.get((ran_correctly(b), ran_correctly(n)), "failing")
        wrong = " (wrong output)" if n.get("status") == Status.OK and n.get("accuracy_ok") is False else ""
        return Change(key, status, base_ms, new_ms, note=f"{b.get('status')} → {n.get('status')}{wrong}", new_row=n)
    if len(b.get("samples") or ()) < 3 or len(n.get("samples") or ()) < 3 or np.median(b["samples"]) <= 0:
        return Change(key, "no_samples", base_ms, new_ms, note="raw samples missing or zero", new_row=n)
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    change, low, high = change_with_ci(b["samples"], n["samples"], rng)
    p = p_value if p_value is not None else rank_test_p(b["samples"], n["samples"])
    status, note = classify(change, low, high, p, t)
    return Change(key, status, base_ms, new_ms, change, low, high, p, note, n)


def rank_test_p(base: Sequence[int], new: Sequence[int]) -> float:
    """The two-sided Mann-Whitney p of one pair of sample sets."""
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(base, new, alternative="two-sided").pvalue)


def rank_test_p_values(pairs: dict[str, tuple[list, list]]) -> dict[str, float]:
    """The two-sided Mann-Whitney p of each case's (base, new) samples, as compare_case computes it, in one
    scipy call per pair of sample counts: scipy's per-call overhead, not the test, was most of a 3,000-case
    compare. Only counts above 8 are batched: there scipy's method is the asymptotic one whatever the ties, the
    same as one call per case; smaller ones are left to compare_case."""
    from scipy.stats import mannwhitneyu

    groups: dict[tuple[int, int], list[str]] = defaultdict(list)
    for key, (b, n) in pairs.items():
        if len(b) > 8 and len(n) > 8:
            groups[(len(b), len(n))].append(key)
    out: dict[str, float] = {}
    for keys in groups.values():
        base, new = (np.array([pairs[k][side] for k in keys]) for side in (0, 1))
        p = mannwhitneyu(base, new, alternative="two-sided", axis=1).pvalue
        out.update(zip(keys, (float(v) for v in np.atleast_1d(p)), strict=True))
    return out
