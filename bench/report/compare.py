"""``bench compare BASE NEW``: per case, did the median latency change, by how much, and is it real?

For each case key in both runs, on the raw samples (each side subsampled in DuckDB to at most
``MAX_SAMPLES`` evenly spaced iterations): the change of the median, its 95% bootstrap CI and the Mann-Whitney p,
and from them the case's status (:mod:`bench.report.change`: regressed, improved, unchanged, broken, fixed,
failing, no_samples); and here, from the two runs,

* **new** / **missing** when the case key is only in NEW / only in BASE;
* **env_differs** when the machine (machine_id, cpu_model) or the model's bytes differ between the runs, unless
  ``allow_env_diff``: such timings are not of the same benchmark, so the case is not compared and what differs
  is printed; **emulated** when a run ran under emulation (never compared); **software** when either side of the
  case ran on a software device (a CPU doing a GPU's work: lavapipe, SwiftShader; a functional check, never
  compared).

A change of the case's runtime version (an upgrade) does not hold a case back: the case is compared, and its note
names the version change as the likely cause ("onnxruntime 1.32.0 → 1.33.0: 3.1x slower"), in the table and in
the JSON. That is the night a nightly gate exists for.

The exit code is 1 when any case is regressed or broken, and 1 when nothing could be compared at all (no case
rows, no case in common, or every common case held back, emulated, failing or without samples), with one line
saying why; else 0. ``--each-machine`` says "not compared" for such a pair and then exits 2 (1 wins).
"""

from __future__ import annotations

import itertools
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.case import version_suffix
from bench.contract import Status
from bench.errors import UserError
from bench.report.change import ALPHA, MAX_SAMPLES, Change, compare_case, cut_sql, ran_correctly, rank_test_p_values
from bench.results import store
from bench.results.uri import Location
from bench.text import printable

MAX_MARKDOWN_ROWS = 500
FAILING_STATUSES = ("regressed", "broken")
ORDER = ("regressed", "broken", "improved", "fixed", "new", "missing", "env_differs", "emulated", "software",
         "failing", "no_samples", "unchanged")
COMPARED = ("regressed", "broken", "improved", "fixed", "unchanged")  # statuses that judged a case
CASE_FIELDS = ("case_key", "run_id", "timestamp", "model", "model_sha256", "runner", "runner_version", "status",
               "accuracy_ok", "median_ms", "median_ci_low_ms", "median_ci_high_ms", "software_device",
               "runtime_version_requested")


@dataclass(frozen=True)
class Threshold:
    """A relative change of the median that counts (``bench.options.threshold`` parses "5%" into one)."""

    fraction: float

    def __str__(self) -> str:
        return f"{self.fraction * 100:g}%"


@dataclass
class Side:
    """One run's cases (samples subsampled, in ns) and environment."""

    label: str
    run_id: str
    cases: dict[str, dict[str, Any]]
    env: dict[str, Any]
    ops: list[dict[str, Any]] = field(default_factory=list)  # the profiled cases' nodes (--profile), if any


@dataclass
class Comparison:
    base: Side
    new: Side
    threshold: Threshold
    changes: list[Change]
    env_notes: list[str]

    @property
    def failed(self) -> bool:
        return any(c.status in FAILING_STATUSES for c in self.changes)

    @property
    def nothing_in_common(self) -> bool:
        """The base had cases and the new run has none of them: a gate that passed here would pass a run that
        lost every case."""
        return bool(self.base.cases) and not set(self.base.cases) & set(self.new.cases)

    def counts(self) -> dict[str, int]:
        return {s: n for s in ORDER if (n := sum(c.status == s for c in self.changes))}

    def not_compared(self) -> str | None:
        """Why no case at all was judged (one line), or None when some were: a gate must not pass on nothing."""
        if any(c.status in COMPARED for c in self.changes):
            return None
        b, n = self.base, self.new
        if not b.cases and not n.cases:
            return (f"neither {b.label} (run {b.run_id}) nor {n.label} (run {n.run_id}) has a case row (are their "
                    "case files missing?): nothing was compared")
        if self.nothing_in_common:
            return (f"no case of {b.label} is in {n.label} ({len(b.cases)} missing, {len(n.cases)} new): nothing "
                    "was compared")
        if not b.cases:
            return f"{b.label} (run {b.run_id}) has no case row: nothing was compared"
        statuses = {c.status for c in self.changes} - {"new", "missing"}
        if statuses == {"emulated"}:  # a gate that passed here would pass whatever the chip does
            return "every common case ran under emulation: nothing was compared"
        if statuses <= {"emulated", "software"}:
            return "every common case ran under emulation or on a software device: nothing was compared"
        counts = ", ".join(f"{k} {v}" for k, v in self.counts().items() if k not in ("new", "missing"))
        return f"no common case could be compared ({counts}): nothing was compared"

    def causes(self) -> list[str]:
        """The runtime version changes named on regressed or broken cases, once each."""
        return list(dict.fromkeys(c.cause for c in self.changes if c.cause and c.status in FAILING_STATUSES))


# --- reading ---------------------------------------------------------------------------------------------

def _runs(results: Location) -> list[dict[str, Any]]:
    """(run_id, timestamp) of every run, oldest first: from the small runs table, else from the cases."""
    table = "runs" if store.has_table(results, "runs") else "cases"
    if not store.has_table(results, table):
        return []
    sql = f"SELECT run_id, max(timestamp) AS timestamp FROM {table} GROUP BY run_id ORDER BY 2 NULLS FIRST, 1"
    return store.query(results, sql).to_pylist()


def resolve(spec: str, results: Location) -> tuple[Location, str]:
    """BASE or NEW: a results folder (its latest run) or a run id in ``results``."""
    folder = Path(spec)
    if folder.is_dir() and ((folder / "cases").is_dir() or (folder / "runs").is_dir()):
        loc = Location.resolve(folder)  # the folder BASE or NEW names, in place of --results
        runs = _runs(loc)
        if not runs:
            raise UserError(f"no runs in {folder}")
        return loc, runs[-1]["run_id"]
    if folder.is_dir():  # a folder was meant, not a run id: name it, not the default results folder
        raise UserError(f"{folder}: a folder without results (no cases/ or runs/ in it)")
    if not results.is_dir():
        raise UserError(f"{spec!r} is not a results folder, and there is no results folder at {results}")
    if _has_run(results, spec):  # the common case, without reading every run of a long history
        return results, spec
    known = [r["run_id"] for r in _runs(results)]
    if spec not in known:
        hint = f" (latest: {', '.join(known[-3:])})" if known else ""
        raise UserError(f"{spec!r} is neither a results folder nor a run id in {results}{hint}")
    return results, spec


def _has_run(results: Location, run_id: str) -> bool:
    """``run_id`` has a row in the runs table (its own file only is read)."""
    return bool(store.query(results, "SELECT run_id FROM runs WHERE run_id = ?", [run_id], run_ids=[run_id]))


def _case_rows(loc: Location, run_id: str, max_samples: int) -> list[dict[str, Any]]:
    """The run's rows, with ``samples``: at most ``max_samples`` evenly spaced raw samples, cut in DuckDB; only the
    run's own files are listed and read."""
    samples = f"{cut_sql(max_samples)} AS samples"
    fastest = "list_min(samples_ns) AS fastest_ns"  # of every sample: one planted value must not hide in the cut
    return store.query(loc, f"SELECT {store.column_list(CASE_FIELDS)}, {samples}, {fastest} FROM cases "
                       "WHERE run_id = ?", [run_id], run_ids=[run_id]).to_pylist()


def _possible_samples(rows: list[dict[str, Any]], spec: str) -> list[dict[str, Any]]:
    """``rows`` less those with a raw sample of 0 ns or less, which no clock gives (the store leaves out rows with
    impossible statistics; the samples are checked here, where they are read): named in one line, never compared."""
    def impossible(row: dict[str, Any]) -> bool:
        return row["fastest_ns"] is not None and row["fastest_ns"] <= 0

    bad = [r["case_key"] for r in rows if impossible(r)]
    if bad:
        print(f"bench compare: {spec}: left out {len(bad)} case row(s) with a raw sample of 0 ns or less (planted or "
              f"corrupt): {'; '.join(bad[:5])}" + (f"; and {len(bad) - 5} more" if len(bad) > 5 else ""),
              file=sys.stderr)
    return [r for r in rows if not impossible(r)]


def load_side(spec: str, results: Location, max_samples: int = MAX_SAMPLES) -> Side:
    loc, run_id = resolve(spec, results)
    cases: dict[str, dict[str, Any]] = {}
    rows = _possible_samples(_case_rows(loc, run_id, max_samples), spec)
    for row in sorted(rows, key=lambda r: str(r["timestamp"])):
        cases[row["case_key"]] = row  # the latest row per case key
    rows = store.query(loc, "SELECT * FROM runs WHERE run_id = ?", [run_id], run_ids=[run_id]).to_pylist()
    ops = store.query(loc, "SELECT case_key, node, op_type, median_ms FROM ops WHERE run_id = ?", [run_id],
                      run_ids=[run_id]).to_pylist()
    return Side(spec, run_id, cases, rows[0] if rows else {}, ops)


# --- environment -----------------------------------------------------------------------------------------

def _packages(env: dict[str, Any]) -> dict[str, str]:
    try:
        packages = json.loads(env.get("packages") or "{}")
    except ValueError:
        return {}
    return {str(k).lower(): str(v) for k, v in packages.items()} if isinstance(packages, dict) else {}


def runtime_version(row: dict[str, Any], env: dict[str, Any]) -> str | None:
    """The case's runtime version: the runs table's package entry named like the runner, else the row's."""
    return _packages(env).get(str(row.get("runner")).lower()) or row.get("runner_version")


def machine_differences(base: Side, new: Side) -> list[str]:
    out = []
    for key in ("machine_id", "cpu_model"):
        b, n = base.env.get(key), new.env.get(key)
        if b != n:
            out.append(f"{key}: {b} → {n}")
    return out


def package_differences(base: Side, new: Side) -> list[str]:
    b, n = _packages(base.env), _packages(new.env)
    return [f"{k}: {b.get(k)} → {n.get(k)}" for k in sorted(set(b) | set(n)) if b.get(k) != n.get(k)]


def _rank_test_inputs(base: Side, new: Side) -> dict[str, tuple[list, list]]:
    """The samples of every case that compare_case will rank-test (both sides good, enough samples)."""
    out = {}
    for key in set(base.cases) & set(new.cases):
        b, n = base.cases[key], new.cases[key]
        if ran_correctly(b) and ran_correctly(n) and min(len(b.get("samples") or ()), len(n.get("samples") or ())) >= 3:
            out[key] = (b["samples"], n["samples"])
    return out


def _model_changed(b: dict[str, Any], n: dict[str, Any]) -> list[str]:
    """Same case key, other model bytes (a user's file edited under the same name): not the same benchmark."""
    sb, sn = b.get("model_sha256"), n.get("model_sha256")
    return [f"model {b.get('model')} changed (sha256 {sb[:12]} → {sn[:12]})"] if sb and sn and sb != sn else []


def emulation_notes(base: Side, new: Side) -> list[str]:
    """Why a run's timings cannot be compared: it ran under emulation, so they time the emulator, not the chip."""
    return [f"the {name} run was emulated ({side.env.get('emulator') or 'user-mode emulation'}): its timings "
            "measure the emulator, not the chip, and are never compared"
            for name, side in (("base", base), ("new", new)) if side.env.get("emulated")]


def software_note(b: dict[str, Any], n: dict[str, Any]) -> str | None:
    """Why a case is not compared: a side ran on a software device, so its timings are a CPU's doing a GPU's work."""
    devices = sorted({str(r["software_device"]) for r in (b, n) if r.get("software_device")})
    if not devices:
        return None
    return (f"ran on a software device ({', '.join(devices)}): a functional check, whose timings say nothing of a "
            "GPU; never compared")


def _times(ratio: float) -> str:
    return f"{ratio:.3g}x"


def version_note(change: Change) -> str:
    """The runtime version change as the likely cause of what the case did, e.g. "onnxruntime 1.32.0 → 1.33.0:
    3.1x slower"."""
    if change.status == "regressed" and change.change is not None:
        return f"{change.cause}: {_times(1 + change.change)} slower"
    if change.status == "improved" and change.change is not None and change.change > -1:
        return f"{change.cause}: {_times(1 / (1 + change.change))} faster"
    return change.cause


def compare(base: Side, new: Side, threshold: Threshold, allow_env_diff: bool = False) -> Comparison:
    machine = machine_differences(base, new)
    emulated = emulation_notes(base, new)
    notes = emulated + machine + package_differences(base, new)
    p_values = {} if emulated else rank_test_p_values(_rank_test_inputs(base, new))  # batched: see its doc
    changes = []
    for key in sorted(set(base.cases) | set(new.cases)):
        b, n = base.cases.get(key), new.cases.get(key)
        if b is None or n is None:
            changes.append(Change(key, "new" if b is None else "missing", b.get("median_ms") if b else None,
                                  n.get("median_ms") if n else None, new_row=n))
            continue
        if emulated:  # not even with --allow-env-diff: there is no chip's speed to compare
            changes.append(Change(key, "emulated", b.get("median_ms"), n.get("median_ms"), note=emulated[0],
                                  new_row=n))
            continue
        if software := software_note(b, n):  # not even with --allow-env-diff, as for emulation
            changes.append(Change(key, "software", b.get("median_ms"), n.get("median_ms"), note=software, new_row=n))
            continue
        differs = machine + _model_changed(b, n)  # timings of another benchmark: not comparable
        if differs and not allow_env_diff:
            changes.append(Change(key, "env_differs", b.get("median_ms"), n.get("median_ms"),
                                  note="; ".join(differs), new_row=n))
            continue
        change = compare_case(key, b, n, threshold.fraction, p_value=p_values.get(key))
        rb, rn = runtime_version(b, base.env), runtime_version(n, new.env)
        if rb != rn:  # an upgrade is compared: the night it regresses is the night the gate is for
            change.cause = f"{b.get('runner')} {rb} → {rn}"
        parts = [version_note(change) if change.cause else "", change.note,
                 "env differs: " + "; ".join(differs) if differs else ""]
        change.note = "; ".join(filter(None, parts))
        changes.append(change)
    changes.sort(key=lambda c: (ORDER.index(c.status), -(abs(c.change) if c.change is not None else 0), c.case_key))
    return Comparison(base, new, threshold, changes, notes)


# --- output ----------------------------------------------------------------------------------------------

def _pct(x: float | None) -> str:
    return "" if x is None else f"{x:+.1%}"


def markdown(c: Comparison) -> str:
    from bench.report.summary import cell

    counts = ", ".join(f"{k} {v}" for k, v in c.counts().items()) or "no cases"
    lines = [f"## bench compare: {cell(c.base.run_id)} → {cell(c.new.run_id)}", "",
             f"Threshold {c.threshold}, 95% bootstrap CI of the median change, Mann-Whitney p < {ALPHA}. "
             f"**{counts}**.", ""]
    if c.env_notes:
        lines += ["Environment differs: " + "; ".join(cell(n) for n in c.env_notes), ""]
    lines += ["| case | status | base ms | new ms | change | 95% CI | p | note |", "|---|---|---|---|---|---|---|---|"]
    for ch in c.changes[:MAX_MARKDOWN_ROWS]:
        ci = f"[{_pct(ch.ci_low)}, {_pct(ch.ci_high)}]" if ch.ci_low is not None else ""
        p = f"{ch.p_value:.2g}" if ch.p_value is not None else ""
        values = (ch.case_key, f"**{ch.status}**" if ch.status in FAILING_STATUSES else ch.status,
                  _ms(ch.base_ms), _ms(ch.new_ms), _pct(ch.change), ci, p, ch.note)
        lines.append("| " + " | ".join(v if v.startswith("**") else cell(v) for v in values) + " |")
    if len(c.changes) > MAX_MARKDOWN_ROWS:
        lines.append(f"\n_…and {len(c.changes) - MAX_MARKDOWN_ROWS} more cases (the least changed)._")
    return "\n".join(lines + _moved_ops(c)) + "\n"


def _moved_ops(c: Comparison) -> list[str]:
    """Where both runs profiled a case (--profile): the ops whose median moved most, by milliseconds."""
    from bench.report.ops import moved_ops
    from bench.report.summary import cell, md_table

    moved = moved_ops(c.base.ops, c.new.ops)
    if not moved.rows:
        return []
    rows = [(key, node, op, _ms(b), _ms(n), _ms(d), change) for key, node, op, b, n, d, change in moved.rows]
    return ["", "### Ops that moved most (per-op profiles of both runs)", "",
            cell("Each runtime's own profiler, median over its runs after the timed loop: where to look, not a "
                 "judged regression."), "",
            *md_table(moved.columns, rows, "ops")]


def _ms(x: float | None) -> str:
    return "" if x is None else f"{x:.4g}"


def benchmark_json(c: Comparison) -> list[dict[str, Any]]:
    """NEW's medians in github-action-benchmark's ``customSmallerIsBetter`` format."""
    out = []
    for ch in c.changes:
        row = ch.new_row or {}
        if row.get("status") != Status.OK or row.get("median_ms") is None:
            continue
        entry: dict[str, Any] = {"name": ch.case_key, "unit": "ms", "value": row["median_ms"]}
        lo, hi = row.get("median_ci_low_ms"), row.get("median_ci_high_ms")
        if lo is not None and hi is not None:
            entry["range"] = f"±{(hi - lo) / 2:.4g}"
        extra = [ch.status, f"change {_pct(ch.change)}" if ch.change is not None else "",
                 f"CI [{_pct(ch.ci_low)}, {_pct(ch.ci_high)}]" if ch.ci_low is not None else "",
                 f"p={ch.p_value:.2g}" if ch.p_value is not None else "", ch.note]
        entry["extra"] = "; ".join(e for e in extra if e)
        out.append(entry)
    return out


def run(base: str, new: str, results: Location, threshold: Threshold, markdown_file: Path | None = None,
        json_file: Path | None = None, allow_env_diff: bool = False) -> int:
    """The command: compare, print or write the table and the JSON; 1 if anything regressed or broke, or if
    nothing could be compared (one line on stderr says why)."""
    c = compare_and_write(base, new, results, threshold, markdown_file, json_file, allow_env_diff)
    return 1 if c.failed or c.not_compared() else 0


def compare_and_write(base: str, new: str, results: Location, threshold: Threshold, markdown_file: Path | None,
                      json_file: Path | None, allow_env_diff: bool) -> Comparison:
    c = compare(load_side(base, results), load_side(new, results), threshold, allow_env_diff)
    if c.env_notes:
        print("bench compare: environment differs between the runs:", file=sys.stderr)
        for note in c.env_notes:
            print(f"  {printable(note)}", file=sys.stderr)
    skipped = c.counts().get("env_differs", 0)
    if skipped:
        print(f"{'  ' if c.env_notes else 'bench compare: '}{skipped} cases not compared (other machine or model "
              "bytes); pass --allow-env-diff to compare them anyway", file=sys.stderr)
    text = markdown(c)
    if markdown_file:
        markdown_file.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    if json_file:
        json_file.write_text(json.dumps(benchmark_json(c), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    if why := c.not_compared():
        print(f"bench compare: {why}", file=sys.stderr)
    return c


# --- one run's releases side by side (the version axis) ---------------------------------------------------

def _release_order(release: str) -> tuple:
    """Releases oldest first: PEP 440 order where packaging reads them, else numbers then text."""
    try:
        from packaging.version import Version

        return (0, Version(release))
    except Exception:  # packaging missing, or a release it cannot read
        return (1, tuple(int(p) if p.isdigit() else p for p in re.split(r"[.+-]", release)))


def version_sides(spec: str | None, results: Location, max_samples: int = MAX_SAMPLES) -> list[tuple[Side, Side]]:
    """One run's cases on each release the version axis ran, per runner, each release against the one before it
    (oldest first): two Sides whose cases are keyed without the release, so that the run-to-run statistics judge
    them. The rows' read-back versions name the change (``runtime_version``: no runs-table packages here)."""
    loc, run_id = resolve(spec, results) if spec else (results, _latest_run(results))
    by_release: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for row in sorted(_possible_samples(_case_rows(loc, run_id, max_samples), spec or run_id),
                      key=lambda r: str(r["timestamp"])):
        if release := row.get("runtime_version_requested"):
            key = str(row["case_key"]).removesuffix(version_suffix(release))
            by_release.setdefault((row["runner"], release), {})[key] = row
    pairs = []
    for runner in sorted({r for r, _ in by_release}):
        releases = sorted((v for r, v in by_release if r == runner), key=_release_order)
        for older, newer in itertools.pairwise(releases):
            pairs.append((Side(f"{runner} {older}", run_id, by_release[runner, older], {}),
                          Side(f"{runner} {newer}", run_id, by_release[runner, newer], {})))
    if not pairs:
        raise UserError(f"run {run_id}: no runner ran two releases (bench run --versions onnxruntime==A,B): no "
                        "version to compare")
    return pairs


def _latest_run(results: Location) -> str:
    runs = _runs(results) if results.is_dir() or store.exists(results) else []
    if not runs:
        raise UserError(f"no runs in {results}")
    return runs[-1]["run_id"]


def by_version(spec: str | None, results: Location, threshold: Threshold, markdown_file: Path | None) -> int:
    """``bench compare --by version [RUN]``: each release against the one before it in one run, ranked with the
    same statistics as two runs; exit code 1 if a newer release regressed or broke a case, or if nothing could be
    compared."""
    comparisons = [compare(base, new, threshold) for base, new in version_sides(spec, results)]
    text = "\n".join(markdown(c).replace(f"{c.base.run_id} → {c.new.run_id}", f"{c.base.label} → {c.new.label} "
                                         f"(run {c.new.run_id})", 1) for c in comparisons)
    if markdown_file:
        markdown_file.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    for c in comparisons:
        if why := c.not_compared():
            print(f"bench compare: {c.base.label} → {c.new.label}: {why}", file=sys.stderr)
    if all(c.not_compared() for c in comparisons):
        return 1
    return 1 if any(c.failed for c in comparisons) else 0


def _pair_file(folder: Path, pair: dict[str, Any]) -> Path:
    name = f"{pair['machine_label'] or 'unlabelled'}-{pair['suite']}-{pair['machine_id']}"
    return folder / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.md"


def each_machine(results: Location, threshold: Threshold, folder: Path, allow_env_diff: bool = False) -> int:
    """Every machine's latest complete run of each suite against its previous one (never another machine's), one
    markdown file per pair in ``folder``; 1 if any pair regressed, else 2 if any could not be compared (nothing in
    it was compared, or it could not be read), else 0. A pair whose regressions ran across a runtime upgrade
    names it on its line."""
    pairs = store.previous_and_latest(results)
    if not pairs:
        print("bench compare: no machine has two complete runs of one suite yet: nothing to compare")
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    codes = []
    for pair in pairs:
        what = printable(f"{pair['machine_label'] or 'unlabelled'} {pair['suite']} ({pair['machine_id']})")
        try:
            c = compare_and_write(pair["base"], pair["new"], results, threshold, _pair_file(folder, pair), None,
                                  allow_env_diff)
            code = 1 if c.failed else 2 if c.not_compared() else 0
            causes = f" (likely cause: {'; '.join(c.causes())})" if c.failed and c.causes() else ""
        except UserError as exc:
            print(f"bench compare: {what}: {printable(str(exc))}", file=sys.stderr)
            code, causes = 2, ""
        verdict = ("ok", "REGRESSED", "not compared")[code]
        print(f"{what}: {pair['base']} -> {pair['new']}: {verdict}{printable(causes)}")
        codes.append(code)
    return 1 if 1 in codes else max(codes)


@dataclass(frozen=True)
class CompareOptions:
    """``bench compare``'s flags, parsed (bench.cli, bench.options)."""

    base: str | None
    new: str | None
    results: Location
    threshold: Threshold
    each_machine: bool = False
    markdown_dir: Path = Path("compare")
    markdown: Path | None = None
    json: Path | None = None
    allow_env_diff: bool = False
    by: str = "run"  # or "version": one run's releases side by side (BASE, optional, names the run)


def command(o: CompareOptions) -> int:
    """``bench compare``: exit code 0, or 1 on a regression."""
    if o.by == "version":
        if o.new or o.each_machine:
            raise UserError("bench compare --by version takes one run (RUN_ID or a results folder; default: the "
                            "latest run), not NEW or --each-machine")
        return by_version(o.base, o.results, o.threshold, o.markdown)
    if o.each_machine == bool(o.base or o.new) or bool(o.base) != bool(o.new):
        raise UserError("bench compare takes BASE and NEW, or --each-machine without them")
    try:
        if o.base and o.new:
            return run(o.base, o.new, o.results, o.threshold, o.markdown, o.json, o.allow_env_diff)
        return each_machine(o.results, o.threshold, o.markdown_dir, o.allow_env_diff)
    except OSError as exc:
        raise UserError(f"cannot write {exc.filename}: {exc.strerror or exc}") from None
