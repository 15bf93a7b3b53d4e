"""Charts as inline SVG strings, drawn with matplotlib's object API (no pyplot, no global state).

Each ``*_charts`` function takes the :class:`~bench.report.views.Table` the chart shows and returns a list of
``Chart`` (a title and an SVG string), one per model for small multiples; an empty list means "no data".
Text is written as SVG ``<text>`` (``svg.fonttype = none``), which matplotlib XML-escapes, and mathtext is
off, so a model called ``$x$`` or ``<b>`` is drawn as those characters.
"""

from __future__ import annotations

import functools
import io
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_mixed import MixedModeRenderer
from matplotlib.backends.backend_svg import RendererSVG
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from bench.report.views import Row, Table
from bench.text import printable

MAX_MODELS = 24  # small multiples per chart
MAX_BARS = 30  # bars (or lines) per model
MAX_HEATMAP_ROWS = 60
MAX_TREND_TICKS = 8  # labelled runs on a trend chart's axis (each label: date, time and commit)
WIDTH = 6.4  # inches: two small multiples side by side on a wide screen
WIDE_SPAN = 30.0  # max / min above which an axis goes log
RC: dict[Any, Any] = {  # matplotlib types its keys as a Literal of every rc name
    "svg.fonttype": "none", "text.parse_math": False, "font.size": 9, "axes.titlesize": 10,
    "axes.spines.top": False, "axes.spines.right": False, "svg.hashsalt": "bench-report",
}
WRONG = "#d62728"
# Beside the axes, not loc='best': that tries every corner against every point (the slowest step of a fleet's
# charts), and a legend of up to 30 series would cover the lines anyway.
LEGEND_BESIDE: dict[str, Any] = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "borderaxespad": 0.0}


@dataclass(frozen=True)
class Chart:
    title: str
    svg: str


PAD_INCHES = 0.05
_SVG_SIZE = re.compile(r'width="[^"]*pt" height="[^"]*pt" viewBox="[^"]*"')


def _draw_svg(fig: Figure) -> str:
    """Draw ``fig`` to SVG once, then fit the canvas to what was drawn, as ``savefig(bbox_inches="tight")`` would
    (its figure is laid out as drawn; tight savefig draws it twice, once only to measure: half a fleet report's
    chart time). The extents are measured with the renderer that drew, whose text layouts are then cached."""
    _printable_text(fig)
    buf = io.StringIO()
    width, height = fig.get_size_inches()
    image_dpi, fig.dpi = fig.dpi, 72  # as FigureCanvasSVG.print_svg: SVG units are points
    renderer = MixedModeRenderer(fig, width, height, image_dpi,
                                 RendererSVG(width * 72, height * 72, buf, image_dpi=image_dpi,
                                             metadata={"Date": None}))
    fig.draw(renderer)  # type: ignore[arg-type]  # matplotlib's stubs omit that a MixedModeRenderer is one
    box = fig.get_tightbbox(renderer).padded(PAD_INCHES)  # type: ignore[arg-type]
    renderer.finalize()
    x, y, w, h = (72 * v for v in (box.x0, height - box.y1, box.width, box.height))  # SVG's y runs down
    size = f'width="{w:.6g}pt" height="{h:.6g}pt" viewBox="{x:.6g} {y:.6g} {w:.6g} {h:.6g}"'
    return _SVG_SIZE.sub(size, buf.getvalue(), count=1)


def _printable_text(fig: Figure) -> None:
    """Every title, label, legend entry and annotation with its control characters escaped: names come from model
    files, and matplotlib warns about a missing glyph with the character raw on the terminal (an ESC in a name).
    Tick labels are made again at each draw: those that are names go through ``_names`` where they are set."""
    for text in fig.findobj(Text):
        text.set_text(printable(text.get_text()))


def _names(labels: Iterable[str]) -> list[str]:
    """Tick labels that are names (models, runners, runs), escaped as ``_printable_text`` does the other texts."""
    return [printable(label) for label in labels]


def to_svg(fig: Figure, chart_id: str) -> str:
    """The figure as an SVG element for inlining: no XML prolog, no date, ids unique per chart."""
    with matplotlib.rc_context({**RC, "svg.hashsalt": chart_id}):
        text = _draw_svg(fig)
    text = text[text.index("<svg"):]
    # Prefix every id and reference so charts on one page never clash. Only inside tags: matplotlib escapes
    # < and > in text and " in attributes, so a user's string can neither open a tag nor fake an id="...".
    return re.sub(r"<[^>]*>", lambda tag: _ID_REF.sub(rf"\g<1>{chart_id}-", tag.group(0)), text)


_ID_REF = re.compile(r'(\sid="|href="#|url\(#)')


def styled(draw: Callable[..., list[Chart]]) -> Callable[..., list[Chart]]:
    """Run a chart function under the report's rcParams (read when each artist is made, so all of it)."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs) -> list[Chart]:
        with matplotlib.rc_context(RC):
            return draw(*args, **kwargs)

    return wrapper


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height))


def _log(ax, which: str, base: float = 10) -> None:
    """Log scale with plain tick labels (0.01, 1, 100): the default ones are mathtext, which is off here."""
    getattr(ax, f"set_{which}scale")("log", base=base)
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


Colors = dict[Any, str]


def runner_colors(runners: Iterable[Any]) -> Colors:
    """One colour per runner, for every chart of a report (pass it to each, so a runner keeps its colour)."""
    palette = [matplotlib.colormaps["tab10"](i) for i in range(10) if i != 3]  # red (3) means wrong output
    names = sorted(set(runners), key=str)
    return {r: matplotlib.colors.to_hex(palette[i % len(palette)]) for i, r in enumerate(names)}


def _wide(values: Iterable[float]) -> bool:
    v = [x for x in values if x and x > 0]
    return bool(v) and max(v) / min(v) > WIDE_SPAN


def _by(records: list[Row], key: str) -> dict[str, list[Row]]:
    groups: dict[str, list[Row]] = defaultdict(list)
    for r in records:
        groups[str(r.get(key) if r.get(key) is not None else "?")].append(r)
    return dict(list(groups.items())[:MAX_MODELS])


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text)[:40]


# --- latency bars ----------------------------------------------------------------------------------------

@styled
def latency_charts(table: Table, colors: Colors | None = None) -> list[Chart]:
    records = table.records()
    colors = colors or runner_colors(r["runner"] for r in records)
    charts = []
    for i, (model, rows) in enumerate(_by(records, "model").items()):
        rows = sorted(rows, key=lambda r: (str(r["device"]), r["batch"] or 0, r["threads"] or 0,
                                           str(r["scenario"]), r["median_ms"]))[:MAX_BARS]
        charts.append(Chart(model, to_svg(_latency_figure(model, rows, colors), f"lat{i}-{_slug(model)}")))
    return charts


def _group_key(r: Row) -> tuple:
    return (r["device"], r["batch"], r["threads"], r["scenario"])


def _latency_figure(model: str, rows: list[Row], colors: dict) -> Figure:
    fig = _figure(WIDTH, 0.9 + 0.28 * len(rows))
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    med = np.array([r["median_ms"] for r in rows])
    lo = np.array([r["median_ci_low_ms"] if r["median_ci_low_ms"] is not None else r["median_ms"] for r in rows])
    hi = np.array([r["median_ci_high_ms"] if r["median_ci_high_ms"] is not None else r["median_ms"] for r in rows])
    wrong = [r["accuracy_ok"] is False for r in rows]
    ax.barh(y, med, color=[colors[r["runner"]] for r in rows], edgecolor=[WRONG if w else "none" for w in wrong],
            xerr=[np.clip(med - lo, 0, None), np.clip(hi - med, 0, None)], capsize=2)
    for yi, w in zip(y, wrong, strict=True):
        if w:
            ax.barh(yi, med[yi], color="none", edgecolor=WRONG, hatch="//")
    labels = [f"{r['runner']} {r['precision']} b{r['batch']} t{r['threads']}"
              + (f" {r['scenario']}" if r["scenario"] != "latency" else "")
              + (f" {r['device']}" if r["device"] != "cpu" else "") + (" ✗ wrong output" if w else "")
              for r, w in zip(rows, wrong, strict=True)]
    ax.set_yticks(y, _names(labels))
    for k in range(1, len(rows)):  # a thin line between batch / thread / scenario groups
        if _group_key(rows[k]) != _group_key(rows[k - 1]):
            ax.axhline(k - 0.5, color="#999", lw=0.6)
    ax.invert_yaxis()
    if _wide(np.concatenate([lo, hi])):
        _log(ax, "x")
    else:
        ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.set_xlabel("median latency, ms (whiskers: 95% CI of the median)")
    ax.set_title(model)
    return fig


# --- speedup heatmap -------------------------------------------------------------------------------------

@styled
def speedup_chart(table: Table, baseline: str) -> list[Chart]:
    records = table.records()
    if not records:
        return []
    row_keys = list(dict.fromkeys(f"{r['model']} · {r['config']}" for r in records))[:MAX_HEATMAP_ROWS]
    col_keys = sorted({f"{r['runner']} {r['precision']}" for r in records},
                      key=lambda k: (not k.startswith(f"{baseline} "), k))
    grid = np.full((len(row_keys), len(col_keys)), np.nan)
    wrong = np.zeros_like(grid, dtype=bool)
    rindex, cindex = {k: i for i, k in enumerate(row_keys)}, {k: i for i, k in enumerate(col_keys)}
    for r in records:
        i = rindex.get(f"{r['model']} · {r['config']}")
        if i is not None:
            j = cindex[f"{r['runner']} {r['precision']}"]
            grid[i, j], wrong[i, j] = r["speedup"], r["accuracy_ok"] is False
    fig = _figure(max(5.0, 1.1 * len(col_keys) + 3.5), 1.2 + 0.32 * len(row_keys))
    ax = fig.add_subplot()
    logs = np.log2(grid)
    span = max(1.0, float(np.nanmax(np.abs(logs))) if np.isfinite(logs).any() else 1.0)
    image = ax.imshow(np.ma.masked_invalid(logs), cmap="RdYlGn", norm=TwoSlopeNorm(0.0, -span, span),
                      aspect="auto")
    for (i, j), value in np.ndenumerate(grid):
        if not math.isnan(value):
            dark = abs(logs[i, j]) > 0.6 * span
            ax.text(j, i, f"{value:.2g}×" + (" ✗ wrong" if wrong[i, j] else ""), ha="center", va="center",
                    fontsize=8, color="white" if dark else "black", fontweight="bold" if wrong[i, j] else "normal")
    ax.set_xticks(range(len(col_keys)), _names(col_keys), rotation=30, ha="right")
    ax.set_yticks(range(len(row_keys)), _names(row_keys))
    bar = fig.colorbar(image, ax=ax, shrink=0.8, format=FuncFormatter(lambda v, _: f"{2 ** v:.2g}×"))
    bar.set_label("speedup")
    ax.set_title(f"speedup vs {baseline} (✗ wrong = wrong output)")
    return [Chart("speedup", to_svg(fig, "speedup"))]


# --- latency distributions -------------------------------------------------------------------------------

@styled
def ecdf_charts(cases: list[Row], quantiles: dict[str, list[float]], colors: Colors | None = None) -> list[Chart]:
    from bench.report.data import ECDF_PROBS

    drawn = [c for c in cases if c["case_key"] in quantiles]
    colors = colors or runner_colors(c.get("runner") for c in drawn)
    charts = []
    for i, (model, group) in enumerate(_by(drawn, "model").items()):
        group = sorted(group, key=lambda c: c.get("median_ms") or 0)[:10]
        fig = _figure(WIDTH, 3.2)
        ax = fig.add_subplot()
        styles = ["-", "--", ":", "-."]
        for k, c in enumerate(group):
            ax.step(quantiles[c["case_key"]], ECDF_PROBS, where="post", color=colors[c.get("runner")],
                    linestyle=styles[k % 4], label=_short_label(c))
        if _wide(v for c in group for v in quantiles[c["case_key"]]):
            _log(ax, "x")
        ax.set_xlabel("latency per iteration, ms")
        ax.set_ylabel("fraction of iterations ≤ x")
        ax.set_title(f"{model}: latency distribution (ECDF of the raw samples)")
        ax.legend(fontsize=7, loc="lower right")
        charts.append(Chart(model, to_svg(fig, f"ecdf{i}-{_slug(model)}")))
    return charts


def _short_label(c: Row) -> str:
    text = f"{c.get('runner')} {c.get('precision')} b{c.get('batch')} t{c.get('threads')}"
    return text + (" ✗ wrong output" if c.get("accuracy_ok") is False else "")


# --- accuracy vs latency ---------------------------------------------------------------------------------

ERROR_FLOOR = 1e-9


@styled
def pareto_charts(table: Table, colors: Colors | None = None) -> list[Chart]:
    records = table.records()
    colors = colors or runner_colors(r["runner"] for r in records)
    charts = []
    for i, (model, rows) in enumerate(_by(records, "model").items()):
        charts.append(Chart(model, to_svg(_pareto_figure(model, rows[:MAX_BARS], colors), f"par{i}-{_slug(model)}")))
    return charts


def _err(r: Row) -> float:
    e = r["normalized_error"]
    return max(e, ERROR_FLOOR) if isinstance(e, (int, float)) and math.isfinite(e) else float("nan")


def _checked(r: Row) -> str:
    return {False: "wrong", None: "unchecked"}.get(r["accuracy_ok"], "correct")


def _pareto_figure(model: str, rows: list[Row], colors: dict) -> Figure:
    fig = _figure(WIDTH, 3.6)
    ax = fig.add_subplot()
    # One scatter call per kind of point, not per point: a collection each (a quarter of a Pareto figure's time)
    kinds: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        kinds[_checked(r)].append(r)
    styles: dict[str, dict[str, Any]]
    styles = {"wrong": {"marker": "X", "s": 90, "facecolors": "none", "edgecolors": WRONG, "linewidths": 1.5},
              "unchecked": {"marker": "o", "s": 40, "facecolors": "none", "edgecolors": "gray"},
              "correct": {"marker": "o", "s": 40, "color": [colors[r["runner"]] for r in kinds["correct"]]}}
    for kind, style in styles.items():
        if kinds[kind]:
            ax.scatter([r["median_ms"] for r in kinds[kind]], [_err(r) for r in kinds[kind]], **style)
    for r in rows:
        note = " fastest ★" if r["fastest"] else (" ✗ wrong output" if r["accuracy_ok"] is False else "")
        ax.annotate(f"{r['runner']} {r['precision']}{note}", (r["median_ms"], _err(r)), fontsize=7, xytext=(4, 3),
                    textcoords="offset points")
    front = sorted((r for r in rows if r["on_front"]), key=lambda r: r["median_ms"])
    if len(front) > 1:
        ax.step([r["median_ms"] for r in front], [_err(r) for r in front], where="post", color="gray", lw=0.8)
    if any(not math.isnan(_err(r)) for r in rows):
        _log(ax, "y")
    if _wide(r["median_ms"] for r in rows):
        _log(ax, "x")
    else:
        ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.set_xlabel("median latency, ms")
    ax.set_ylabel(f"normalized error vs fp32 (0 drawn at {ERROR_FLOOR:g})")
    config = rows[0]["config"] if rows else ""
    ax.set_title(f"{model} ({config})")
    return fig


# --- cold start and memory -------------------------------------------------------------------------------

@styled
def resources_chart(table: Table, colors: Colors | None = None) -> list[Chart]:
    rows = table.records()[:MAX_HEATMAP_ROWS]
    if not rows:
        return []
    colors = colors or runner_colors(r["runner"] for r in rows)
    labels = [f"{r['model']} · {r['runner']} {r['precision']}" + (f" {r['device']}" if r["device"] != "cpu" else "")
              for r in rows]
    fig = _figure(10, 1.0 + 0.26 * len(rows))
    left, right = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(rows))
    cold = [r["cold_start_ms"] or 0 for r in rows]
    rss = [r["peak_rss_mb"] or 0 for r in rows]
    left.barh(y, cold, color=[colors[r["runner"]] for r in rows])
    right.barh(y, rss, color=[colors[r["runner"]] for r in rows])
    left.set_yticks(y, _names(labels))
    left.invert_yaxis()
    if _wide(cold):
        _log(left, "x")
    else:
        left.xaxis.set_major_locator(MaxNLocator(5))
    right.xaxis.set_major_locator(MaxNLocator(5))
    left.set_xlabel("cold start, ms (load + prepare + first inference)")
    right.set_xlabel("peak RSS of the worker, MiB")
    fig.suptitle("cold start and peak memory (median / max over batch and thread settings)")
    return [Chart("cold start and memory", to_svg(fig, "resources"))]


# --- throughput vs batch ---------------------------------------------------------------------------------

@styled
def throughput_charts(table: Table, colors: Colors | None = None) -> list[Chart]:
    records = table.records()
    colors = colors or runner_colors(r["runner"] for r in records)
    charts = []
    for i, (model, rows) in enumerate(_by(records, "model").items()):
        fig = _figure(WIDTH, 3.2)
        ax = fig.add_subplot()
        series: dict[tuple, list[Row]] = defaultdict(list)
        for r in rows:
            series[(r["runner"], r["precision"], r["device"], r["threads"], r["scenario"])].append(r)
        for (runner, precision, _device, threads, scenario), pts in list(series.items())[:MAX_BARS]:
            ax.plot([p["batch"] for p in pts], [p["throughput_per_s"] for p in pts], marker="o",
                    color=colors[runner], label=f"{runner} {precision} t{threads} {scenario}")
            bad = [p for p in pts if p["accuracy_ok"] is False]
            ax.scatter([p["batch"] for p in bad], [p["throughput_per_s"] for p in bad], marker="X", s=80,
                       facecolors="none", edgecolors=WRONG, zorder=3)
        _log(ax, "x", base=2)
        ax.set_xlabel("batch size")
        ax.set_ylabel("items / s")
        ax.set_title(f"{model}: throughput vs batch (red X = wrong output)")
        ax.legend(fontsize=7, **LEGEND_BESIDE)
        charts.append(Chart(model, to_svg(fig, f"thr{i}-{_slug(model)}")))
    return charts


# --- trends ----------------------------------------------------------------------------------------------

@styled
def trend_charts(table: Table) -> list[Chart]:
    records = table.records()
    runs = sorted({(r["run_time"], r["run_id"], r["git_commit"]) for r in records}, key=lambda t: (str(t[0]), t[1]))
    index = {run_id: i for i, (_, run_id, _) in enumerate(runs)}
    ticks = [f"{t:%m-%d %H:%M}" if hasattr(t, "strftime") else str(rid)[:13] for t, rid, _ in runs]
    ticks = [f"{tick}\n{(commit or '')[:7]}" for tick, (_, _, commit) in zip(ticks, runs, strict=True)]
    charts = []
    for i, (model, rows) in enumerate(_by(records, "model").items()):
        fig = _figure(WIDTH, 3.2)
        ax = fig.add_subplot()
        lines: dict[tuple, list[Row]] = defaultdict(list)
        for r in rows:
            lines[(r["case_key"], r["machine"])].append(r)
        several = len({m for _, m in lines}) > 1
        for k, ((key, machine), pts) in enumerate(list(lines.items())[:8]):
            ax.plot([index[p["run_id"]] for p in pts], [p["median_ms"] for p in pts], marker="o",
                    linestyle=["-", "--", ":", "-."][k % 4], label=f"{key} @ {machine}" if several else key)
        shown = range(0, len(runs), math.ceil(len(runs) / MAX_TREND_TICKS) or 1)  # 30 runs' labels overlap
        ax.set_xticks(list(shown), _names(ticks[k] for k in shown), fontsize=7)
        ax.set_xlim(-0.5, len(runs) - 0.5)
        ax.set_ylabel("median latency, ms")
        ax.set_title(f"{model}: median per run")
        ax.legend(fontsize=6, **LEGEND_BESIDE)
        charts.append(Chart(model, to_svg(fig, f"trend{i}-{_slug(model)}")))
    return charts
