"""A latency tie in the deployment-scenario table is decided the same way wherever the table is shown: the
end-of-run answer (rows with their samples), the report's page and summary.md (rows without samples: the data
layer fetches the few it needs) and ``bench.results.scenarios`` (a frame with samples), on real parquet."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from report_fixtures import NOW, bench_report, copy_results, planter, samples
from test_answer import grid

import bench.results as r
from bench.report import change, compare, data, scenarios
from bench.report.answer import answer_lines
from bench.results import store
from bench.results.uri import Location

RUN = "20261120T120000Z-ties"
ONE_THREAD = "realtime, 1 thread"


def narrow_ci(median_ms: float) -> dict[str, float]:
    """A median and a CI so narrow (+-0.1%) that two medians 1% apart have CIs that do not overlap."""
    return {"median_ms": median_ms, "median_ci_low_ms": median_ms * 0.999, "median_ci_high_ms": median_ms * 1.001}


@pytest.fixture(scope="module")
def ties(real_results, tmp_path_factory) -> Path:
    """On a machine of its own: ``twins``, whose two runners' CIs do not overlap but whose samples are the same
    (the rank test's p is 1: a tie); ``apart``, CIs apart and samples 20% apart (a clear lead); ``close``, CIs
    that overlap (a tie without a rank test). 2,500 samples a row: cut to every 2nd, as bench compare cuts."""
    results = copy_results(real_results, tmp_path_factory.mktemp("ties") / "results")
    p = planter(results, RUN, NOW, template_from=real_results, machine_id="tie-machine")
    same = samples(1.0, n=2500, seed=7)
    p.case(model="twins", runner="alpha", samples_ns=same, **narrow_ci(1.0), accuracy_ok=True)
    p.case(model="twins", runner="beta", samples_ns=same, **narrow_ci(1.01), accuracy_ok=True)
    p.case(model="apart", runner="alpha", samples_ns=samples(1.0, n=2500, seed=1), **narrow_ci(1.0),
           accuracy_ok=True)
    p.case(model="apart", runner="beta", samples_ns=samples(1.2, n=2500, seed=2), **narrow_ci(1.2),
           accuracy_ok=True)
    p.case(model="close", runner="alpha", samples_ns=samples(1.0, seed=3), median_ms=1.0, median_ci_low_ms=0.9,
           median_ci_high_ms=1.1, accuracy_ok=True)
    p.case(model="close", runner="beta", samples_ns=samples(1.05, seed=4), median_ms=1.05, median_ci_low_ms=0.95,
           median_ci_high_ms=1.15, accuracy_ok=True)
    return results


@pytest.fixture(scope="module")
def report(ties, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ties-out") / "site"
    bench_report(ties, out)
    return out


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def verdicts(records: list[dict]) -> dict[str, tuple[str, str]]:
    """model -> (verdict, margin as shown) of its 1-thread pick, for the planted models."""
    return {x["model"]: (x["verdict"], str(x["margin_pct"])) for x in records
            if x["model"] in ("twins", "apart", "close") and x["scenario"] == ONE_THREAD}


def test_the_answer_the_page_the_summary_and_a_frame_call_the_same_ties(ties, report):
    loc = Location.resolve(ties)
    rows = store.read_cases(loc, run_id=RUN).to_pylist()  # what the run holds at its end: samples included
    lines = answer_lines(rows, str(ties))
    cells = grid(lines)
    assert cells[("twins", "realtime 1 thread")] == ("alpha fp32", "1 ms = beta fp32"), lines
    assert cells[("apart", "realtime 1 thread")] == ("alpha fp32", "1 ms +20%"), lines
    assert cells[("close", "realtime 1 thread")] == ("alpha fp32", "1 ms = beta fp32"), lines

    page = verdicts(read_csv(report / "scenarios.csv"))
    assert {model: verdict for model, (verdict, _) in page.items()} == {"twins": "tie", "apart": "clear",
                                                                        "close": "tie"}
    html = (report / "index.html").read_text()
    section = html.split('id="fig-scenarios"')[1].split("</table>")[0]
    [twins] = [row for row in re.findall(r"<tr>.*?</tr>", section) if ">twins<" in row and ONE_THREAD in row]
    assert "<td>tie</td>" in twins and "<td>clear</td>" not in twins
    summary = (report / "summary.md").read_text()
    [line] = [x for x in summary.splitlines() if x.startswith("| tie-machine | twins | realtime, 1 thread |")]
    assert "| tie |" in line

    frame = r.scenarios(r.load(ties))
    framed = verdicts(frame.to_dict("records"))
    assert {model: verdict for model, (verdict, _) in framed.items()} == {"twins": "tie", "apart": "clear",
                                                                          "close": "tie"}
    # the same p on every path: the rank test ran on the same cut of the same samples
    p_csv = {x["model"]: x["p_value"] for x in read_csv(report / "scenarios.csv")
             if x["scenario"] == ONE_THREAD and x["model"] in ("twins", "apart")}
    p_frame = {x["model"]: x["p_value"] for x in frame.to_dict("records")
               if x["scenario"] == ONE_THREAD and x["model"] in ("twins", "apart")}
    assert float(p_csv["twins"]) == p_frame["twins"] == 1.0
    assert float(p_csv["apart"]) == p_frame["apart"] < change.ALPHA


def test_the_report_fetches_the_samples_of_the_pairs_whose_cis_do_not_overlap_only(ties):
    loc = Location.resolve(ties)
    d = data.load(loc, RUN)
    asked: list[list[dict]] = []

    def reader(rows: list[dict]) -> dict:
        asked.append(rows)
        return data.rank_samples(loc, rows)

    table = scenarios.scenario_table(d.cases, d.runs, reader)
    assert len(asked) == 1  # one query for the whole table
    wanted = {(x["model"], x["runner"]) for x in asked[0]}
    assert wanted == {("twins", "alpha"), ("twins", "beta"), ("apart", "alpha"), ("apart", "beta")}  # not close
    assert verdicts(table.records())["twins"][0] == "tie"


def test_the_report_cuts_samples_as_bench_compare_does(ties):
    loc = Location.resolve(ties)
    side = compare.load_side(RUN, loc)
    rows = [c for c in data.load(loc, RUN).cases if c["model"] == "twins"]
    fetched = data.rank_samples(loc, rows)
    assert len(fetched) == 2
    for (key, run_id), cut in fetched.items():
        assert run_id == RUN and cut == side.cases[key]["samples"] and len(cut) == 1250
        [full] = store.query(loc, "SELECT samples_ns FROM cases WHERE case_key = ? AND run_id = ?",
                             [key, run_id]).to_pylist()
        assert change.cut(full["samples_ns"]) == cut  # the answer's cut, in Python, of rows in memory
