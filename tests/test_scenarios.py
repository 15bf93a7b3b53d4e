"""Deployment scenarios (bench.report.scenarios) on rows with known numbers, and results as a DataFrame
(bench.results.load / scenarios) read back from real parquet written through the real store."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bench.results as r
from bench.errors import UserError
from bench.report import matrix
from bench.report.scenarios import COLUMNS, SHOWN, ScenarioPick, cross_machine, picks, scenario_table
from bench.results import store
from bench.results.uri import Location

NOW = datetime(2026, 3, 1, tzinfo=timezone.utc)


def case(runner: str, precision: str = "fp32", median: float = 1.0, threads: int = 1, batch: int = 1,
         scenario: str = "latency", model: str = "m", ci: float = 0.01, **extra) -> dict:
    """An ok, accurate row; its median's CI is median x (1 -/+ ci)."""
    key = f"{model}/{runner}/cpu/{precision}/b{batch}/t{threads}/{scenario}"
    row = {"run_id": "r1", "case_key": key, "model": model, "runner": runner, "device": "cpu", "precision": precision,
           "batch": batch, "threads": threads, "scenario": scenario, "status": "ok", "accuracy_ok": True,
           "median_ms": median, "median_ci_low_ms": median * (1 - ci), "median_ci_high_ms": median * (1 + ci),
           "throughput_per_s": batch * 1000 / median, "cosine": 0.99999, "peak_rss_mb": 100.0, "cold_start_ms": 50.0}
    return {**row, **extra}


def samples(median_ms: float, n: int = 400, seed: int = 0) -> list[int]:
    """Lognormal latencies in ns around ``median_ms``: the shape real timings have."""
    return (median_ms * 1e6 * np.random.default_rng(seed).lognormal(0.0, 0.05, n)).astype(np.int64).tolist()


def by_scenario(cases: list[dict], runs: list[dict] | None = None, machine: str = "?", model: str = "m") -> dict:
    """Scenario -> its table row, for one machine and model."""
    rows = scenario_table(cases, runs).records()
    return {x["scenario"]: x for x in rows if x["machine"] == machine and x["model"] == model}


# --- each scenario's pick ----------------------------------------------------------------------------------

def test_each_scenario_picks_its_best():
    cases = [
        case("ort", median=2.0, peak_rss_mb=120.0, cold_start_ms=30.0),
        case("ov", median=1.5, peak_rss_mb=200.0, cold_start_ms=80.0),
        case("mnn", "int8", median=1.6, peak_rss_mb=60.0, cold_start_ms=45.0, cosine=0.99),
        case("ort", median=0.8, threads=4),
        case("ov", median=0.6, threads=4),
        case("ort", median=1.6, batch=8, scenario="throughput", throughput_per_s=5000.0),
        case("ov", median=1.2, batch=8, scenario="throughput", throughput_per_s=4000.0),
        case("ov", median=0.5, batch=1, scenario="throughput", throughput_per_s=2000.0),
    ]
    got = by_scenario(cases)
    assert list(got) == ["realtime, 1 thread", "realtime, all cores", "server at p99 bound", "memory-bound edge",
                         "cold start", "accuracy first"]
    assert got["realtime, 1 thread"]["pick"] == "ov fp32 t1 b1" and got["realtime, 1 thread"]["value"] == 1.5
    assert got["realtime, all cores"]["pick"] == "ov fp32 t4 b1" and "4 threads" in got["realtime, all cores"]["rule"]
    assert got["server at p99 bound"]["pick"] == "ort fp32 t1 b8" and got["server at p99 bound"]["unit"] == "items/s"
    assert got["server at p99 bound"]["margin_pct"] == 25.0  # 5000 / 4000 - 1
    assert got["memory-bound edge"]["pick"] == "mnn int8 t1 b1"  # 1.6 ms is within 10% of ov's 1.5
    assert got["cold start"]["pick"] == "ort fp32 t1 b1" and got["cold start"]["runner_up"] == "mnn int8 t1 b1"
    assert got["accuracy first"]["pick"] == "ov fp32 t4 b1"  # every fp32 row has 1 - cosine = 1e-5: the fastest
    assert got["accuracy first"]["pick_case_key"] == "m/ov/cpu/fp32/b1/t4/latency"
    assert all(row["verdict"] in ("tie", "clear", "only one") for row in got.values())


def test_all_cores_is_left_out_when_one_thread_is_all_there_is():
    assert "realtime, all cores" not in by_scenario([case("ort"), case("ov", median=2.0)])


# --- ties and clear wins -------------------------------------------------------------------------------------

def test_overlapping_cis_are_a_tie():
    row = by_scenario([case("ort", median=1.00, ci=0.02), case("ov", median=1.01, ci=0.02)])["realtime, 1 thread"]
    assert row["pick"] == "ort fp32 t1 b1" and row["verdict"] == "tie" and row["margin_pct"] == 1.0
    assert row["p_value"] is None  # no raw samples: the CIs alone decide


def test_a_clear_win_and_its_margin():
    row = by_scenario([case("ort", median=1.0), case("ov", median=1.25)])["realtime, 1 thread"]
    assert row["verdict"] == "clear" and row["margin_pct"] == pytest.approx(25.0)
    assert (row["value"], row["runner_up"], row["runner_up_value"]) == (1.0, "ov fp32 t1 b1", 1.25)
    assert row["runner_up_case_key"] == "m/ov/cpu/fp32/b1/t1/latency"


def test_the_runner_up_is_another_runner():
    cases = [case("ort", median=1.0), case("ort", "int8", median=1.1), case("ov", median=2.0)]
    row = by_scenario(cases)["realtime, 1 thread"]
    assert (row["runner_up"], row["margin_pct"]) == ("ov fp32 t1 b1", 100.0)


def test_indistinguishable_samples_are_a_tie_even_when_cis_do_not_overlap():
    same = samples(1.0, seed=1)
    cases = [case("ort", median=1.0, ci=0.001, samples_ns=same), case("ov", median=1.01, ci=0.001, samples_ns=same)]
    row = by_scenario(cases)["realtime, 1 thread"]
    assert row["verdict"] == "tie" and row["p_value"] > 0.5


def test_distinct_samples_are_a_clear_win():
    cases = [case("ort", median=1.0, ci=0.001, samples_ns=samples(1.0, seed=1)),
             case("ov", median=1.2, ci=0.001, samples_ns=samples(1.2, seed=2))]
    row = by_scenario(cases)["realtime, 1 thread"]
    assert row["verdict"] == "clear" and row["p_value"] < 0.01


def test_rows_without_samples_are_read_once_and_only_where_the_cis_leave_the_tie_open():
    """The report's rows carry no samples_ns: the reader is asked, once per table, for the rows of the latency
    leads whose CIs do not overlap, and their verdicts are those of the same rows with their samples."""
    same = samples(1.0, seed=1)
    held = [case("ort", median=1.0, ci=0.001, samples_ns=same), case("ov", median=1.01, ci=0.001, samples_ns=same),
            case("ort", threads=4, median=0.5, ci=0.2, samples_ns=samples(0.5)),  # CIs overlap: no test
            case("ov", threads=4, median=0.55, ci=0.2, samples_ns=samples(0.55, seed=2))]
    asked: list[list[str]] = []

    def reader(rows: list[dict]) -> dict:
        asked.append([x["case_key"] for x in rows])
        by_key = {(x["case_key"], x["run_id"]): x["samples_ns"] for x in held}
        return {(x["case_key"], x["run_id"]): by_key[(x["case_key"], x["run_id"])] for x in rows}

    bare = [{k: v for k, v in x.items() if k != "samples_ns"} for x in held]
    with_samples = scenario_table(held).records()
    assert scenario_table(bare, None, reader).records() == with_samples
    assert asked == [["m/ort/cpu/fp32/b1/t1/latency", "m/ov/cpu/fp32/b1/t1/latency"]]
    row = {x["scenario"]: x for x in with_samples}
    assert row["realtime, 1 thread"]["verdict"] == "tie" and row["realtime, 1 thread"]["p_value"] == 1.0
    assert row["realtime, all cores"]["verdict"] == "tie" and row["realtime, all cores"]["p_value"] is None
    # without a reader, rows without samples are left to their CIs (a caller that has no store)
    assert {x["scenario"]: x["verdict"] for x in scenario_table(bare).records()}["realtime, 1 thread"] == "clear"


@pytest.mark.parametrize(("other", "verdict"), [(985.0, "tie"), (950.0, "clear")])
def test_throughput_ties_within_two_percent(other, verdict):
    cases = [case("ort", scenario="throughput", throughput_per_s=1000.0),
             case("ov", scenario="throughput", throughput_per_s=other)]
    row = by_scenario(cases)["server at p99 bound"]
    assert row["verdict"] == verdict and row["margin_pct"] == pytest.approx((1000 / other - 1) * 100, abs=1e-4)
    assert "2%" in row["rule"]


def server(runner: str, qps: float, valid: bool = True, bound: float = 50.0, **extra) -> dict:
    """A LoadGen server row: its throughput is the QPS LoadGen found VALID at ``bound`` (batch 1)."""
    return case(runner, scenario="server", throughput_per_s=qps if valid else None, loadgen_qps=qps if valid else None,
                loadgen_valid=valid, loadgen_p99_bound_ms=bound, **extra)


def test_the_server_column_ranks_loadgen_valid_qps_at_one_p99_bound_over_the_async_queue():
    cases = [case("queue", scenario="throughput", throughput_per_s=9000.0),  # no bound held: not a server number
             server("ort", 800.0), server("ov", 600.0), server("fast", 950.0, valid=False),
             server("loose", 2000.0, bound=500.0)]  # a looser bound than the one most rows share
    row = by_scenario(cases)["server at p99 bound"]
    assert (row["runner"], row["value"], row["runner_up"]) == ("ort", 800.0, "ov fp32 t1 b1")
    assert "LoadGen-VALID server QPS x batch at p99 <= 50 ms" in row["rule"]


# --- what may not win ---------------------------------------------------------------------------------------

def test_a_wrong_but_fast_row_is_never_picked():
    cases = [case("ort", median=1.0), case("ov", median=0.1, accuracy_ok=False, peak_rss_mb=1.0, cold_start_ms=1.0),
             case("mnn", median=0.1, accuracy_ok=None), case("ncnn", median=0.1, status="error")]
    got = by_scenario(cases)
    assert {row["pick"] for row in got.values()} == {"ort fp32 t1 b1"}
    assert {row["verdict"] for row in got.values()} == {"only one"}
    assert all(row["runner_up"] is None and row["margin_pct"] is None for row in got.values())


def test_runner_up_without_a_row_at_the_picks_precision():
    cases = [case("ov", "int8", median=0.5), case("ort", "fp32", median=1.0), case("mnn", "fp32", median=2.0),
             case("mnn", "int8", median=3.0, model="other"), case("ov", "int8", median=1.0, model="other"),
             case("ort", "fp32", median=2.0, model="other")]
    rows = {(x["model"], x["scenario"]): x for x in scenario_table(cases).records()}
    assert rows[("m", "realtime, 1 thread")]["runner_up"] == "ort fp32 t1 b1"
    assert rows[("m", "realtime, 1 thread")]["like_for_like"] == "no: ort has no passing int8 row"
    assert rows[("other", "realtime, 1 thread")]["like_for_like"] == "no: ort has no passing int8 row"
    # mnn's int8 exists but lost: said in the scenario's own terms
    cold = [case("ov", "int8", cold_start_ms=10.0), case("mnn", "int8", cold_start_ms=40.0),
            case("mnn", "fp32", cold_start_ms=20.0)]
    assert by_scenario(cold)["cold start"]["like_for_like"] == "no: mnn's int8 starts slower"


# --- machines -------------------------------------------------------------------------------------------

def two_machines() -> tuple[list[dict], list[dict]]:
    runs = [{"run_id": "r1", "machine_label": "arm-box", "machine_id": "id1"},
            {"run_id": "r2", "machine_label": None, "machine_id": "x86-id"}]
    cases = [case("ort", median=1.0), case("ov", median=2.0),
             case("ort", median=2.0, run_id="r2"), case("ov", median=1.0, run_id="r2"),
             case("ort", median=3.0, run_id="r2", model="n"), case("ov", median=5.0, run_id="r2", model="n")]
    return cases, runs


def test_two_machines_give_a_table_each_and_a_cross_machine_view():
    cases, runs = two_machines()
    table = scenario_table(cases, runs)
    arm, x86 = by_scenario(cases, runs, "arm-box"), by_scenario(cases, runs, "x86-id")
    assert arm["realtime, 1 thread"]["pick"] == "ort fp32 t1 b1"
    assert x86["realtime, 1 thread"]["pick"] == "ov fp32 t1 b1"
    assert {x["machine"] for x in table.records()} == {"arm-box", "x86-id"}
    cross = cross_machine(table)
    assert cross.columns == ("model", "scenario", "arm-box", "x86-id", "same_everywhere")
    rows = {(x["model"], x["scenario"]): x for x in cross.records()}
    assert rows[("m", "realtime, 1 thread")] == {"model": "m", "scenario": "realtime, 1 thread", "arm-box": "ort fp32",
                                                 "x86-id": "ov fp32", "same_everywhere": False}
    assert rows[("n", "realtime, 1 thread")]["arm-box"] == ""  # n never ran there
    assert rows[("m", "cold start")]["arm-box"] == "ort fp32 (tie)"  # both start in 50 ms


def test_cross_machine_of_one_machine_says_there_is_nothing_to_compare():
    cross = cross_machine(scenario_table([case("ort"), case("ov")]))
    assert cross.rows == [] and "one machine" in cross.note


# --- the table's rows, typed ------------------------------------------------------------------------------

def test_the_table_rows_are_typed_picks_whose_fields_are_its_columns():
    """COLUMNS are ScenarioPick's fields, in order (they cannot drift apart), and ``picks`` gives the rows back
    typed: what the table, its CSV and its frame hold is what its consumers read by attribute."""
    cases, runs = two_machines()
    table = scenario_table(cases, runs)
    assert COLUMNS == tuple(f.name for f in dataclasses.fields(ScenarioPick))
    got = picks(table)
    assert [dataclasses.asdict(p) for p in got] == table.records()
    one = next(p for p in got if p.machine == "arm-box" and p.model == "m" and p.scenario == "realtime, 1 thread")
    assert (one.pick, one.runner_up, one.verdict, one.margin_pct) == ("ort fp32 t1 b1", "ov fp32 t1 b1", "clear", 100.0)
    with pytest.raises(AttributeError):
        one.margin_pc  # noqa: B018 (a misspelling is an error, where a dict's .get read None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.verdict = "tie"  # type: ignore[misc]


def test_the_consumers_read_the_table_as_picks():
    """The matrix (the page's, summary.md's and the terminal's answer) and the cross-machine view go through
    ``picks``: a table that is not the scenario table (a ``select`` of it) is refused in one line, not read as
    dicts whose missing keys read None."""
    cases, runs = two_machines()
    shown = scenario_table(cases, runs).select(SHOWN)
    for consumer in (lambda t: matrix.matrices(t, cases, runs), cross_machine, picks):
        with pytest.raises(ValueError, match="not a scenario table"):
            consumer(shown)


def test_mypy_rejects_a_misspelled_pick_attribute(tmp_path):
    """The point of typed rows: a consumer's misspelled column is caught before it runs (CI runs mypy on bench/)."""
    snippet = tmp_path / "consumer.py"
    snippet.write_text("from bench.report.scenarios import picks, scenario_table\n\n"
                       "print([p.margin_pc for p in picks(scenario_table([]))])\n")
    run = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache"),
                          "--follow-imports=silent", str(snippet)], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[1])
    assert run.returncode == 1, run.stdout + run.stderr
    assert '"ScenarioPick" has no attribute "margin_pc"; maybe "margin_pct"?' in run.stdout


# --- accuracy first and memory ----------------------------------------------------------------------------

def test_accuracy_first_task_metric_beats_cosine_and_speed_breaks_ties():
    cases = [
        case("ort", "fp32", median=2.0, task_metric="accuracy", task_value=0.80, cosine=1.0),
        case("ov", "int8", median=1.0, task_metric="accuracy", task_value=0.80, cosine=0.98),  # same score, faster
        case("mnn", "int8", median=0.5, task_metric="accuracy", task_value=0.75, cosine=0.9999),  # fastest, worse
        case("ncnn", "fp16", median=0.4, cosine=1.0),  # no task score: ranks after every scored row
    ]
    row = by_scenario(cases)["accuracy first"]
    assert row["pick"] == "ov int8 t1 b1" and row["unit"] == "accuracy below fp32" and row["value"] == 0.0
    assert row["runner_up"] == "ort fp32 t1 b1" and row["verdict"] == "tie"
    without_ov = by_scenario([c for c in cases if c["runner"] != "ov"])["accuracy first"]
    assert without_ov["pick"] == "ort fp32 t1 b1" and without_ov["runner_up"] == "mnn int8 t1 b1"
    assert without_ov["margin_pct"] == pytest.approx(5.0) and without_ov["verdict"] == "clear"


def test_accuracy_first_by_cosine_when_no_task_score():
    cases = [case("ort", median=2.0, cosine=0.9999), case("ov", median=1.0, cosine=0.995)]
    row = by_scenario(cases)["accuracy first"]
    assert (row["pick"], row["unit"], row["verdict"]) == ("ort fp32 t1 b1", "1 - cosine", "clear")
    assert row["margin_pct"] == pytest.approx(0.49)  # (0.005 - 0.0001) in percentage points
    near = by_scenario([case("ort", median=2.0, cosine=0.9999), case("ov", median=1.0, cosine=0.9995)])
    assert near["accuracy first"]["pick"] == "ort fp32 t1 b1"  # 4e-4 apart: bf16-sized, not equal
    close = by_scenario([case("ort", median=2.0, cosine=1 - 1e-12), case("ov", median=1.0, cosine=1 - 5e-7)])
    assert close["accuracy first"]["pick"] == "ov fp32 t1 b1"  # within 1e-6: equal, and ov is faster
    assert close["accuracy first"]["verdict"] == "tie"


@pytest.mark.parametrize(("slower", "picked"), [(1.12, "ort fp32 t1 b1"), (1.09, "ov fp32 t1 b1")])
def test_memory_pick_must_be_within_ten_percent_of_the_fastest(slower, picked):
    cases = [case("ort", median=1.0, peak_rss_mb=200.0), case("ov", median=slower, peak_rss_mb=50.0)]
    row = by_scenario(cases)["memory-bound edge"]
    assert row["pick"] == picked and "10%" in row["rule"]
    assert row["verdict"] == ("only one" if slower > 1.1 else "clear")


def test_memory_compares_speed_at_the_same_thread_count():
    # ov's 4-thread row is far slower than ort's 4-thread one, though faster than every 1-thread row
    cases = [case("ort", median=1.0, peak_rss_mb=200.0), case("ort", median=0.3, threads=4, peak_rss_mb=300.0),
             case("ov", median=0.9, threads=4, peak_rss_mb=40.0)]
    assert by_scenario(cases)["memory-bound edge"]["pick"] == "ort fp32 t1 b1"


# --- results as a DataFrame, from real parquet ------------------------------------------------------------

def write_history(results) -> None:
    """Machine A: r1, then r2 re-runs ort (faster after a fix). Machine B: r3, where ov wins."""
    loc = Location.resolve(results)
    for run_id, label, hours in (("r1", "A", 0), ("r2", "A", 1), ("r3", "B", 2)):
        store.write_run(loc, run_id, {"run_id": run_id, "timestamp": NOW + timedelta(hours=hours),
                                      "machine_label": label, "machine_id": f"id-{label}", "status": "complete"})
    rows = [("r1", 0, case("ort", median=2.0)), ("r1", 0, case("ov", median=1.0)), ("r2", 1, case("ort", median=0.5)),
            ("r3", 2, case("ort", median=3.0)), ("r3", 2, case("ov", median=1.0, accuracy_ok=None))]
    rows.append(("r3", 2, case("ov", median=1.5, model="n")))
    for index, (run_id, hours, row) in enumerate(rows):
        when = NOW + timedelta(hours=hours)
        row = {**row, "run_id": run_id, "timestamp": when + timedelta(seconds=index), "samples_ns": samples(1.0)}
        store.write_case(loc, run_id, when, index, row)


def test_load_reads_real_parquet_latest_per_case_and_machine(tmp_path):
    write_history(tmp_path)
    df = r.load(tmp_path)
    assert isinstance(df, pd.DataFrame) and len(df) == 5  # ort's r1 row is replaced by r2's on machine A
    got = sorted(zip(df.machine_label, df.runner, df.run_id, df.median_ms, strict=True))
    assert got == [("A", "ort", "r2", 0.5), ("A", "ov", "r1", 1.0), ("B", "ort", "r3", 3.0), ("B", "ov", "r3", 1.0),
                   ("B", "ov", "r3", 1.5)]
    assert str(df.threads.dtype) == "Int32" and len(df.samples_ns.iloc[0]) == 400
    assert len(r.load(tmp_path, latest=False)) == 6
    assert set(r.load(tmp_path, run_id="r3").run_id) == {"r3"}
    assert list(r.load(tmp_path, "runs").machine_label) == ["A", "A", "B"]


def test_scenarios_of_a_frame_pick_per_machine(tmp_path):
    write_history(tmp_path)
    table = r.scenarios(r.load(tmp_path))
    one = table[table.scenario == "realtime, 1 thread"].set_index(["machine", "model"])
    assert one.loc[("A", "m"), "pick"] == "ort fp32 t1 b1" and one.loc[("A", "m"), "value"] == 0.5
    # ov's row on B has unchecked outputs: ort wins there though slower
    assert one.loc[("B", "m"), "pick"] == "ort fp32 t1 b1" and one.loc[("B", "m"), "verdict"] == "only one"
    assert "10%" in table.attrs["note"]
    # without the machine columns, the runs table of where the frame came from names the machines
    bare = r.load(tmp_path).drop(columns=["machine_label", "machine_id"])
    assert set(r.scenarios(bare).machine) == {"A", "B"}


def test_load_refuses_an_unknown_table_in_one_line(tmp_path):
    write_history(tmp_path)
    with pytest.raises(UserError, match=r"^bench.results.load: table must be 'cases' or 'runs', got 'case'$"):
        r.load(tmp_path, "case")
    with pytest.raises(UserError, match="no results at"):
        r.load(tmp_path / "missing")


def test_the_readme_snippet_runs_and_imports_pandas_only_when_used(tmp_path):
    write_history(tmp_path)
    snippet = ("import sys; import bench.results as r; assert 'pandas' not in sys.modules, 'pandas at import'; "
               f"df = r.load({str(tmp_path)!r}); print(r.scenarios(df).to_string())")
    done = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "realtime, 1 thread" in done.stdout and "ort fp32 t1 b1" in done.stdout and "only one" in done.stdout


def test_an_emulated_run_is_never_ranked_and_the_note_says_why():
    cases, runs = two_machines()
    runs[0] = {**runs[0], "emulated": True}  # arm-box ran under qemu-user
    table = scenario_table(cases, runs)
    assert {x["machine"] for x in table.records()} == {"x86-id"}
    assert "Not ranked: 2 rows of arm-box ran under emulation" in table.note
    assert "emulation" not in scenario_table(*two_machines()).note


def test_a_software_device_row_is_never_ranked_and_the_note_says_why():
    lavapipe = "llvmpipe (LLVM 15.0.6, 256 bits)"
    fast_on_lavapipe = case("ncnn", median=0.1, device="vulkan", software_device=lavapipe)  # the fastest row here
    table = scenario_table([case("ort", median=1.0), case("ov", median=2.0), fast_on_lavapipe])
    assert {r["runner"] for r in table.records()} == {"ort"}  # it beats both, and wins nothing
    assert f"Not ranked: 1 rows ran on a software device ({lavapipe})" in table.note
    assert "software device" not in scenario_table([case("ort"), case("ov")]).note
