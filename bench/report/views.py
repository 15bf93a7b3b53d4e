"""The tables behind the charts: pure functions from result rows to named tables, each also written as CSV.

A case is *eligible* (may win, may sit on a Pareto front, may be called fastest) only when it ran
(``status == "ok"``) AND its outputs matched the fp32 reference (``accuracy_ok is True``). A fast wrong
answer is never a winner.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.contract import Status
from bench.files import first_line, write_text_atomic
from bench.report.labels import bare_runners, runner_label
from bench.text import printable

Row = dict[str, Any]

# Status -> what the coverage matrix calls it; ordered worst first, so a cell shows its worst case.
CATEGORIES = (
    ("wrong output", "wrong"), ("crashed", "crash"), ("out of memory", "oom"), ("timeout", "timeout"),
    ("runtime error", "error"), ("bad worker output", "error"), ("conversion failed", "convert"),
    ("unavailable", "na"), ("unsupported", "na"), ("ok (unchecked)", "unchecked"), ("ok", "ok"),
)
ACCURACY_CATEGORY: dict[Any, str] = {True: "ok", False: "wrong output"}  # of an ok case; None: unchecked
STATUS_CATEGORY: dict[str, str] = {
    Status.ERROR: "runtime error", Status.CRASHED: "crashed", Status.TIMEOUT: "timeout", Status.OOM: "out of memory",
    Status.BAD_OUTPUT: "bad worker output", Status.CONVERSION_FAILED: "conversion failed",
    Status.UNSUPPORTED: "unsupported", Status.UNAVAILABLE: "unavailable",
}
_RANK = {name: i for i, (name, _) in enumerate(CATEGORIES)}
CATEGORY_CSS = dict(CATEGORIES)


@dataclass
class Table:
    """One named table: ``name`` is its CSV file's stem; ``note`` says what was capped or left out."""

    name: str
    columns: tuple[str, ...]
    rows: list[tuple]
    note: str = ""

    def records(self) -> list[Row]:
        return [dict(zip(self.columns, r, strict=True)) for r in self.rows]

    def select(self, columns: tuple[str, ...]) -> Table:
        """The same table with only ``columns``, in that order."""
        index = [self.columns.index(c) for c in columns]
        return Table(self.name, columns, [tuple(r[i] for i in index) for r in self.rows], self.note)

    def write_csv(self, folder: Path) -> Path:
        """Write ``NAME.csv`` beside the page: to a temp name, then renamed, so no reader sees half a file."""
        text = io.StringIO(newline="")
        writer = csv.writer(text)
        writer.writerow(self.columns)
        writer.writerows([_inert(v) for v in row] for row in self.rows)
        return write_text_atomic(folder / f"{self.name}.csv", text.getvalue())


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _inert(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (a model named "=HYPERLINK(...)") gets a leading quote,
    OWASP's advice for CSV injection, and its control characters escaped (``cat`` shows CSV); numbers stay numbers."""
    if not isinstance(value, str):
        return value
    return "'" + printable(value) if value.startswith(FORMULA_START) else printable(value)


def category(case: Row) -> str:
    if case.get("status") == Status.OK:
        return ACCURACY_CATEGORY.get(case.get("accuracy_ok"), "ok (unchecked)")
    return STATUS_CATEGORY.get(case.get("status") or "", case.get("status") or "unknown")


def eligible(case: Row) -> bool:
    return case.get("status") == Status.OK and case.get("accuracy_ok") is True and _num(case.get("median_ms"))


def timed(case: Row) -> bool:
    return case.get("status") == Status.OK and _num(case.get("median_ms"))


def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


CONFIG_KEYS = ("model", "device", "batch", "threads", "scenario")


def config(case: Row) -> tuple:
    """The axes a comparison holds fixed: latencies at different batch sizes or thread counts never race."""
    return (case.get("device"), case.get("batch"), case.get("threads"), case.get("scenario"))


def config_label(cfg: tuple) -> str:
    device, batch, threads, scenario = cfg
    return f"{device or '?'} b{batch if batch is not None else '?'} t{threads if threads is not None else '?'} " \
           f"{scenario or '?'}"


def case_label(case: Row) -> str:
    return f"{case.get('runner') or '?'} {case.get('precision') or '?'} · {config_label(config(case))}"


def _by_model(cases: list[Row]) -> dict[str, list[Row]]:
    groups: dict[str, list[Row]] = defaultdict(list)
    for c in cases:
        groups[c.get("model") or "?"].append(c)
    return dict(groups)


def _ms(value: Any) -> float | None:
    return round(value, 6) if isinstance(value, float) else value


# --- latency, speedup, distributions ---------------------------------------------------------------------

def latency(cases: list[Row]) -> Table:
    cols = ("model", "runner", "precision", "device", "batch", "threads", "scenario", "median_ms",
            "median_ci_low_ms", "median_ci_high_ms", "p99_ms", "accuracy_ok", "case_key")
    rows = [tuple(_ms(c.get(k)) for k in cols) for c in cases if timed(c)]
    return Table("latency", cols, rows)


def _baseline_for(case: Row, base: dict[tuple, Row]) -> Row | None:
    key = (case.get("model"), *config(case))
    return base.get((*key, case.get("precision"))) or base.get((*key, "fp32"))


def speedup(cases: list[Row], baseline: str) -> Table:
    """Baseline median / case median, against the baseline runner's case with the same model, device, batch,
    threads and scenario: at the same precision where the baseline ran it, else at fp32."""
    base = {(c.get("model"), *config(c), c.get("precision")): c
            for c in cases if c.get("runner") == baseline and timed(c)}
    cols = ("model", "config", "runner", "precision", "median_ms", "baseline_median_ms", "speedup",
            "accuracy_ok", "case_key", "baseline_case_key")
    rows = []
    for c in cases:
        b = _baseline_for(c, base) if timed(c) else None
        if b is not None:
            rows.append((c.get("model"), config_label(config(c)), c.get("runner"), c.get("precision"),
                         _ms(c["median_ms"]), _ms(b["median_ms"]), round(b["median_ms"] / c["median_ms"], 4),
                         c.get("accuracy_ok"), c["case_key"], b["case_key"]))
    return Table("speedup", cols, rows, "" if rows else f"baseline runner {baseline!r} has no timed cases")


DISTRIBUTION_PROBS = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)


def distribution(cases: list[Row], quantiles: dict[str, list[float]]) -> Table:
    from bench.report.data import ECDF_PROBS

    index = [ECDF_PROBS.index(p) for p in DISTRIBUTION_PROBS]
    cols = ("model", "runner", "precision", "config", "case_key", *(f"p{p * 100:g}_ms" for p in DISTRIBUTION_PROBS))
    rows = [(c.get("model"), c.get("runner"), c.get("precision"), config_label(config(c)), c["case_key"],
             *(round(quantiles[c["case_key"]][i], 6) for i in index))
            for c in cases if c["case_key"] in quantiles]
    return Table("distribution", cols, rows)


# --- accuracy vs latency ---------------------------------------------------------------------------------

def primary_config(cases: list[Row]) -> tuple | None:
    """The configuration with the most timed cases (ties: the smallest batch and thread count)."""
    counts: dict[tuple, int] = defaultdict(int)
    for c in cases:
        if timed(c):
            counts[config(c)] += 1
    if not counts:
        return None
    return min(counts, key=lambda k: (-counts[k], k[1] or 0, k[2] or 0, str(k)))


def pareto(cases: list[Row]) -> Table:
    """Per model, at its primary configuration: latency against the normalized error vs the fp32 reference.

    ``on_front``: no other eligible case is at least as fast and at least as accurate (and better in one).
    ``fastest``: the fastest eligible case. Wrong outputs are drawn but are never on the front or fastest.
    """
    cols = ("model", "config", "runner", "precision", "median_ms", "normalized_error", "cosine", "accuracy_ok",
            "on_front", "fastest", "case_key")
    rows = []
    for model, group in _by_model(cases).items():
        cfg = primary_config(group)
        if cfg is None:  # no timed case
            continue
        points = [c for c in group if timed(c) and config(c) == cfg]
        ok = [c for c in points if eligible(c)]
        fastest = min(ok, key=lambda c: c["median_ms"]) if ok else None
        for c in sorted(points, key=lambda c: c["median_ms"]):
            front = eligible(c) and not any(_dominates(o, c) for o in ok)
            rows.append((model, config_label(cfg), c.get("runner"), c.get("precision"), _ms(c["median_ms"]),
                         c.get("normalized_error"), c.get("cosine"), c.get("accuracy_ok"), front, c is fastest,
                         c["case_key"]))
    return Table("pareto", cols, rows)


def _err(c: Row) -> float:
    e = c.get("normalized_error")
    return e if isinstance(e, (int, float)) else math.inf


def _dominates(a: Row, b: Row) -> bool:
    le = a["median_ms"] <= b["median_ms"] and _err(a) <= _err(b)
    return le and (a["median_ms"] < b["median_ms"] or _err(a) < _err(b))


# --- cold start, memory, coverage, throughput ------------------------------------------------------------

def _group(cases: list[Row], keys: tuple[str, ...]) -> dict[tuple, list[Row]]:
    groups: dict[tuple, list[Row]] = defaultdict(list)
    for c in cases:
        groups[tuple(c.get(k) for k in keys)].append(c)
    return dict(groups)


def resources(cases: list[Row]) -> Table:
    """Per model, runner, precision and device: median cold start and largest peak RSS over its timed cases."""
    keys = ("model", "runner", "precision", "device")
    cols = (*keys, "cold_start_ms", "peak_rss_mb", "cases")
    rows = []
    for key, group in _group([c for c in cases if timed(c)], keys).items():
        cold = [c["cold_start_ms"] for c in group if _num(c.get("cold_start_ms"))]
        rss = [c["peak_rss_mb"] for c in group if _num(c.get("peak_rss_mb"))]
        if cold or rss:
            rows.append((*key, _ms(statistics.median(cold)) if cold else None, max(rss) if rss else None,
                         len(group)))
    return Table("cold_start_memory", cols, rows)


def _peak(run: Row | None, threads: Any) -> float | None:
    try:
        return json.loads(run["peak_gflops"]).get(str(threads)) if run and run.get("peak_gflops") else None
    except (TypeError, ValueError, AttributeError):
        return None


ABOVE_PEAK = 150.0  # percent of the fp32 matmul peak past which a figure says why it may be wrong


def _above_peak(share: float | None, precision: Any) -> str:
    """Never publish a figure far above the machine's measured peak without saying so: Winograd and int8 do less
    nominal work per FLOP counted, but a MAC count that does not match the executed work does so too."""
    if share is None or share <= ABOVE_PEAK:
        return ""
    why = "int8 kernels outrun the fp32 peak" if precision == "int8" else "Winograd or fewer executed MACs"
    return f"{share:.0f}% of the measured fp32 peak: {why}, or a MAC count that does not match the executed work"


def efficiency(cases: list[Row], runs: list[Row]) -> Table:
    """Achieved GFLOP/s (2 x MACs x items / median) next to the machine's numpy matmul peak at those threads."""
    by_run = {r.get("run_id"): r for r in runs}
    cols = ("model", "runner", "precision", "threads", "batch", "achieved_gflops", "peak_gflops", "percent_of_peak",
            "flag")
    rows = []
    for c in sorted((c for c in cases if eligible(c) and _num(c.get("achieved_gflops"))), key=case_label):
        peak = _peak(by_run.get(c.get("run_id")), c.get("threads"))
        share = 100.0 * c["achieved_gflops"] / peak if peak else None
        rows.append((c["model"], c["runner"], c["precision"], c["threads"], c["batch"],
                     round(c["achieved_gflops"], 2), peak, round(share, 1) if share is not None else None,
                     _above_peak(share, c.get("precision"))))
    return Table("efficiency", cols, rows)


def task_accuracy(cases: list[Row]) -> Table:
    """Task accuracy on the zoo's labelled data, per runner and precision: what a precision really costs."""
    cols = ("model", "runner", "precision", "threads", "task_metric", "task_value", "task_n", "accuracy_ok")
    rows = [(c["model"], c["runner"], c["precision"], c.get("threads"), c["task_metric"], round(c["task_value"], 4),
             c.get("task_n"), c.get("accuracy_ok"))
            for c in sorted(cases, key=case_label) if c.get("task_metric") and _num(c.get("task_value"))]
    return Table("task_accuracy", cols, rows)


def coverage(cases: list[Row]) -> Table:
    """Model x runner x precision (x device): the worst category among its cases, and counts of each."""
    keys = ("model", "runner", "precision", "device")
    cols = (*keys, "category", "ok", "cases", "categories", "detail")
    rows = []
    cases = bare_runners(cases)  # a cell per runtime, tuned or not (labels.py)
    for key, group in sorted(_group(cases, keys).items(), key=lambda kv: tuple(str(k) for k in kv[0])):
        cats = [category(c) for c in group]
        worst = min(cats, key=lambda k: _RANK.get(k, len(_RANK)))
        counts = ", ".join(f"{k}: {cats.count(k)}" for k in sorted(set(cats), key=lambda k: _RANK.get(k, 99)))
        detail = "; ".join(sorted({f"{category(c)}: {first_line(c.get('error') or c.get('accuracy_reason'), 160)}"
                                   for c in group if category(c) not in ("ok", "ok (unchecked)")}))[:600]
        rows.append((*key, worst, cats.count("ok"), len(group), counts, detail))
    return Table("coverage", cols, rows)


def throughput(cases: list[Row]) -> Table:
    """Throughput at each batch size, for series (model, runner, precision, device, threads, scenario) that ran
    at two batch sizes or more."""
    keys = ("model", "runner", "precision", "device", "threads", "scenario")
    cols = (*keys, "batch", "throughput_per_s", "accuracy_ok", "case_key")
    rows = []
    for key, group in _group([c for c in cases if timed(c) and _num(c.get("throughput_per_s"))], keys).items():
        if len({c.get("batch") for c in group}) >= 2:
            rows += [(*key, c.get("batch"), round(c["throughput_per_s"], 3), c.get("accuracy_ok"), c["case_key"])
                     for c in sorted(group, key=lambda c: c.get("batch") or 0)]
    return Table("throughput_batch", cols, rows)


# --- environment and trends ------------------------------------------------------------------------------

ENV_COLUMNS = ("machine_id", "machine_label", "cpu_model", "cpu_arch", "emulator", "soc_model", "cpu_clusters",
               "cores_physical", "cores_logical",
               "cpus_allowed", "memory_gb", "os", "kernel", "python", "cpu_governor", "turbo", "noise_warnings",
               "isa_flags", "cpu_precision_features", "packages", "gpus", "vulkan_devices")


def _packages(text: Any) -> str:
    try:
        versions = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        return str(text)
    return ", ".join(f"{k} {v}" for k, v in sorted(versions.items()) if v) if isinstance(versions, dict) else ""


def _features(text: Any) -> str:
    """{"fp16": [], "bf16": ["avx512_bf16"]} -> "bf16: avx512_bf16; no fp16" (runs before it was recorded: "")."""
    try:
        features = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        return str(text)
    present = [f"{k}: {' '.join(v)}" for k, v in features.items() if v]
    absent = [k for k, v in features.items() if not v]
    return "; ".join(present + ([f"no {', '.join(absent)}"] if absent else []))


def _vulkan(text: Any) -> str:
    """[{name, vendor, type, software ...}] -> "llvmpipe (LLVM 15.0.6, 256 bits) (Mesa, cpu, software)"; {why} -> why
    (runs before it was recorded: "")."""
    try:
        found = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return str(text)
    if isinstance(found, dict):
        return f"none: {found.get('why', '')}"
    if not isinstance(found, list):
        return ""
    return "; ".join(f"{d.get('name')} ({d.get('vendor')}, {d.get('type')}{', software' if d.get('software') else ''})"
                     for d in found if isinstance(d, dict))


def environment(runs: list[Row]) -> Table:
    """One row per machine: its latest run's environment, how many runs, and their first and last dates."""
    cols = (*ENV_COLUMNS, "runs", "commits", "first_run", "last_run")
    rows = []
    for _machine, group in _group(runs, ("machine_id",)).items():
        last = group[-1]
        values = [last.get(k) for k in ENV_COLUMNS]
        values[ENV_COLUMNS.index("isa_flags")] = " ".join(last.get("isa_flags") or [])
        values[ENV_COLUMNS.index("noise_warnings")] = "; ".join(last.get("noise_warnings") or [])
        values[ENV_COLUMNS.index("packages")] = _packages(last.get("packages"))
        values[ENV_COLUMNS.index("cpu_precision_features")] = _features(last.get("cpu_precision_features"))
        values[ENV_COLUMNS.index("vulkan_devices")] = _vulkan(last.get("vulkan_devices"))
        stamps = [r["timestamp"] for r in group if r.get("timestamp")]
        commits = {r.get("git_commit") for r in group if r.get("git_commit")}
        rows.append((*values, len(group), len(commits), min(stamps, default=None), max(stamps, default=None)))
    return Table("environment", cols, rows)


def trends(history: list[Row]) -> Table:
    """Median per case per run, for case keys measured in two runs or more on the same machine."""
    cols = ("model", "case_key", "machine", "run_id", "run_time", "git_commit", "median_ms")
    counts: dict[tuple, set] = defaultdict(set)
    for h in history:
        counts[(h["case_key"], h.get("machine"))].add(h["run_id"])
    rows = [(h.get("model"), h["case_key"], h.get("machine"), h["run_id"], h.get("run_time"), h.get("git_commit"),
             _ms(h["median_ms"])) for h in history if len(counts[(h["case_key"], h.get("machine"))]) >= 2]
    return Table("trends", cols, rows)


# --- winners, wrong outputs, failures --------------------------------------------------------------------

def winners(cases: list[Row]) -> Table:
    """Per model and configuration: the fastest eligible case, and the fastest eligible case of another
    runner. margin_pct = runner-up median / winner median - 1; within_noise when their median CIs overlap."""
    cols = ("machine", "model", "config", "winner", "median_ms", "runner_up", "runner_up_median_ms", "margin_pct",
            "within_noise", "wrong_but_faster", "like_for_like")
    rows = []
    for (machine, model, *cfg), group in sorted(_group(cases, ("machine", *CONFIG_KEYS)).items(),
                                                key=lambda kv: tuple(str(k) for k in kv[0])):
        ok = sorted((c for c in group if eligible(c)), key=lambda c: c["median_ms"])
        if not ok:
            continue
        win = ok[0]
        up = next((c for c in ok if c.get("runner") != win.get("runner")), None)
        faster_wrong = [c for c in group if timed(c) and not eligible(c) and c["median_ms"] < win["median_ms"]]
        margin = round((up["median_ms"] / win["median_ms"] - 1) * 100, 2) if up else None
        noise = up is not None and (win.get("median_ci_high_ms") or win["median_ms"]) >= \
            (up.get("median_ci_low_ms") or up["median_ms"])
        rows.append((machine, model, config_label(tuple(cfg)), _who(win), _ms(win["median_ms"]),
                     _who(up) if up else None,
                     _ms(up["median_ms"]) if up else None, margin, noise if up else None,
                     ", ".join(_who(c) for c in faster_wrong), _like_for_like(win, up, ok)))
    return Table("winners", cols, rows)


def _like_for_like(win: Row, up: Row | None, passing: list[Row]) -> str:
    """Whether the runner-up is compared at the winner's precision; if not, whether it had a row there at all."""
    if up is None or up.get("precision") == win.get("precision"):
        return "yes" if up else ""
    same = [c for c in passing if c.get("runner") == up.get("runner") and c.get("precision") == win.get("precision")]
    return (f"no: {up.get('runner')}'s {win.get('precision')} is slower" if same else
            f"no: {up.get('runner')} has no passing {win.get('precision')} row")


def winners_by_precision(cases: list[Row]) -> Table:
    """Per model, configuration and precision: the fastest case that passed its tolerance, and how many runners
    had a passing row at that precision (a winner among one is no contest)."""
    cols = ("machine", "model", "config", "precision", "fastest", "median_ms", "runners_passing")
    rows = []
    groups = _group(cases, ("machine", *CONFIG_KEYS, "precision"))
    for (machine, model, *cfg, precision), group in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        ok = sorted((c for c in group if eligible(c)), key=lambda c: c["median_ms"])
        if ok:
            rows.append((machine, model, config_label(tuple(cfg)), precision, ok[0].get("runner"),
                         _ms(ok[0]["median_ms"]), len({c.get("runner") for c in ok})))
    return Table("winners_by_precision", cols, rows)


def int8_speedup(cases: list[Row]) -> Table:
    """Each runtime's int8 against its own fp32, same model and configuration: its fp32 median / its int8 median,
    with whether the int8 outputs stayed inside the int8 tolerance, the task score of both (where the model has
    labelled data), and how the runtime's quantizer was driven and what bounds the row (``quant_recipe``,
    ``quant_limit``): a slow or wrong int8 row may be bench's recipe or the build, not the runtime. ``weights``
    says whether the model is trained: int8 accuracy on seeded random weights says little."""
    cols = ("machine", "model", "weights", "config", "runner", "fp32_ms", "int8_ms", "speedup", "int8_accuracy_ok",
            "task_metric", "fp32_task", "int8_task", "recipe", "limited_by")
    rows = []
    for (machine, model, *cfg, runner), group in sorted(_group(cases, ("machine", *CONFIG_KEYS, "runner")).items(),
                                                        key=lambda kv: tuple(str(k) for k in kv[0])):
        by = {c.get("precision"): c for c in group if timed(c)}
        if "fp32" in by and "int8" in by:
            fp32, int8 = by["fp32"], by["int8"]
            rows.append((machine, model, fp32.get("weights"), config_label(tuple(cfg)), runner, _ms(fp32["median_ms"]),
                         _ms(int8["median_ms"]), round(fp32["median_ms"] / int8["median_ms"], 2),
                         int8.get("accuracy_ok"), *_task_scores(fp32, int8), int8.get("quant_recipe"),
                         int8.get("quant_limit")))
    return Table("int8_speedup", cols, rows)


def _task_scores(fp32: Row, int8: Row) -> tuple[Any, Any, Any]:
    """The task metric and both scores, where the two rows scored the same metric."""
    metric = int8.get("task_metric")
    if metric is None or fp32.get("task_metric") != metric:
        return None, None, None
    return metric, _score(fp32.get("task_value")), _score(int8.get("task_value"))


def _score(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def _who(case: Row) -> str:
    return f"{runner_label(case)} {case.get('precision') or '?'}"  # "tvm (untuned) fp32": see labels.py


def wrong_outputs(cases: list[Row]) -> Table:
    cols = ("case_key", "median_ms", "cosine", "normalized_error", "reason")
    rows = [(c["case_key"], _ms(c.get("median_ms")), c.get("cosine"), c.get("normalized_error"),
             first_line(c.get("accuracy_reason"), 200)) for c in cases if category(c) == "wrong output"]
    return Table("wrong_outputs", cols, rows)


def failures(cases: list[Row]) -> Table:
    """Cases that did not run to completion, unsupported and unavailable ones excluded (they are coverage)."""
    skip = {"ok", "ok (unchecked)", "wrong output", "unsupported", "unavailable"}
    cols = ("case_key", "status", "category", "error")
    rows = [(c["case_key"], c.get("status"), category(c), first_line(c.get("error"), 200))
            for c in cases if category(c) not in skip]
    return Table("failures", cols, rows)


CASE_TABLE_COLUMNS = ("model", "machine", "runner", "device", "precision", "batch", "threads", "scenario", "status",
                      "median_ms", "median_ci_low_ms", "median_ci_high_ms", "p99_ms", "throughput_per_s",
                      "accuracy_ok", "cosine", "top1_agreement", "unstable", "cold_start_ms", "peak_rss_mb",
                      "run_id", "case_key")


def case_table(cases: list[Row]) -> Table:
    rows = [(*(_ms(c.get(k)) for k in CASE_TABLE_COLUMNS), category(c), first_line(c.get("error"), 300))
            for c in cases]
    return Table("cases", (*CASE_TABLE_COLUMNS, "category", "error"), rows)
