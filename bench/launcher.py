"""Runs one case in a fresh worker process with a deadline and turns whatever happens into a result.

The parent blocks on a pidfd until the worker exits or the deadline passes: no polling loop runs
beside the process being timed. The worker leads its own process group, so a hang with children is
killed whole.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.case import Case

MAX_RESULT_BYTES = 16 * 1024 * 1024
MAX_SAMPLES_BYTES = 256 * 1024 * 1024
TAIL_BYTES = 4000


@dataclass
class WorkerOutcome:
    """What the parent learned about one worker run."""

    status: str
    result: dict[str, Any] = field(default_factory=dict)
    samples_ns: np.ndarray | None = None
    error: str = ""
    exit_code: int | None = None
    signal: str | None = None
    stderr_tail: str = ""
    peak_rss_mb: float | None = None
    wall_s: float = 0.0


def _tail(path: Path) -> str:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - TAIL_BYTES))
        return f.read().decode("utf-8", "replace")


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _wait(proc: subprocess.Popen, timeout_s: float) -> tuple[bool, int, Any]:
    """Block until the worker exits or the deadline passes. Returns (timed_out, wait status, rusage)."""
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        try:
            ready, _, _ = select.select([fd], [], [], timeout_s)
        finally:
            os.close(fd)
        timed_out = not ready
    else:  # no pidfd (old kernel, macOS): Popen's wait sleeps between checks
        try:
            proc.wait(timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
    if timed_out:
        _kill_group(proc.pid)
    _, status, rusage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    _kill_group(proc.pid)  # grandchildren left behind by a worker that did exit
    return timed_out, status, rusage


def _read_result(out_dir: Path) -> dict[str, Any]:
    path = out_dir / "result.json"
    if not path.exists():
        raise ValueError("the worker wrote no result")
    if path.stat().st_size > MAX_RESULT_BYTES:
        raise ValueError(f"result is {path.stat().st_size} bytes, over the {MAX_RESULT_BYTES} limit")
    result = json.loads(path.read_text())
    if not isinstance(result, dict) or not isinstance(result.get("status"), str):
        raise ValueError("result has no status")
    return result


def _read_samples(out_dir: Path) -> np.ndarray:
    path = out_dir / "samples.npy"
    if path.stat().st_size > MAX_SAMPLES_BYTES:
        raise ValueError("samples file over its size limit")
    samples = np.load(path, allow_pickle=False)
    if samples.dtype != np.int64 or samples.ndim != 1 or len(samples) == 0 or samples.min() <= 0:
        raise ValueError("samples are not positive int64 nanoseconds")
    return samples


def _interpret(out_dir: Path, timed_out: bool, returncode: int, timeout_s: float) -> WorkerOutcome:
    if timed_out:
        return WorkerOutcome("timeout", error=f"no result within {timeout_s:g} s; process group killed")
    if returncode < 0:
        name = signal.Signals(-returncode).name
        return WorkerOutcome("crashed", error=f"worker killed by {name}", signal=name)
    if returncode != 0:
        return WorkerOutcome("error", error=f"worker exited with code {returncode}", exit_code=returncode)
    try:
        result = _read_result(out_dir)
        samples = _read_samples(out_dir) if result["status"] == "ok" and "latency" in result else None
    except (ValueError, OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        return WorkerOutcome("bad_output", error=f"unreadable worker output: {exc}", exit_code=0)
    return WorkerOutcome(result["status"], result, samples, result.get("error", ""), exit_code=0)


def run_worker(case: Case, mode: str = "case") -> WorkerOutcome:
    """Run ``case`` in a fresh ``python -m bench.worker`` process and collect its outcome."""
    with tempfile.TemporaryDirectory(prefix="bench-case-") as tmp:
        out_dir = Path(tmp)
        case_file = out_dir / "case.json"
        case_file.write_text(case.to_json())
        stderr_file, stdout_file = out_dir / "stderr.log", out_dir / "stdout.log"
        cmd = [sys.executable, "-m", "bench.worker", mode, str(case_file), str(out_dir)]
        with open(stdout_file, "wb") as out, open(stderr_file, "wb") as err:
            start = os.times().elapsed
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
            timed_out, _, rusage = _wait(proc, case.timeout_s)
        outcome = _interpret(out_dir, timed_out, proc.returncode, case.timeout_s)
        outcome.wall_s = os.times().elapsed - start
        outcome.stderr_tail = _tail(stderr_file)
        outcome.peak_rss_mb = rusage.ru_maxrss / 1024.0  # Linux reports KiB
        if outcome.exit_code is None and proc.returncode >= 0 and not timed_out:
            outcome.exit_code = proc.returncode
    return outcome
