"""A run: environment captured once, fp32 references made, then each case in its own worker, one row each."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import envinfo, store
from bench.launcher import run_worker
from bench.plan import PlannedCase
from bench.progress import Display
from bench.registry import Registry
from bench.rows import outcome_row, skipped_row
from bench.worker import reference_path


def new_run_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def ensure_references(planned: list[PlannedCase]) -> dict[str, str]:
    """Compute missing fp32 references, each in its own worker; returns failures by case key."""
    failures: dict[str, str] = {}
    seen: set[Path] = set()
    for p in planned:
        path = reference_path(p.case)
        if p.skip_status or path in seen or path.exists():
            continue
        seen.add(path)
        outcome = run_worker(p.case, mode="reference")
        if outcome.status != "ok":
            failures[p.case.model.name] = outcome.error or outcome.status
    return failures


def execute(
    planned: list[PlannedCase], results: Path, suite: str, command: str, registry: Registry, stream=None
) -> tuple[str, list[dict[str, Any]]]:
    started = datetime.now(timezone.utc)
    run_id = new_run_id(started)
    run_row = {"run_id": run_id, "timestamp": started, "suite": suite, "command": command, **envinfo.capture()}
    store.write_run(results, run_id, run_row)
    ensure_references(planned)
    versions = {name: spec.version() for name, spec in registry.specs.items()}
    display = Display(len(planned), stream)
    rows = []
    for index, p in enumerate(planned):
        version = versions.get(p.case.runner)
        if p.skip_status:
            row = skipped_row(p.case, p.skip_status, p.skip_reason, run_id, suite, version)
        else:
            display.started(p.case.key)
            row = outcome_row(p.case, run_worker(p.case), run_id, suite, version)
        store.write_case(results, run_id, started, index, row)
        rows.append(row)
        display.finished(row)
    display.close(rows, run_id, str(results))
    return run_id, rows
