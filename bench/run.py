"""A run: environment captured once, fp32 references made, then each case in its own worker, one row each.

A run survives being stopped: every finished case is already on disk, SIGTERM / Ctrl-C kill the current
worker's process group and mark the run ``interrupted``, and ``--resume RUN_ID`` runs only the cases
whose rows are missing, under the same run id. A run that completes is compacted into one file
(:mod:`bench.results.compaction`).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import secrets
import signal
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

from bench import envinfo, noise, thermal
from bench.ahead import AheadConversions, Slots, by_model, convert_ahead
from bench.environments import Environments, prepare, release_of
from bench.errors import UserError
from bench.execution.parity import reference_ok, reference_path
from bench.files import first_line
from bench.forkserver import ForkServer
from bench.launcher import remove_stale_case_dirs, run_worker
from bench.peak import peaks
from bench.plan import PlannedCase, plan_sha256
from bench.progress import Display
from bench.registry import Registry
from bench.results import layout, store
from bench.results.compaction import compact_run
from bench.results.rows import op_rows, outcome_row, skipped_row
from bench.results.uri import Location


class Interrupted(BaseException):
    """SIGTERM / Ctrl-C. A BaseException, like KeyboardInterrupt: a library's ``except Exception`` (pydantic's
    schema building, a plugin loader) must not swallow it and let the run go on to exit 0."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum


@dataclass(frozen=True)
class RunInfo:
    """Identity of a run; a resumed run keeps its id, start time (and so its partition) and arguments."""

    run_id: str
    started: datetime
    suite: str
    argv: list[str]
    plan_sha256: str | None = None  # as stored; None for a new run or one from before the column

    @classmethod
    def new(cls, suite: str, argv: list[str]) -> RunInfo:
        started = datetime.now(timezone.utc)
        return cls(f"{started:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}", started, suite, argv)


def load_run(results: Location, run_id: str) -> RunInfo:
    """The stored identity of ``run_id``, for ``--resume``."""
    if not store.has_table(results, "runs"):
        raise UserError(f"--resume {run_id}: no runs in {results}")
    sql = ("SELECT run_id, timestamp, suite, argv, plan_sha256, machine_id, machine_label, cpu_model FROM runs "
           "WHERE run_id = ?")
    rows = store.query(results, sql, [run_id]).to_pylist()
    if not rows:
        raise UserError(f"--resume {run_id}: no such run in {results}")
    row = rows[0]
    _check_same_machine(row)
    return RunInfo(row["run_id"], row["timestamp"], row["suite"], json.loads(row["argv"]), row["plan_sha256"])


def _check_same_machine(run: dict[str, Any]) -> None:
    """A run is one machine's: resumed elsewhere, its rows would be relabelled and its environment overwritten."""
    here = envinfo.machine_id()
    if run["machine_id"] and run["machine_id"] != here:
        label = f"{run['machine_label']}, " if run["machine_label"] else ""
        raise UserError(f"--resume {run['run_id']}: the run belongs to machine {run['machine_id']} ({label}"
                        f"{run['cpu_model'] or 'unknown CPU'}), not this one ({here}); resume it on that machine, or "
                        "start a new run here")


def check_resumable(run: RunInfo, planned: list[PlannedCase]) -> None:
    """A resumed run must be the same plan: the same case keys on the same model bytes."""
    if run.plan_sha256 and run.plan_sha256 != plan_sha256(planned):
        raise UserError(f"--resume {run.run_id}: its plan differs from the run's ({len(planned)} cases now; the suite "
                        f"file or a model changed, or `{' '.join(run.argv)}` was read from another folder); start a "
                        "new run instead")


def finished_keys(results: Location, run_id: str) -> set[str]:
    return set(store.read_cases(results, ["case_key"], run_id=run_id).column("case_key").to_pylist())


def ensure_references(planned: list[PlannedCase], server: ForkServer | None = None) -> None:
    """Compute missing fp32 references, each in its own worker (a failure shows on the rows as no reference)."""
    seen: set[Path] = set()
    for p in planned:
        path = reference_path(p.case)
        if p.skip_status or path in seen or reference_ok(p.case):
            continue
        seen.add(path)
        path.unlink(missing_ok=True)  # corrupted, or from before references were hashed: made again
        # bench's own ONNX Runtime, whatever release the case runs: every release is checked against one reference
        reference = dataclasses.replace(p.case, runtime_version="", python="")
        run_worker(reference, mode="reference", server=server)


def _write_run(
    results: Location, run: RunInfo, env: dict[str, Any], status: str, planned: int, written: int,
) -> None:
    row = {
        "run_id": run.run_id, "timestamp": run.started, "suite": run.suite, "argv": json.dumps(run.argv),
        "plan_sha256": run.plan_sha256,
        "command": " ".join(["bench", "run", *run.argv]), "status": status, "cases_planned": planned,
        "cases_written": written, **env,
    }
    layout.write_run(results, run.run_id, row)


def _mark_failed(results: Location, run: RunInfo, env: dict[str, Any], planned: int) -> None:
    """Best effort: the store itself may be what failed; --resume finishes a failed run like an interrupted one."""
    try:
        _write_run(results, run, env, "failed", planned, len(finished_keys(results, run.run_id)))
    except Exception:  # the original error is the one to report
        pass


def _raise_interrupted(signum: int, _frame: Any) -> None:
    raise Interrupted(signum)


def _run_one(p: PlannedCase, run: RunInfo, version: str | None,
             server: ForkServer) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The case's row, and its profile pass's op rows (none unless it was profiled)."""
    if p.skip_status:
        return {**skipped_row(p.case, p.skip_status, p.skip_reason, run.run_id, run.suite, version),
                "source_path": p.source_path}, []
    outcome = run_worker(p.case, server=server)
    row = outcome_row(p.case, outcome, run.run_id, run.suite, version)
    return ({**row, "precision_feature": p.precision_feature, "source_path": p.source_path},
            op_rows(p.case, outcome, run.run_id))


@dataclass(frozen=True)
class RunOptions:
    strict: bool = False  # a noisy machine is an error, not a warning
    cooldown_s: float = 0.0  # idle time before each case, for machines that heat up
    cooldown_until_c: float | None = None  # then wait (bounded) until the hottest thermal zone is under this
    cooldown_max_s: float = 300.0
    machine_label: str = ""  # the CI runner's hardware label, e.g. "x86-avx512"
    shard: str = ""
    verbose: bool = False  # print every case (impossible ones too) and the full table, not just the answer
    convert_ahead: bool = True  # make the artifacts first, several at a time, then time (bench.ahead)


def _environment(options: RunOptions, planned: list[PlannedCase]) -> dict[str, Any]:
    report = noise.check(envinfo.cpus_allowed())
    if options.strict and report.warnings:
        raise UserError(f"noisy machine (--strict): {'; '.join(report.warnings)}")
    return {
        **envinfo.capture(),
        "peak_gflops": peaks([p.case.threads for p in planned if not p.skip_status]),
        "cpu_governor": ",".join(report.governors), "turbo": report.turbo,
        "load_avg_1m": report.load_avg_1m, "busy_processes": report.busy_processes,
        "max_temperature_c": report.max_temperature_c, "swap_used_mb": report.swap_used_mb,
        "noise_warnings": report.warnings, "machine_label": options.machine_label or None,
        "shard": options.shard or None,
    }


def _cooled(options: RunOptions) -> dict[str, Any]:
    """Before a case that runs: the fixed idle time, then the wait for a cool machine; what the row records."""
    if options.cooldown_s:
        time.sleep(options.cooldown_s)
    cooled = thermal.cool_down(options.cooldown_until_c, options.cooldown_max_s)
    waited = cooled.waited_s if options.cooldown_until_c is not None and cooled.start_c is not None else None
    return {"temp_start_c": cooled.start_c, "cooldown_wait_s": waited}


def _cooldown_notes(options: RunOptions) -> list[str]:
    if options.cooldown_until_c is not None and thermal.hottest() is None:
        return [f"--cooldown-until {options.cooldown_until_c:g}: no thermal zone reads here; cases start at once"]
    return []


def _run_cases(planned, results, run, registry, display, done: set[str], options: RunOptions,
               server: ForkServer, ahead: AheadConversions, environments: Environments) -> list[dict[str, Any]]:
    versions = {name: spec.version() for name, spec in registry.specs.items()}
    rows = []
    for p in planned:
        if p.case.key in done:
            continue
        thermals = _cooled(options) if not p.skip_status else {}
        display.started(p.case.key)
        version = p.case.runtime_version or versions.get(p.case.runner)  # the read-back, where a worker ran, wins
        row, ops = _run_one(p, run, version, server)
        row = environments.mark(release_of(p, registry), ahead.mark(p.case, row))
        if thermals:
            row = {**row, **thermals, "temp_end_c": thermal.hottest()}
        # the plan index names the file, so a resumed run or another shard never collides
        if ops:  # first: a case row found on resume has its ops beside it
            layout.write_ops(results, run.run_id, run.started, p.index, ops)
        layout.write_case(results, run.run_id, run.started, p.index, row)
        rows.append(row)
        display.finished(row)
    return rows


def execute(
    planned: list[PlannedCase], results: Location, run: RunInfo, registry: Registry, stream=None,
    options: RunOptions = RunOptions(),
) -> list[dict[str, Any]]:
    """Run every planned case whose row is not yet in ``results`` (resolved by the caller: bench.cli); returns the
    new rows."""
    run = run if run.plan_sha256 else dataclasses.replace(run, plan_sha256=plan_sha256(planned))
    remove_stale_case_dirs()
    done = finished_keys(results, run.run_id) if store.has_table(results, "cases") else set()
    env = _environment(options, planned)
    _write_run(results, run, env, "running", len(planned), len(done))  # fails early on an unwritable folder
    to_run = sum(1 for p in planned if not p.skip_status and p.case.key not in done)
    display = Display(to_run, stream, options.verbose)
    display.warn_noise(env["noise_warnings"] + _cooldown_notes(options))
    previous = {s: signal.signal(s, _raise_interrupted) for s in (signal.SIGTERM, signal.SIGINT)}
    rows: list[dict[str, Any]] = []
    try:
        # each case still gets a process of its own (bench.forkserver); the pass's slots have a server each
        with ForkServer() as server, Slots(server) as slots:
            planned, environments = prepare(planned, done, registry, display.note)  # the version axis's, untimed
            display.recount(sum(1 for p in planned if not p.skip_status and p.case.key not in done))
            if not env["emulated"]:  # an emulated run ranks nothing (see the end)
                display.expect([p.case.model.name for p in planned if p.case.key not in done],
                               [{**env, "run_id": run.run_id}])
            ensure_references(planned, server)
            for model in by_model(planned):  # its artifacts made, then its cases timed: its answer comes early
                ahead = (convert_ahead(model, done, registry, slots, display.note) if options.convert_ahead
                         else AheadConversions({}))
                rows += _run_cases(model, results, run, registry, display, done, options, server, ahead, environments)
    except Interrupted:
        _write_run(results, run, env, "interrupted", len(planned), len(finished_keys(results, run.run_id)))
        display.interrupted(run.run_id, str(results))
        raise
    except Exception as exc:  # whatever stopped it, the run row must not say "running" forever
        _mark_failed(results, run, env, len(planned))
        if isinstance(exc, OSError):  # a full disk, say: every finished row is kept, and --resume finishes the run
            display.interrupted(run.run_id, str(results), f"stopped ({exc.strerror or first_line(exc)})",
                                "Free space there, then continue with" if exc.errno == errno.ENOSPC else
                                "Continue with")
        raise
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    _write_run(results, run, env, "complete", len(planned), len(done) + len(rows))
    _compact(results, run, display)
    # The answer ranks nothing from an emulated run (bench.report.scenarios reads this flag off the rows).
    display.close([{**r, "emulated": True} for r in rows] if env["emulated"] else rows, run.run_id, str(results), env)
    return rows


def _compact(results: Location, run: RunInfo, display: Display) -> None:
    """One file for the complete run instead of one per case; a failure loses nothing, so it only warns."""
    try:
        compact_run(results, run.run_id, run.started)
    except (OSError, pa.ArrowException) as exc:
        display.warn(f"could not compact run {run.run_id} ({first_line(exc)}); `bench compact` retries")
