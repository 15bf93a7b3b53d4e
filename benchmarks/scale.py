"""Scale: a synthetic year of nightly results, and the operations a nightly runs over it, one per process.

``write_history`` writes ``rows`` case rows (1,000,000 for the full benchmark) in about one file per run: three
machines (two of one model, told apart by machine_id, and an ARM64 one) run the same 913 cases each night; a
night's cases go into one file in the run's partition (the layout a compacted store has), its runs row as the
store writes it. Raw samples (256 per case) are kept only for each machine's last 7 nights, as a store that
trims old samples would; older rows keep their statistics.

    python benchmarks/scale.py write DIR ROWS              # a history to poke at
    python benchmarks/scale.py measure OP DIR BASE NEW OUT  # one operation in this process: JSON seconds, peak RSS
"""

from __future__ import annotations

import json
import math
import resource
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.results import store
from bench.results.schema import CASE_SCHEMA, SCHEMA_VERSION

CASES_PER_RUN = 913
SAMPLES = 256
SAMPLED_NIGHTS = 7
MACHINES = (("a1b2c3d4e5f60001", "x86-avx512", "Xeon 8480+"), ("a1b2c3d4e5f60002", "x86-avx512", "Xeon 8480+"),
            ("a1b2c3d4e5f60003", "arm64", "Neoverse-V2"))
START = datetime(2026, 1, 1, 2, 0, tzinfo=timezone.utc)
MODELS = ("mobilenet_v2", "mobilenet_v3", "shufflenet_v2", "squeezenet", "efficientnet_lite0", "resnet18",
          "resnet50", "det_320", "vit_tiny", "minilm", "tiny_mlp", "tiny_cnn")
RUNNERS = ("onnxruntime", "openvino", "ncnn", "mnn")
PRECISIONS = ("fp32", "fp16", "int8")
BATCHES = (1, 4, 16)
THREADS = (1, 2, 4, 8, 16)


@dataclass(frozen=True)
class History:
    results: Path
    rows: int
    files: int
    runs: list[str]  # run ids, oldest first
    base_run: str  # the two last nights of the first machine: what a nightly compare compares
    new_run: str


def case_identities() -> list[dict]:
    keys = []
    for model in MODELS:
        for runner in RUNNERS:
            for precision in PRECISIONS:
                for batch in BATCHES:
                    for threads in THREADS:
                        key = f"{model}/{runner}/cpu/{precision}/b{batch}/t{threads}/latency"
                        keys.append({"case_key": key, "model": model, "runner": runner, "precision": precision,
                                     "batch": batch, "threads": threads})
    return keys[:CASES_PER_RUN]


def _cases_table(ids: pa.Table, run_id: str, when: datetime, rng: np.random.Generator, base_ms: np.ndarray,
                 sampled: bool) -> pa.Table:
    n = ids.num_rows
    median = base_ms * rng.lognormal(0.0, 0.02, n)
    ok = rng.random(n) > 0.02
    status = np.where(ok, "ok", "error")
    columns = {
        "schema_version": pa.array(np.full(n, SCHEMA_VERSION, np.int32)),
        "run_id": pa.array([run_id] * n), "timestamp": pa.array([when + timedelta(seconds=i) for i in range(n)],
                                                                 CASE_SCHEMA.field("timestamp").type),
        "suite": pa.array(["server"] * n), "device": pa.array(["cpu"] * n), "scenario": pa.array(["latency"] * n),
        "status": pa.array(status), "error": pa.array([None if o else "RuntimeError: synthetic failure" for o in ok]),
        "model_sha256": pa.array(["0" * 64] * n), "model_source": pa.array(["built"] * n),
        "runner_version": pa.array(["1.20.0"] * n), "precision_used": ids.column("precision"),
        "threads_used": ids.column("threads"), "iterations": pa.array(np.full(n, 1200, np.int64)),
        "median_ms": pa.array(median, mask=~ok), "median_ci_low_ms": pa.array(median * 0.99, mask=~ok),
        "median_ci_high_ms": pa.array(median * 1.01, mask=~ok), "mean_ms": pa.array(median * 1.02, mask=~ok),
        "p90_ms": pa.array(median * 1.1, mask=~ok), "p99_ms": pa.array(median * 1.3, mask=~ok),
        "min_ms": pa.array(median * 0.9, mask=~ok), "max_ms": pa.array(median * 2.0, mask=~ok),
        "throughput_per_s": pa.array(1000.0 / median, mask=~ok), "cv": pa.array(rng.uniform(0.01, 0.08, n)),
        "unstable": pa.array(np.zeros(n, bool)), "accuracy_ok": pa.array(ok), "cosine": pa.array(np.full(n, 0.9999)),
        "normalized_error": pa.array(rng.uniform(1e-6, 1e-3, n)), "cold_start_ms": pa.array(median * 40 + 50),
        "peak_rss_mb": pa.array(rng.uniform(80, 900, n)), "wall_s": pa.array(rng.uniform(2, 6, n)),
        "runner_facts": pa.array(['{"providers": ["CPUExecutionProvider"]}'] * n),
        "timed_region": pa.array(["infer: bound inputs -> outputs in host memory"] * n),
    }
    if sampled:
        ns = (median[:, None] * 1e6 * rng.lognormal(0.0, 0.03, (n, SAMPLES))).astype(np.int64)
        offsets = np.arange(0, n * SAMPLES + 1, SAMPLES, dtype=np.int32)
        columns["samples_ns"] = pa.ListArray.from_arrays(offsets, pa.array(ns.ravel()), mask=pa.array(~ok))
    columns.update({name: ids.column(name) for name in ids.column_names})
    arrays = [columns.get(f.name, pa.nulls(n, f.type)).cast(f.type) for f in CASE_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=CASE_SCHEMA)


def write_history(results: Path, rows: int, seed: int = 0) -> History:
    rng = np.random.default_rng(seed)
    ids = pa.Table.from_pylist(case_identities())
    nights = max(2, math.ceil(rows / (ids.num_rows * len(MACHINES))))
    base = {m: rng.lognormal(0.0, 1.0, ids.num_rows) * (1.0 + i * 0.3) for i, (m, _, _) in enumerate(MACHINES)}
    runs, files = [], 0
    for night in range(nights):
        for machine_id, label, cpu in MACHINES:
            when = START + timedelta(days=night)
            run_id = f"{when:%Y%m%dT%H%M%SZ}-{machine_id[-4:]}"
            drift = 1.0 + 0.05 * math.sin(night / 30)
            table = _cases_table(ids, run_id, when, rng, base[machine_id] * drift, night >= nights - SAMPLED_NIGHTS)
            target = results / store.run_folder(run_id, when) / store.COMPACTED
            target.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, target, compression="zstd")
            store.write_run(results, run_id, {
                "run_id": run_id, "timestamp": when, "suite": "server", "status": "complete",
                "cases_planned": ids.num_rows, "cases_written": ids.num_rows, "machine_id": machine_id,
                "machine_label": label, "cpu_model": cpu, "git_commit": f"{night:040x}",
                "packages": '{"onnxruntime": "1.20.0"}', "command": "bench run --suite server",
            })
            runs.append(run_id)
            files += 1
    first = [r for r in runs if r.endswith(MACHINES[0][0][-4:])]
    return History(results, nights * len(MACHINES) * ids.num_rows, files, runs, first[-2], first[-1])


def write_one_night(results: Path, run_id: str, when: datetime, seed: int = 1) -> int:
    """One machine's night as ``bench run`` writes it: one file per case through the store; returns the rows."""
    rng = np.random.default_rng(seed)
    ids = pa.Table.from_pylist(case_identities())
    table = _cases_table(ids, run_id, when, rng, rng.lognormal(0.0, 1.0, ids.num_rows), sampled=True)
    for index, row in enumerate(table.to_pylist()):
        store.write_case(results, run_id, when, index, {k: v for k, v in row.items() if k != "schema_version"})
    return table.num_rows


# --- the operations, as a nightly runs them --------------------------------------------------------------

def list_runs(results: Path, base: str, new: str, out: Path) -> int:
    sql = "SELECT run_id, timestamp, machine_id, machine_label, status FROM runs ORDER BY timestamp"
    return store.query(results, sql).num_rows


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
    return {"op": op, "seconds": round(seconds, 3), "peak_rss_mb": round(peak_mb, 1), "result": code}


if __name__ == "__main__":
    if sys.argv[1] == "write":
        h = write_history(Path(sys.argv[2]), int(sys.argv[3]))
        print(json.dumps({"rows": h.rows, "files": h.files, "base": h.base_run, "new": h.new_run}))
    else:
        op, results, base, new, out = sys.argv[2:7]
        print(json.dumps(measure(op, Path(results), base, new, Path(out))))
