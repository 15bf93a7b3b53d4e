"""The static page: one HTML file, inline CSS, inline SVG, a few lines of inline JavaScript, no network.

Every string that came from results (model names, paths, error messages) goes through :func:`esc`; SVG
comes from matplotlib, which escapes its text. A Content-Security-Policy allows no fetches at all and only
the one script whose hash it names, so even a string that slipped through could not run.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bench.report.views import CATEGORIES, CATEGORY_CSS, Table

if TYPE_CHECKING:
    from bench.report.charts import Chart
    from bench.report.matrix import Cell, Matrix

MAX_TABLE_ROWS = 2000


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


@dataclass
class Section:
    """One ``<figure id=...>``: charts and/or an HTML body, or a "no data" note when it has neither."""

    id: str
    title: str
    caption: str
    charts: Sequence[Chart] = ()
    body: str = ""  # trusted HTML, built here from escaped parts
    csv: Sequence[str] = ()  # CSV file names beside the page
    nodata: str = ""  # why there is nothing to show


def fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "NO", None: ""}[value]
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    return str(value)


def case_anchor(*identity: Any) -> str:
    """The id of a case's row in the All cases table (its machine and case key): what a scenario pick links to."""
    return "case-" + hashlib.sha256("\0".join(map(str, identity)).encode()).hexdigest()[:16]


def table_html(table: Table, max_rows: int = MAX_TABLE_ROWS, row_class: str | None = None,
               row_id: tuple[str, ...] = (), links: Mapping[str, tuple[str, ...]] | None = None) -> str:
    """A sortable table; numbers carry ``data-v`` so sorting is numeric. ``row_class`` names a column whose
    value (a category) becomes the row's CSS class; ``row_id`` the columns (machine, case key) that give each row
    its anchor; ``links`` maps a column to the columns naming the row its cells link to."""
    head = "".join(f"<th>{esc(c)}</th>" for c in table.columns)
    lines = []
    cls_index = table.columns.index(row_class) if row_class else None
    id_index = [table.columns.index(c) for c in row_id]
    link_index = {table.columns.index(c): [table.columns.index(k) for k in ks] for c, ks in (links or {}).items()}
    for row in table.rows[:max_rows]:
        cells = "".join(_linked(v, [row[k] for k in link_index[i]]) if i in link_index else _td(v)
                        for i, v in enumerate(row))
        css = f' class="c-{CATEGORY_CSS.get(row[cls_index], "other")}"' if cls_index is not None else ""
        anchor = f' id="{case_anchor(*(row[i] for i in id_index))}"' if id_index else ""
        lines.append(f"<tr{anchor}{css}>{cells}</tr>")
    more = len(table.rows) - max_rows
    note = f'<p class="note">{more} more rows in {esc(table.name)}.csv</p>' if more > 0 else ""
    return (f'<div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(lines)}</tbody></table></div>{note}")


def _td(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return f'<td class="num" data-v="{value!r}">{esc(fmt(value))}</td>'
    return f"<td>{esc(fmt(value))}</td>"


def _linked(value: Any, identity: list[Any]) -> str:
    if value is None or identity[-1] is None:  # no runner-up: nothing to link to
        return _td(value)
    return f'<td><a href="#{case_anchor(*identity)}">{esc(fmt(value))}</a></td>'


def coverage_html(table: Table) -> str:
    """Model rows x (runner, precision, device) columns; each cell its worst category, details on hover."""
    records = table.records()
    cols = sorted({(r["runner"] or "?", r["precision"] or "?", r["device"] or "?") for r in records})
    models = list(dict.fromkeys(r["model"] or "?" for r in records))
    cells = {(r["model"] or "?", r["runner"] or "?", r["precision"] or "?", r["device"] or "?"): r for r in records}
    devices = {c[2] for c in cols}
    head = "".join(f"<th>{esc(r)}<br>{esc(p)}{'<br>' + esc(d) if len(devices) > 1 else ''}</th>" for r, p, d in cols)
    body = []
    for m in models:
        tds = []
        for col in cols:
            r = cells.get((m, *col))
            if r is None:
                tds.append('<td class="c-none">not run</td>')
                continue
            mixed = f" ({r['ok']}/{r['cases']} ok)" if 0 < r["ok"] < r["cases"] else ""
            title = esc(f"{r['categories']}{'; ' + r['detail'] if r['detail'] else ''}")
            tds.append(f'<td class="c-{CATEGORY_CSS.get(r["category"], "other")}" title="{title}">'
                       f"{esc(r['category'])}{esc(mixed)}</td>")
        body.append(f"<tr><th>{esc(m)}</th>{''.join(tds)}</tr>")
    legend = " ".join(f'<span class="c-{css}">{esc(name)}</span>' for name, css in CATEGORIES)
    return (f'<div class="scroll"><table class="matrix"><thead><tr><th>model</th>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div><p class=\"legend\">{legend}</p>")


def matrix_html(matrices: Sequence[Matrix], max_rows: int = MAX_TABLE_ROWS) -> str:
    """One table per machine, headed by its name: model rows x scenario columns, each pick coloured by its runtime
    (a legend below) and linked to its case in All cases; a tie outlined and said, an empty cell saying why. At
    most ``max_rows`` model rows in all (a fleet's page stays loadable; matrix.csv has every one)."""
    from bench.report.matrix import SHORT, colour

    parts = []
    left = max_rows
    for m in matrices:
        if left <= 0:
            more = sum(len(x.rows) for x in matrices) - max_rows
            parts.append(f'<p class="note">{more} more rows in matrix.csv</p>')
            break
        head = "".join(f"<th>{esc(SHORT.get(s, s))}</th>" for s in m.scenarios)
        body = "".join(f'<tr><th scope="row">{esc(model)}</th>{"".join(_matrix_cell(m.machine, c) for c in cells)}</tr>'
                       for model, cells in m.rows[:left])
        left -= len(m.rows)
        parts.append(f'<section class="machine"><h3>{esc(m.title)}</h3><table class="answer"><thead><tr>'
                     f"<th>model</th>{head}</tr></thead><tbody>{body}</tbody></table></section>")
    runtimes = sorted({c.runtime for m in matrices for _, cells in m.rows for c in cells if not c.empty})
    legend = " ".join(f'<span style="background:{colour(r)}">{esc(r)}</span>' for r in runtimes)
    return "".join(parts) + (f'<p class="legend">{legend} <span class="tie">tie: within noise</span></p>'
                             if runtimes else "")


def _matrix_cell(machine: str, cell: Cell) -> str:
    from bench.report.matrix import colour, lead_text, value_text

    if cell.empty:
        return f'<td class="empty">{esc(cell.empty)}</td>'
    who = f"<b>{esc(cell.runner)}</b> {esc(cell.precision)}" + (f" {esc(cell.detail)}" if cell.detail else "")
    if cell.case_key is not None:
        who = f'<a href="#{case_anchor(machine, cell.case_key)}">{who}</a>'
    lead = lead_text(cell)
    tie = " tie" if cell.tie else ""
    return (f'<td class="pick{tie}" style="background:{colour(cell.runtime)}">{who}'
            f'<span class="value">{esc(value_text(cell))}</span>'
            + (f'<span class="lead">{esc(lead)}</span>' if lead else "") + "</td>")


def section_html(s: Section) -> str:
    links = " ".join(f'<a href="{esc(name)}">{esc(name)}</a>' for name in s.csv)
    parts = [f'<figure id="{esc(s.id)}"><figcaption><h2>{esc(s.title)}</h2><p>{esc(s.caption)}'
             f"{' Data: ' + links if links else ''}</p></figcaption>"]
    if not s.charts and not s.body:
        parts.append(f'<p class="nodata">no data for {esc(s.title.lower())}: {esc(s.nodata or "nothing to show")}</p>')
    grid = " grid" if len(s.charts) > 1 else ""
    parts.append(f'<div class="charts{grid}">')
    parts += [f'<div class="chart" title="{esc(c.title)}">{c.svg}</div>' for c in s.charts]
    parts.append("</div>")
    parts.append(s.body)
    parts.append("</figure>")
    return "\n".join(parts)


SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0], up = th.getAttribute("aria-sort") !== "ascending";
      var rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[col];
        if (!cell) { return ""; }
        var v = cell.getAttribute("data-v");
        return v === null ? cell.textContent : parseFloat(v);
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (typeof x !== typeof y) { return typeof x === "number" ? -1 : 1; }
        return (x < y ? -1 : x > y ? 1 : 0) * (up ? 1 : -1);
      });
      rows.forEach(function (row) { body.appendChild(row); });
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", up ? "ascending" : "descending");
    });
  });
});
var filter = document.getElementById("filter");
if (filter) {
  filter.addEventListener("input", function () {
    var words = filter.value.toLowerCase().split(/\\s+/).filter(Boolean);
    document.querySelectorAll("#fig-cases tbody tr").forEach(function (row) {
      var text = row.textContent.toLowerCase();
      row.hidden = !words.every(function (w) { return text.indexOf(w) >= 0; });
    });
  });
}
"""

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 1em; color: #222; }
h1 { margin-bottom: 0; } h2 { margin: 0; font-size: 1.2em; }
nav a { margin-right: 0.8em; }
figure { margin: 2em 0; padding-top: 0.5em; border-top: 1px solid #ddd; }
figcaption p { margin: 0.2em 0 0.8em; color: #555; }
.chart svg { max-width: 100%; height: auto; }
.charts.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 0.5em; }
.scroll { overflow-x: auto; max-height: 40em; }
table { border-collapse: collapse; font-size: 12px; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; position: sticky; top: 0; }
table.sortable th { cursor: pointer; }
th[aria-sort="ascending"]::after { content: " ▲"; } th[aria-sort="descending"]::after { content: " ▼"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.nodata, .note { color: #777; font-style: italic; }
.c-ok { background: #d9f2d9; } .c-unchecked { background: #eef7d0; } .c-wrong { background: #f8b4b4; }
.c-crash, .c-oom, .c-error, .c-timeout { background: #fcd9b6; } .c-convert { background: #fff0a8; }
.c-na { background: #e8e8e8; } .c-none, .c-other { background: #fff; color: #999; }
.legend span { padding: 1px 6px; margin-right: 4px; border: 1px solid #ddd; }
table.answer { table-layout: fixed; width: 100%; font-size: 13px; margin-bottom: 0.5em; }
table.answer th, table.answer td { overflow-wrap: anywhere; padding: 4px 6px; }
table.answer tbody th { background: #fafafa; position: static; }
table.answer td.pick span { display: block; } table.answer td.pick a { color: inherit; }
table.answer .value { font-variant-numeric: tabular-nums; } table.answer .lead { color: #444; font-size: 12px; }
table.answer td.tie { outline: 2px dashed #777; outline-offset: -3px; } .legend .tie { border: 2px dashed #777; }
table.answer td.empty { color: #888; font-style: italic; background: #fff; }
section.machine h3 { margin: 0.6em 0 0.3em; font-size: 1.05em; }
#filter { width: 30em; margin-bottom: 0.5em; }
#fig-cases td { white-space: nowrap; } #fig-environment td { min-width: 6em; max-width: 30em; }
"""


def page(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    csp = f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-{digest}'"
    nav = " ".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in sections)
    body = "\n".join(section_html(s) for s in sections)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title><style>{STYLE}</style></head>
<body><header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p><nav>{nav}</nav></header>
<main>
{body}
</main>
<script>{SCRIPT}</script>
</body></html>
"""
