"""Scale: a synthetic year of nightly results, and the operations a nightly runs over it, one per process.

``write_history`` writes about ``rows`` case rows in one file per run: ``machines`` machines (by default three:
two of one model, told apart by machine_id, and an ARM64 one; a fleet adds machines with labels of their own)
run the same ``cases`` cases each night; a night's cases go into one file in the run's partition (the layout a
compacted store has), its runs row as the store writes it, and the readers' summary of compacted runs and the
runs table's cache as compaction keeps them (``bench.results.summary``, ``bench.results.runs_cache``). Raw
samples (256 per case) are kept only for each machine's last 7 nights, as a store that trims old samples would;
older rows keep their statistics. The fleet of the issue, ten machines for a year at ~2,740 cases a night, is
``write DIR 10000000 10 2740`` (10,001,000 rows in 3,650 files, 1.7 GB, 2 to 3 minutes to write on two cores).

    python benchmarks/scale.py write DIR ROWS [MACHINES CASES]  # a history to poke at (reused if already there)
    python benchmarks/scale.py measure OP DIR BASE NEW OUT      # one operation in this process: JSON seconds, peak RSS
"""

from __future__ import annotations

import json
import math
import resource
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.results import layout, runs_cache, store, summary
from bench.results.schema import CASE_SCHEMA, SCHEMA_VERSION
from bench.results.uri import Location

CASES_PER_RUN = 913
SAMPLES = 256
SAMPLED_NIGHTS = 7
MACHINES = (("a1b2c3d4e5f60001", "x86-avx512", "Xeon 8480+"), ("a1b2c3d4e5f60002", "x86-avx512", "Xeon 8480+"),
            ("a1b2c3d4e5f60003", "arm64", "Neoverse-V2"))
FLEET_KINDS = (("x86-avx2", "EPYC 7763"), ("x86-avx512", "Xeon 8480+"), ("arm64", "Neoverse-V2"))
MANIFEST = "scale-history.json"  # beside cases/ and runs/ (no reader lists it): what was written, for reuse
START = datetime(2026, 1, 1, 2, 0, tzinfo=timezone.utc)
STAGGER_MINUTES = 7
MODELS = ("mobilenet_v2", "mobilenet_v3", "shufflenet_v2", "squeezenet", "efficientnet_lite0", "resnet18",
          "resnet50", "det_320", "vit_tiny", "minilm", "tiny_mlp", "tiny_cnn")
RUNNERS = ("onnxruntime", "openvino", "ncnn", "mnn")
PRECISIONS = ("fp32", "fp16", "int8")
BATCHES = (1, 4, 16)
THREADS = (1, 2, 4, 8, 16)
SCENARIOS = ("latency", "throughput")  # outermost: the first 2,160 cases are the latency ones of old


@dataclass(frozen=True)
class History:
    results: Path
    rows: int
    files: int
    runs: list[str]  # run ids, oldest first
    base_run: str  # the two last nights of the first machine: what a nightly compare compares
    new_run: str


def case_identities(cases: int = CASES_PER_RUN) -> list[dict]:
    keys = []
    for scenario in SCENARIOS:
        for model in MODELS:
            for runner in RUNNERS:
                for precision in PRECISIONS:
                    for batch in BATCHES:
                        for threads in THREADS:
                            key = f"{model}/{runner}/cpu/{precision}/b{batch}/t{threads}/{scenario}"
                            keys.append({"case_key": key, "model": model, "runner": runner, "precision": precision,
                                         "batch": batch, "threads": threads, "scenario": scenario})
    if cases > len(keys):
        raise ValueError(f"at most {len(keys)} cases per night, got {cases}")
    return keys[:cases]


def machines(count: int = len(MACHINES)) -> list[tuple[str, str, str]]:
    """(machine_id, machine_label, cpu_model): the three of old, then fleet machines labelled one by one."""
    out = list(MACHINES[:count])
    for i in range(len(out), count):
        kind, cpu = FLEET_KINDS[i % len(FLEET_KINDS)]
        out.append((f"a1b2c3d4e5f6{i + 1:04x}", f"{kind}-{i + 1}", cpu))
    return out


def _cases_table(ids: pa.Table, run_id: str, when: datetime, rng: np.random.Generator, base_ms: np.ndarray,
                 sampled: bool) -> pa.Table:
    n = ids.num_rows
    median = base_ms * rng.lognormal(0.0, 0.02, n)
    ok = rng.random(n) > 0.02
    status = np.where(ok, "ok", "error")
    start_us = int(when.timestamp()) * 1_000_000
    columns = {
        "schema_version": pa.array(np.full(n, SCHEMA_VERSION, np.int32)),
        "run_id": _same(run_id, n), "timestamp": pa.array(start_us + np.arange(n, dtype=np.int64) * 1_000_000,
                                                           CASE_SCHEMA.field("timestamp").type),
        "suite": _same("server", n), "device": _same("cpu", n),
        "status": pa.array(status), "error": pa.array(np.where(ok, None, "RuntimeError: synthetic failure")),
        "model_sha256": _same("0" * 64, n), "model_source": _same("built", n),
        "runner_version": _same("1.20.0", n), "precision_used": ids.column("precision"),
        "threads_used": ids.column("threads"), "iterations": pa.array(np.full(n, 1200, np.int64)),
        "median_ms": pa.array(median, mask=~ok), "median_ci_low_ms": pa.array(median * 0.99, mask=~ok),
        "median_ci_high_ms": pa.array(median * 1.01, mask=~ok), "mean_ms": pa.array(median * 1.02, mask=~ok),
        "p90_ms": pa.array(median * 1.1, mask=~ok), "p99_ms": pa.array(median * 1.3, mask=~ok),
        "min_ms": pa.array(median * 0.9, mask=~ok), "max_ms": pa.array(median * 2.0, mask=~ok),
        "throughput_per_s": pa.array(1000.0 / median, mask=~ok), "cv": pa.array(rng.uniform(0.01, 0.08, n)),
        "unstable": pa.array(np.zeros(n, bool)), "accuracy_ok": pa.array(ok), "cosine": pa.array(np.full(n, 0.9999)),
        "normalized_error": pa.array(rng.uniform(1e-6, 1e-3, n)), "cold_start_ms": pa.array(median * 40 + 50),
        "peak_rss_mb": pa.array(rng.uniform(80, 900, n)), "wall_s": pa.array(rng.uniform(2, 6, n)),
        "runner_facts": _same('{"providers": ["CPUExecutionProvider"]}', n),
        "timed_region": _same("infer: bound inputs -> outputs in host memory", n),
    }
    if sampled:
        ns = (median[:, None] * 1e6 * rng.lognormal(0.0, 0.03, (n, SAMPLES))).astype(np.int64)
        offsets = np.arange(0, n * SAMPLES + 1, SAMPLES, dtype=np.int32)
        columns["samples_ns"] = pa.ListArray.from_arrays(offsets, pa.array(ns.ravel()), mask=pa.array(~ok))
    columns.update({name: ids.column(name) for name in ids.column_names})
    arrays = [columns.get(f.name, pa.nulls(n, f.type)).cast(f.type) for f in CASE_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=CASE_SCHEMA)


def _same(value: str, n: int) -> pa.Array:
    """``n`` copies of one string, without a Python list of them."""
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([value])).cast(pa.string())


def write_history(results: Path, rows: int, seed: int = 0, machine_count: int = len(MACHINES),
                  cases: int = CASES_PER_RUN) -> History:
    """About ``rows`` rows: enough nights of ``cases`` cases on each of ``machine_count`` machines (at least two)."""
    fleet = machines(machine_count)
    wanted = {"rows": rows, "seed": seed, "machines": machine_count, "cases": cases}
    reused = _reuse(results, wanted)
    if reused:
        return reused
    rng = np.random.default_rng(seed)
    ids = pa.Table.from_pylist(case_identities(cases))
    nights = max(2, math.ceil(rows / (ids.num_rows * len(fleet))))
    base = {m: rng.lognormal(0.0, 1.0, ids.num_rows) * (1.0 + i * 0.3) for i, (m, _, _) in enumerate(fleet)}
    runs, files = [], 0
    for night in range(nights):
        for index, (machine_id, label, cpu) in enumerate(fleet):
            # machines start minutes apart, as a fleet does: two rows of one case never share a timestamp, so
            # "the latest row" is one row (ties would let a report pick either, run to run)
            when = START + timedelta(days=night, minutes=STAGGER_MINUTES * index)
            run_id = f"{when:%Y%m%dT%H%M%SZ}-{machine_id[-4:]}"
            drift = 1.0 + 0.05 * math.sin(night / 30)
            table = _cases_table(ids, run_id, when, rng, base[machine_id] * drift, night >= nights - SAMPLED_NIGHTS)
            target = results / layout.run_folder(run_id, when) / layout.COMPACTED
            target.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, target, compression="zstd")
            layout.write_run(Location.resolve(results), run_id, {
                "run_id": run_id, "timestamp": when, "suite": "server", "status": "complete",
                "cases_planned": ids.num_rows, "cases_written": ids.num_rows, "machine_id": machine_id,
                "machine_label": label, "cpu_model": cpu, "git_commit": f"{night:040x}",
                "packages": '{"onnxruntime": "1.20.0"}', "command": "bench run --suite server",
            })
            runs.append(run_id)
            files += 1
    summary.update(Location.resolve(results))  # as compaction keeps it, run by run
    loc = layout.location(results)
    runs_cache.update(loc, store.finished_infos(loc, "runs"))
    first = [r for r in runs if r.endswith(fleet[0][0][-4:])]
    history = History(results, nights * len(fleet) * ids.num_rows, files, runs, first[-2], first[-1])
    (results / MANIFEST).write_text(json.dumps({**wanted, "history": {**asdict(history), "results": None}}))
    return history


def _reuse(results: Path, wanted: dict) -> History | None:
    """The history already under ``results`` when it was written with the same arguments (a 10M-row one takes
    minutes to write); None when there is none. Anything else in the folder is refused, never overwritten."""
    manifest = results / MANIFEST
    if manifest.exists():
        written = json.loads(manifest.read_text())
        if {k: written.get(k) for k in wanted} == wanted:
            return History(**{**written["history"], "results": results})
    if results.exists() and any(results.iterdir()):
        raise SystemExit(f"{results}: not empty and not a history written with {wanted}; pick an empty folder")
    return None


def write_one_night(results: Path, run_id: str, when: datetime, seed: int = 1) -> int:
    """One machine's night as ``bench run`` writes it: one file per case through the store; returns the rows."""
    rng = np.random.default_rng(seed)
    ids = pa.Table.from_pylist(case_identities())
    table = _cases_table(ids, run_id, when, rng, rng.lognormal(0.0, 1.0, ids.num_rows), sampled=True)
    loc = Location.resolve(results)
    for index, row in enumerate(table.to_pylist()):
        layout.write_case(loc, run_id, when, index, {k: v for k, v in row.items() if k != "schema_version"})
    return table.num_rows


# --- the operations, as a nightly runs them --------------------------------------------------------------

def list_runs(results: Path, base: str, new: str, out: Path) -> int:
    sql = "SELECT run_id, timestamp, machine_id, machine_label, status FROM runs ORDER BY timestamp"
    return store.query(Location.resolve(results), sql).num_rows


def compare(results: Path, base: str, new: str, out: Path) -> int:
    """``bench compare BASE NEW``: exit code 0 or 1 (regressions), as the nightly runs it."""
    from bench.cli import main

    return main(["compare", base, new, "--results", str(results), "--markdown", str(out / "compare.md")])


def report(results: Path, base: str, new: str, out: Path) -> int:
    """``bench report`` over the whole history."""
    from bench.cli import main

    return main(["report", "--results", str(results), "--out", str(out / "report")])


OPERATIONS = {"list_runs": list_runs, "compare": compare, "report": report}


def measure(op: str, results: Path, base: str, new: str, out: Path) -> dict:
    start = time.perf_counter()
    code = OPERATIONS[op](results, base, new, out)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    helper_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the report's chart helper, if any
    cpu = sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for f in ("ru_utime", "ru_stime"))
    return {"op": op, "seconds": round(seconds, 3), "cpu_s": round(cpu, 2), "peak_rss_mb": round(peak_mb, 1),
            "helper_peak_rss_mb": round(helper_mb, 1), "result": code}


if __name__ == "__main__":
    if sys.argv[1] == "write":
        counts = [int(a) for a in sys.argv[3:6]]  # ROWS [MACHINES [CASES]]
        h = write_history(Path(sys.argv[2]), counts[0], 0, *counts[1:])
        print(json.dumps({"rows": h.rows, "files": h.files, "base": h.base_run, "new": h.new_run}))
    else:
        op, results, base, new, out = sys.argv[2:7]
        print(json.dumps(measure(op, Path(results), base, new, Path(out))))
