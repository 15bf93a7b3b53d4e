"""The screen a run ends with (bench.report.answer), from rows with known numbers."""

from __future__ import annotations

import re

from test_scenarios import case

from bench.report.answer import answer_lines


def skipped(runner: str, status: str, reason: str, model: str = "m") -> dict:
    return {"case_key": f"{model}/{runner}/cpu/fp32/b1/t1/latency", "model": model, "runner": runner, "status": status,
            "error": reason, "precision": "fp32", "device": "cpu", "batch": 1, "threads": 1, "scenario": "latency"}


def grid(lines: list[str], machine: str | None = None) -> dict[tuple[str, str], tuple[str, str]]:
    """(model, column header) -> (the pick, its value and lead) as the closing answer's block of ``machine`` (the
    first where None) shows them, read by the columns' positions under the header, as a person reads them."""
    start = next(i for i, line in enumerate(lines) if line.startswith("  on ") and machine in (None, line[5:-1]))
    found = list(re.finditer(r"\S+(?: \S+)*", lines[start + 1]))  # headers: words apart by one space, not two
    starts, titles = [m.start() for m in found], [m.group() for m in found]
    cells = {}
    block = [line for line in lines[start + 2:] if line.startswith("    ")]
    for pick, how in zip(block[::2], block[1::2], strict=True):
        model = pick[starts[0]:starts[1]].strip()
        for i, title in enumerate(titles[1:], 1):
            end = starts[i + 1] if i + 1 < len(starts) else None
            cells[(model, title)] = (pick[starts[i]:end].strip(), how[starts[i]:end].strip())
    return cells


def test_a_block_per_machine_a_row_per_model_and_each_absent_runner_once():
    rows = [case("ort", median=1.0, model="a"), case("ov", median=2.0, model="a"), case("ort", median=3.0, model="b"),
            case("ov", median=1.0, model="b", accuracy_ok=False),  # fast and wrong: counted, never picked
            *(skipped("trt", "unavailable", "not installed: pip install trt", model=m) for m in "ab")]
    run = {"run_id": "r1", "machine_id": "0123456789abcdef", "cpu_model": "AMD EPYC 7B13", "machine_label": "x86-big",
           "gpus": '[{"name": "NVIDIA H100"}]'}
    lines = answer_lines(rows, "results", [run])
    assert lines[0] == "6 cases, 4 run: ok 4, unavailable 2"
    assert "  trt ran nothing: not installed: pip install trt" in lines
    assert sum("trt" in line for line in lines) == 1
    assert "  on x86-big: AMD EPYC 7B13 + NVIDIA H100:" in lines  # named by what it is, never its hash
    assert not any("0123456789" in line for line in lines)
    cells = grid(lines)
    assert cells[("a", "realtime 1 thread")] == ("ort fp32", "1 ms +100%")  # 2.0 / 1.0 - 1, CIs apart
    assert cells[("b", "realtime 1 thread")] == ("ort fp32", "3 ms")  # ov: wrong, never a runner-up
    assert cells[("a", "realtime all cores")] == ("-", "(1 thread only)")
    assert cells[("a", "server at p99 bound")] == ("-", "(not measured)")
    assert cells[("a", "edge memory")][0] == "ort fp32 t1"
    assert "1 wrong outputs (timed, flagged, never picked)" in lines[-2]
    assert lines[-1].startswith("full table and charts: bench report --results results")
    assert len(lines) < 40


def test_ties_say_so_and_every_scenario_has_its_column():
    rows = [case("ort", median=1.0, ci=0.05), case("ov", median=1.02, ci=0.05)]  # CIs overlap: a tie
    lines = answer_lines(rows, "results")
    cells = grid(lines)
    assert cells[("m", "realtime 1 thread")] == ("ort fp32", "1 ms = ov fp32")
    assert {title for _, title in cells} == {"realtime 1 thread", "realtime all cores", "server at p99 bound",
                                             "edge memory", "cold start", "accuracy first"}
    assert "  on ?:" in lines  # rows that name no machine and no runs row: the table's "?"


def test_a_model_without_a_correct_row_is_named_not_picked():
    lines = answer_lines([case("ort", model="a"), case("ort", model="z", accuracy_ok=False)], "results")
    assert "  no correct row, so no pick: z" in lines
    assert [model for model, _ in grid(lines)] == ["a"] * 6


def test_a_throughput_median_says_it_is_one_round_not_one_request():
    import io

    from bench.progress import Display

    out = io.StringIO()
    display = Display(2, out)
    display.finished({**case("ov", median=8.0, scenario="throughput"), "items_per_iteration": 4})
    display.finished(case("ov", median=2.0))
    first, second = out.getvalue().splitlines()[:2]
    assert "8.000 ms per round of 4" in first and second.endswith("ok  2.000 ms")


def test_the_runs_answer_never_loads_matplotlib():
    """matplotlib writes its font cache under HOME, which a run never does (tests/test_privacy.py): only the
    dashboard may load it."""
    import subprocess
    import sys

    code = "import sys; import bench.report.answer, bench.report; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


def test_a_figure_far_above_the_measured_peak_is_flagged():
    import json

    from bench.report import views

    runs = [{"run_id": "r1", "peak_gflops": json.dumps({"1": 100.0})}]
    cases = [case("ort", achieved_gflops=7279.0), case("ov", achieved_gflops=90.0)]
    flags = {r["runner"]: r["flag"] for r in views.efficiency(cases, runs).records()}
    assert flags["ov"] == "" and flags["ort"].startswith("7279% of the measured fp32 peak")


def test_each_models_picks_are_printed_when_its_last_case_has_run():
    """A long run's first answer comes with its first model: the line right after that model's last case, with the
    picks the closing screen gives it; a model none of whose cases ran prints nothing."""
    import io

    from bench.progress import Display

    rows = [case("ort", median=1.0, model="a"), case("ov", median=2.0, model="a"), case("ort", median=3.0, model="b"),
            case("ov", median=1.0, model="b", accuracy_ok=False), skipped("trt", "unavailable", "x", model="c")]
    out = io.StringIO()
    display = Display(4, out)
    display.expect([str(r["model"]) for r in rows], None)
    for row in rows:
        display.finished(row)
    lines = out.getvalue().splitlines()
    assert len(lines) == 6 and lines[2].startswith("a done: realtime 1 thread ort fp32 1 ms +100% | ")
    assert lines[5].startswith("b done: realtime 1 thread ort fp32 3 ms | ")  # the wrong ov row never picked
    assert grid(answer_lines(rows, "results"))[("a", "realtime 1 thread")] == ("ort fp32", "1 ms +100%")
