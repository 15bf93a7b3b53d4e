"""What the user sees while a run goes: a live progress bar on a terminal, plain lines elsewhere, then the answer.

Progress counts the cases that execute, with an ETA from those done; the planned-but-impossible ones
(unsupported, unavailable) are written as rows but not printed unless ``verbose``. The run ends with
``bench.report.answer`` (one screen); ``verbose`` adds the full table and every case key.
The bar refreshes only when a case starts or ends: no display thread wakes up beside a timed worker.
When a model's last case has run, its picks are printed at once (``expect``): a long run's first answer comes
with its first model, not at the end.
"""

from __future__ import annotations

import sys
import time
from collections import Counter, defaultdict
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from bench.contract import Status
from bench.text import printable

SKIPPED = (Status.UNSUPPORTED, Status.UNAVAILABLE)


def _loadgen(row: dict[str, Any]) -> str:
    """A server or offline row's result as LoadGen judged it: its QPS, and the bound it held (or why not)."""
    if row.get("loadgen_qps") is None:
        return f"no VALID QPS ({row.get('loadgen_reason')})"
    bound = f" at p99 <= {row['loadgen_p99_bound_ms']:g} ms" if row.get("loadgen_p99_bound_ms") else ""
    return f"{row['loadgen_qps']:.1f} QPS{bound}, LoadGen {'VALID' if row.get('loadgen_valid') else 'INVALID'}"


def _latency(row: dict[str, Any]) -> str:
    if row.get("median_ms") is None:
        return ""
    # throughput: one timed call is a round of items_per_iteration concurrent items, not one request's latency
    per = f" per round of {row.get('items_per_iteration')}" if row.get("scenario") == "throughput" else ""
    return f"{row['median_ms']:.3f} ms{per}"


def _accuracy(row: dict[str, Any]) -> str:
    ok = row.get("accuracy_ok")
    return "" if ok is None else ("ok" if ok else "WRONG")


class Display:
    def __init__(self, total: int, stream=None, verbose: bool = False) -> None:
        """``total``: the cases that will execute (not those the plan already marked impossible)."""
        self.console = Console(file=stream or sys.stdout, highlight=False)
        if not self.console.is_terminal:  # logs and CI: wide enough that the table never wraps
            self.console = Console(file=stream or sys.stdout, highlight=False, width=200)
        self.total = total
        self.done = 0
        self.verbose = verbose
        self.started_at = time.monotonic()
        self.live = self.console.is_terminal
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), console=self.console, auto_refresh=False,
        )
        self.task = self.progress.add_task("", total=total)
        self.left: Counter[str] = Counter()  # per model, its cases still to run (expect)
        self.rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.runs: list[dict[str, Any]] | None = None
        if self.live:
            self.progress.start()

    def expect(self, models: list[str], runs: list[dict[str, Any]] | None) -> None:
        """``models``: the model of every case about to run (skipped ones included); each model's picks are printed
        when its last row arrives. ``runs``: the run's row, as for ``close``. An emulated run's ranks nothing."""
        self.left = Counter(models)
        self.runs = runs
        self.started_at = time.monotonic()  # the ETA from here: what came before (a release's environment) is done

    def recount(self, total: int) -> None:
        """The cases that will execute, after some became unavailable before timing (a release's environment)."""
        self.total = total
        self.progress.update(self.task, total=total)

    def warn_noise(self, warnings: list[str]) -> None:
        for warning in warnings:
            self._say(f"warning: {warning} (numbers may be noisy; --strict refuses to run)")

    def warn(self, warning: str) -> None:
        self._say(f"warning: {warning}")

    def note(self, line: str) -> None:
        """A line about what the run does before its cases (converting ahead of timing, say)."""
        self._print(line)

    def _say(self, line: str) -> None:
        """Every line bench prints: names in it come from model files and may hold terminal escapes."""
        self.console.print(printable(line), markup=False, soft_wrap=True)

    def started(self, key: str) -> None:
        if self.live:
            self.progress.update(self.task, description=printable(key), refresh=True)

    def finished(self, row: dict[str, Any]) -> None:
        self._progress(row)
        self._answer_when_done(row)

    def _progress(self, row: dict[str, Any]) -> None:
        if row["status"] in SKIPPED:  # planned as impossible: a row, not progress
            if self.verbose:
                self._print(f"[skipped] {row['case_key']}  {row['status']}  ({(row.get('error') or '')[:160]})")
            return
        self.done += 1
        result = _loadgen(row) if row.get("loadgen_valid") is not None else _latency(row)
        line = f"[{self.done}/{self.total}] {row['case_key']}  {row['status']}  {result}"
        if row["status"] != Status.OK and row.get("error"):
            line += f"  ({row['error'][:160]})"
        if not self.live and self.done < self.total:
            line += f"  eta {self._eta()}"
        self._print(line)
        if self.live:
            self.progress.update(self.task, advance=1, refresh=True)

    def _answer_when_done(self, row: dict[str, Any]) -> None:
        from bench.report.answer import model_line

        model = str(row["model"])
        if not self.left[model]:  # not expected (expect not called): the answer comes at the end only
            return
        self.rows[model].append(row)
        self.left[model] -= 1
        if not self.left[model] and any(r["status"] not in SKIPPED for r in self.rows[model]):
            self._print(model_line(model, self.rows.pop(model), self.runs))

    def _eta(self) -> str:
        left = (time.monotonic() - self.started_at) / self.done * (self.total - self.done)
        return f"{int(left // 60)}m{int(left % 60):02d}s"

    def _print(self, line: str) -> None:
        console = self.progress.console if self.live else self.console
        console.print(printable(line), markup=False, soft_wrap=True)

    def interrupted(self, run_id: str, results: str, why: str = "interrupted", then: str = "Continue with") -> None:
        """The run stopped before its end (a signal, a full disk): its id, where its rows are, how to finish it."""
        if self.live:
            self.progress.stop()
        self._say(  # one line (soft_wrap): the command must survive a copy from a log
            f"run {run_id} {why} after {self.done} cases; finished rows are in {results}. "
            f"{then}: bench run --resume {run_id} --results {results}"
        )

    def close(self, rows: list[dict[str, Any]], run_id: str, results: str,
              env: dict[str, Any] | None = None) -> None:
        """``env``: the run's environment (its runs row), which names the machine in the closing answer."""
        from bench.report.answer import answer_lines

        if self.live:
            self.progress.stop()
        if self.verbose:
            self._details(rows)
        for line in answer_lines(rows, results, [{**env, "run_id": run_id}] if env else None):
            self._say(line)
        self._say(f"run {run_id}: {len(rows)} rows written to {results}")

    def _details(self, rows: list[dict[str, Any]]) -> None:
        self.console.print(summary_table(rows))
        wrong = [r["case_key"] for r in rows if r.get("accuracy_ok") is False]
        if wrong:
            self._say(f"WRONG OUTPUTS (timings kept, flagged): {', '.join(wrong)}")
        shaky = [r["case_key"] for r in rows if r.get("unstable")]
        if shaky:
            self._say(f"unstable timings (cv > 10% or CI not reached): {', '.join(shaky)}")


def summary_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="cases")
    for name in ("model", "runner", "device", "precision", "batch", "threads", "status", "median", "p99",
                 "items/s", "accuracy"):
        table.add_column(name, justify="right" if name in ("median", "p99", "items/s", "batch", "threads") else "left")
    for r in rows:
        p99 = f"{r['p99_ms']:.3f}" if r.get("p99_ms") is not None else ""
        tput = f"{r['throughput_per_s']:.1f}" if r.get("throughput_per_s") is not None else ""
        table.add_row(*(Text(printable(c)) for c in (  # Text: a name like "[/x]" is not rich markup
            r["model"], r["runner"], r["device"], r["precision"], str(r["batch"]), str(r["threads"]),
            r["status"], _latency(r), p99, tput, _accuracy(r),
        )))
    return table
