"""Deployment scenarios: per model (and per machine), the best case for each way a model gets deployed.

The report's other tables answer "who is fastest at this configuration"; this one answers "what should I deploy
for realtime on one core, for a server, on a small edge box, for the fastest start, or where accuracy comes
first", each with its runner-up of another runtime and whether the lead is real. Only eligible rows compete
(``views.eligible``: status ok AND accuracy_ok True), so a fast wrong answer never wins a scenario.

* **realtime, 1 thread**: lowest median_ms among latency-scenario rows at batch 1 and 1 thread;
* **realtime, all cores**: the same at the most threads any passing row of the model has (named in its rule);
* **server at p99 bound**: the highest QPS x batch that MLPerf LoadGen judged VALID at the model's p99 bound (server
  rows, any batch; results without server rows: throughput-scenario rows' throughput_per_s);
* **memory-bound edge**: lowest peak_rss_mb among latency rows whose median is within 10% of the fastest
  passing latency row at the same device, batch and thread count;
* **cold start**: lowest cold_start_ms (load + prepare + first inference);
* **accuracy first**: smallest loss against fp32 (below), the fastest among equal losses.

Ties: the two latency scenarios tie when the 95% CIs of the medians overlap, or, where they do not, when the
Mann-Whitney U test of ``bench compare`` on both rows' raw samples (cut as it cuts them, ``change.cut``) gives
p >= 0.01 (``p_value``, blank where the CIs decided or a row has no samples). The samples are a row's own
``samples_ns`` where it carries that column (the rows a run ends with, a frame of ``bench.results.load``), else
read by the caller's reader for those rows only, all in one call (the report's rows never carry samples: at
fleet scale it reads no case's but the few it needs, ``data.ReportData.rank_samples``), so the terminal, the
page and a frame call the same ties. The others tie within a stated distance: 2% for throughput and memory, 5%
for cold start (a one-off measurement, noisier), for accuracy 0.001 of a task score or 1e-6 of ``1 - cosine``
(absolute: losses sit near 0).

Accuracy loss: where the row has a task score and an fp32 row of the same model has one for the same metric,
the fp32 score (median over fp32 rows) minus the row's (higher is better, so a lower loss); such rows rank
before rows scored by ``1 - cosine`` only. Losses within that distance of the best count as equal and the fastest
(median_ms) of them is picked; its candidates are the latency rows at batch 1 (all eligible rows if there are
none), so that medians compared for speed are of one request at a time.

The runner-up is the best row of another runner (as in ``views.winners``); ``margin_pct`` is how much better
the pick is (runner-up / pick - 1 for lower-is-better, pick / runner-up - 1 for throughput, the difference of
losses in percentage points for accuracy). Machines: a case's machine is its run's ``machine_label``, else its
``machine_id`` (as the report's trends name one), joined on ``run_id`` from ``runs``, else taken from the case
row itself; "?" when neither says.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from bench.report import views
from bench.report.change import ALPHA, cut, rank_test_p, rank_test_p_values
from bench.report.views import Row

SCENARIOS = ("realtime, 1 thread", "realtime, all cores", "server at p99 bound", "memory-bound edge", "cold start",
             "accuracy first")
MEMORY_WITHIN = 0.10  # a memory pick may be at most this much slower than the fastest at its configuration
TIE_WITHIN = {"server at p99 bound": 0.02, "memory-bound edge": 0.02, "cold start": 0.05}
# Absolute (losses sit near 0, where a relative threshold means nothing), per kind of loss: a task score moves in
# steps of 1/n (0.005 for 200 samples), so 0.001 means "the same score"; 1 - cosine is ~1e-12 for fp32 kernels,
# ~1e-6 for fp16 and ~1e-4 for bf16, so 1e-6 keeps fp32 apart from the reduced precisions.
ACCURACY_TIE = {0: 0.001, 1: 1e-6}
LATENCY_TIE = f"tie when the 95% CIs of the medians overlap or Mann-Whitney p >= {ALPHA} on the raw samples"


@dataclass(frozen=True)
class ScenarioPick:
    """One row of the scenario table: a scenario's pick for one model on one machine, its runner-up and the lead.

    The table's columns are these fields, in this order (``COLUMNS``); its consumers read its rows back as picks
    (:func:`picks`), so a misspelled name is an attribute mypy rejects, not a dict key that reads None."""

    machine: str
    model: str
    scenario: str  # one of SCENARIOS
    pick: str  # the pick in words: "ort fp32 t1 b1 @cuda" (``_label``)
    runner: str | None  # (None only for a hand-made row without it: bench's rows always name both)
    precision: str | None
    threads: int | None
    batch: int | None
    value: float | None  # the number the scenario ranks, in ``unit``
    unit: str
    runner_up: str | None  # the best row of another runner, in words; None: the only runner
    runner_up_value: float | None
    margin_pct: float | None  # how much better the pick is (percentage points for accuracy first)
    verdict: str  # "clear", "tie" or "only one"
    p_value: float | None  # the rank test's, where it ran
    like_for_like: str
    rule: str
    pick_case_key: str | None
    runner_up_case_key: str | None


COLUMNS = tuple(f.name for f in fields(ScenarioPick))  # the table's, CSV's and frame's columns: the fields, in order
# What a reader of the table is shown (the page and summary.md), before the case keys its cells link to
SHOWN = ("machine", "model", "scenario", "pick", "value", "unit", "runner_up", "runner_up_value", "margin_pct",
         "verdict", "like_for_like")
# Rows -> their raw samples cut as bench compare cuts them (change.cut), by (case key, run id), for the rows that
# do not carry samples_ns; one call per table (data.ReportData.rank_samples reads them from the store).
SampleReader = Callable[[list[Row]], dict[tuple[Any, Any], list[int]]]
NOTE = ("Only rows that ran and matched the fp32 reference compete. Memory-bound edge: the lowest peak RSS among "
        f"latency rows whose median is within {MEMORY_WITHIN:.0%} of the fastest passing latency row of the same "
        "model, device, batch and thread count.")


@dataclass
class Contest:
    """One scenario in one (machine, model) group: the rows that compete and how they are ranked and judged."""

    scenario: str
    rows: list[Row]
    value: Callable[[Row], float]  # the number the table shows
    unit: str
    rule: str
    best: Callable[[list[Row]], Row]
    margin: Callable[[Row, Row], float | None]  # percent by which the pick beats the runner-up
    tie: Callable[[Row, Row, float | None], bool]  # (pick, runner-up, margin): a tie without the rank test
    worse: str = "is slower"  # how like_for_like says the runner-up's own row at the pick's precision lost
    rank_test: bool = False  # where ``tie`` says no, the rank test on raw samples may still find a tie (latency)


@dataclass
class Decided:
    """A contest's pick, its runner-up and whether they tie, before any rank test."""

    machine: str
    model: str
    contest: Contest
    pick: Row
    up: Row | None
    margin: float | None
    tie: bool

    @property
    def open(self) -> bool:
        """A latency lead whose CIs do not overlap: the rank test says whether it is real."""
        return self.up is not None and not self.tie and self.contest.rank_test


# --- public --------------------------------------------------------------------------------------------

def scenario_table(cases: list[Row], runs: list[Row] | None = None, samples: SampleReader | None = None
                   ) -> views.Table:
    """One row per machine, model and deployment scenario (see the module docstring for the rules). ``samples``
    reads the raw samples of rows without ``samples_ns`` whose latency tie the CIs leave open; without it, such
    rows' ties are the CIs' alone."""
    by_run = {r.get("run_id"): r for r in runs or ()}
    tagged = [{**c, "machine": _machine(c, by_run)} for c in cases]
    flags = [_emulated(c, by_run) for c in tagged]
    emulated = [c for c, flag in zip(tagged, flags, strict=True) if flag]
    software = [c for c, flag in zip(tagged, flags, strict=True) if not flag and c.get("software_device")]
    native = [c for c, flag in zip(tagged, flags, strict=True) if not flag and not c.get("software_device")]
    decided = [_decide(machine, model, contest)
               for (machine, model), group in sorted(views._group(native, ("machine", "model")).items(),
                                                     key=lambda kv: tuple(str(k) for k in kv[0]))
               for contest in _contests(group)]
    p_values = _rank_tests([d for d in decided if d.open], samples)
    rows = [_as_row(_table_row(d, p_values.get(id(d)))) for d in decided]
    notes = _emulated_note(emulated) + software_note(software)
    return views.Table("scenarios", COLUMNS, rows, notes + NOTE)  # first: summaries cut notes


def picks(table: views.Table) -> list[ScenarioPick]:
    """The rows of a scenario table (``scenario_table``'s, not a ``select`` of it) as typed picks."""
    if table.columns != COLUMNS:
        raise ValueError(f"not a scenario table: columns {table.columns}, expected {COLUMNS}")
    return [ScenarioPick(*row) for row in table.rows]


def _as_row(pick: ScenarioPick) -> tuple:
    """The pick as a row of the table, its fields in COLUMNS' order (not ``astuple``: that deep-copies)."""
    return tuple(getattr(pick, name) for name in COLUMNS)


def _emulated(case: Row, by_run: dict[Any, Row]) -> bool:
    """The case's run ran under emulation (runs.emulated; the case row's own column where no runs row says)."""
    run = by_run.get(case.get("run_id")) or {}
    return bool(run["emulated"] if run.get("emulated") is not None else case.get("emulated"))


def _emulated_note(emulated: list[Row]) -> str:
    if not emulated:
        return ""
    machines = ", ".join(sorted({str(c["machine"]) for c in emulated}))
    return (f"Not ranked: {len(emulated)} rows of {machines} ran under emulation (qemu-user), whose timings "
            "measure the emulator, not the chip; they are in All cases. ")


def software_note(software: list[Row]) -> str:
    """Why rows that ran on a software device (a CPU doing a GPU's work: lavapipe, SwiftShader) are not ranked."""
    if not software:
        return ""
    devices = ", ".join(sorted({str(c["software_device"]) for c in software}))
    return (f"Not ranked: {len(software)} rows ran on a software device ({devices}), a CPU running the GPU's work: "
            "functional checks whose timings say nothing of a GPU; they are in All cases. ")


def cross_machine(table: views.Table) -> views.Table:
    """Which runtime and precision wins each model's scenario on each machine: one column per machine, and
    ``same_everywhere`` when every machine has the same pick. Empty (with a note) for one machine."""
    made = picks(table)
    machines = sorted({p.machine for p in made}, key=str)
    cols = ("model", "scenario", *machines, "same_everywhere")
    if len(machines) < 2:
        return views.Table("cross_machine", cols, [], "one machine: nothing to compare across machines")
    by_key = {(p.model, p.scenario, p.machine): p for p in made}
    keys = sorted({(p.model, p.scenario) for p in made}, key=lambda k: (str(k[0]), SCENARIOS.index(k[1])))
    rows = []
    for model, scenario in keys:
        found = [by_key.get((model, scenario, m)) for m in machines]
        winners = {(p.runner, p.precision) for p in found if p}
        same = len(winners) == 1 and all(found)
        rows.append((model, scenario, *(_cell(r) for r in found), same))
    return views.Table("cross_machine", cols, rows, "a pick marked (tie) is within noise of another runtime")


# --- one table row ---------------------------------------------------------------------------------------

def _decide(machine: str, model: str, contest: Contest) -> Decided:
    pick = contest.best(contest.rows)
    others = [r for r in contest.rows if r.get("runner") != pick.get("runner")]
    up = contest.best(others) if others else None
    margin = contest.margin(pick, up) if up else None
    return Decided(machine, model, contest, pick, up, margin, contest.tie(pick, up, margin) if up else False)


def _table_row(d: Decided, p: float | None) -> ScenarioPick:
    """``p``: the rank test's, where it ran (an open latency lead whose rows both have samples)."""
    contest, pick, up = d.contest, d.pick, d.up
    tie = d.tie or (p is not None and p >= ALPHA)
    return ScenarioPick(
        machine=d.machine, model=d.model, scenario=contest.scenario, pick=_label(pick), runner=pick.get("runner"),
        precision=pick.get("precision"), threads=pick.get("threads"), batch=pick.get("batch"),
        value=_sig(contest.value(pick)), unit=contest.unit, runner_up=_label(up) if up else None,
        runner_up_value=_sig(contest.value(up)) if up else None, margin_pct=_sig(d.margin),
        verdict="only one" if up is None else "tie" if tie else "clear", p_value=_sig(p),
        like_for_like=_like_for_like(contest, pick, up), rule=contest.rule, pick_case_key=pick.get("case_key"),
        runner_up_case_key=up.get("case_key") if up else None)


def _like_for_like(contest: Contest, pick: Row, up: Row | None) -> str:
    # views words the case where the runner-up's own row at the pick's precision lost as "is slower": true for
    # latency; the other scenarios rank on another measure, so say which.
    return views._like_for_like(pick, up, contest.rows).replace(" is slower", f" {contest.worse}")


def _label(case: Row) -> str:
    device = case.get("device")
    where = f" @{device}" if device not in (None, "cpu") else ""
    return f"{views._who(case)} t{case.get('threads')} b{case.get('batch')}{where}"


def _cell(pick: ScenarioPick | None) -> str:
    if pick is None:
        return ""
    return f"{pick.runner} {pick.precision}" + (" (tie)" if pick.verdict == "tie" else "")


def _machine(case: Row, by_run: dict[Any, Row]) -> str:
    run = by_run.get(case.get("run_id")) or {}
    return (run.get("machine_label") or run.get("machine_id") or case.get("machine_label") or case.get("machine_id")
            or case.get("machine") or "?")


def _sig(x: float | None) -> float | None:
    """Six significant digits: enough for ms, MiB and losses near zero alike."""
    return None if x is None else float(f"{x:.6g}")


def _finite(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# --- the scenarios -------------------------------------------------------------------------------------

def _contests(group: list[Row]) -> list[Contest]:
    ok = [c for c in group if views.eligible(c)]
    latency = [c for c in ok if c.get("scenario") == "latency"]
    single = [c for c in latency if c.get("batch") == 1]
    made = (_one_thread(single), _all_cores(single), _throughput(ok), _memory(latency), _cold_start(ok),
            _accuracy(single or ok))
    return [c for c in made if c is not None and c.rows]


def _lowest(column: str) -> Callable[[list[Row]], Row]:
    return lambda rows: min(rows, key=lambda c: (c[column], c["median_ms"]))


def _lower_margin(column: str) -> Callable[[Row, Row], float]:
    return lambda pick, up: (up[column] / pick[column] - 1) * 100


def _within(fraction: float) -> Callable[[Row, Row, float | None], bool]:
    return lambda pick, up, margin: margin is not None and margin <= fraction * 100


def _latency_contest(scenario: str, rows: list[Row], rule: str) -> Contest:
    return Contest(scenario, rows, lambda c: c["median_ms"], "ms", f"{rule}; {LATENCY_TIE}", _lowest("median_ms"),
                   _lower_margin("median_ms"), _ci_overlap, rank_test=True)


def _one_thread(single: list[Row]) -> Contest:
    rows = [c for c in single if c.get("threads") == 1]
    return _latency_contest("realtime, 1 thread", rows, "lowest median_ms, latency scenario, batch 1, 1 thread")


def _all_cores(single: list[Row]) -> Contest | None:
    most = max((c["threads"] for c in single if isinstance(c.get("threads"), int)), default=None)
    if most is None or most <= 1:  # one thread is all there is: the 1-thread row already answers it
        return None
    rows = [c for c in single if c.get("threads") == most]
    rule = f"lowest median_ms, latency scenario, batch 1, {most} threads (the most with a passing row)"
    return _latency_contest("realtime, all cores", rows, rule)


def _server_rows(ok: list[Row]) -> tuple[list[Row], str]:
    """The rows the server column ranks and its rule: LoadGen server rows VALID at one p99 bound (the one most of
    them share; the tighter on a draw), else, for results older than the server scenario, throughput rows."""
    valid = [c for c in ok if c.get("scenario") == "server" and c.get("loadgen_valid") is True
             and views._num(c.get("throughput_per_s")) and views._num(c.get("loadgen_p99_bound_ms"))]
    if valid:
        bounds = Counter(c["loadgen_p99_bound_ms"] for c in valid)
        bound = min(bounds, key=lambda b: (-bounds[b], b))
        return ([c for c in valid if c["loadgen_p99_bound_ms"] == bound],
                f"highest LoadGen-VALID server QPS x batch at p99 <= {bound:g} ms (Poisson arrivals), any batch")
    rows = [c for c in ok if c.get("scenario") == "throughput" and views._num(c.get("throughput_per_s"))]
    return rows, "highest throughput_per_s, throughput scenario (no server rows), any batch"


def _throughput(ok: list[Row]) -> Contest:
    rows, rule = _server_rows(ok)
    within = TIE_WITHIN["server at p99 bound"]
    return Contest("server at p99 bound", rows, lambda c: c["throughput_per_s"], "items/s",
                   f"{rule}; tie within {within:.0%}",
                   lambda rs: min(rs, key=lambda c: (-c["throughput_per_s"], c["median_ms"])),
                   lambda pick, up: (pick["throughput_per_s"] / up["throughput_per_s"] - 1) * 100, _within(within),
                   worse="has lower throughput")


def _memory(latency: list[Row]) -> Contest:
    fastest: dict[tuple, float] = {}
    for c in latency:
        fastest[views.config(c)] = min(c["median_ms"], fastest.get(views.config(c), math.inf))
    rows = [c for c in latency if views._num(c.get("peak_rss_mb"))
            and c["median_ms"] <= (1 + MEMORY_WITHIN) * fastest[views.config(c)]]
    within = TIE_WITHIN["memory-bound edge"]
    rule = (f"lowest peak_rss_mb among latency rows within {MEMORY_WITHIN:.0%} of the fastest at their device, "
            f"batch and threads; tie within {within:.0%}")
    return Contest("memory-bound edge", rows, lambda c: c["peak_rss_mb"], "MiB", rule, _lowest("peak_rss_mb"),
                   _lower_margin("peak_rss_mb"), _within(within), worse="uses more memory")


def _cold_start(ok: list[Row]) -> Contest:
    rows = [c for c in ok if views._num(c.get("cold_start_ms"))]
    within = TIE_WITHIN["cold start"]
    return Contest("cold start", rows, lambda c: c["cold_start_ms"], "ms",
                   f"lowest cold_start_ms (load + prepare + first inference); tie within {within:.0%}",
                   _lowest("cold_start_ms"), _lower_margin("cold_start_ms"), _within(within), worse="starts slower")


# --- latency ties: CI overlap, or the rank test of bench compare ----------------------------------------------

def _ci_overlap(pick: Row, up: Row, margin: float | None) -> bool:
    """As ``views.winners``: a missing CI bound falls back to the median itself."""
    return (pick.get("median_ci_high_ms") or pick["median_ms"]) >= (up.get("median_ci_low_ms") or up["median_ms"])


def _rank_tests(open_leads: list[Decided], reader: SampleReader | None) -> dict[int, float]:
    """id(lead) -> the Mann-Whitney p of its runner-up's samples against its pick's (as bench compare takes
    base and new), for the leads whose rows both have samples; the samples of rows without ``samples_ns`` read
    in one call of ``reader``, the tests batched (``change.rank_test_p_values``)."""
    lacking = [r for d in open_leads for r in (d.pick, d.up) if r is not None and "samples_ns" not in r]
    fetched = reader(lacking) if lacking and reader is not None else {}
    pairs: dict[str, tuple[list[int], list[int]]] = {}
    for d in open_leads:
        a, b = _samples(d.pick, fetched), _samples(d.up, fetched) if d.up is not None else None
        if a is not None and b is not None:
            pairs[str(id(d))] = (b, a)
    if not pairs:  # nothing to test: scipy.stats (0.7 s and 60 MB to import) stays unloaded
        return {}
    batched = rank_test_p_values(pairs)  # counts of 8 or fewer are left out there: one test each
    return {int(key): batched[key] if key in batched else rank_test_p(*pair) for key, pair in pairs.items()}


def _samples(case: Row, fetched: dict[tuple[Any, Any], list[int]]) -> list[int] | None:
    """At most MAX_SAMPLES evenly spaced raw samples, as ``bench compare`` cuts them: of the row's own
    ``samples_ns`` where it carries the column, else as fetched; None for fewer than 3."""
    if "samples_ns" in case:
        ns = cut(case["samples_ns"]) if case["samples_ns"] is not None else None
    else:
        ns = fetched.get((case.get("case_key"), case.get("run_id")))
    return ns if ns is not None and len(ns) >= 3 else None


# --- accuracy first ------------------------------------------------------------------------------------

def _fp32_scores(rows: list[Row]) -> dict[str, float]:
    """Task metric -> the median score of the group's fp32 rows: what a reduced precision is measured against."""
    scores: dict[str, list[float]] = {}
    for c in rows:
        if c.get("precision") == "fp32" and c.get("task_metric") and _finite(c.get("task_value")):
            scores.setdefault(c["task_metric"], []).append(c["task_value"])
    return {metric: statistics.median(values) for metric, values in scores.items()}


def _loss(case: Row, fp32: dict[str, float]) -> tuple[int, float] | None:
    """(0, fp32 score - score) where task scores exist on both sides, else (1, 1 - cosine); smaller is better."""
    metric = case.get("task_metric")
    if metric in fp32 and _finite(case.get("task_value")):
        return 0, fp32[metric] - case["task_value"]
    return (1, 1.0 - case["cosine"]) if _finite(case.get("cosine")) else None


def _accuracy(pool: list[Row]) -> Contest:
    fp32 = _fp32_scores(pool)
    losses = {id(c): loss for c in pool if (loss := _loss(c, fp32)) is not None}
    rows = [c for c in pool if id(c) in losses]
    task = any(losses[id(c)][0] == 0 for c in rows)
    unit = f"{'/'.join(sorted(fp32))} below fp32" if task else "1 - cosine"

    def best(candidates: list[Row]) -> Row:
        kind, least = min(losses[id(c)] for c in candidates)
        equal = [c for c in candidates if losses[id(c)][0] == kind and losses[id(c)][1] <= least + ACCURACY_TIE[kind]]
        return min(equal, key=lambda c: c["median_ms"])

    def margin(pick: Row, up: Row) -> float | None:  # percentage points; losses of two kinds do not subtract
        (kp, lp), (ku, lu) = losses[id(pick)], losses[id(up)]
        return (lu - lp) * 100 if kp == ku else None

    def tie(pick: Row, up: Row, points: float | None) -> bool:
        return points is not None and abs(points) <= ACCURACY_TIE[losses[id(pick)][0]] * 100

    rule = ("smallest loss vs fp32: fp32's task score minus the row's where both have one (these rank first), else "
            f"1 - cosine; losses within {ACCURACY_TIE[0]} (task) or {ACCURACY_TIE[1]} (cosine) count as equal and "
            "the fastest of them wins, and are a tie")
    return Contest("accuracy first", rows, lambda c: losses[id(c)][1], unit, rule, best, margin, tie,
                   worse="is less accurate")
