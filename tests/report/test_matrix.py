"""The answer as one matrix per machine (bench.report.matrix): on the page, read by a real browser at 1280 px as a
person would read it, in summary.md and in matrix.csv, from real results with planted machines and models."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from report_fixtures import NOW, bench_report, copy_results, planter, samples, visit
from test_scenarios import case

from bench.report import matrix, scenarios
from bench.results import store
from bench.results.uri import Location

GPU_BOX = "x86-gpu: Intel Xeon Platinum 8480+ + NVIDIA H100 80GB HBM3"
GPU_ID = "feedface0badc0de"
LONG = "a_model_whose_name_goes_on_" * 4 + "and_on"  # must wrap inside its cell, never widen the page
SCENARIO_HEADS = ["model", "realtime 1 thread", "realtime all cores", "server at p99 bound", "edge memory",
                  "cold start", "accuracy first"]


@pytest.fixture(scope="module")
def planted(real_results, tmp_path_factory) -> Path:
    """The real run (this machine, no label), plus a labelled GPU machine: ``cnn`` with a clear 1-thread lead, a
    tie at 8 threads and a server column; ``wrong`` whose only row is wrong; a model with a long name."""
    results = copy_results(real_results, tmp_path_factory.mktemp("matrix") / "results")
    p = planter(results, "20261120T120000Z-gpu", NOW, template_from=real_results, machine_id=GPU_ID,
                machine_label="x86-gpu", cpu_model="Intel Xeon Platinum 8480+",
                gpus=json.dumps([{"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_mb": 81559}]))
    ok = {"accuracy_ok": True, "cosine": 0.999999, "normalized_error": 1e-6}
    p.case(model="cnn", runner="onnxruntime", samples_ns=samples(1.0, seed=1), **ok, median_ms=1.0,
           median_ci_low_ms=0.99, median_ci_high_ms=1.01)
    p.case(model="cnn", runner="openvino", samples_ns=samples(1.5, seed=2), **ok, median_ms=1.5,
           median_ci_low_ms=1.49, median_ci_high_ms=1.51)
    p.case(model="cnn", runner="onnxruntime", threads=8, samples_ns=samples(0.30, seed=3, spread=0.3), **ok,
           median_ms=0.30, median_ci_low_ms=0.27, median_ci_high_ms=0.33)
    p.case(model="cnn", runner="openvino", threads=8, samples_ns=samples(0.31, seed=3, spread=0.3), **ok,
           median_ms=0.31, median_ci_low_ms=0.28, median_ci_high_ms=0.34)
    p.case(model="cnn", runner="openvino", batch=8, scenario="throughput", samples_ns=samples(2.0, seed=4),
           throughput_per_s=4000.0, **ok)
    p.case(model="wrong", runner="onnxruntime", samples_ns=samples(1.0, seed=5), accuracy_ok=False, cosine=0.2)
    p.case(model=LONG, runner="mnn", samples_ns=samples(2.0, seed=6), **ok)
    return results


@pytest.fixture(scope="module")
def report(planted, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("matrix-out") / "site"
    bench_report(planted, out)
    return out


def this_machine(results: Path) -> dict:
    runs = store.query(Location.resolve(results), "SELECT * FROM runs").to_pylist()
    return next(r for r in runs if r["machine_id"] != GPU_ID)


# --- the browser: the matrix first, readable at 1280 px ---------------------------------------------------

LOOK = """
(() => {
  const figures = [...document.querySelectorAll("main > figure")].map(f => f.id);
  const tables = [...document.querySelectorAll("#fig-matrix table.answer")];
  const cells = tables.flatMap(t => [...t.querySelectorAll("th, td")]);
  const unreadable = cells.filter(c => {
    const r = c.getBoundingClientRect(), s = getComputedStyle(c);
    return r.width < 40 || r.height <= 0 || r.left < 0 || r.right > window.innerWidth || s.visibility !== "visible"
      || c.scrollWidth > c.clientWidth + 1 || parseFloat(s.fontSize) < 12;
  }).map(c => c.textContent);
  const picks = [...document.querySelectorAll("#fig-matrix td.pick")].map(td => ({
    runtime: td.querySelector("b").textContent, background: getComputedStyle(td).backgroundColor,
    tie: td.classList.contains("tie"), text: td.textContent, linked: td.querySelector("a") !== null
      && document.getElementById(td.querySelector("a").hash.slice(1)) !== null}));
  return {figures, machines: [...document.querySelectorAll("#fig-matrix h3")].map(h => h.textContent),
          top: tables.length ? tables[0].getBoundingClientRect().top : null,
          heads: tables.map(t => [...t.tHead.rows[0].cells].map(c => c.textContent)),
          pageWidth: document.documentElement.scrollWidth, viewport: window.innerWidth, cells: cells.length,
          unreadable, picks, empties: [...document.querySelectorAll("#fig-matrix td.empty")].map(c => c.textContent)};
})()
"""


@pytest.mark.slow
def test_the_page_opens_with_the_matrix_readable_at_1280_px(report, planted, tmp_path):
    seen = visit(report / "index.html", LOOK, tmp_path / "profile", width=1280, height=900)
    shot = tmp_path / "matrix-1280.png"  # kept for a person to look at
    shot.write_bytes(seen.screenshot)
    assert seen.errors == [] and seen.dialogs == []
    got = seen.result
    assert got["figures"][:2] == ["fig-matrix", "fig-scenarios"]  # the answer first, the long table below it
    assert got["top"] is not None and got["top"] < 900, f"the matrix is not on the first screen: {shot}"
    assert got["machines"] == sorted([GPU_BOX, this_machine(planted)["cpu_model"]]), got["machines"]  # no hash
    assert all(heads == SCENARIO_HEADS for heads in got["heads"])
    assert got["pageWidth"] <= got["viewport"] == 1280, f"the page scrolls sideways at 1280 px: {shot}"
    assert got["cells"] >= 2 * 7 and got["unreadable"] == [], f"cells cut, hidden or too small: {got['unreadable']}"
    backgrounds: dict[str, set[str]] = {}
    for pick in got["picks"]:
        backgrounds.setdefault(pick["runtime"], set()).add(pick["background"])
    assert all(len(b) == 1 for b in backgrounds.values()), backgrounds  # one colour per runtime...
    assert len({b.pop() for b in backgrounds.values()}) == len(backgrounds)  # ...and no two alike
    assert all(p["linked"] for p in got["picks"])  # every pick opens its case in All cases
    ties = [p["text"] for p in got["picks"] if p["tie"]]  # outlined; the same memory and cold start tie too
    assert any(t.startswith("onnxruntime fp32 t8") and "tie with openvino fp32" in t for t in ties), ties
    assert all("tie with" in t for t in ties) and not any("tie with" in p["text"] for p in got["picks"] if not p["tie"])
    assert any(p["text"] == "onnxruntime fp32" + "1 ms" + "+50%" for p in got["picks"]), got["picks"]
    assert "no passing case" in got["empties"] and "not measured" in got["empties"]
    _the_colours_are_on_the_screen(seen.screenshot, shot)


def _the_colours_are_on_the_screen(png: bytes, shot: Path) -> None:
    """What a person sees: the screenshot is 1280 px wide and shows onnxruntime's and openvino's colours."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.size == (1280, 900)
    counts = {colour: n for n, colour in image.getcolors(1280 * 900)}
    for runtime in ("onnxruntime", "openvino"):
        rgb = tuple(int(matrix.colour(runtime)[i:i + 2], 16) for i in (1, 3, 5))
        assert counts.get(rgb, 0) > 500, f"{runtime}'s colour is not on the first screen: {shot}"


# --- summary.md and matrix.csv: the same shape ----------------------------------------------------------

def test_summary_opens_with_a_matrix_per_machine(report, planted):
    text = (report / "summary.md").read_text()
    headings = [line for line in text.splitlines() if line.startswith("###")]
    assert headings[0] == "### What to deploy, per machine"
    assert headings[1:3] == sorted([f"#### {GPU_BOX}", f"#### {this_machine(planted)['cpu_model']}"])
    matrix_part = text.split("### Every scenario pick")[0]
    assert GPU_ID not in matrix_part and this_machine(planted)["machine_id"] not in matrix_part
    gpu = matrix_part.split(f"#### {GPU_BOX}")[1].split("####")[0]
    assert "| " + " | ".join(SCENARIO_HEADS) + " |" in gpu
    [cnn] = [line for line in gpu.splitlines() if line.startswith("| cnn |")]
    cells = [c.strip() for c in cnn.strip("|").split("|")]
    assert cells[1:4] == ["onnxruntime fp32 1 ms +50%", "onnxruntime fp32 t8 0.3 ms tie with openvino fp32",
                          "openvino fp32 t1 b8 4,000/s only runtime"]  # the only throughput row
    [wrong] = [line for line in gpu.splitlines() if line.startswith("| wrong |")]
    assert wrong.count("(no passing case)") == 6
    assert text.index("### What to deploy, per machine") < text.index("### Every scenario pick")  # long one below


def test_matrix_csv_has_the_same_shape(report):
    with (report / "matrix.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["machine", "machine_name", *SCENARIO_HEADS]
    gpu = {r["model"]: r for r in rows if r["machine_name"] == GPU_BOX}
    assert set(gpu) == {"cnn", "wrong", LONG} and {r["machine"] for r in gpu.values()} == {"x86-gpu"}
    assert gpu["cnn"]["realtime 1 thread"] == "onnxruntime fp32 1 ms +50%"
    assert gpu["wrong"]["cold start"] == "(no passing case)"
    assert gpu[LONG]["server at p99 bound"] == "(not measured)"


# --- the layout's rules, on rows with known numbers -------------------------------------------------------

def test_two_unlabelled_machines_of_one_model_are_told_apart_by_their_key():
    cases = [case("ort", run_id="r1"), case("ort", run_id="r2")]
    runs = [{"run_id": "r1", "machine_id": "aaaa1111bbbb", "cpu_model": "Cortex-A72", "soc_model": "Raspberry Pi 4"},
            {"run_id": "r2", "machine_id": "cccc2222dddd", "cpu_model": "Cortex-A72", "soc_model": "Raspberry Pi 4"}]
    made = matrix.matrices(scenarios.scenario_table(cases, runs), cases, runs)
    assert [m.title for m in made] == ["Raspberry Pi 4 + Cortex-A72 (aaaa1111)",
                                       "Raspberry Pi 4 + Cortex-A72 (cccc2222)"]


def test_an_empty_cell_says_why():
    cases = [case("ort", model="a"), case("ort", model="b", accuracy_ok=False),
             case("ort", model="c", emulated=True), case("ort", model="a", threads=4, status="timeout")]
    made = matrix.matrices(scenarios.scenario_table(cases), cases)
    [m] = made
    cells = {model: {c.scenario: c for c in row} for model, row in m.rows}
    assert cells["a"]["realtime, 1 thread"].runner == "ort"
    assert cells["a"]["realtime, all cores"].empty == matrix.NO_PASS  # run at 4 threads, timed out
    assert cells["a"]["server at p99 bound"].empty == matrix.NOT_MEASURED
    assert {c.empty for c in cells["b"].values()} == {matrix.NO_PASS}
    assert {c.empty for c in cells["c"].values()} == {matrix.NOT_RANKED}


def test_a_runtime_keeps_its_colour_and_a_new_one_gets_a_stable_one():
    assert matrix.colour("onnxruntime") == matrix.COLOURS["onnxruntime"]
    assert matrix.colour("someruntime") == matrix.colour("someruntime") in matrix.SPARE_COLOURS
    assert matrix.Cell("x", runner="tvm (untuned)").runtime == "tvm"


def test_an_emulated_machine_gets_no_matrix_and_the_note_says_why():
    cases = [case("ort", run_id="native"), case("ort", run_id="qemu")]
    runs = [{"run_id": "native", "machine_id": "n1", "cpu_model": "AMD EPYC", "emulated": False},
            {"run_id": "qemu", "machine_id": "e1", "cpu_model": "Cortex-A76", "emulated": True}]
    table = scenarios.scenario_table(cases, runs)
    assert [m.title for m in matrix.matrices(table, cases, runs)] == ["AMD EPYC"]
    assert matrix.not_ranked(table).startswith("Not ranked: 1 rows of e1 ran under emulation")


def test_a_fleet_page_shows_a_bounded_number_of_matrix_rows():
    from bench.report.html import matrix_html

    cases = [case("ort", model=f"m{i}", run_id=f"r{i % 3}") for i in range(30)]
    runs = [{"run_id": f"r{i}", "machine_id": f"id{i}", "cpu_model": f"CPU {i}"} for i in range(3)]
    page = matrix_html(matrix.matrices(scenarios.scenario_table(cases, runs), cases, runs), max_rows=15)
    assert page.count('<th scope="row">') == 15 and "15 more rows in matrix.csv" in page
