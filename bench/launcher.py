"""Runs one case in a fresh worker process with a deadline and turns whatever happens into a result.

The parent blocks on a pidfd until the worker exits or the deadline passes, waking once a second to check the
size of the case's logs (a worker writing gigabytes to stderr is stopped at ``LOG_CAP_BYTES``); nothing else runs
beside the process being timed. The worker leads its own process group, so a hang with children is killed whole,
and what escaped the group (a daemon in a session of its own) is ended by the subreaper above the worker: the
fork server for a forked worker, the launcher for a spawned one (``bench.containment``). ``spawn`` and ``wait`` are
the one lifecycle of a child with a deadline: ``bench tune`` runs its tuner through them too.
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
from contextlib import ExitStack
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol

import numpy as np

from bench import containment, telemetry
from bench.case import Case
from bench.contract import SPAWNED_AT_ENV, Status, WorkerOutcome, WorkerResult
from bench.forkserver import Forked, ForkRequest, ForkServer

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


class Worker(Protocol):
    """A process the launcher waits on with a deadline, however it began: spawned here (``Spawned``) or forked by
    the fork server (``Forked``). It leads its own process group, whose id is its ``pid``."""

    @property
    def pid(self) -> int: ...

    def wait_fallback(self, timeout_s: float) -> bool:
        """Wait at most ``timeout_s`` where no pidfd could be opened on it; True while it still runs."""
        ...

    def reap(self) -> tuple[int | None, float | None]:
        """(exit code, None where unknown; peak RSS in MB, None where unknown) once it has exited or been killed."""
        ...

    def end_orphans(self) -> None:
        """End what it started that left its process group (a daemon), once it has been reaped."""
        ...


class Spawned:
    """A process the launcher started itself (a fresh interpreter): its own child, reaped with wait4. The launcher
    is the subreaper of what the process starts, so every child it has after the process that it had not before is
    the process's (``end_orphans``)."""

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


@dataclass(frozen=True)
class Logs:
    """A child's log files, whose size the wait checks once a second; ``stderr`` None: merged into ``stdout``."""

    stdout: Path
    stderr: Path | None = None

    def overflow(self) -> str:
        """Why the child must end now ("stderr passed 64 MB"), or "" while its logs are under the cap."""
        for name, path in (("stdout", self.stdout), ("stderr", self.stderr)):
            if path is None:
                continue
            try:
                size = path.stat().st_size
            except OSError:
                continue
            if size > LOG_CAP_BYTES:
                return (f"{name} passed {LOG_CAP_BYTES // 2**20} MB ({size / 2**20:.0f} MB written); "
                        f"process group killed")
        return ""


class Ending(Enum):
    """How the wait on a child ended."""

    EXITED = "exited"
    TIMED_OUT = "timed out"  # it passed its deadline: its group was killed
    LOG_CAP = "log cap"  # a log passed LOG_CAP_BYTES: its group was killed


@dataclass(frozen=True)
class Ended:
    """What the wait learned: how it ended, why (a log's overflow, for LOG_CAP), the exit code (None: unknown) and
    the peak RSS in MB (None: unknown)."""

    how: Ending
    returncode: int | None
    peak_rss_mb: float | None
    reason: str = ""


def _exited_within(worker: Worker, fd: int | None, seconds: float) -> bool:
    """Sleep in select() on the pidfd (or Popen's wait where there is none) for at most ``seconds``."""
    if fd is None:  # no pidfd (old kernel, macOS; never a forked worker): Popen's wait sleeps between checks
        return not worker.wait_fallback(seconds)
    ready, _, _ = select.select([fd], [], [], seconds)
    return bool(ready)


def _block_until_exit(worker: Worker, timeout_s: float, logs: Logs) -> tuple[Ending, str]:
    """Block until the worker exits, the deadline passes or a log passes its cap (with the reason)."""
    try:
        fd = os.pidfd_open(worker.pid)
    except ProcessLookupError:  # a forked worker that has exited already (and been reaped by its server)
        return Ending.EXITED, ""
    except (AttributeError, OSError):
        fd = None
    deadline = time.monotonic() + timeout_s
    try:
        while (left := deadline - time.monotonic()) > 0:
            if _exited_within(worker, fd, min(LOG_CHECK_S, left)):
                return Ending.EXITED, ""
            if overflow := logs.overflow():
                return Ending.LOG_CAP, overflow
        return Ending.TIMED_OUT, ""
    finally:
        if fd is not None:
            os.close(fd)


def wait(worker: Worker, timeout_s: float, logs: Logs) -> Ended:
    """Wait for the worker; on timeout, a log past its cap, or if the parent is interrupted while waiting, kill its
    whole group; then end what it started outside it."""
    try:
        how, reason = _block_until_exit(worker, timeout_s, logs)
    except BaseException:  # SIGTERM / Ctrl-C in the parent: leave no worker behind
        _kill_group(worker.pid)
        worker.reap()
        worker.end_orphans()
        raise
    if how is not Ending.EXITED:
        _kill_group(worker.pid)
    returncode, peak_rss_mb = worker.reap()
    _kill_group(worker.pid)  # grandchildren left behind by a worker that did exit
    worker.end_orphans()  # and those that left its group (a daemon: fork, setsid, fork)
    return Ended(how, returncode, peak_rss_mb, reason)


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


def spawn(cmd: list[str], logs: Logs, env: dict[str, str]) -> Spawned:
    """Start ``cmd`` leading a process group of its own (the deadline's kill takes its children with it), stdin on
    /dev/null, output in ``logs``; this process becomes the subreaper of what it leaves behind. The child sets
    itself up (death signal, limits) in its own code: nothing of ours runs between fork and exec."""
    containment.become_subreaper()  # what the child leaves behind comes here, to be ended with it
    before = containment.children()
    with ExitStack() as files:
        out = files.enter_context(open(logs.stdout, "wb"))
        err = files.enter_context(open(logs.stderr, "wb")) if logs.stderr else subprocess.STDOUT
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True, env=env)
    return Spawned(proc, before)


def _start(case: Case, mode: str, out_dir: Path, logs: Logs, server: ForkServer | None) -> Worker:
    """The case's worker: forked by ``server`` where there is one, else a fresh ``python -m bench.execution.worker``
    (which sets up its own death signal, cap and CPUs from its environment: no code of ours between fork and exec)."""
    case_file = out_dir / "case.json"
    for log in (logs.stdout, logs.stderr):  # there to read even if a forked child dies before it opens them
        if log:
            log.touch()
    forked = server.fork(ForkRequest(
        mode=mode, case_file=str(case_file), out_dir=str(out_dir), stdout=str(logs.stdout), stderr=str(logs.stderr),
        max_memory_mb=case.max_memory_mb, cpus=case.cpus, spawned_at_ns=time.time_ns(),
    )) if server and logs.stderr and not case.python else None  # a forked child opens both logs itself: a merged
    if forked:  # one is spawned, and so is a case of another release, on its environment's interpreter
        return forked
    cmd = [case.python or sys.executable, "-m", "bench.execution.worker", mode, str(case_file), str(out_dir)]
    setup = containment.worker_environment(os.getpid(), case.max_memory_mb, case.cpus)
    return spawn(cmd, logs, {**telemetry.switched_off(), **setup, SPAWNED_AT_ENV: str(time.time_ns())})


def run_worker(case: Case, mode: str = "case", server: ForkServer | None = None) -> WorkerOutcome:
    """Run ``case`` in a fresh worker process (forked by ``server``, else spawned) and collect its outcome."""
    with tempfile.TemporaryDirectory(prefix=_case_dir_prefix()) as tmp:
        out_dir = Path(tmp)
        (out_dir / "case.json").write_text(case.to_json())
        stderr = out_dir / "stderr.log"
        logs = Logs(out_dir / "stdout.log", stderr)
        start = os.times().elapsed
        worker = _start(case, mode, out_dir, logs, server)
        kills_before = oom_kills()
        ended = wait(worker, case.timeout_s, logs)
        kills_after = oom_kills()
        stderr_tail = _tail(stderr)
        rose = None if kills_before is None or kills_after is None else kills_after - kills_before
        outcome = _interpret(out_dir, ended.how is Ending.TIMED_OUT, ended.returncode, case.timeout_s, stderr_tail,
                             rose, killed_for=ended.reason)
        outcome.wall_s = os.times().elapsed - start
        outcome.stderr_tail = stderr_tail
        outcome.peak_rss_mb = ended.peak_rss_mb
        outcome.started_by = "fork server" if isinstance(worker, Forked) else "fresh interpreter"
        returncode = ended.returncode
        if outcome.exit_code is None and returncode is not None and returncode >= 0 and ended.how is Ending.EXITED:
            outcome.exit_code = returncode
    return _with_cap_evidence(outcome, case.max_memory_mb)


def _with_cap_evidence(outcome: WorkerOutcome, cap_mb: int | None) -> WorkerOutcome:
    """A library whose allocation failed under the address-space cap may say so in words bench does not know:
    the status stays what the evidence says, and the error says that the cap was in force, and the peak."""
    if cap_mb and outcome.status in (Status.ERROR, Status.CRASHED):
        outcome.error = (f"{outcome.error or outcome.status}; under --max-memory {cap_mb} MB (address space; "
                         f"peak RSS {outcome.peak_rss_mb or 0:.0f} MB): a failed allocation can end this way")
    return outcome
