"""Turning a worker's outcome (or a skipped case) into one results row, in the schema's column names."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from bench.case import Case
from bench.launcher import WorkerOutcome
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
        "runner": case.runner,
        "runner_version": runner_version,
        "device": case.device,
        "precision": case.precision,
        "batch": case.batch,
        "threads": case.threads,
        "scenario": case.scenario,
    }


def skipped_row(case: Case, status: str, reason: str, run_id: str, suite: str, version: str | None) -> dict:
    return {**_case_columns(case, run_id, suite, version), "status": status, "error": reason}


def _timing_columns(case: Case, result: dict[str, Any], samples_ns) -> dict[str, Any]:
    latency, phases, facts = result["latency"], result["phases"], result.get("facts", {})
    iterations = latency["iterations"]
    accuracy = result.get("accuracy", {})
    items = result["items_per_iteration"]
    cpu_utilization = result["cpu_ns"] / result["wall_ns"]
    return {
        **latency,
        "items_per_iteration": items,
        "throughput_per_s": items * len(samples_ns) / (float(samples_ns.sum()) / 1e9),
        "model_macs": case.model.macs,
        "achieved_gflops": 2 * case.model.macs * items / (latency["median_ms"] * 1e6) if case.model.macs else None,
        "stop_reason": result["stop_reason"],
        "unstable": unstable(latency["cv"], result["stop_reason"]),
        "warmup_iterations": phases["warmup_iterations"],
        "convert_ms": phases["convert_ms"],
        "load_ms": phases["load_ms"],
        "prepare_ms": phases["prepare_ms"],
        "first_inference_ms": phases["first_inference_ms"],
        "cold_start_ms": phases["load_ms"] + phases["prepare_ms"] + phases["first_inference_ms"],
        "cpu_ms_per_inference": result["cpu_ns"] / iterations / 1e6,
        "cpu_utilization": cpu_utilization,
        "threads_ok": cpu_utilization <= case.threads + THREADS_MARGIN,
        "timed_region": result["timed_region"],
        "precision_used": facts.get("precision_used"),
        "threads_used": facts.get("threads_used"),
        "runner_facts": json.dumps(facts, sort_keys=True, default=str),
        "converter": facts.get("converter"),
        "converter_version": facts.get("converter_version"),
        "conversion_options": json.dumps(facts["conversion_options"], sort_keys=True)
        if "conversion_options" in facts else None,
        "conversion_cached": facts.get("conversion_cached"),
        "accuracy_ok": accuracy.get("accuracy_ok"),
        "accuracy_reason": accuracy.get("reason"),
        "max_abs_error": accuracy.get("max_abs_error"),
        "max_rel_error": accuracy.get("max_rel_error"),
        "normalized_error": accuracy.get("normalized_error"),
        "cosine": accuracy.get("cosine"),
        "top1_agreement": accuracy.get("top1_agreement"),
        "parity_inputs": accuracy.get("parity_inputs"),
        **result.get("task", {}),
        "samples_ns": samples_ns.tolist(),
    }


def outcome_row(case: Case, outcome: WorkerOutcome, run_id: str, suite: str, version: str | None) -> dict:
    facts = outcome.result.get("facts", {})
    row = {
        **_case_columns(case, run_id, suite, facts.get("runtime_version") or version),
        "status": outcome.status,
        "error": outcome.error or None,
        "exit_code": outcome.exit_code,
        "signal": outcome.signal,
        "stderr_tail": outcome.stderr_tail or None,
        "peak_rss_mb": outcome.peak_rss_mb,
        "wall_s": outcome.wall_s,
    }
    if outcome.samples_ns is not None:
        row.update(_timing_columns(case, outcome.result, outcome.samples_ns))
    return row
