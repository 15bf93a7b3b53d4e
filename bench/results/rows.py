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
from bench.contract import Accuracy, LoadGenRun, RunnerFacts, Status, Timing, WorkerOutcome
from bench.noise import unstable

# CPU time may exceed the thread limit a little: the Python loop and the runtime's housekeeping threads.
THREADS_MARGIN = 0.3


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
    return row
