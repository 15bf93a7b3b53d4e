"""A runner's configuration label (``report_label`` in its facts: TVM's untuned / tuned) goes wherever a report
names the runner: the run's closing answer, the dashboard and summary.md never show untuned TVM as plain "tvm"."""

from __future__ import annotations

import json
import re

from report_fixtures import NOW, copy_results, planter, samples

from bench.cli import main
from bench.report.answer import answer_lines
from bench.report.labels import runner_label

UNTUNED = json.dumps({"report_label": "untuned", "runtime_version": "0.27.0.post1"})


def test_the_label_follows_the_runners_name_once():
    assert runner_label({"runner": "tvm", "runner_facts": UNTUNED}) == "tvm (untuned)"
    assert runner_label({"runner": "tvm", "runner_facts": {"report_label": "tuned: 64 trials"}}) == \
        "tvm (tuned: 64 trials)"
    assert runner_label({"runner": "tvm (untuned)", "runner_facts": UNTUNED}) == "tvm (untuned)"
    assert runner_label({"runner": "ort", "runner_facts": '{"threads_used": 1}'}) == "ort"
    assert runner_label({"runner": "ort", "runner_facts": "not json"}) == "ort"


def test_the_runs_answer_names_untuned_tvm_as_untuned():
    from test_scenarios import case

    rows = [case("tvm", median=0.5, runner_facts=UNTUNED), case("ort", median=1.0)]
    text = "\n".join(answer_lines(rows, "results"))
    assert "tvm (untuned) fp32" in text and "0.5 ms" in text, text
    assert not re.search(r"\btvm fp32", text), text


def test_the_dashboard_and_summary_name_untuned_tvm_as_untuned(real_results, tmp_path):
    results = copy_results(real_results, tmp_path / "results")
    p = planter(results, "20261120T120000Z-tvm", NOW, template_from=real_results)
    p.case(runner="tvm", samples_ns=samples(0.0001, seed=2), runner_facts=UNTUNED, accuracy_ok=True)  # the fastest
    p.case(failed=("unsupported", "tvm offers precisions fp32, not int8"), runner="tvm", precision="int8")
    assert main(["report", "--results", str(results), "--out", str(tmp_path / "site")]) == 0
    summary = (tmp_path / "site" / "summary.md").read_text()
    page = (tmp_path / "site" / "index.html").read_text()
    assert "tvm (untuned)" in summary and "tvm (untuned)" in page
    assert not re.search(r"\btvm fp32|\| tvm \|", summary), summary
    # coverage is about what runs where: one tvm column, the labelled ok row and the unsupported one in it
    coverage = (tmp_path / "site" / "coverage.csv").read_text()
    assert "tvm (untuned)" not in coverage and ",tvm,fp32," in coverage and ",tvm,int8," in coverage
