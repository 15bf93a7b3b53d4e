"""What makes a fleet's history cheap to read, checked against the plain way of reading it.

A run's files only (``store.query(run_ids=...)``), a runs table read once and given to later queries, the
report's one-scan choice of runs, compare's batched rank test and the report's second drawing process: each must
give what the plain query, the per-case test and one process give, on a small history with the awkward cases
(two machines under one label, a case key missing from a machine's last night, a run resumed days later, failed
rows, ties in the samples).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from bench.report import change, compare, dashboard, data, render
from bench.results import store
from bench.results.uri import Location

START = datetime(2026, 3, 1, 2, tzinfo=timezone.utc)
MACHINES = (("m0001", "x86"), ("m0002", "x86"), ("m0003", "arm"))  # two machines under one label
KEYS = [f"net{i % 3}/onnxruntime/cpu/fp32/b1/t{1 + i // 3}/latency" for i in range(6)]


def _row(key: str, run_id: str, when: datetime, rng: np.random.Generator, ok: bool) -> dict:
    model, runner, device, precision, batch, threads, scenario = key.split("/")
    median = float(rng.uniform(1, 5))
    return {"case_key": key, "run_id": run_id, "timestamp": when, "model": model, "runner": runner,
            "device": device, "precision": precision, "batch": int(batch[1:]), "threads": int(threads[1:]),
            "scenario": scenario, "status": "ok" if ok else "error", "median_ms": median if ok else None,
            "accuracy_ok": ok, "samples_ns": (rng.lognormal(0, 0.05, 31) * median * 1e6).astype(int).tolist()}


def _run(root: Path, run_id: str, when: datetime, machine: tuple[str, str], rows: list[dict]) -> None:
    store.write_run(Location.resolve(root), run_id, {"run_id": run_id, "timestamp": when, "status": "complete",
                                                     "machine_id": machine[0], "machine_label": machine[1]})
    for i, row in enumerate(rows):
        store.write_case(Location.resolve(root), run_id, when, i, row)


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fleet") / "results"
    rng = np.random.default_rng(7)
    for night in range(4):
        for m, machine in enumerate(MACHINES):
            when = START + timedelta(days=night, minutes=5 * m)
            run_id = f"{when:%Y%m%dT%H%M%SZ}-{machine[0]}"
            keys = KEYS if (night, m) != (3, 2) else KEYS[:-1]  # arm's last night lacks a key
            rows = [_row(k, run_id, when + timedelta(seconds=i), rng, ok=(night + i) % 5 != 0)
                    for i, k in enumerate(keys)]
            _run(root, run_id, when, machine, rows)
    # a run of night 0 resumed on night 5: its one new row is that key's latest on its machine
    old = f"{START:%Y%m%dT%H%M%SZ}-m0001"
    loc = Location.resolve(root)
    store.write_case(loc, old, START, 99, _row(KEYS[0], old, START + timedelta(days=5), rng, ok=True))
    return root


def _old_key_runs(results: Path, run_id: str | None) -> tuple[list[str], list[str]]:
    """The report's choice of runs as two scans and a join against the runs files (the code before)."""
    where, params = ("WHERE c.run_id = ?", [run_id]) if run_id else ("", [])
    rows = store.query(Location.resolve(results), f"""
        WITH latest AS (
            SELECT DISTINCT coalesce(arg_max(c.run_id, c.timestamp), any_value(c.run_id)) AS run_id
            FROM cases c {store.MACHINE_JOIN} {where} GROUP BY c.case_key, {store.MACHINE}),
        recent AS (
            SELECT run_id FROM cases WHERE status = 'ok' AND median_ms IS NOT NULL AND run_id IS NOT NULL
            GROUP BY run_id ORDER BY min(timestamp) DESC LIMIT ?)
        SELECT 'latest' AS what, run_id FROM latest UNION ALL SELECT 'recent' AS what, run_id FROM recent""",
                       [*params, 5]).to_pylist()
    return ([r["run_id"] for r in rows if r["what"] == "latest"], [r["run_id"] for r in rows if r["what"] == "recent"])


def _runs_table(results: Path):
    return store.query(Location.resolve(results), f"SELECT {store.column_list(data.RUN_FIELDS)} FROM runs")


@pytest.mark.parametrize("run_id", [None, f"{START:%Y%m%dT%H%M%SZ}-m0001", "no-such-run"])
def test_one_scan_picks_the_runs_two_scans_picked(history, run_id):
    old_latest, old_recent = _old_key_runs(history, run_id)
    for runs in (None, _runs_table(history)):
        latest, recent = data.key_runs(Location.resolve(history), run_id, max_runs=5, runs=runs)
        assert sorted(latest) == sorted(old_latest) and recent == old_recent
    if run_id is None:  # the resumed run holds a latest row; so does arm's night 2 (the key its last night lacks)
        assert f"{START:%Y%m%dT%H%M%SZ}-m0001" in latest
        assert f"{START + timedelta(days=2, minutes=10):%Y%m%dT%H%M%SZ}-m0003" in latest


def _sorted(table) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: (r["run_id"], r["case_key"], str(r["timestamp"])))


@pytest.mark.parametrize("lookups", [store.MAX_LOOKUPS, 0])  # 0: one listing, filtered by folder name
def test_a_runs_files_only_give_its_rows(history, monkeypatch, lookups):
    monkeypatch.setattr(store, "MAX_LOOKUPS", lookups)
    runs = [r["run_id"] for r in _runs_table(history).to_pylist()]
    loc = Location.resolve(history)
    for wanted in ([runs[0]], runs[3:5], [runs[-1], "no-such-run"], ["../runs"], runs):
        sql = f"SELECT * FROM cases WHERE run_id IN ({', '.join('?' for _ in wanted)})"
        assert _sorted(store.query(loc, sql, wanted, run_ids=wanted)) == _sorted(store.query(loc, sql, wanted))
        sql = "SELECT * FROM runs WHERE run_id = ?"
        assert store.query(loc, sql, wanted[:1], run_ids=wanted).to_pylist() == \
            store.query(loc, sql, wanted[:1]).to_pylist()


def test_a_given_runs_table_joins_as_the_runs_files_do(history):
    sql = "SELECT c.case_key, c.run_id, {machine} AS machine FROM cases c {join} ORDER BY 2, 1"
    given = {"run_machines": _runs_table(history).select(["run_id", "machine_id", "machine_label"])}
    loc = Location.resolve(history)
    joined = store.query(loc, sql.format(machine=store.MACHINE, join=store.machine_join("run_machines")),
                         given=given)
    assert joined.to_pylist() == store.query(loc, sql.format(machine=store.MACHINE,
                                                 join=store.MACHINE_JOIN)).to_pylist()
    assert {r["machine"] for r in joined.to_pylist()} == {"x86", "arm"}


def test_batched_rank_test_is_the_per_case_one():
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(3)
    pairs = {}
    for i, (nb, nn) in enumerate([(31, 31), (31, 31), (201, 255), (9, 9), (8, 40), (3, 5)] * 4):
        coarse = 10_000 if i % 3 == 0 else 1  # coarse clocks: many tied samples
        pairs[f"k{i}"] = ((rng.lognormal(0, 0.05, nb) * 1e6 // coarse).astype(np.int64).tolist(),
                          (rng.lognormal(0.02 * (i % 2), 0.05, nn) * 1e6 // coarse).astype(np.int64).tolist())
    batched = change.rank_test_p_values(pairs)
    assert set(batched) == {k for k, (b, n) in pairs.items() if len(b) > 8 and len(n) > 8}
    for key, p in batched.items():
        assert p == float(mannwhitneyu(*pairs[key], alternative="two-sided").pvalue), key


def test_compare_of_two_runs_reads_them_only(history, tmp_path):
    runs = sorted(r["run_id"] for r in _runs_table(history).to_pylist() if r["run_id"].endswith("m0001"))
    loc = Location.resolve(history)
    base, new = compare.load_side(runs[-2], loc), compare.load_side(runs[-1], loc)
    assert base.env["machine_id"] == new.env["machine_id"] == "m0001" and len(new.cases) == len(KEYS)
    assert {c["run_id"] for c in base.cases.values()} == {runs[-2]}
    with pytest.raises(compare.UserError, match="neither a results folder nor a run id"):
        compare.resolve("no-such-run", loc)


@pytest.mark.slow
def test_charts_drawn_in_two_processes_are_the_ones_one_draws(history, monkeypatch, capsys):
    d = data.load(Location.resolve(history))
    t = dashboard.tables(d, "onnxruntime")
    alone = render.draw(d, t, "onnxruntime")
    assert render.draw(d, t, "onnxruntime", render.Helper()) == alone
    assert any(alone[kind] for kind in render.ELSEWHERE)
    assert render.helper_for(d) is None  # a small report draws in one process
    monkeypatch.setattr(render.sys, "executable", "/bin/false")  # a helper that fails: drawn here instead
    assert render.draw(d, t, "onnxruntime", render.Helper()) == alone
    assert "chart helper process failed (exit 1)" in capsys.readouterr().err


def test_the_summary_of_compacted_runs_chooses_as_a_scan_does(history, tmp_path):
    import shutil

    from bench.results import compaction, summary

    root = shutil.copytree(history, tmp_path / "results")
    loc = Location.resolve(root)
    assert compaction.compact_all(loc).runs == 12  # compaction keeps the summary (compact_all, compact_run)

    def same() -> summary.Summary | None:
        runs = _runs_table(root)
        latest, recent = data.key_runs(Location.resolve(root), None, max_runs=5, runs=runs)
        old_latest, old_recent = _old_key_runs(root, None)
        assert sorted(latest) == sorted(old_latest) and recent == old_recent
        return summary.usable(loc, store.visible_files(loc, "cases"), runs)

    kept = same()
    assert kept is not None and len(kept.covered) == 12 and kept.keys.num_rows == 3 * len(KEYS)
    rng = np.random.default_rng(1)
    later = START + timedelta(days=9)  # a run not compacted yet: scanned beside the summary
    _run(root, "later-m0003", later, MACHINES[2], [_row(k, "later-m0003", later, rng, ok=True) for k in KEYS[:2]])
    assert same() is not None
    assert summary.update(Location.resolve(root)) == 0  # only compacted files are summarised
    when = START + timedelta(days=1, minutes=5)  # a run's machine renamed: the summary is stale
    loc = Location.resolve(root)
    store.write_run(loc, f"{when:%Y%m%dT%H%M%SZ}-m0002", {"run_id": f"{when:%Y%m%dT%H%M%SZ}-m0002", "timestamp": when,
                                                           "status": "complete", "machine_id": "m0002",
                                                           "machine_label": "x86-b"})
    assert same() is None
    gone = store.visible_files(loc, "cases")[0]  # a covered file deleted: the summary is stale
    loc.fs.delete_file(gone)
    assert same() is None
    assert summary.update(Location.resolve(root)) == 11 and same() is not None  # rebuilt from the files there are
