"""summary.md: a compact markdown digest for a CI step summary, bounded by construction.

It opens with the answer: one matrix per machine (``bench.report.matrix``), at most ``MAX_MACHINES`` of them and
``MAX_ROWS`` model rows in all. Each other section shows at most ``MAX_ROWS`` rows and says how many it left out,
every cell is cut to ``MAX_CELL`` characters and the cross-machine table shows at most ``MAX_MACHINES`` machines, so
the whole file stays far below GitHub's 1 MiB step-summary limit (columns of the ten tables x rows x cell: (9 + 12
+ 3 + MAX_MACHINES + 10 + 7 + 11 + 5 + 4 + 2 + 8) x 40 x 162 < 512 KiB, the matrices' 9 columns being a model's and
up to eight scenarios'; in practice a few kB; the int8 table shows INT8_SHOWN, its CSV every column; the per-op
tables (--profile) two and eight).
"""

from __future__ import annotations

import html
from collections import Counter
from typing import Any

from bench.report.html import fmt
from bench.report.matrix import SHORT, Matrix, cell_text, matrices, not_ranked
from bench.report.scenarios import SHOWN
from bench.report.views import Row, Table, category
from bench.text import printable

MAX_ROWS = 40
# int8 against its own fp32: the speed-up with the task scores, the recipe and the limit beside it (medians in the CSV)
INT8_SHOWN = ("machine", "model", "weights", "config", "runner", "speedup", "int8_accuracy_ok", "task_metric",
              "fp32_task", "int8_task", "recipe", "limited_by")
MAX_CELL = 160
MAX_MACHINES = 8
LIMIT_BYTES = 512 * 1024


def cell(value: Any) -> str:
    """One markdown table cell: no newlines, no pipes, no HTML (GitHub renders some), no terminal escapes, at most
    MAX_CELL chars."""
    text = printable(" ".join(fmt(value).split()))
    text = text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"
    return html.escape(text, quote=False).replace("|", "\\|").replace("`", "'")


def md_table(columns: tuple[str, ...], rows: list[tuple], what: str, limit: int = MAX_ROWS) -> list[str]:
    if not rows:
        return [f"_No {what}._", ""]
    lines = ["| " + " | ".join(cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows[:limit]]
    if len(rows) > limit:
        lines.append(f"\n_…and {len(rows) - limit} more {what} (first {limit} shown; see the report's CSV)._")
    return lines + [""]


def matrices_md(made: list[Matrix], not_ranked: str = "") -> list[str]:
    """The answer first: per machine (named by what it is), a row per model and a column per scenario;
    ``not_ranked``: why some rows are in no matrix."""
    lines = ["### What to deploy, per machine", "",
             "Each cell: the pick (runner, precision), its value and its lead over the best of another runtime "
             "('tie with': within noise); an empty cell says why in brackets. Only rows that matched the fp32 "
             "reference compete. " + cell(not_ranked), ""]
    left = MAX_ROWS  # model rows over all the matrices together: the bound above
    for m in made[:MAX_MACHINES]:
        rows = [(model, *(cell_text(c) for c in cells)) for model, cells in m.rows]
        lines += [f"#### {cell(m.title)}", ""]
        lines += md_table(("model", *(SHORT.get(s, s) for s in m.scenarios)), rows, "models", max(left, 0))
        left -= len(rows)
    if len(made) > MAX_MACHINES:
        lines += [f"_…and {len(made) - MAX_MACHINES} more machines (see the report's matrix.csv)._", ""]
    return lines


def _margin(r: Row) -> str:
    if r["runner_up"] is None:
        return "only runner"
    noise = " (within noise)" if r["within_noise"] else ""
    return f"{r['margin_pct']:+.1f}%{noise}"




def summary_markdown(cases: list[Row], winners: Table, wrong: Table, failed: Table, selection: str,
                     by_precision: Table, speedup: Table, scenarios: Table, cross_machine: Table,
                     over_eager: Table | None = None, runs: list[Row] | None = None,
                     op_tables: tuple[Table, Table] | None = None) -> str:
    """``runs``: the runs rows, which name each machine's matrix by its CPU, GPUs and label (else by its key)."""
    counts = Counter(category(c) for c in cases)
    lines = ["## bench results", "", cell(selection), "",
             f"**{len(cases)} cases**: " + ", ".join(f"{k} {v}" for k, v in counts.most_common()), ""]
    lines += matrices_md(matrices(scenarios, cases, runs), not_ranked(scenarios))
    lines += ["### Every scenario pick, with its runner-up", "", cell(scenarios.note), ""]
    shown = scenarios.select((*SHOWN, "pick_case_key"))
    lines += md_table(shown.columns, shown.rows, "scenario picks")
    if cross_machine.rows:
        lines += ["### Which runtime for which machine", ""]
        columns = cross_machine.columns  # model, scenario, one per machine, same_everywhere
        shown = cross_machine.select((*columns[:2 + MAX_MACHINES][:len(columns) - 1], columns[-1]))
        lines += md_table(shown.columns, shown.rows, "cross-machine picks")
    lines += ["### Fastest per model and configuration", "",
              "Fastest case that ran **and** matched the fp32 reference, against the fastest of another runner.",
              ""]
    rows = [(r["machine"], r["model"], r["config"], r["winner"], r["median_ms"], r["runner_up"],
             r["runner_up_median_ms"], _margin(r), r["like_for_like"], r["wrong_but_faster"])
            for r in winners.records()]
    lines += md_table(("machine", "model", "config", "winner", "median ms", "runner-up", "runner-up ms", "margin",
                       "same precision", "faster but wrong"), rows, "winners")
    for table, title, what in ((by_precision, "Fastest per precision", "precisions"),
                               (speedup.select(INT8_SHOWN), "int8 against each runtime's own fp32", "int8 speed-ups")):
        lines += [f"### {title}", ""] + md_table(table.columns, table.rows, what)
    if over_eager is not None and over_eager.rows:
        lines += ["### Why not just run it in PyTorch? Speed-up over PyTorch eager fp32", ""]
        lines += md_table(over_eager.columns, over_eager.rows, "speed-ups over eager")
    if op_tables is not None and op_tables[1].rows:
        families, top = op_tables
        lines += ["### Where the time goes (--profile)", "", cell(top.note) if top.note else ""]
        lines += md_table(families.select(("model", "shares")).columns, families.select(("model", "shares")).rows,
                          "op families")
        shown = top.select(("case", "rank", "node", "op_type", "kernel", "median_ms", "share", "profile_coverage"))
        lines += md_table(shown.columns, shown.rows, "profiled ops")
    lines += ["### Wrong outputs", ""] + md_table(wrong.columns, wrong.rows, "wrong outputs")
    lines += ["### Failed cases", ""] + md_table(failed.columns, failed.rows, "failed cases")
    text = "\n".join(lines) + "\n"
    assert len(text.encode()) < LIMIT_BYTES, "summary bound broken: raise MAX_ROWS/MAX_CELL arithmetic"
    return text
