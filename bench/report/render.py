"""The report's charts, drawn in two processes where there is much to draw.

matplotlib draws on one core, and drawing was half of a fleet's report (about 50 figures: 12 models x 4 kinds,
whatever the history's length), while DuckDB's reading already uses every core. So above ``PARALLEL_FROM``
table rows a helper process (``python -m bench.report.render``: a fresh interpreter, never a fork of one that
holds DuckDB's threads, and never a re-import of the caller's script as multiprocessing's spawn does) draws
some kinds of chart while this process draws the others. Each chart function gets the same arguments either way
and names its figures itself, so the page is byte for byte the one a single process draws. Should the helper
fail, its charts are drawn here (a bug in one then raises here, with its traceback).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import IO, Any, cast

from bench.report import charts, data, views

PARALLEL_FROM = 5_000  # case and trend rows read; below them, starting a process costs more than it saves
# Drawn by the helper: about half of the drawing time at fleet scale (throughput and latency charts have the
# most artists; Pareto, trend and speedup charts stay here, with the tables and the page).
ELSEWHERE = ("throughput", "latency", "resources", "ecdf")

Job = tuple[Callable[..., list[charts.Chart]], tuple[Any, ...]]


def jobs(d: data.ReportData, t: dict[str, views.Table], baseline: str) -> dict[str, Job]:
    """Every chart kind of the page: its function and arguments (only what it draws: they may cross processes)."""
    colors = charts.runner_colors(c.get("runner") for c in d.cases)
    sampled = [c for c in d.cases if c["case_key"] in d.quantiles]  # the ECDF draws these cases only
    return {
        "latency": (charts.latency_charts, (t["latency"], colors)),
        "speedup": (charts.speedup_chart, (t["speedup"], baseline)),
        "ecdf": (charts.ecdf_charts, (sampled, d.quantiles, colors)),
        "pareto": (charts.pareto_charts, (t["pareto"], colors)),
        "resources": (charts.resources_chart, (t["cold_start_memory"], colors)),
        "throughput": (charts.throughput_charts, (t["throughput_batch"], colors)),
        "trends": (charts.trend_charts, (t["trends"],)),
    }


def _run(todo: dict[str, Job]) -> dict[str, list[charts.Chart]]:
    return {name: fn(*args) for name, (fn, args) in todo.items()}


def helper_for(d: data.ReportData) -> Helper | None:
    """A helper process, started now (its imports then overlap the building of the tables), when the report
    is big enough and there is a second core; else None, and everything is drawn here."""
    if (os.cpu_count() or 1) < 2 or len(d.cases) + len(d.history) < PARALLEL_FROM:
        return None
    return Helper()


def draw(d: data.ReportData, t: dict[str, views.Table], baseline: str, helper: Helper | None = None,
         meanwhile: Callable[[], None] = lambda: None) -> dict[str, list[charts.Chart]]:
    """Chart kind -> its charts, the ``ELSEWHERE`` kinds drawn by ``helper`` where one is given; ``meanwhile`` runs
    after this process's own charts, while the helper may still be drawing (the report writes its CSV files)."""
    todo = jobs(d, t, baseline)
    if helper is None:
        drawn = _run(todo)
        meanwhile()
        return drawn
    away = {name: todo[name] for name in ELSEWHERE}
    helper.send(away)
    here = _run({name: job for name, job in todo.items() if name not in away})
    meanwhile()
    elsewhere = helper.result()
    drawn = elsewhere if elsewhere is not None else _run(away)
    return {name: here[name] if name in here else drawn[name] for name in todo}


class Helper:
    """One helper process: jobs go in pickled on stdin, the charts come back pickled on stdout. A helper never
    sent anything exits at end of input (this process gone, or the helper collected)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.report.render"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        self.stdin, self.stdout = cast(IO[bytes], self.proc.stdin), cast(IO[bytes], self.proc.stdout)  # both PIPE
        self.feeder: threading.Thread | None = None

    def send(self, todo: dict[str, Job]) -> None:
        payload = pickle.dumps(todo, protocol=pickle.HIGHEST_PROTOCOL)
        # fed from a thread: the helper may still be importing matplotlib, and this process has charts of its
        # own to draw meanwhile
        self.feeder = threading.Thread(target=self._feed, args=(payload,), daemon=True)
        self.feeder.start()

    def _feed(self, payload: bytes) -> None:
        try:
            self.stdin.write(payload)
        except OSError:  # it died first; result() says so
            pass
        finally:
            try:
                self.stdin.close()
            except OSError:
                pass

    def result(self) -> dict[str, list[charts.Chart]] | None:
        """The helper's charts, or None (named on stderr) when it failed."""
        with self.stdout:
            out = self.stdout.read()
        code = self.proc.wait()
        if self.feeder is not None:
            self.feeder.join()
        try:
            if code == 0:
                return pickle.loads(out)
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            pass
        print(f"bench report: the chart helper process failed (exit {code}); drawing its charts here",
              file=sys.stderr)
        return None


def _helper_main() -> None:
    """The helper: jobs from stdin, charts to stdout; anything else that writes goes to stderr."""
    out = sys.stdout.buffer
    sys.stdout = sys.stderr
    payload = sys.stdin.buffer.read()
    if not payload:  # started, then not needed (the report failed before its charts): nothing to say
        return
    pickle.dump(_run(pickle.loads(payload)), out, protocol=pickle.HIGHEST_PROTOCOL)
    out.flush()


if __name__ == "__main__":
    _helper_main()
