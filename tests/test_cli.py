"""The command line as a user runs it: real ONNX Runtime, real parquet, read back through DuckDB."""

from __future__ import annotations

from pathlib import Path

import onnx
import pyarrow.parquet as pq
import pytest
from onnx import TensorProto, helper

from bench import telemetry
from bench.cpu import Cpu
from bench.results import store
from bench.results.uri import Location
from bench.runners.openvino import SPEC as OPENVINO

FAST = str(__import__("pathlib").Path(__file__).parent / "fixtures" / "fast.toml")


def test_smoke_suite_end_to_end(bench_cli, tmp_path):
    done = bench_cli("run", "--suite", "smoke", "--results", "out")
    assert done.returncode == 0, done.stderr
    assert "[4/4]" in done.stdout and "cases" in done.stdout
    rows = store.read_cases(Location.resolve(tmp_path / "out")).to_pylist()
    assert [r["status"] for r in rows] == ["ok"] * 4
    for r in rows:
        assert r["median_ci_low_ms"] <= r["median_ms"] <= r["median_ci_high_ms"]
        assert r["min_ms"] <= r["median_ms"] <= r["p99_ms"] <= r["max_ms"]
        assert len(r["samples_ns"]) == r["iterations"] >= 10
        assert r["accuracy_ok"] is True and r["cosine"] > 0.9999
        assert r["threads_used"] == r["threads"] and r["precision_used"] == "fp32"
        assert r["cold_start_ms"] >= r["first_inference_ms"] > 0
        assert r["runner_version"] and r["timed_region"]
    runs = store.query(Location.resolve(tmp_path / "out"), "SELECT * FROM runs").to_pylist()
    assert len(runs) == 1 and runs[0]["run_id"] == rows[0]["run_id"] and runs[0]["cores_logical"] >= 1


def test_a_complete_run_is_one_file(bench_cli, tmp_path):
    assert bench_cli("run", "--suite", FAST, "--results", "out", "--threads", "1,2").returncode == 0
    files = [f for f in (tmp_path / "out" / "cases").rglob("*") if f.is_file()]
    assert [f.name for f in files] == [store.COMPACTED]  # per-case files merged, no temp files left
    table = pq.read_table(files[0])
    assert table.num_rows == 2 and table.schema.metadata[b"schema_version"] == b"1"


def test_a_run_ends_with_the_answer_and_verbose_restores_the_detail(bench_cli):
    args = ("run", "--suite", FAST, "--runners", "onnxruntime,tensorrt", "--precisions", "fp32,int8", "--threads", "1")
    done = bench_cli(*args, "--results", "out")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    progress = [line for line in lines if line.startswith("[")]
    assert len(progress) == 2 and progress[0].startswith("[1/2] ")  # only the cases that execute
    picks = lines[lines.index(progress[-1]) + 1]  # the model's picks as soon as its last case ran, then the screen
    assert picks.startswith("tiny_mlp done: realtime 1 thread onnxruntime fp32 "), picks
    screen = lines[lines.index(progress[-1]) + 2:]
    assert len(screen) < 40 and not any("/tensorrt/" in line for line in done.stdout.splitlines())
    assert screen[0].startswith("4 cases, 2 run: ")
    assert "  tensorrt ran nothing: tensorrt has no device 'cpu' (it has cuda)" in screen  # once, not per case
    from test_answer import grid

    from bench.envinfo import cpu_model

    assert f"  on {cpu_model()}:" in screen  # the machine by what it is: no label given, no hash
    who, how = grid(screen)[("tiny_mlp", "realtime 1 thread")]  # its row in the machine's matrix
    assert who == "onnxruntime fp32" and " ms" in how
    assert any(line.startswith("full table and charts: bench report --results out") for line in screen)
    verbose = bench_cli(*args, "--results", "out2", "--verbose")
    assert verbose.returncode == 0, verbose.stderr
    assert verbose.stdout.count("[skipped] tiny_mlp/tensorrt/") == 2 and "┏" in verbose.stdout  # and the table


def test_dry_run_prints_plan_and_writes_nothing(bench_cli, tmp_path):
    done = bench_cli("run", "--suite", "smoke", "--dry-run", "--results", "out")
    assert done.returncode == 0, done.stderr
    assert "tiny_mlp/onnxruntime/cpu/fp32/b1/t1/latency" in done.stdout
    assert "4 cases (4 to run)" in done.stdout
    assert not (tmp_path / "out").exists()


def test_axis_flags_replace_the_suites_axes(bench_cli):
    done = bench_cli("run", "--suite", "smoke", "--dry-run", "--precisions", "int8,fp32", "--batch-sizes", "2",
                     "--scenarios", "throughput", "--devices", "cpu", "--threads", "1")
    assert done.returncode == 0, done.stderr
    planned = [line for line in done.stdout.splitlines() if line.startswith("tiny_")]
    assert len(planned) == 4 and all("/b2/t1/throughput" in line for line in planned), planned
    assert {line.split("/")[3] for line in planned} == {"int8", "fp32"}
    bad = bench_cli("run", "--dry-run", "--precisions", "fp32,int4")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "--precisions" in bad.stderr and "int4" in bad.stderr and "int8_weights" in bad.stderr


def test_own_model_without_a_suite_plans_every_runner_precision_and_scenario(bench_cli, tmp_path):
    from bench.case import PRECISIONS
    from bench.registry import Registry

    model = tmp_path / "mine.onnx"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "mine", [x],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model))
    done = bench_cli("run", "--model", str(model), "--dry-run")
    assert done.returncode == 0, done.stderr
    keys = [line.split()[0].split("/") for line in done.stdout.splitlines() if line.startswith("mine/")]
    assert {k[1] for k in keys} == set(Registry.default().specs)
    assert {k[3] for k in keys} == set(PRECISIONS) and {k[6] for k in keys} == {"latency", "server", "offline"}
    assert "t1" in {k[5] for k in keys}  # and all cores: the suite's threads = [1, "all"]


def test_unknown_flag_is_one_line_exit_2(bench_cli):
    done = bench_cli("run", "--no-such-flag")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "--no-such-flag" in done.stderr


@pytest.fixture
def bench_in_process(cache_dir, tmp_path, monkeypatch, capsys):
    """``bench ...`` through ``bench.cli.main`` in this process, returning (exit code, stdout, stderr): for
    refusals that come before anything runs, where starting an interpreter was most of the check's 1.7 s.
    ``test_unknown_flag_is_one_line_exit_2`` keeps one such refusal in a real ``python -m bench``."""
    from bench.cli import main

    monkeypatch.setenv("BENCH_CACHE_DIR", str(cache_dir))
    monkeypatch.chdir(tmp_path)
    for name, value in telemetry.SWITCHES.items():
        monkeypatch.setenv(name, value)  # main() sets them as well; monkeypatch gives this process its own back

    def run(*args: str) -> tuple[int | str | None, str, str]:
        capsys.readouterr()  # what came before is not this command's
        try:
            code: int | str | None = main(list(args))
        except SystemExit as exc:  # argparse's refusals exit; UserError's are returned
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_unknown_names_are_one_line_exit_2(bench_in_process, tmp_path):
    for args, needle in [
        (["--suite", "nope"], "unknown suite 'nope'"),
        (["--models", "nope"], "--models: unknown model 'nope'"),
        (["--runners", "nope"], "--runners: unknown runner 'nope'"),
        (["--threads", "0"], "--threads: key 'threads.0': Input should be greater than or equal to 1 (got 0)"),
        (["--shape", "x:1"], "--shape needs --model"),
        (["--model", str(tmp_path)], f"{tmp_path}: is a folder; --model takes one .onnx file"),
        (["--cache-dir", str(Path(__file__))], "is a file, not a folder"),
        (["--timeout", "nan"], "--timeout is in seconds and must be in (0, 604800], got nan"),
        (["--timeout", "1e308"], "--timeout is in seconds"),
        (["--cooldown", "inf"], "--cooldown is in seconds and must be in [0, 3600], got inf"),
        (["--max-memory", str(1 << 62)], "--max-memory is in MB and must be in [64, 1073741824]"),
        (["--model", str(tmp_path / "no.onnx")], "no.onnx: model file not found"),
    ]:
        code, _, err = bench_in_process("run", *args, "--results", "out")
        assert code == 2, (args, err)
        assert needle in err and err.count("\n") == 1, err
        assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_numeric_flags_have_a_suite_files_bounds(bench_cli):
    """3000000000 threads once ran, then crashed the row writer (an int32 column): a flag is bounded as the suite
    file's key it replaces (bench.suite), refused in one line before anything is planned."""
    from bench.suite import MAX_BATCH, MAX_THREADS, MAX_TIMEOUT_S

    for args, needle in [
        (["--threads", "3000000000"], f"'threads.0': Input should be less than or equal to {MAX_THREADS}"),
        (["--threads", "1,1"], "--threads: key 'threads': Value error, listed more than once: 1"),
        (["--batch-sizes", str(MAX_BATCH + 1)], f"less than or equal to {MAX_BATCH}"),
        (["--timeout", str(MAX_TIMEOUT_S + 1)], f"--timeout is in seconds and must be in (0, {MAX_TIMEOUT_S}]"),
    ]:
        done = bench_cli("run", "--suite", FAST, *args, "--dry-run")
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert done.stderr.startswith("bench: error: ") and needle in done.stderr, done.stderr
        assert done.stderr.count("\n") == 1 and not done.stdout
    assert bench_cli("run", "--suite", FAST, "--threads", str(MAX_THREADS), "--dry-run").returncode == 0
    tune = bench_cli("tune", "--runner", "tvm", "--trials", "1", "--builders", "3000000000")
    assert tune.returncode == 2 and f"--builders must be in [0, {MAX_THREADS}]" in tune.stderr, tune.stderr


def test_list_commands(bench_cli):
    runners = bench_cli("list", "runners")
    assert runners.returncode == 0
    onnxruntime = next(line.split() for line in runners.stdout.splitlines() if line.startswith("onnxruntime "))
    assert onnxruntime[1] == "available", onnxruntime
    suites = bench_cli("list", "suites")
    assert "smoke" in suites.stdout and "mobile" in suites.stdout
    models = bench_cli("models")
    assert "tiny_mlp" in models.stdout and "input:1x64:float32" in models.stdout


@pytest.mark.skipif(not OPENVINO.available().ok, reason=f"openvino unavailable: {OPENVINO.available().reason}")
def test_list_runners_shows_the_precisions_openvino_computes_on_this_cpu(bench_cli):
    runners = bench_cli("list", "runners")
    openvino = next(line.split() for line in runners.stdout.splitlines() if line.startswith("openvino "))
    assert openvino[1] == "available", openvino
    expected = ",".join(p for p in OPENVINO.precisions if OPENVINO.cpu_precision(p, Cpu.here()).ok)
    assert openvino[5] == expected, openvino


def test_listing_imports_no_runtime(bench_cli):
    code = (
        "import sys; from bench import listing; listing.runners(); listing.models(); listing.suites();"
        "heavy = [m for m in ('onnxruntime', 'openvino', 'ncnn', 'MNN', 'tensorrt') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
