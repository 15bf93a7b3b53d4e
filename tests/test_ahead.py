"""bench run converts ahead of the timed phase: each artifact once, several at a time, nothing timed meanwhile; and
whatever becomes of a conversion there, each case's row is what it would have been without the pass."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import onnx
import psutil
import pytest
from onnx import TensorProto, helper

from bench import envinfo
from bench.ahead import Slots, conversion_jobs, convert_ahead
from bench.forkserver import ForkServer
from bench.plan import Overrides, plan
from bench.registry import Registry
from bench.results.uri import Location
from bench.run import RunInfo, RunOptions, execute
from bench.runners.onnxruntime import SPEC as ORT
from bench.suite import Suite, TimingConfig


def _planned(registry: Registry, runners: list[str], cache: Path, models=("tiny_mlp",), threads=(1, 2),
             precisions=("fp32",), timeout_s: float = 60, user_model: Path | None = None):
    suite = Suite(name="ahead", models=list(models), runners=runners, precisions=list(precisions), devices=["cpu"],
                  threads=list(threads), scenarios=["latency"], batch_sizes=[1], timeout_s=timeout_s,
                  timing=TimingConfig(warmup_time_s=0.01, min_time_s=0.05, max_time_s=0.3))
    overrides = Overrides(user_model=user_model) if user_model else Overrides()
    return plan(suite, "ahead", overrides, registry, cache)


def _run(registry: Registry, planned, results: Path, convert_ahead: bool = True) -> tuple[list[dict], str]:
    shown = io.StringIO()
    rows = execute(planned, Location.resolve(results), RunInfo.new("ahead", []), registry, stream=shown,
                   options=RunOptions(convert_ahead=convert_ahead))
    return sorted(rows, key=lambda r: r["case_key"]), shown.getvalue()


def _events(tmp_path: Path) -> list[dict]:
    path = tmp_path / "records.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_each_models_artifacts_are_made_ahead_of_its_cases_and_nothing_is_timed_meanwhile(fakes, tmp_path):
    registry = Registry([ORT, fakes.CONVERTS_SLOWLY])
    planned = _planned(registry, ["converts_slowly"], tmp_path / "cache", models=("tiny_mlp", "tiny_cnn"))
    rows, shown = _run(registry, planned, tmp_path / "results")

    assert "tiny_mlp: converting 1 artifact ahead of timing" in shown and shown.count(" 1 made") == 2, shown
    events = _events(tmp_path)
    starts = [e for e in events if e["event"] == "convert" and e["phase"] == "start"]
    ends = [e for e in events if e["event"] == "convert" and e["phase"] == "end"]
    prepares = [e for e in events if e["event"] == "prepare"]
    assert [e["model"] for e in starts] == ["tiny_mlp", "tiny_cnn"]  # once per artifact, not per case; plan order
    assert len(prepares) == 4
    for start, end in zip(starts, ends, strict=True):  # no case timed while a conversion ran
        assert not any(start["time"] <= e["time"] <= end["time"] for e in prepares)
    first, second = ([e["time"] for e in prepares if e["model"] == m] for m in ("tiny_mlp", "tiny_cnn"))
    assert max(first) < starts[1]["time"] < min(second)  # the first model's cases before the next one converts
    assert {e["pid"] for e in starts}.isdisjoint(e["pid"] for e in prepares)  # workers of their own
    for row in rows:
        assert row["status"] == "ok", row
        assert row["conversion_cached"] is True and row["conversion_ahead_ms"] >= 1000, row
    by_model = {r["model"]: r["conversion_ahead_ms"] for r in rows}  # one conversion, on both thread counts' rows
    assert len(by_model) == 2 and all(r["conversion_ahead_ms"] == by_model[r["model"]] for r in rows)

    again, shown = _run(registry, planned, tmp_path / "again")  # the next run: all in the cache, nothing made
    assert shown.count("0 made, 1 already cached") == 2
    assert all(r["conversion_cached"] is True and r.get("conversion_ahead_ms") is None for r in again)


def test_the_pass_makes_several_artifacts_at_a_time_each_once(fakes, tmp_path):
    registry = Registry([ORT, fakes.CONVERTS_SLOWLY])
    planned = _planned(registry, ["converts_slowly"], tmp_path / "cache", models=("tiny_mlp", "tiny_cnn"))
    said: list[str] = []
    with ForkServer() as server, Slots(server, 2) as slots:
        made = convert_ahead(planned, set(), registry, slots, said.append)
        assert all(extra.pid is None for extra in slots.servers[1:])  # no server of the pass idles beside a case
    assert said[0] == f"tiny_mlp, tiny_cnn: converting 2 artifacts ahead of timing, {len(slots.servers)} at a time"
    assert [m.status for m in made.made.values()] == ["ok", "ok"] and "2 made" in said[1]
    starts = [e["time"] for e in _events(tmp_path) if e["event"] == "convert" and e["phase"] == "start"]
    ends = [e["time"] for e in _events(tmp_path) if e["event"] == "convert" and e["phase"] == "end"]
    assert len(starts) == 2
    if len(slots.servers) == 2:  # two slots unless this machine cannot fork workers (then one at a time)
        assert max(starts) < min(ends)


def test_without_the_pass_each_case_converts_in_its_own_worker(fakes, tmp_path):
    registry = Registry([ORT, fakes.CONVERTS_SLOWLY])
    planned = _planned(registry, ["converts_slowly"], tmp_path / "cache")
    rows, shown = _run(registry, planned, tmp_path / "results", convert_ahead=False)
    assert "ahead" not in shown
    assert [r["conversion_cached"] for r in rows] == [False, True]  # t1 converts, t2 finds it
    assert all(r.get("conversion_ahead_ms") is None for r in rows)
    starts = [e for e in _events(tmp_path) if e["event"] == "convert" and e["phase"] == "start"]
    assert len(starts) == 1


def test_a_converter_crash_in_the_pass_is_each_cases_truthful_conversion_failed_row(fakes, tmp_path):
    registry = Registry([ORT, fakes.CONVERTER_CRASHES])
    planned = _planned(registry, ["converter_crashes"], tmp_path / "cache")
    rows, shown = _run(registry, planned, tmp_path / "results")
    assert "1 failed (their cases say why)" in shown
    assert len([e for e in _events(tmp_path) if e["event"] == "convert"]) == 1  # the pass's; the cases read it
    for row in rows:
        assert row["status"] == "conversion_failed", row
        assert "failed (signal 11)" in row["error"] and "(cached failure from " in row["error"], row["error"]


@pytest.mark.slow  # two deadlines of 3 s, ~15 s
def test_a_conversion_hanging_in_the_pass_is_killed_at_its_deadline_children_and_all(fakes, tmp_path):
    registry = Registry([ORT, fakes.CONVERSION_HANGS])
    planned = _planned(registry, ["conversion_hangs"], tmp_path / "cache", threads=(1,), timeout_s=3)
    started = time.monotonic()
    [row], _ = _run(registry, planned, tmp_path / "results")
    assert time.monotonic() - started < 60
    hangs = [e for e in _events(tmp_path) if e["event"] == "hang"]
    assert len(hangs) == 2  # the pass's worker, killed at 3 s and never recorded; then the case's own
    assert row["status"] == "timeout" and "no result within 3 s" in row["error"], row
    for event in hangs:
        assert not psutil.pid_exists(event["child"]) or psutil.Process(event["child"]).status() == "zombie"


def test_cases_share_an_artifact_only_where_no_conversion_can_tell_them_apart(tmp_path):
    registry = Registry.default()
    planned = _planned(registry, ["onnxruntime", "mnn"], tmp_path / "cache", models=("tiny_mlp", "tiny_cnn"),
                       precisions=("fp32", "int8"))
    jobs = conversion_jobs(planned, set(), registry)
    # ONNX Runtime's fp32 reads the ONNX file (its spec says so): no job; its int8 and MNN's two precisions: one job
    # per model and precision, whatever the thread count
    assert sorted((j.runner, j.model.name, j.precision) for j in jobs) == sorted(
        (runner, model, precision) for model in ("tiny_mlp", "tiny_cnn")
        for runner, precision in (("onnxruntime", "int8"), ("mnn", "fp32"), ("mnn", "int8")))
    assert all(j.cpus == () for j in jobs)
    done = {p.case.key for p in planned if p.case.runner == "mnn"}  # a resumed run: those rows exist
    assert {j.runner for j in conversion_jobs(planned, done, registry)} == {"onnxruntime"}


@pytest.mark.slow  # real converters, ~20 s
def test_real_converters_ahead_mnn_and_ncnn_and_a_refusal_said_by_every_case(tmp_path):
    registry = Registry.default()
    planned = _planned(registry, ["mnn", "ncnn"], tmp_path / "cache", models=("tiny_cnn",))
    rows, shown = _run(registry, planned, tmp_path / "results")
    assert "converting 2 artifacts ahead of timing" in shown, shown
    for row in rows:
        assert row["status"] == "ok" and row["conversion_cached"] is True and row["conversion_ahead_ms"] > 0, row

    f = TensorProto.FLOAT
    graph = helper.make_graph([helper.make_node("OpTheConverterLacks", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", f, [1, 8])],
                              [helper.make_tensor_value_info("y", f, [1, 8])])
    model = tmp_path / "refused.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model))
    planned = _planned(registry, ["mnn"], tmp_path / "cache", user_model=model)
    rows, shown = _run(registry, planned, tmp_path / "refused")
    assert "1 failed" in shown
    assert len(list((tmp_path / "cache" / "artifacts" / "mnn").glob("*.failed.json"))) == 1
    for row in rows:  # both thread counts say the converter's words, from the one refusal the pass recorded
        assert row["status"] == "conversion_failed" and "ops: OpTheConverterLacks" in row["error"], row
        assert "(cached failure from " in row["error"]


# The pass alone, two conversions at once (one per model: a run makes one model's artifacts at a time), with the
# run's SIGTERM handler
RUN_HANGING = """
import signal, sys
from pathlib import Path
import fake_runners
from bench.ahead import Slots, convert_ahead
from bench.forkserver import ForkServer
from bench.plan import Overrides, plan
from bench.registry import Registry
from bench.run import Interrupted
from bench.runners.onnxruntime import SPEC as ORT
from bench.suite import Suite, TimingConfig
registry = Registry([ORT, fake_runners.CONVERSION_HANGS])
suite = Suite(name="ahead", models=["tiny_mlp", "tiny_cnn"], runners=["conversion_hangs"], threads=[1],
              timeout_s=300, timing=TimingConfig(warmup_time_s=0.01, min_time_s=0.05, max_time_s=0.3))
planned = plan(suite, "ahead", Overrides(), registry, Path(sys.argv[1]))
def stop(signum, frame):
    raise Interrupted(signum)
signal.signal(signal.SIGTERM, stop)
try:
    with ForkServer() as server, Slots(server, 2) as slots:
        convert_ahead(planned, set(), registry, slots, print)
except Interrupted as exc:
    sys.exit(exc.exit_code)
"""


@pytest.mark.slow  # ~10 s
def test_an_interrupted_pass_leaves_no_conversion_behind(fakes, tmp_path):
    import signal
    import subprocess
    import sys

    if envinfo.cpus_allowed() < 2:
        pytest.skip("one CPU here: conversions run one at a time, in the run's own thread")
    stderr = tmp_path / "stderr.log"
    with open(stderr, "wb") as err:
        run = subprocess.Popen([sys.executable, "-c", RUN_HANGING, str(tmp_path / "cache"),
                                str(tmp_path / "results")], stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 120
        while len([e for e in _events(tmp_path) if e["event"] == "hang"]) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        hangs = [e for e in _events(tmp_path) if e["event"] == "hang"]
        assert len(hangs) == 2, stderr.read_text() or "the two conversions never ran at once"
        run.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        assert run.wait(timeout=60) == 128 + signal.SIGTERM, stderr.read_text()
        # the workers in flight killed at once, not left to the fork servers' closing (a 10 s wait for the slots, 2 s
        # for each server, then a kill whose workers' children are nobody's to end)
        assert time.monotonic() - stopping < 8, time.monotonic() - stopping
    finally:
        run.kill()
        run.wait(timeout=10)
    time.sleep(1)  # the kernel's reaping
    for pid in [e["pid"] for e in hangs] + [e["child"] for e in hangs]:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie", pid
