"""The command line's one edge (bench.options): every flag parsed and bounded by the parser itself, one line and exit
code 2 naming the flag, and typed values handed on. In-process: the parser is called directly."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cli import build_parser, main
from bench.options import MAX_MEMORY_MB, MAX_TRIALS
from bench.plan import Shard
from bench.report.compare import Threshold
from bench.results.uri import Location
from bench.suite import MAX_THREADS, MAX_TIMEOUT_S

TUNE = ["tune", "--runner", "tvm", "--trials", "1"]
COMPARE = ["compare", "a", "b"]


def refusal(argv: list[str], capsys) -> str:
    """The parser's one line for ``argv``, which it must refuse with exit code 2."""
    with pytest.raises(SystemExit) as refused:
        build_parser().parse_args(argv)
    err = capsys.readouterr().err
    assert refused.value.code == 2 and err.count("\n") == 1 and err.startswith("bench: error: "), err
    return err


@pytest.mark.parametrize(("argv", "needle"), [
    (["run", "--timeout", "nan"], f"--timeout is in seconds and must be in (0, {MAX_TIMEOUT_S}], got nan"),
    (["run", "--timeout", "0"], "--timeout is in seconds and must be in (0, "),
    (["run", "--timeout", "1e308"], "--timeout is in seconds and must be in (0, "),
    (["run", "--timeout", "soon"], "--timeout is in seconds and must be in (0, 604800], got soon"),
    (["run", "--cooldown", "inf"], "--cooldown is in seconds and must be in [0, 3600], got inf"),
    (["run", "--cooldown-max", "-1"], "--cooldown-max is in seconds and must be in [0, 3600], got -1"),
    (["run", "--cooldown-until", "200"], "--cooldown-until is in degrees C and must be in [-50, 150], got 200"),
    (["run", "--max-memory", str(1 << 62)], f"--max-memory is in MB and must be in [64, {MAX_MEMORY_MB}]"),
    (["run", "--max-memory", "1.5"], "--max-memory is in MB and must be in [64, "),
    (["run", "--shard", "3/2"], "--shard '3/2': expected I/N with 1 <= I <= N"),
    (["run", "--shape", "x:0"], "--shape 'x:0': expected NAME:DxDx... with positive integers"),
    (["run", "--threads", "1,x"], "argument --threads: expected comma-separated integers"),
    (["run", "--results", "s3://KEY:hunter2@bucket"], "credentials in the URI are refused"),
    ([*TUNE, "--timeout", str(MAX_TIMEOUT_S + 1)], f"--timeout is in seconds and must be in (0, {MAX_TIMEOUT_S}]"),
    (["tune", "--runner", "tvm", "--trials", "0"], f"--trials is the tuning budget and must be in [1, {MAX_TRIALS}]"),
    ([*TUNE, "--builders", "3000000000"], f"--builders must be in [0, {MAX_THREADS}], got 3000000000"),
    ([*TUNE, "--models", ","], "argument --models: expected a comma-separated list"),
    ([*COMPARE, "--threshold", "lots"], "--threshold: expected a percentage such as 5%, got 'lots'"),
    ([*COMPARE, "--threshold=-5%"], "--threshold: expected 0% to 1000%, got '-5%'"),
    ([*COMPARE, "--threshold", "nan"], "--threshold: expected 0% to 1000%, got 'nan'"),
])
def test_a_bad_flag_is_the_parsers_one_line_naming_it(argv, needle, capsys):
    err = refusal(argv, capsys)
    assert needle in err and "hunter2" not in err, err
    flag = needle.removeprefix("argument ").split()[0]
    assert err.count(flag) == 1 or flag == "--results", err  # named once, not "argument --timeout: --timeout ..."


def test_the_one_week_bound_is_one_for_run_and_tune(capsys):
    for command in (["run"], TUNE):
        assert build_parser().parse_args([*command, "--timeout", str(MAX_TIMEOUT_S)]).timeout == MAX_TIMEOUT_S
        refusal([*command, "--timeout", str(MAX_TIMEOUT_S + 1)], capsys)


def test_flags_arrive_typed():
    run = build_parser().parse_args(["run", "--shard", "2/4", "--shape", "x:1x3", "--shape", "y:2", "--max-memory",
                                     "512", "--timeout", "30"])
    assert run.shard == Shard(2, 4) and dict(run.shape) == {"x": (1, 3), "y": (2,)}
    assert run.max_memory == 512 and isinstance(run.max_memory, int) and run.timeout == 30.0
    assert isinstance(run.results, Location) and run.results.local == Path("results")  # the default, resolved
    compare = build_parser().parse_args(COMPARE)
    assert compare.threshold == Threshold(0.05) and isinstance(compare.results, Location)
    assert build_parser().parse_args([*COMPARE, "--threshold", "12.5"]).threshold == Threshold(0.125)
    tune = build_parser().parse_args(TUNE)
    assert tune.timeout == 3600.0 and tune.trials == 1 and tune.builders == 0


def test_main_returns_2_for_a_bad_flag_and_leaves_nothing(capsys, tmp_path):
    assert main(["run", "--timeout", "nan", "--results", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.count("\n") == 1 and not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", [["run", "--dry-run"], TUNE])
def test_model_flags_are_checked_alike_for_run_and_tune(command, capsys, tmp_path):
    assert main([*command, "--shape", "x:1"]) == 2
    assert capsys.readouterr().err == "bench: error: --shape needs --model PATH\n"
    assert main([*command, "--model", str(tmp_path / "m.onnx"), "--models", "tiny_mlp"]) == 2
    assert "--model and --models are exclusive" in capsys.readouterr().err


def test_results_are_resolved_once_where_the_user_names_them(tmp_path, monkeypatch, capsys):
    """--results becomes a Location in the parser; the report, coverage, compaction and store code below it is handed
    that Location and never resolves the user's text again (bench.results.load resolves its own argument, once)."""
    from datetime import datetime, timezone

    import bench.results as r
    from bench.results import store

    now = datetime(2026, 11, 26, tzinfo=timezone.utc)
    row = {"run_id": "r1", "timestamp": now, "case_key": "m/a/cpu/fp32/b1/t1/latency", "model": "m", "runner": "a",
           "device": "cpu", "precision": "fp32", "batch": 1, "threads": 1, "scenario": "latency", "status": "ok",
           "accuracy_ok": True, "median_ms": 1.0, "median_ci_low_ms": 0.9, "median_ci_high_ms": 1.1, "min_ms": 0.8,
           "p99_ms": 1.2}
    store.write_case(Location.resolve(tmp_path), "r1", now, 0, row)
    loc = Location.resolve(tmp_path)
    store.write_run(loc, "r1", {"run_id": "r1", "timestamp": now, "suite": "s", "status": "complete"})
    resolved: list[object] = []
    resolve = Location.resolve.__func__  # type: ignore[attr-defined]

    def counted(cls, results):
        if not isinstance(results, Location):  # a Location handed on is no resolution
            resolved.append(results)
        return resolve(cls, results)

    monkeypatch.setattr(Location, "resolve", classmethod(counted))
    for argv in (["coverage"], ["compact"], ["report", "--out", str(tmp_path / "site")]):
        assert main([*argv, "--results", str(tmp_path)]) == 0, capsys.readouterr().err
        assert resolved == [str(tmp_path)], (argv, resolved)
        resolved.clear()
    assert len(r.load(tmp_path)) == 1 and resolved == [tmp_path]
