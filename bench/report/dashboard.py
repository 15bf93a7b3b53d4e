"""The page behind ``bench report``: results folder -> a static page, a CI summary and the tables behind them.

Reads through :mod:`bench.results.store` only; never imports a runner. Example::

    from pathlib import Path
    from bench.report import build_report   # (bench.report.dashboard.build_report)
    out = build_report(Path("results"), Path("reports/latest"))   # out.index, out.summary, out.csv
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from bench.errors import UserError
from bench.files import write_text_atomic
from bench.report import charts, data, eager, matrix, ops, render, scenarios, views
from bench.report.html import Section, coverage_html, esc, matrix_html, page, table_html
from bench.report.summary import summary_markdown
from bench.results.layout import Results, location
from bench.results.uri import Location


@dataclass
class ReportFiles:
    index: Path
    summary: Path
    csv: list[Path] = field(default_factory=list)


def _capped(d: data.ReportData) -> str:
    """A note when the charts show less than the CSV files hold."""
    per_model = Counter(c.get("model") for c in d.cases)
    if len(per_model) <= charts.MAX_MODELS and max(per_model.values(), default=0) <= charts.MAX_BARS:
        return ""
    return (f" Charts show at most {charts.MAX_MODELS} models, {charts.MAX_BARS} cases per model and "
            f"{charts.MAX_HEATMAP_ROWS} heatmap rows; the CSV files beside this page hold every row.")


def _selection(d: data.ReportData, run_id: str | None) -> str:
    if run_id:
        return f"Run {run_id}: the latest row per case key and machine."
    return f"The latest row per case key and machine over {len(d.runs) or 'all'} runs."


def sections(d: data.ReportData, t: dict[str, views.Table], baseline: str,
             helper: render.Helper | None = None, meanwhile: Callable[[], None] = lambda: None) -> list[Section]:
    """The page's figures, in order. Each says what it shows, where its data is and why it may be empty.
    ``meanwhile``: work to do while a helper process draws (see render.draw)."""
    n_runs = len({h["run_id"] for h in d.history})
    drawn = render.draw(d, t, baseline, helper, meanwhile)  # every chart; some in the helper process, if any
    return [
        Section("fig-matrix", "What to deploy, per machine",
                "Each machine's answer: a row per model, a column per deployment scenario, each cell the pick "
                "(runner and precision, coloured by runtime) with its value and its lead over the best of another "
                "runtime; a dashed outline marks a tie (within noise). Only cases that matched the fp32 reference "
                "compete; an empty cell says why. Picks link to their case in All cases; the rules and every "
                "runner-up are in the table below. " + matrix.not_ranked(t["scenarios"]),
                body=matrix_html(matrix.matrices(t["scenarios"], d.cases, d.runs)), csv=["matrix.csv"],
                nodata="no case passed its tolerance"),
        Section("fig-scenarios", "Every scenario pick, with its runner-up",
                "Per model (and machine): realtime on one core and on all cores, server at p99 bound, a memory-bound "
                "edge box, cold start, accuracy first; each pick against the best of another runtime, 'tie' where "
                "the two cannot be told apart. Only cases that matched the fp32 reference compete. "
                + t["scenarios"].note + " Picks link to their case in All cases.",
                body=_scenarios(t), csv=["scenarios.csv", "cross_machine.csv"], nodata="no case passed its tolerance"),
        Section("fig-latency", "Latency by runner", "Median latency per model, one bar per case; whiskers are the "
                "95% CI of the median; hatched red = wrong output.", drawn["latency"],
                csv=["latency.csv"], nodata="no case ran to completion"),
        Section("fig-speedup", f"Speedup vs {baseline}", "Baseline median / case median, same model, device, "
                "batch, threads and scenario (baseline at the same precision, else fp32).",
                drawn["speedup"], csv=["speedup.csv"], nodata=t["speedup"].note),
        Section("fig-eager", "Why not just run it in PyTorch? Speed-up over PyTorch eager",
                "Eager PyTorch fp32 median / case median, same model, device, batch, threads and scenario: "
                "torch.compile and ExecuTorch (PyTorch's own paths) beside every other runtime and precision; "
                "'✗ wrong' = outside its tolerance. Cold starts (compilation included) are in the CSV.",
                body=table_html(t["speedup_over_eager_wide"]) if t["speedup_over_eager_wide"].rows else "",
                csv=["speedup_over_eager.csv", "speedup_over_eager_wide.csv"], nodata=t["speedup_over_eager"].note),
        Section("fig-ecdf", "Latency distributions", "ECDF of every timed iteration (201 quantiles per case); "
                "a long right tail is jitter the median hides.", drawn["ecdf"],
                csv=["distribution.csv"], nodata="no raw samples"),
        Section("fig-pareto", "Accuracy vs latency", "Per model at its most-measured configuration. Grey line: "
                "Pareto front of the cases with correct outputs; red X: wrong output, never fastest.",
                drawn["pareto"], csv=["pareto.csv"], nodata="no timed cases"),
        Section("fig-resources", "Cold start and peak memory", "Cold start = load + prepare + first inference "
                "(conversion excluded); peak RSS of the worker process.",
                drawn["resources"],
                csv=["cold_start_memory.csv"], nodata="no cold start or memory measurements"),
        Section("fig-tasks", "Task accuracy", "Real trained models scored on labelled data rendered by bench "
                "(OCR: exact match, accuracy, F1): what a runtime or precision costs in task terms.",
                body=table_html(t["task_accuracy"]) if t["task_accuracy"].rows else "", csv=["task_accuracy.csv"],
                nodata="no case with labelled data"),
        Section("fig-precisions", "Fastest per precision, and int8 against each runtime's own fp32",
                "The fastest passing case at each precision (an fp32 winner is not beaten by an int8 one), and each "
                "runtime's int8 speed-up over its fp32 on the same model and configuration, with both task scores, "
                "how bench drove the runtime's quantizer (recipe) and what bounds the row (build, runtime defect or "
                "bench).",
                body=_precisions(t), csv=["winners_by_precision.csv", "int8_speedup.csv"],
                nodata="no case passed its tolerance"),
        Section("fig-ops", "Where the time goes: per-op profile",
                "Cases run with --profile: each runtime's own profiler after the timed loop. Per model, each op "
                "family's share of each case's time (runtimes name and fuse ops in their own words: families "
                f"compare them), then each case's top {ops.TOP_OPS} nodes; coverage = the per-op sum over the "
                "case's median (profile_agrees: within 25%). " + t["ops_top"].note,
                body=_ops(t), csv=["op_types.csv", "ops_top.csv"], nodata="no case was profiled (bench run --profile)"),
        Section("fig-efficiency", "Efficiency", "Achieved GFLOP/s (2 x MACs from the graph x items / median) next to "
                "the machine's peak (a 1024x1024 fp32 numpy matmul at the same thread count). Nominal FLOPs: Winograd "
                "convolutions multiply less, so a share above 100% is possible.",
                body=table_html(t["efficiency"]) if t["efficiency"].rows else "", csv=["efficiency.csv"],
                nodata="no MAC counts or peak measurements"),
        Section("fig-coverage", "Coverage", "What ran: each cell is the worst outcome over its batch/thread "
                "settings; hover for details.", body=coverage_html(t["coverage"]) if t["coverage"].rows else "",
                csv=["coverage.csv"], nodata="no cases"),
        Section("fig-throughput", "Throughput vs batch", "Items per second at each batch size, where a "
                "series ran at two or more.", drawn["throughput"],
                csv=["throughput_batch.csv"], nodata="no series with several batch sizes"),
        Section("fig-trends", "Trends", f"Median per case over the last {n_runs} runs (date and commit), one line "
                "per case and machine.",
                drawn["trends"], csv=["trends.csv"], nodata="fewer than two runs of any case"),
        Section("fig-environment", "Environment", "One row per machine, from its latest run.",
                body=table_html(t["environment"]) if t["environment"].rows else "", csv=["environment.csv"],
                nodata="no runs table"),
        Section("fig-problems", "Wrong outputs and failures", "Cases whose outputs did not match the fp32 "
                "reference, and cases that did not run to completion.", body=_problems(t),
                csv=["wrong_outputs.csv", "failures.csv"], nodata="every case ran and matched"),
        Section("fig-cases", "All cases", "Click a header to sort; type to filter.", body=_all_cases(t),
                csv=["cases.csv", "winners.csv"], nodata="no cases"),
    ]


SCENARIO_LINKS = {"pick": ("machine", "pick_case_key"), "runner_up": ("machine", "runner_up_case_key")}


def _scenarios(t: dict[str, views.Table]) -> str:
    table = t["scenarios"]
    if not table.rows:
        return ""
    shown = table.select((*scenarios.SHOWN, "pick_case_key", "runner_up_case_key"))
    body = table_html(shown, links=SCENARIO_LINKS)
    if t["cross_machine"].rows:
        body += f"<h3>Which runtime for which machine</h3>{table_html(t['cross_machine'])}"
    return body


def _all_cases(t: dict[str, views.Table]) -> str:
    if not t["cases"].rows:
        return ""
    return ('<input id="filter" type="search" placeholder="filter, e.g. resnet fp16">'
            + table_html(t["cases"], row_class="category", row_id=("machine", "case_key")))


def _precisions(t: dict[str, views.Table]) -> str:
    parts = [f"<h3>{esc(title)}</h3>{table_html(t[name])}" for name, title in
             (("winners_by_precision", "Fastest per precision"), ("int8_speedup", "int8 speed-up")) if t[name].rows]
    return "".join(parts)


def _ops(t: dict[str, views.Table]) -> str:
    if not t["ops_top"].rows:
        return ""
    return (f"<h3>Op families across runtimes</h3>{table_html(t['op_types'])}"
            f"<h3>Top ops per case</h3>{table_html(t['ops_top'])}")


def _problems(t: dict[str, views.Table]) -> str:
    parts = []
    for name, title in (("wrong_outputs", "Wrong outputs"), ("failures", "Failures")):
        if t[name].rows:
            parts.append(f"<h3>{esc(title)} ({len(t[name].rows)})</h3>{table_html(t[name])}")
    return "".join(parts)


def _native(d: data.ReportData) -> list[views.Row]:
    """The cases whose timings may be ranked: not those of an emulated run (they time the emulator), nor those that
    ran on a software device (a CPU doing a GPU's work; the scenario table's note says so). Views of correctness
    and coverage (wrong outputs, failures, all cases, task accuracy) keep every row."""
    emulated = {r["run_id"] for r in d.runs if r.get("emulated")}
    return [c for c in d.cases if c.get("run_id") not in emulated and not c.get("software_device")]


def tables(d: data.ReportData, baseline: str) -> dict[str, views.Table]:
    timed = _native(d)
    built = [
        views.latency(timed), views.speedup(timed, baseline), views.distribution(timed, d.quantiles),
        views.pareto(timed), views.resources(timed), views.coverage(d.cases), views.throughput(timed),
        views.environment(d.runs), views.trends(d.history), views.winners(timed), views.wrong_outputs(d.cases),
        views.failures(d.cases), views.case_table(d.cases), views.efficiency(timed, d.runs),
        views.task_accuracy(d.cases), views.winners_by_precision(timed), views.int8_speedup(timed),
    ]
    over_eager = eager.over_eager(timed)
    built += [over_eager, eager.over_eager_wide(over_eager)]
    picks = scenarios.scenario_table(d.cases, d.runs, d.rank_samples)  # the rows carry no samples: read the few
    built += [picks, scenarios.cross_machine(picks), matrix.matrix_table(matrix.matrices(picks, d.cases, d.runs))]
    built += [ops.top_ops(d.cases, d.ops), ops.op_families(d.cases, d.ops)]
    return {t.name: t for t in built}


def build_report(results: Results, out: Path, baseline: str = "onnxruntime", run_id: str | None = None) -> ReportFiles:
    """Write index.html, summary.md and one CSV per table into ``out``; returns their paths. ``results``: a folder or
    a URI (a user's, from Python, resolved here once) or a Location (bench report's, resolved by bench.cli)."""
    loc = location(results)
    d = data.load(loc, run_id)
    helper = render.helper_for(d)  # at fleet scale a second process draws some charts; it starts up meanwhile
    t = tables(d, baseline)
    out.mkdir(parents=True, exist_ok=True)
    selection = _selection(d, run_id)
    now = datetime.now(timezone.utc)
    subtitle = f"{selection} {len(d.cases)} cases from {loc}. Generated {now:%Y-%m-%d %H:%M} UTC.{_capped(d)}"
    csv: list[Path] = []

    def write_csv() -> None:  # while the helper process, if any, still draws
        csv.extend(table.write_csv(out) for table in t.values())

    figures = sections(d, t, baseline, helper, write_csv)
    index = write_text_atomic(out / "index.html", page("bench report", subtitle, figures))
    summary = write_text_atomic(out / "summary.md", summary_markdown(
        d.cases, t["winners"], t["wrong_outputs"], t["failures"], selection, t["winners_by_precision"],
        t["int8_speedup"], t["scenarios"], t["cross_machine"], t["speedup_over_eager_wide"], d.runs,
        (t["op_types"], t["ops_top"])))
    return ReportFiles(index, summary, csv)


def command(loc: Location, out: Path, baseline: str, run_id: str | None) -> int:
    """``bench report``: the flags (parsed by bench.cli) -> files written, and where."""
    try:
        files = build_report(loc, out, baseline, run_id)
    except OSError as exc:
        raise UserError(f"cannot write the report to {out}: {exc.strerror or exc}") from None
    print(f"report: {files.index}")
    print(f"summary: {files.summary}")
    print(f"tables: {len(files.csv)} CSV files in {files.index.parent}")
    return 0
