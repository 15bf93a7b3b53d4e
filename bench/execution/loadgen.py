"""The server and offline scenarios, judged by MLPerf LoadGen, inside the case's worker (and so within its deadline).

LoadGen issues the queries (server: Poisson arrivals at a target QPS; offline: all at once) and decides whether a
run is VALID (server: the p99 latency under the bound, with its early-stopping estimate; both: the minimum duration
and query count). bench is the system under test: a :class:`Driver` puts each issued sample on a queue that one
thread per request in flight serves, calling the runner's ``infer_request(slot)`` (a runtime that releases the GIL,
as ONNX Runtime does, runs them side by side) and telling LoadGen of each completion at once.

A server case first runs offline to learn the ceiling, then bisects the target QPS between 0 and that ceiling for
the highest VALID one, starting no trial past ``LoadGenPolicy.search_time_s``. What LoadGen measures is the runtime
plus this Python driver, so every row also says what the driver alone can push: a no-op request's offline QPS
(:func:`driver_ceiling`, cached for an hour per machine, interpreter and driver).
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import platform
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.case import Case, LoadGenPolicy
from bench.contract import LoadGenRun, LoadGenTrial
from bench.files import write_text_atomic

SUMMARY, DETAIL = "mlperf_log_summary.txt", "mlperf_log_detail.txt"
MAX_LOG_CHARS = 200_000  # a detail log is ~35 kB (most of it LoadGen's own file hashes); a row holds at most this
QSL_SIZE = 1024  # LoadGen's sample library: every sample is the same bound input, so its size only sets indices
MAX_TRIALS = 12
TRIAL_OVERHEAD_S = 0.5  # LoadGen's set-up and log writing around a trial's minimum duration
CEILING_MAX_AGE_S = 3600.0
NS = 1_000_000_000


class Driver:
    """bench's side of LoadGen: issued samples on a queue, one thread per request in flight serving it.

    Each sample's latency is kept (``latencies_ns``): from its issue (server: what a client waits, queueing
    included) or from the start of its request (offline, where every sample is issued at once: the service time).
    """

    def __init__(self, request: Callable[[int], object], slots: int, from_issue: bool) -> None:
        import mlperf_loadgen as lg

        self._lg = lg
        self._request, self._from_issue = request, from_issue
        self._queue: queue.SimpleQueue[tuple[int, int] | None] = queue.SimpleQueue()
        self.latencies_ns: list[int] = []
        self.failure: BaseException | None = None
        self._threads = [threading.Thread(target=self._serve, args=(slot,), name=f"bench-request-{slot}", daemon=True)
                         for slot in range(slots)]
        for thread in self._threads:
            thread.start()

    def issue(self, samples: Iterable[Any]) -> None:
        now = time.perf_counter_ns()
        for sample in samples:
            self._queue.put((sample.id, now))

    def flush(self) -> None:
        """LoadGen's end of issuing: every sample is on the queue already."""

    def _serve(self, slot: int) -> None:
        clock, complete, response = time.perf_counter_ns, self._lg.QuerySamplesComplete, self._lg.QuerySampleResponse
        # no timeout: close() ends each thread with a None, and the case's own deadline (the launcher's pidfd) bounds
        # the whole worker, these daemon threads included
        while (item := self._queue.get()) is not None:
            sample_id, issued = item
            start = clock()
            try:
                self._request(slot)
            except BaseException as exc:  # still complete the sample, or LoadGen waits forever
                self.failure = self.failure or exc
            self.latencies_ns.append(clock() - (issued if self._from_issue else start))
            complete([response(sample_id, 0, 0)])

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=10)


@dataclass(frozen=True)
class TrialRun:
    """A trial as LoadGen judged it, with what the row needs of the one reported: its samples, clock and logs."""

    trial: LoadGenTrial
    results: dict[str, Any]  # the detail log's keys
    latencies_ns: np.ndarray
    wall_ns: int
    cpu_ns: int
    log_dir: Path


def test_settings(scenario: str, target_qps: float, policy: LoadGenPolicy) -> Any:
    """LoadGen's settings for one performance-only trial."""
    import mlperf_loadgen as lg

    settings = lg.TestSettings()
    settings.mode = lg.TestMode.PerformanceOnly
    settings.min_duration_ms = int(policy.min_duration_s * 1000)
    settings.min_query_count = policy.min_queries
    if scenario == "server":
        settings.scenario = lg.TestScenario.Server
        settings.server_target_qps = target_qps
        settings.server_target_latency_ns = int(policy.p99_bound_ms * 1e6)
        settings.server_target_latency_percentile = 0.99
    else:
        settings.scenario = lg.TestScenario.Offline
        settings.offline_expected_qps = target_qps
    return settings


def _log_settings(log_dir: Path) -> Any:
    import mlperf_loadgen as lg

    log = lg.LogSettings()
    log.log_output.outdir = str(log_dir)
    log.log_output.copy_summary_to_stdout = False
    log.enable_trace = False  # the trace is ~300 kB a second and no row reads it
    return log


def read_detail(path: Path) -> dict[str, Any]:
    """The ``:::MLLOG {json}`` lines of LoadGen's detail log as key -> value."""
    values: dict[str, Any] = {}
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(":::MLLOG "):
            entry = json.loads(line[len(":::MLLOG "):])
            values[entry["key"]] = entry.get("value")
    return values


def invalid_reason(results: dict[str, Any], policy: LoadGenPolicy) -> str:
    """Why LoadGen called a trial INVALID, in its own terms; "" when VALID."""
    if results.get("result_validity") == "VALID":
        return ""
    why = [text for key, text in (
        ("result_perf_constraints_met", f"p99 latency over the {policy.p99_bound_ms:g} ms bound"),
        ("result_min_duration_met", f"shorter than min_duration ({policy.min_duration_s:g} s)"),
        ("result_min_queries_met", f"fewer queries than min_query_count ({policy.min_queries})"),
        ("early_stopping_met", "early stopping not satisfied: " + " ".join(
            str(results.get("early_stopping_result", "")).replace("*", "").split())),
    ) if results.get(key) is False]
    if str(results.get("result_invalid_reason", "")).strip():
        why.append(str(results["result_invalid_reason"]).strip())
    return "; ".join(why) or f"LoadGen says {results.get('result_validity', 'nothing (no result in its log)')}"


def _ms(results: dict[str, Any], percentile: str) -> float:
    return float(results.get(f"result_{percentile}_percentile_latency_ns", 0)) / 1e6


def run_trial(driver: Driver, scenario: str, target_qps: float, policy: LoadGenPolicy, log_dir: Path) -> TrialRun:
    """One LoadGen run at ``target_qps``; its logs in ``log_dir``."""
    import mlperf_loadgen as lg

    log_dir.mkdir(parents=True, exist_ok=True)
    driver.latencies_ns = []
    sut = lg.ConstructSUT(driver.issue, driver.flush)
    qsl = lg.ConstructQSL(QSL_SIZE, QSL_SIZE, lambda _: None, lambda _: None)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        cpu_start, start = time.process_time_ns(), time.perf_counter_ns()
        # an audit file that does not exist: a stray audit.config in the working folder never changes a run
        lg.StartTestWithLogSettings(sut, qsl, test_settings(scenario, target_qps, policy), _log_settings(log_dir),
                                    str(log_dir / "no-audit.config"))
        wall, cpu = time.perf_counter_ns() - start, time.process_time_ns() - cpu_start
    finally:
        if gc_was_enabled:
            gc.enable()
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)
    if driver.failure is not None:
        raise driver.failure
    results = read_detail(log_dir / DETAIL)
    achieved = results.get("result_completed_samples_per_sec" if scenario == "server" else "result_samples_per_second")
    trial = LoadGenTrial(
        scenario=scenario, target_qps=round(target_qps, 3), valid=results.get("result_validity") == "VALID",
        reason=invalid_reason(results, policy), queries=len(driver.latencies_ns), achieved_qps=float(achieved or 0),
        p50_ms=_ms(results, "50.00"), p90_ms=_ms(results, "90.00"), p99_ms=_ms(results, "99.00"),
        duration_s=wall / NS)
    return TrialRun(trial, results, np.asarray(driver.latencies_ns, dtype=np.int64), wall, cpu, log_dir)


def offline_qps(driver: Driver, policy: LoadGenPolicy, expected_qps: float, log_root: Path) -> list[TrialRun]:
    """Offline trials until one is VALID: LoadGen issues min_duration x expected QPS samples at once, so a guess
    that was too low ends too soon (INVALID); the next trial expects what this one achieved."""
    runs: list[TrialRun] = []
    for attempt in range(3):
        runs.append(run_trial(driver, "offline", expected_qps, policy, log_root / f"offline-{attempt}"))
        if runs[-1].trial.valid or not runs[-1].trial.achieved_qps:
            break
        expected_qps = runs[-1].trial.achieved_qps * 1.2
    return runs


def _trial_time_s(target_qps: float, policy: LoadGenPolicy) -> float:
    return max(policy.min_duration_s, policy.min_queries / target_qps) + TRIAL_OVERHEAD_S


def search_server(driver: Driver, policy: LoadGenPolicy, ceiling_qps: float, log_root: Path,
                  deadline: float) -> list[TrialRun]:
    """Bisect the server's target QPS between 0 and ``ceiling_qps`` (the offline QPS: no server sustains more) for
    the highest VALID one, until the bracket is within ``qps_resolution`` or the next trial would end past
    ``deadline`` (time.monotonic())."""
    runs: list[TrialRun] = []
    valid_qps, invalid_qps = 0.0, ceiling_qps
    while len(runs) < MAX_TRIALS:
        target = (valid_qps + invalid_qps) / 2
        if valid_qps and (invalid_qps - valid_qps) <= policy.qps_resolution * valid_qps:
            break
        if time.monotonic() + _trial_time_s(target, policy) > deadline:
            break
        runs.append(run_trial(driver, "server", target, policy, log_root / f"server-{len(runs)}"))
        if runs[-1].trial.valid:
            valid_qps = target
        else:
            invalid_qps = target
    return runs


def _ceiling_file(cache_dir: str, slots: int) -> Path:
    from importlib.metadata import version  # LoadGen's own: it keys the entry

    parts = (version("mlcommons-loadgen"), platform.python_version(), str(slots), str(len(os.sched_getaffinity(0))),
             hashlib.sha256(Path(__file__).read_bytes()).hexdigest())
    key = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    return Path(cache_dir) / "loadgen" / f"driver-ceiling-{key}.json"


def _cached_ceiling(path: Path) -> float | None:
    """The cached ceiling when it is there, under an hour old and readable; else None (measured again)."""
    try:
        if time.time() - path.stat().st_mtime >= CEILING_MAX_AGE_S:
            return None
        qps = float(json.loads(path.read_text())["qps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return qps if qps > 0 else None


def driver_ceiling(cache_dir: str, slots: int, log_root: Path) -> float:
    """A no-op request's offline QPS through this driver with ``slots`` threads: the most bench can drive, whatever
    the runtime. Measured once an hour per machine, interpreter, LoadGen and driver (cached), as it costs a second."""
    cached = _ceiling_file(cache_dir, slots) if cache_dir else None
    known = _cached_ceiling(cached) if cached else None
    if known is not None:
        return known
    driver = Driver(lambda _: None, slots, from_issue=False)
    try:
        policy = LoadGenPolicy(min_duration_s=0.5, min_queries=1)
        qps = max(run.trial.achieved_qps for run in offline_qps(driver, policy, 20_000.0, log_root / "no-op"))
    finally:
        driver.close()
    if cached:
        cached.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(cached, json.dumps({"qps": qps, "slots": slots}))
    return qps


def _log(path: Path) -> str:
    text = path.read_text(errors="replace") if path.is_file() else ""
    return text if len(text) <= MAX_LOG_CHARS else text[:MAX_LOG_CHARS] + "\n[... cut by bench]"


def _out_of_reach(alone_ms: float, offline: TrialRun, policy: LoadGenPolicy) -> str:
    """Why no server QPS can hold the bound ("" when one may): a request takes longer than the p99 bound both
    alone (the warm-up's mean) and in the offline trial (its median service time), as a batch-32 case at a bound
    made for batch 1 does. The search would halve its target QPS into ever longer trials for nothing."""
    served_ms = float(np.median(offline.latencies_ns)) / 1e6 if len(offline.latencies_ns) else 0.0
    if min(alone_ms, served_ms) <= policy.p99_bound_ms:
        return ""
    return (f"no target QPS can be VALID: a request takes {alone_ms:.3g} ms alone ({served_ms:.3g} ms median in "
            f"the offline trial), over the {policy.p99_bound_ms:g} ms p99 bound; no server trial run")


def _reported(case: Case, runs: list[TrialRun], offline: list[TrialRun]) -> tuple[TrialRun, float | None, str]:
    """The trial a row reports, its QPS, and why it is not VALID ("" when it is)."""
    if case.scenario == "offline":
        last = offline[-1]
        return last, last.trial.achieved_qps, last.trial.reason
    valid = [r for r in runs if r.trial.valid]
    if valid:
        best = max(valid, key=lambda r: r.trial.target_qps)
        return best, best.trial.target_qps, ""
    last = runs[-1] if runs else offline[-1]
    return last, None, "no target QPS was VALID" + (f" (lowest tried: {last.trial.reason})" if runs else
                                                   ": the search had no time for a server trial")


def run(case: Case, request: Callable[[int], object], slots: int, alone_ms: float,
        out_dir: Path) -> tuple[TrialRun, LoadGenRun]:
    """The case's LoadGen scenario end to end: the reported trial and the row's LoadGen result. ``alone_ms``: one
    request with nothing beside it (the warm-up's mean), which sets the offline trial's expected QPS."""
    policy, log_root = case.loadgen, out_dir / "loadgen"
    deadline = time.monotonic() + policy.search_time_s
    ceiling = driver_ceiling(case.cache_dir, slots, log_root)
    driver = Driver(request, slots, from_issue=False)
    try:
        offline = offline_qps(driver, policy, slots * 1000 / max(alone_ms, 1e-3), log_root)
    finally:
        driver.close()
    runs: list[TrialRun] = []
    out_of_reach = _out_of_reach(alone_ms, offline[-1], policy) if case.scenario == "server" else ""
    if case.scenario == "server" and not out_of_reach:
        driver = Driver(request, slots, from_issue=True)
        try:
            runs = search_server(driver, policy, max(r.trial.achieved_qps for r in offline), log_root, deadline)
        finally:
            driver.close()
    reported, qps, reason = _reported(case, runs, offline)
    reason = out_of_reach or reason
    results = reported.results
    return reported, LoadGenRun(
        scenario=case.scenario, qps=qps, valid=not reason, reason=reason,
        p50_ms=reported.trial.p50_ms, p90_ms=reported.trial.p90_ms, p99_ms=reported.trial.p99_ms,
        p99_bound_ms=policy.p99_bound_ms if case.scenario == "server" else None,
        trials=tuple(r.trial for r in offline + runs), version=str(results.get("loadgen_version", "")),
        settings={k[len("effective_"):]: v for k, v in results.items() if k.startswith("effective_")},
        requests_in_flight=slots, driver_ceiling_qps=ceiling,
        summary_log=_log(reported.log_dir / SUMMARY), detail_log=_log(reported.log_dir / DETAIL))


# What each [loadgen] key of a suite sets, in LoadGen's terms (docs/RESULTS.md)
SUITE_KEYS = {
    "p99_ms": ("p99_bound_ms", "server_target_latency_ns, at server_target_latency_percentile 0.99: the server's "
               "latency bound, for every model of the suite"),
    "p99_ms_by_model": (None, "the bound for the models named (a table: `{ resnet50 = 300 }`)"),
    "min_duration_s": ("min_duration_s", "min_duration_ms: each trial runs at least this long"),
    "min_queries": ("min_queries", "min_query_count (server: queries; offline: samples); LoadGen's early stopping "
                    "needs about 460 queries, none over the bound, to call a p99 VALID"),
    "search_time_s": ("search_time_s", "bench's: the server's search starts no trial that would end past this "
                      "(from the LoadGen phase's start), and at most half the case's timeout (the suite's "
                      "timeout_s or --timeout): the search runs inside the case's worker"),
}


def loadgen_markdown() -> list[str]:
    """docs/RESULTS.md's section on the server and offline scenarios, from the code that runs them."""
    defaults = LoadGenPolicy()
    rows = [f"| `{key}` | {getattr(defaults, field) if field else '(none)'} | {what} |"
            for key, (field, what) in SUITE_KEYS.items()]
    return [
        "## Server and offline (MLPerf LoadGen)", "",
        "The `server` and `offline` scenarios are run by MLPerf LoadGen (`mlcommons-loadgen`, in the `all` and "
        "`loadgen` extras), the field's harness for judging servers, inside the case's worker and so within its "
        "deadline. LoadGen issues the queries and decides; bench is the system under test: one driver thread per "
        "request in flight (`loadgen_requests_in_flight`: ONNX Runtime runs `threads` requests of one intra-op "
        "thread each, OpenVINO its optimal number of infer requests), each calling the runner's "
        "`infer_request(slot)` and telling LoadGen of the completion at once. A query is one request of the "
        "case's batch.", "",
        "* **offline**: every query at once (LoadGen issues min_duration x the expected QPS samples, the expectation "
        "from the warm-up's time per request and the requests in flight; when too few, bench runs again "
        "expecting what it achieved, at most 3 trials). "
        "`loadgen_qps` is LoadGen's samples per second.",
        "* **server**: queries arrive at random (Poisson) at a target QPS, and the 99th percentile latency must "
        "stay under the model's bound (`loadgen_p99_bound_ms`). bench runs offline first (no server sustains more "
        "than that ceiling), then bisects the target QPS between 0 and the ceiling for the highest VALID one: "
        f"at most {MAX_TRIALS} trials, until the bracket is within {defaults.qps_resolution:.0%} of the VALID "
        "QPS or the next trial would pass `search_time_s`. `loadgen_qps` is that QPS (null when none was VALID, "
        "with `loadgen_reason`); every trial is in `loadgen_trials`. Where a request takes longer than the bound "
        "both alone (the warm-up's mean) and in the offline trial (its median), no server trial runs and the "
        "reason says so.",
        "",
        "**VALID** is LoadGen's verdict on the reported trial, in its summary log's `Result is : VALID`: it ran at "
        "least `min_duration_s` and `min_queries`; and, for the server, the p99 latency was under the bound "
        "(\"performance constraints satisfied\") and LoadGen's early-stopping estimate agrees that the true p99 is "
        "under it given how many queries ran (too few queries, or too many over the bound, is INVALID even when "
        "the measured p99 is under). `loadgen_reason` says which of these failed.", "",
        "Latencies: `loadgen_p50_ms` / `p90` / `p99` are LoadGen's, from each query's scheduled arrival to its "
        "completion (queueing included). The row's own `median_ms`, `p99_ms` and `samples_ns` are bench's clock "
        "on the same trial: server, from LoadGen's issue to the completion; offline, each request alone (all "
        "queries arrive at once, so their wait says nothing); `timed_ms` and `cpu_utilization` are that trial's, "
        "and the other trials of the search count in `overhead_ms`. `throughput_per_s` is `loadgen_qps` x batch, "
        "which the scenario table's server column ranks (VALID rows at one bound).", "",
        "What LoadGen measures is the runtime plus bench's Python driver: `driver_ceiling_qps` is a no-op "
        "request's offline QPS through the same driver and requests in flight on this machine (measured once an "
        "hour per machine, interpreter, LoadGen and driver, and cached). A `loadgen_qps` near it measures bench, "
        "not the runtime.", "",
        f"Fixed settings: performance-only mode; a sample library of {QSL_SIZE} entries that are all the case's "
        "one bound input; LoadGen's default seeds; no trace; no `audit.config` read (a stray one in the working "
        "folder never changes a run). The reported trial's effective settings (`loadgen_settings`), LoadGen's "
        "version, and its summary and detail logs (`loadgen_summary_log`, `loadgen_detail_log`) are kept in the "
        "row: the worker's folder is temporary and results may live in an object store.", "",
        "| suite key (`[loadgen]`) | default | what it sets |", "|---|---|---|", *rows, "",
    ]
