"""Results as a pandas DataFrame, for a notebook or a script: the same rows the report reads, from a folder or
an object store (``s3://bucket/prefix``), through :mod:`bench.results.store`.

Example::

    import bench.results as r
    df = r.load("results")                     # the latest row per case key and machine
    df[df.model == "tiny_cnn"].sort_values("median_ms")
    print(r.scenarios(df))                     # per model and machine: the best case for each deployment

Case frames carry two columns beside the schema's: ``machine_id`` and ``machine_label`` of the row's run
(joined on ``run_id``; null where the run has no runs row), so a frame knows its machines without a second
read. Integer and boolean columns keep their types (pandas' nullable dtypes) instead of turning into floats
where a value is missing.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from bench.errors import UserError
from bench.results import layout, store

TABLES = ("cases", "runs")
# Nullable dtypes: pyarrow's default turns an int column with one null into floats (threads 1 -> 1.0).
DTYPES = {pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}


def load(results: layout.Results = "results", table: str = "cases", run_id: str | None = None,
         latest: bool = True) -> pd.DataFrame:
    """Rows of ``table`` ("cases" or "runs") under ``results`` (a folder or a URI), of ``run_id`` only if given.

    ``latest`` (cases only; a run has one row): keep the latest row per case key and machine, as the report
    does, so a case re-run after a fix counts once and two machines' rows of one case both stay. The frame's
    ``attrs["results"]`` records where it came from (``scenarios`` reads the runs table there if it must).
    """
    if table not in TABLES:
        raise UserError(f"bench.results.load: table must be 'cases' or 'runs', got {table!r}")
    loc = layout.location(results)  # a user's folder or URI, resolved here once
    if not store.exists(loc):
        raise UserError(f"no results at {results} (run `bench run --results {results}` first)")
    sql, params = (_cases_sql if table == "cases" else _runs_sql)(run_id, latest)
    frame = store.query(loc, sql, params).to_pandas(types_mapper=DTYPES.get)
    frame.attrs["results"] = str(results)
    return frame


def _where(run_id: str | None, column: str) -> tuple[str, list[Any]]:
    return (f"WHERE {column} = ?", [run_id]) if run_id else ("", [])


def _cases_sql(run_id: str | None, latest: bool) -> tuple[str, list[Any]]:
    where, params = _where(run_id, "c.run_id")
    qualify = (f"QUALIFY row_number() OVER (PARTITION BY c.case_key, {store.MACHINE} "
               "ORDER BY c.timestamp DESC NULLS LAST) = 1") if latest else ""
    sql = f"""
        SELECT c.*, m.machine_id, m.machine_label FROM cases c {store.MACHINE_JOIN}
        {where} {qualify}
        ORDER BY c.model NULLS LAST, c.runner NULLS LAST, c.precision NULLS LAST, c.batch, c.threads, c.case_key,
                 c.timestamp"""
    return sql, params


def _runs_sql(run_id: str | None, latest: bool) -> tuple[str, list[Any]]:
    where, params = _where(run_id, "run_id")
    return f"SELECT * FROM runs {where} ORDER BY timestamp NULLS LAST, run_id", params


def scenarios(df: pd.DataFrame, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """The deployment-scenario table (``bench.report.scenarios.scenario_table``) of a cases frame.

    Machines come from, in order: ``runs`` if given (a frame of the runs table, joined on ``run_id``); the
    frame's own ``machine_label`` / ``machine_id`` columns (``load`` adds them); else the runs table read from
    ``df.attrs["results"]``, where ``load`` recorded it. A frame with none of these is one machine, "?".
    The table's note is in the result's ``attrs["note"]``.
    """
    # The one place bench/results reaches into bench.report (the table's rules live with the report's): an
    # exception listed in tests/test_layers.py, imported here so that `import bench.results` never loads it.
    from bench.report.scenarios import scenario_table

    if runs is None and not {"machine_label", "machine_id"} & set(df.columns) and df.attrs.get("results"):
        runs = load(df.attrs["results"], "runs")
    table = scenario_table(records(df), records(runs) if runs is not None else None)
    out = pd.DataFrame(table.rows, columns=list(table.columns))
    out.attrs["note"] = table.note
    return out


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain dicts with None for every kind of missing value (NaN, NA, NaT) and Python scalars, as the
    report's functions expect (``accuracy_ok is True`` is false for a numpy bool)."""
    return [{k: _plain(v) for k, v in row.items()} for row in df.to_dict("records")]


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):  # list columns (samples_ns, isa_flags) arrive as arrays
        return value.tolist()
    if value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value
