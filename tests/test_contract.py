"""The worker-to-row contract: every field of a worker's result lands in a column of the schema, every column
comes from somewhere, and a result.json that does not hold the types is refused at the boundary."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bench.case import Case, InputSpec, ModelRef
from bench.contract import (
    Accuracy,
    LoadGenRun,
    LoadGenTrial,
    OpSummary,
    Phases,
    Profile,
    RunnerFacts,
    Status,
    TaskScore,
    Timing,
    WorkerOutcome,
    WorkerResult,
)
from bench.execution.stats import latency_stats
from bench.launcher import _interpret
from bench.results.rows import op_rows, outcome_row, skipped_row
from bench.results.schema import CASE_COLUMNS, OP_COLUMNS

CASE = Case(model=ModelRef("m", "/m.onnx", "a" * 64, (InputSpec("x", (1, 4), "float32", -1, 1),), macs=100),
            runner="r", implementation="x:Y", device="cpu", precision="fp16", batch=1, threads=1, scenario="latency")
SAMPLES = np.array([1_000_000, 1_100_000, 1_200_000] * 10, dtype=np.int64)
# Columns that no worker result fills: the store stamps the version; run.py adds the declaration's CPU feature,
# the temperatures around the case (bench.thermal), the conversion made ahead of timing (bench.ahead) and the
# release's environment made before timing (bench.environments). source_path: the plan's, from the runner's declaration.
ADDED_OUTSIDE = {"schema_version", "precision_feature", "temp_start_c", "temp_end_c", "cooldown_wait_s",
                 "conversion_ahead_ms", "runtime_env_ms", "source_path"}


PHASES = Phases(convert_ms=1.0, load_ms=2.0, prepare_ms=3.0, first_inference_ms=4.0, warmup_iterations=5,
                worker_start_ms=6.0, import_ms=7.0, warmup_ms=8.0, parity_ms=9.0, task_ms=10.0, write_ms=11.0,
                profile_ms=12.0)
# The case's median is 1.1 ms: this profile's per-op sum is 1.0 ms of it
PROFILE = Profile(runs=3, total_ms=1.0, ops=(OpSummary("conv", "Conv", "CPUExecutionProvider", "fp32", 0.9, 3),
                                             OpSummary("relu", "Relu", "", "", 0.1, 3)))


def full_result() -> WorkerResult:
    return WorkerResult(
        Status.OK,
        timing=Timing(latency_stats(SAMPLES),
                      PHASES, wall_ns=3_300_000_0,
                      cpu_ns=3_000_000_0, stop_reason="ci_reached", items_per_iteration=1, timed_region="infer",
                      cpus=(0, 1, 2, 5), cpu_freq_ratio=0.9),
        facts=RunnerFacts.of({"runtime_version": "1.0", "precision_used": "fp16", "threads_used": 1,
                              "converter": "c", "converter_version": "2", "conversion_options": {"o": 1},
                              "conversion_cached": False, "options": {"anything": "else"}}),
        accuracy=Accuracy(True, "", 1e-3, 1e-3, 1e-3, 0.9999, 1.0, 3),
        task=TaskScore("exact_match", 0.9, 10, '{"exact_match": 0.9}', "m/r/cpu/fp16/b1/t2/latency"),
        loadgen=LOADGEN,
        profile=PROFILE,
    )


TRIAL = LoadGenTrial("server", 100.0, True, "", 500, 99.0, 1.0, 2.0, 3.0, 5.1)
LOADGEN = LoadGenRun("server", 100.0, True, "", 1.0, 2.0, 3.0, 50.0, (TRIAL,), "6.0.17", {"target_qps": 100.0},
                     2, 9000.0, "Result is : VALID", ":::MLLOG {}")


def test_every_result_field_has_a_column_and_every_column_a_source():
    ok = outcome_row(CASE, WorkerOutcome(Status.OK, full_result(), SAMPLES, exit_code=0, wall_s=1.0), "run", "s", "1.0")
    failed = outcome_row(CASE, WorkerOutcome(Status.CRASHED, error="SIGSEGV", signal="SIGSEGV"), "run", "s", None)
    skipped = skipped_row(CASE, Status.UNSUPPORTED, "no", "run", "s", None)
    columns = {c.name for c in CASE_COLUMNS}
    produced = set(ok) | set(failed) | set(skipped)
    assert produced <= columns, produced - columns
    assert columns - produced == ADDED_OUTSIDE, columns - produced
    assert set(skipped) <= set(failed) <= set(ok)
    assert ok["precision_used"] == "fp16" and ok["accuracy_reason"] == "" and ok["task_value"] == 0.9
    assert ok["cold_start_ms"] == 2.0 + 3.0 + 4.0 and ok["warmup_iterations"] == 5
    assert '"anything": "else"' in ok["runner_facts"] and ok["conversion_options"] == '{"o": 1}'
    assert ok["overhead_ms"] == pytest.approx(1000 - 33 - 1.0) and ok["parity_ms"] == 9.0
    assert ok["cpus"] == "0-2,5" and ok["cpu_freq_ratio"] == 0.9 and ok["cores"] == "all"
    assert ok["throughput_per_s"] == ok["loadgen_qps"] == 100.0 and ok["loadgen_trial_count"] == 1
    assert ok["weights"] == skipped["weights"] == "random (seeded)"  # a built model: seeded weights, on every row
    assert ok["profile_ms"] == 12.0 and ok["profile_coverage"] == pytest.approx(1.0 / 1.1) and ok["profile_agrees"]


def test_a_profile_becomes_op_rows_and_a_sum_outside_the_margin_is_said():
    outcome = WorkerOutcome(Status.OK, full_result(), SAMPLES, exit_code=0, wall_s=1.0)
    ops = op_rows(CASE, outcome, "run")
    assert {name for row in ops for name in row} | {"schema_version"} == {c.name for c in OP_COLUMNS}
    assert [(o["rank"], o["node"], o["share"]) for o in ops] == [(1, "conv", 0.9), (2, "relu", 0.1)]
    slow = dataclasses.replace(full_result(), profile=dataclasses.replace(PROFILE, total_ms=2.0))
    row = outcome_row(CASE, WorkerOutcome(Status.OK, slow, SAMPLES, exit_code=0, wall_s=1.0), "run", "s", "1.0")
    assert row["profile_agrees"] is False and "outside the 25% margin" in row["profile_note"]
    throughput = dataclasses.replace(CASE, scenario="throughput")  # its timed call holds several requests at once
    row = outcome_row(throughput, WorkerOutcome(Status.OK, slow, SAMPLES, exit_code=0, wall_s=1.0), "run", "s", "1")
    assert row["profile_coverage"] is None and "not checked against the median" in row["profile_note"]
    none = dataclasses.replace(full_result(), profile=Profile(note="no profiler here"))
    row = outcome_row(CASE, WorkerOutcome(Status.OK, none, SAMPLES, exit_code=0, wall_s=1.0), "run", "s", "1.0")
    assert row["profile_ops"] == 0 and row["profile_agrees"] is None and row["profile_note"] == "no profiler here"
    assert op_rows(CASE, WorkerOutcome(Status.OK, none, SAMPLES), "run") == []


@pytest.mark.parametrize(("source", "weights"), [("wheel", "trained"), ("built", "random (seeded)"), ("user", "user")])
def test_every_row_says_whether_its_weights_are_trained(source, weights):
    case = dataclasses.replace(CASE, model=dataclasses.replace(CASE.model, source=source))
    assert skipped_row(case, Status.UNSUPPORTED, "no", "run", "s", None)["weights"] == weights


def test_a_result_survives_its_json_whole():
    result = full_result()
    assert WorkerResult.from_json(result.to_json()) == result
    assert WorkerResult.from_json(WorkerResult(Status.UNSUPPORTED, "why").to_json()).error == "why"


def test_phases_are_built_by_name_only():
    """Eleven numbers in a row shift by one unnoticed (a load time in the prepare column): names are required."""
    with pytest.raises(TypeError):
        Phases(1.0, 2.0, 3.0, 4.0, 5)  # type: ignore[misc]
    assert WorkerResult.from_json(full_result().to_json()).timing.phases == PHASES  # and pydantic still reads them


@pytest.mark.parametrize(("text", "where"), [
    ('{"status": "fine"}', "status"),
    ('{"status": "ok", "accuracy": {"accuracy_ok": "yes"}}', "accuracy.accuracy_ok"),
    ('{"status": "ok", "facts": {"threads_used": "2"}}', "facts.threads_used"),
    ('{"status": "ok", "timing": {"latency": {}}}', "timing.latency"),
    ('["ok"]', "(top level)"),
])
def test_a_result_without_its_types_is_a_bad_output_row_naming_the_field(tmp_path, text, where):
    (tmp_path / "result.json").write_text(text)
    outcome = _interpret(tmp_path, timed_out=False, returncode=0, timeout_s=1.0)
    assert outcome.status == Status.BAD_OUTPUT and f"result.json: {where}" in outcome.error, outcome.error


def test_a_mac_count_no_int64_holds_is_unknown_on_the_row():
    huge = dataclasses.replace(CASE, model=dataclasses.replace(CASE.model, macs=2**66))
    row = outcome_row(huge, WorkerOutcome(Status.OK, full_result(), SAMPLES, exit_code=0, wall_s=1.0), "r", "s", "1")
    assert row["model_macs"] is None and row["achieved_gflops"] is None
