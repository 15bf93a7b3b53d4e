"""Runs one case in a fresh worker process with a deadline and turns whatever happens into a result.

The parent blocks on a pidfd until the worker exits or the deadline passes, waking once a second to check the
size of the case's logs (a worker writing gigabytes to stderr is stopped at ``LOG_CAP_BYTES``); nothing else runs
beside the process being timed. The worker leads its own process group, so a hang with children is killed whole,
and what escaped the group (a daemon in a session of its own) is ended by the subreaper above the worker: the
fork server for a forked worker, the launcher for a spawned one (``bench.containment``).
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import containment, telemetry
from bench.case import Case
from bench.contract import SPAWNED_AT_ENV, Status, WorkerOutcome, WorkerResult
from bench.forkserver import Forked, ForkServer

MAX_RESULT_BYTES = 16 * 1024 * 1024
MAX_SAMPLES_BYTES = 256 * 1024 * 1024
TAIL_BYTES = 4000
LOG_CAP_BYTES = 64 * 1024 * 1024  # per log file (stdout.log, stderr.log): past it the case is ended
LOG_CHECK_S = 1.0  # how often the wait wakes to look at the logs' sizes


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


class _Spawned:
    """A worker the launcher started itself (a fresh interpreter): its own child, reaped with wait4. The launcher
    is the subreaper of what the worker starts, so every child it has after the worker that it had not before is
    the case's (``end_orphans``)."""

    def __init__(self, proc: subprocess.Popen, children_before: set[int]) -> None:
        self.pid = proc.pid
        self._proc = proc
        self._children_before = children_before

    def wait_fallback(self, timeout_s: float) -> bool:
        try:
            self._proc.wait(timeout_s)
            return False
        except subprocess.TimeoutExpired:
            return True

    def reap(self) -> tuple[int, float]:
        _, status, rusage = os.wait4(self.pid, 0)
        self._proc.returncode = os.waitstatus_to_exitcode(status)
        return self._proc.returncode, rusage.ru_maxrss / 1024.0  # Linux reports KiB

    def end_orphans(self) -> None:
        containment.end_children(keep=self._children_before)


Worker = _Spawned | Forked


@dataclass
class _Logs:
    """The case's log files, whose size the wait checks once a second."""

    stdout: Path
    stderr: Path

    def overflow(self) -> str:
        """Why the case must end now ("stderr passed 64 MB"), or "" while both logs are under the cap."""
        for name, path in (("stdout", self.stdout), ("stderr", self.stderr)):
            try:
                size = path.stat().st_size
            except OSError:
                continue
            if size > LOG_CAP_BYTES:
                return (f"{name} passed {LOG_CAP_BYTES // 2**20} MB ({size / 2**20:.0f} MB written); "
                        f"process group killed")
        return ""


TIMED_OUT = "timeout"


def _exited_within(worker: Worker, fd: int | None, seconds: float) -> bool:
    """Sleep in select() on the pidfd (or Popen's wait where there is none) for at most ``seconds``."""
    if fd is None:  # no pidfd (old kernel, macOS; never a forked worker): Popen's wait sleeps between checks
        return not worker.wait_fallback(seconds)
    ready, _, _ = select.select([fd], [], [], seconds)
    return bool(ready)


def _block_until_exit(worker: Worker, timeout_s: float, logs: _Logs) -> str:
    """Block until the worker exits (""), the deadline passes (TIMED_OUT) or a log passes its cap (the reason)."""
    try:
        fd = os.pidfd_open(worker.pid)
    except ProcessLookupError:  # a forked worker that has exited already (and been reaped by its server)
        return ""
    except (AttributeError, OSError):
        fd = None
    deadline = time.monotonic() + timeout_s
    try:
        while (left := deadline - time.monotonic()) > 0:
            if _exited_within(worker, fd, min(LOG_CHECK_S, left)):
                return ""
            if overflow := logs.overflow():
                return overflow
        return TIMED_OUT
    finally:
        if fd is not None:
            os.close(fd)


def _wait(worker: Worker, timeout_s: float, logs: _Logs) -> tuple[str, int | None, float | None]:
    """Wait for the worker; on timeout, a log past its cap, or if the parent is interrupted while waiting, kill its
    whole group; then end what the case started outside it.

    Returns (why it was killed: "" when it exited, TIMED_OUT or a log's overflow; exit code, None where unknown;
    peak RSS in MB)."""
    try:
        killed_for = _block_until_exit(worker, timeout_s, logs)
    except BaseException:  # SIGTERM / Ctrl-C in the parent: leave no worker behind
        _kill_group(worker.pid)
        worker.reap()
        worker.end_orphans()
        raise
    if killed_for:
        _kill_group(worker.pid)
    returncode, peak_rss_mb = worker.reap()
    _kill_group(worker.pid)  # grandchildren left behind by a worker that did exit
    worker.end_orphans()  # and those that left its group (a daemon: fork, setsid, fork)
    return killed_for, returncode, peak_rss_mb


def _read_result(out_dir: Path) -> WorkerResult:
    path = out_dir / "result.json"
    if not path.exists():
        raise ValueError("the worker wrote no result")
    if path.stat().st_size > MAX_RESULT_BYTES:
        raise ValueError(f"result is {path.stat().st_size} bytes, over the {MAX_RESULT_BYTES} limit")
    return WorkerResult.from_json(path.read_bytes())


def _read_samples(out_dir: Path) -> np.ndarray:
    path = out_dir / "samples.npy"
    if path.stat().st_size > MAX_SAMPLES_BYTES:
        raise ValueError("samples file over its size limit")
    samples = np.load(path, allow_pickle=False)
    if samples.dtype != np.int64 or samples.ndim != 1 or len(samples) == 0 or samples.min() <= 0:
        raise ValueError("samples are not positive int64 nanoseconds")
    return samples


OOM_MARKERS = ("MemoryError", "bad_alloc", "out of memory", "Cannot allocate memory", "failed to allocate",
               "Unable to allocate", "allocation failed", "ENOMEM")
CGROUP_V1_OOM = "/sys/fs/cgroup/memory/memory.oom_control"


def oom_kills() -> int | None:
    """How many processes the kernel's OOM killer has killed in this process's memory cgroup (v2 memory.events,
    v1 memory.oom_control), or None where neither is readable: the evidence that a SIGKILL was an OOM kill."""
    try:
        own = next((line.split(":", 2)[2] for line in Path("/proc/self/cgroup").read_text().splitlines()
                    if line.startswith("0::")), None)
    except OSError:
        own = None
    candidates = [f"/sys/fs/cgroup{own.rstrip('/')}/memory.events"] if own else []
    for path in [*candidates, CGROUP_V1_OOM]:
        try:
            fields = dict(line.split() for line in Path(path).read_text().splitlines() if line.count(" ") == 1)
        except (OSError, ValueError):
            continue
        if "oom_kill" in fields:
            return int(fields["oom_kill"])
    return None


def _looks_like_oom(stderr_tail: str) -> bool:
    lowered = stderr_tail.lower()
    return any(marker.lower() in lowered for marker in OOM_MARKERS)


def _killed(oom_killed: int | None) -> WorkerOutcome:
    """A SIGKILL nobody here sent: an OOM kill only where the kernel's count says so."""
    if oom_killed:
        return WorkerOutcome(Status.OOM, error="worker killed by the kernel OOM killer (its cgroup's oom_kill "
                                               "count rose)", signal="SIGKILL")
    known = "no OOM kill recorded in its cgroup" if oom_killed == 0 else "no OOM record readable here"
    return WorkerOutcome(Status.CRASHED, error=f"worker killed by SIGKILL (sender unknown; {known})", signal="SIGKILL")


def _interpret(
    out_dir: Path, timed_out: bool, returncode: int | None, timeout_s: float, stderr_tail: str = "",
    oom_killed: int | None = None, killed_for: str = "",
) -> WorkerOutcome:
    """``oom_killed``: how much the cgroup's OOM-kill count rose while the worker ran (None: unknown);
    ``killed_for``: why the launcher ended a worker before its deadline (a log past its cap); ``returncode`` None:
    the fork server never said how the worker ended, so its files are the only evidence."""
    if timed_out:
        return WorkerOutcome(Status.TIMEOUT, error=f"no result within {timeout_s:g} s; process group killed")
    if killed_for:
        return WorkerOutcome(Status.ERROR, error=killed_for)
    if returncode is None:
        return _from_files(out_dir)
    if returncode < 0:
        name = signal.Signals(-returncode).name
        if name == "SIGKILL":
            return _killed(oom_killed)
        if _looks_like_oom(stderr_tail):
            return WorkerOutcome(Status.OOM, error=f"worker died of {name} while out of memory", signal=name)
        return WorkerOutcome(Status.CRASHED, error=f"worker killed by {name}", signal=name)
    if returncode != 0 and _looks_like_oom(stderr_tail):
        return WorkerOutcome(Status.OOM, error=f"worker ran out of memory (exit code {returncode})",
                             exit_code=returncode)
    if returncode != 0:
        return WorkerOutcome(Status.ERROR, error=f"worker exited with code {returncode}", exit_code=returncode)
    return _from_files(out_dir, exit_code=0)


def _from_files(out_dir: Path, exit_code: int | None = None) -> WorkerOutcome:
    """The outcome a worker wrote (result.json, samples.npy), or bad_output where it is missing or unreadable."""
    try:
        result = _read_result(out_dir)
        samples = _read_samples(out_dir) if result.status == Status.OK and result.timing else None
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        return WorkerOutcome(Status.BAD_OUTPUT, error=f"unreadable worker output: {exc}", exit_code=exit_code)
    return WorkerOutcome(result.status, result, samples, result.error, exit_code=exit_code)


CASE_DIR_PREFIX = "bench-case-"  # then "<pid namespace>.<parent pid>-": a folder whose parent is gone is a leftover


def _pid_namespace() -> int:
    """Tells this machine's processes from those of a container sharing /tmp, whose pids mean nothing here."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def _case_dir_prefix() -> str:
    return f"{CASE_DIR_PREFIX}{_pid_namespace()}.{os.getpid()}-"


def remove_stale_case_dirs() -> int:
    """Delete this user's case folders whose ``bench run`` died without cleaning up (SIGKILL, OOM killer);
    returns how many. Only folders of this pid namespace; a pid reused since is taken as alive, which only
    delays the cleanup."""
    removed = 0
    here = str(_pid_namespace())
    for folder in Path(tempfile.gettempdir()).glob(f"{CASE_DIR_PREFIX}*.*-*"):
        namespace, _, pid = folder.name[len(CASE_DIR_PREFIX):].partition("-")[0].partition(".")
        if namespace == here and pid.isdigit() and _owned(folder) and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def _owned(folder: Path) -> bool:
    try:
        return folder.stat().st_uid == os.getuid()
    except OSError:  # gone meanwhile
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _start(case: Case, mode: str, out_dir: Path, logs: _Logs, server: ForkServer | None) -> Worker:
    """The case's worker: forked by ``server`` where there is one, else a fresh ``python -m bench.execution.worker``
    (which sets up its own death signal, cap and CPUs from its environment: no code of ours between fork and exec)."""
    case_file = out_dir / "case.json"
    for log in (logs.stdout, logs.stderr):  # there to read even if a forked child dies before it opens them
        log.touch()
    forked = server.fork({
        "mode": mode, "case_file": str(case_file), "out_dir": str(out_dir), "stdout": str(logs.stdout),
        "stderr": str(logs.stderr), "max_memory_mb": case.max_memory_mb, "cpus": list(case.cpus),
        "spawned_at_ns": time.time_ns(),
    }) if server else None
    if forked:
        return forked
    containment.become_subreaper()  # what the worker leaves behind comes here, to be ended with the case
    before = containment.children()
    cmd = [sys.executable, "-m", "bench.execution.worker", mode, str(case_file), str(out_dir)]
    setup = containment.worker_environment(os.getpid(), case.max_memory_mb, case.cpus)
    with open(logs.stdout, "wb") as out, open(logs.stderr, "wb") as err:
        return _Spawned(subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True,
            env={**telemetry.switched_off(), **setup, SPAWNED_AT_ENV: str(time.time_ns())},
        ), before)


def run_worker(case: Case, mode: str = "case", server: ForkServer | None = None) -> WorkerOutcome:
    """Run ``case`` in a fresh worker process (forked by ``server``, else spawned) and collect its outcome."""
    with tempfile.TemporaryDirectory(prefix=_case_dir_prefix()) as tmp:
        out_dir = Path(tmp)
        (out_dir / "case.json").write_text(case.to_json())
        logs = _Logs(out_dir / "stdout.log", out_dir / "stderr.log")
        start = os.times().elapsed
        worker = _start(case, mode, out_dir, logs, server)
        kills_before = oom_kills()
        killed_for, returncode, peak_rss_mb = _wait(worker, case.timeout_s, logs)
        kills_after = oom_kills()
        stderr_tail = _tail(logs.stderr)
        rose = None if kills_before is None or kills_after is None else kills_after - kills_before
        timed_out = killed_for == TIMED_OUT
        outcome = _interpret(out_dir, timed_out, returncode, case.timeout_s, stderr_tail, rose,
                             killed_for="" if timed_out else killed_for)
        outcome.wall_s = os.times().elapsed - start
        outcome.stderr_tail = stderr_tail
        outcome.peak_rss_mb = peak_rss_mb
        outcome.started_by = "fork server" if isinstance(worker, Forked) else "fresh interpreter"
        if outcome.exit_code is None and returncode is not None and returncode >= 0 and not killed_for:
            outcome.exit_code = returncode
    return _with_cap_evidence(outcome, case.max_memory_mb)


def _with_cap_evidence(outcome: WorkerOutcome, cap_mb: int | None) -> WorkerOutcome:
    """A library whose allocation failed under the address-space cap may say so in words bench does not know:
    the status stays what the evidence says, and the error says that the cap was in force, and the peak."""
    if cap_mb and outcome.status in (Status.ERROR, Status.CRASHED):
        outcome.error = (f"{outcome.error or outcome.status}; under --max-memory {cap_mb} MB (address space; "
                         f"peak RSS {outcome.peak_rss_mb or 0:.0f} MB): a failed allocation can end this way")
    return outcome
