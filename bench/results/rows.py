"""Turning a worker's outcome (or a skipped case) into one results row, in the schema's column names."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from bench.case import Case
from bench.contract import Accuracy, LoadGenRun, Profile, RunnerFacts, Status, Timing, WorkerOutcome
from bench.noise import unstable

# CPU time may exceed the thread limit a little: the Python loop and the runtime's housekeeping threads.
THREADS_MARGIN = 0.3
# How far the per-op sum of a profile pass may be from the case's median before the row says they disagree
# (profile_agrees false): |sum / median - 1| <= 0.25. The profilers time each node's kernel and nothing between
# nodes (the API call, input and output handling, the scheduler's hand-over), and add their own cost to the run they
# time: on a 1 ms three-conv model (tests/test_profile.py), 1 thread, the sums came within 0.9-1.1 of the median for
# ORT, OpenVINO, MNN, TVM and PyTorch; on a 2-core machine shared with other work a single run sometimes went past
# 1.25 (the two medians are taken a second apart). The per-call costs of the Python APIs (3.6 us for ORT's run, up to
# 23 us for OpenVINO's, measured on this kind of machine) are more than a quarter of a model of tens of microseconds:
# that is what the flag is for: such a profile says where the kernels' time goes, not where the case's goes.
PROFILE_MARGIN = 0.25


def _case_columns(case: Case, run_id: str, suite: str, runner_version: str | None) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "timestamp": datetime.now(timezone.utc),
        "suite": suite,
        "case_key": case.key,
        "model": case.model.name,
        "model_sha256": case.model.sha256,
        "model_source": case.model.source,
        "weights": case.model.weights,
        "torch_export": case.model.torch_export or None,
        "reference_source": "the PyTorch module's fp32 eager output" if case.model.torch_factory
        else "onnxruntime fp32, graph optimizations off",
        "runner": case.runner,
        "runner_version": runner_version,
        "runtime_version_requested": case.runtime_version or None,
        "device": case.device,
        "precision": case.precision,
        "batch": case.batch,
        "threads": case.threads,
        "scenario": case.scenario,
        "cores": case.cores,
        "cpus": cpu_list(case.cpus) or None,
    }


def cpu_list(cpus: tuple[int, ...] | list[int]) -> str:
    """CPUs as the kernel writes them: 0-3,6."""
    spans: list[list[int]] = []
    for cpu in sorted(cpus):
        if spans and cpu == spans[-1][1] + 1:
            spans[-1][1] = cpu
        else:
            spans.append([cpu, cpu])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def skipped_row(case: Case, status: Status, reason: str, run_id: str, suite: str, version: str | None) -> dict:
    return {**_case_columns(case, run_id, suite, version), "status": status, "error": reason}


def _macs(case: Case) -> int | None:
    """The model's MAC count as the int64 column holds it: a count planned elsewhere (a case file made by hand,
    an older bench) that no int64 holds is unknown, never a crash of the row writer after the case ran."""
    macs = case.model.macs
    return macs if isinstance(macs, int) and 0 <= macs <= np.iinfo(np.int64).max else None


def _timing_columns(case: Case, t: Timing, samples_ns: np.ndarray) -> dict[str, Any]:
    latency, phases, macs = t.latency, t.phases, _macs(case)
    cpu_utilization = t.cpu_ns / t.wall_ns
    return {
        **asdict(latency),
        **asdict(phases),
        "items_per_iteration": t.items_per_iteration,
        "throughput_per_s": t.items_per_iteration * len(samples_ns) / (float(samples_ns.sum()) / 1e9),
        "model_macs": macs,
        "achieved_gflops": 2 * macs * t.items_per_iteration / (latency.median_ms * 1e6) if macs else None,
        "stop_reason": t.stop_reason,
        "unstable": unstable(latency.cv, t.stop_reason),
        "cold_start_ms": phases.load_ms + phases.prepare_ms + phases.first_inference_ms,
        "timed_ms": t.wall_ns / 1e6,
        "cpu_ms_per_inference": t.cpu_ns / latency.iterations / 1e6,
        "cpu_utilization": cpu_utilization,
        "threads_ok": cpu_utilization <= case.threads + THREADS_MARGIN,
        "timed_region": t.timed_region,
        "cpus": cpu_list(t.cpus) or cpu_list(case.cpus) or None,  # read back by the worker
        "cpu_freq_ratio": t.cpu_freq_ratio,
        "samples_ns": samples_ns.tolist(),
    }


def _loadgen_columns(case: Case, lg: LoadGenRun) -> dict[str, Any]:
    """A server or offline row: LoadGen's verdict, its QPS as the row's throughput, the trials, settings and logs."""
    return {
        "throughput_per_s": lg.qps * case.batch if lg.qps is not None else None,
        "unstable": None,  # a spread of latencies under load is what LoadGen judges, not a noisy measurement
        "loadgen_qps": lg.qps, "loadgen_valid": lg.valid, "loadgen_reason": lg.reason,
        "loadgen_p50_ms": lg.p50_ms, "loadgen_p90_ms": lg.p90_ms, "loadgen_p99_ms": lg.p99_ms,
        "loadgen_p99_bound_ms": lg.p99_bound_ms, "loadgen_trial_count": len(lg.trials),
        "loadgen_trials": json.dumps([asdict(t) for t in lg.trials]),
        "loadgen_requests_in_flight": lg.requests_in_flight, "driver_ceiling_qps": lg.driver_ceiling_qps,
        "loadgen_version": lg.version, "loadgen_settings": json.dumps(lg.settings, sort_keys=True, default=str),
        "loadgen_summary_log": lg.summary_log, "loadgen_detail_log": lg.detail_log,
    }


def _facts_columns(facts: RunnerFacts) -> dict[str, Any]:
    options = facts.conversion_options or {}  # int8: the calibration set's hash and the recipe, as the runner gave
    return {
        "precision_used": facts.precision_used,
        "threads_used": facts.threads_used,
        "runner_facts": json.dumps(facts.details, sort_keys=True, default=str),
        # a runner that ran on a software device names it (ncnn on lavapipe): the row is never ranked
        "software_device": facts.details.get("software_device"),
        "converter": facts.converter,
        "converter_version": facts.converter_version,
        "conversion_options": json.dumps(facts.conversion_options, sort_keys=True)
        if facts.conversion_options is not None else None,
        "conversion_cached": facts.conversion_cached,
        "calibration_sha256": options.get("calibration_sha256"),
        "quant_recipe": options.get("recipe"),  # the contract: runners put "recipe" and "limited_by" in options
        "quant_limit": options.get("limited_by"),
    }


def _profile_columns(case: Case, profile: Profile, t: Timing) -> dict[str, Any]:
    """The pass on the case row: how many runs and ops, the per-op sum against the case's median (latency cases:
    a throughput case's timed call holds several requests at once, the pass one), or why there are none."""
    coverage = None
    if profile.total_ms is not None and case.scenario == "latency":
        coverage = profile.total_ms / t.latency.median_ms
    agrees = abs(coverage - 1) <= PROFILE_MARGIN if coverage is not None else None
    note = profile.note
    if profile.total_ms is not None and coverage is None:
        note = f"not checked against the median: a {case.scenario} case's timed call is not one inference"
    if agrees is False:
        note = (f"the per-op sum ({profile.total_ms:.4g} ms) is {coverage:.0%} of the case's median "
                f"({t.latency.median_ms:.4g} ms), outside the {PROFILE_MARGIN:.0%} margin")
    return {"profile_runs": profile.runs or None, "profile_ops": len(profile.ops), "profile_total_ms": profile.total_ms,
            "profile_coverage": coverage, "profile_agrees": agrees, "profile_note": note or None}


def op_rows(case: Case, outcome: WorkerOutcome, run_id: str) -> list[dict[str, Any]]:
    """The profile pass's nodes as rows of the ops table (bench.results.schema.OP_COLUMNS), largest first."""
    result = outcome.result
    profile = result.profile if result else None
    if profile is None or not profile.ops or profile.total_ms is None:
        return []
    facts = result.facts if result and result.facts else RunnerFacts()
    common = {"run_id": run_id, "case_key": case.key, "model": case.model.name, "runner": case.runner,
              "runner_version": facts.runtime_version, "precision": case.precision, "threads": case.threads}
    summed = sum(op.median_ms for op in profile.ops)  # shares of the nodes' medians add up to 1
    return [{**common, "rank": rank, "node": _scrubbed(op.node, case), "op_type": op.op_type,
             "kernel": op.kernel or None, "op_precision": op.precision or None, "median_ms": op.median_ms,
             "share": op.median_ms / summed if summed > 0 else None, "op_runs": op.runs}
            for rank, op in enumerate(profile.ops, start=1)]


def _accuracy_columns(accuracy: Accuracy) -> dict[str, Any]:
    columns = asdict(accuracy)
    columns["accuracy_reason"] = columns.pop("reason")
    return columns


def _scrubbed(text: str | None, case: Case) -> str | None:
    """An error or stderr as published: the user's folders named, not spelled out (a report travels; the folder
    a user keeps a model in, or their home, is theirs). The file names stay: they say what failed."""
    if not text:
        return None
    places = [(case.cache_dir, "<cache>"), (str(Path.home()), "~")]
    if case.model.source == "user" and case.model.path:
        places.insert(0, (str(Path(case.model.path).parent), "<model folder>"))
    factory = json.loads(case.model.torch_factory).get("file") if case.model.torch_factory else None
    if factory:  # bench run --torch: the folder of the user's PyTorch code
        places.insert(0, (str(Path(factory).parent), "<model folder>"))
    for folder, name in places:
        if folder and folder not in ("/", "."):
            text = _folder_at_a_boundary(folder.rstrip("/")).sub(name, text)
    return text


def _folder_at_a_boundary(folder: str) -> re.Pattern[str]:
    """``folder`` where it ends a path component: before "/", a quote, a space, the end (OpenVINO's "outside the
    base directory '/x/y'"), or a sentence's full stop; never the start of a longer name ("/home/al" in
    "/home/alice")."""
    return re.compile(re.escape(folder) + r"(?![\w-]|\.[\w.-])")


def outcome_row(case: Case, outcome: WorkerOutcome, run_id: str, suite: str, version: str | None) -> dict:
    result = outcome.result
    facts = result.facts if result and result.facts else RunnerFacts()
    row = {
        **_case_columns(case, run_id, suite, facts.runtime_version or version),
        "status": outcome.status,
        "error": _scrubbed(outcome.error, case),
        "exit_code": outcome.exit_code,
        "signal": outcome.signal,
        "stderr_tail": _scrubbed(outcome.stderr_tail, case),
        "peak_rss_mb": outcome.peak_rss_mb,
        "wall_s": outcome.wall_s,
        "worker_started_by": outcome.started_by or None,
    }
    if result is None or outcome.samples_ns is None or result.timing is None:
        return row
    row.update(_timing_columns(case, result.timing, outcome.samples_ns))
    if result.loadgen:
        row.update(_loadgen_columns(case, result.loadgen))
    if outcome.wall_s:
        row["overhead_ms"] = outcome.wall_s * 1000 - row["timed_ms"] - row["convert_ms"]
    row.update(_facts_columns(facts))
    row.update(_accuracy_columns(result.accuracy or Accuracy(accuracy_ok=None, reason="parity not checked")))
    row.update(asdict(result.task) if result.task else {})
    row.update(_profile_columns(case, result.profile, result.timing) if result.profile else {})
    return row
