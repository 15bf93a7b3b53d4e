"""What keeps a case's processes in: each process sets itself up in its own code, never in ``preexec_fn``
(which Python documents as unsafe in a process with threads: a child forked from one stopped on a futex under
qemu-user), and whatever a case starts ends with the case.

- ``die_with_parent``: the death signal (Linux), then a check that the parent is still the one that started this
  process; a parent that died before the signal was set would otherwise leave the child running on.
- ``set_up_worker``: the address-space cap and the case's CPUs, applied by the worker to itself before it imports
  numpy (its threads take the CPUs of the thread that starts them). A spawned worker reads them from the
  environment (``set_up_from_environment``), a forked one gets them from the fork server's request.
- ``become_subreaper`` and ``end_children``: a runner's daemon (fork, ``setsid()``, fork again) escapes the process
  group the launcher kills, but an orphan goes to the nearest subreaper above it; the process that started the
  worker is one, and after the worker has ended it kills and reaps every child it did not have before.

Only the standard library here: the worker imports this before anything heavy.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import select
import signal
import sys
import time
import traceback

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PARENT_ENV = "BENCH_PARENT_PID"  # the pid that started this process: it dies with that one
WORKER_LIMITS_ENV = "BENCH_WORKER_LIMITS"  # JSON {"max_memory_mb", "cpus"} for a spawned worker
SETUP_FAILED = 70  # the child could not be set up as a worker (EX_SOFTWARE)
PARENT_GONE = 71  # the parent died before the death signal was set: nobody is left to read this process's result
REAP_WAIT_S = 5.0  # how long the sweep waits for one killed process to be gone
MAX_SWEEPS = 100  # rounds of the sweep: each kills one more generation of a tree of daemons


def _prctl(option: int, value: int) -> bool:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):  # not Linux
        return False


def die_with_parent(expected_parent: int | None) -> None:
    """SIGKILL this process when its parent dies (a killed run leaves no server and no worker running on); exit at
    once if the parent ``expected_parent`` is gone already (the signal only covers a death after it is set)."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if expected_parent is not None and os.getppid() != expected_parent:
        os._exit(PARENT_GONE)


def expected_parent_from_environment() -> int | None:
    """The parent pid the starter put in the environment, taken out of it so that this process's own children do
    not read a parent that is not theirs."""
    value = os.environ.pop(PARENT_ENV, "")
    return int(value) if value.isdigit() else None


def set_up_worker(max_memory_mb: int | None, cpus: tuple[int, ...] = ()) -> None:
    """Cap the address space (RLIMIT_AS: an allocation past ``--max-memory`` fails inside the worker instead of
    swapping the machine) and pin the process to the case's CPUs, so that every thread it starts inherits them."""
    if max_memory_mb:
        limit = max_memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if cpus:
        os.sched_setaffinity(0, cpus)


def worker_environment(parent: int, max_memory_mb: int | None, cpus: tuple[int, ...]) -> dict[str, str]:
    """What a spawned worker needs in its environment to set itself up (``set_up_from_environment``)."""
    return {PARENT_ENV: str(parent), WORKER_LIMITS_ENV: json.dumps({"max_memory_mb": max_memory_mb,
                                                                    "cpus": list(cpus)})}


def set_up_from_environment() -> None:
    """A spawned worker's first act: its death signal, cap and CPUs, from the environment its launcher gave it
    (nothing to do where there is none: the fork server importing the worker, a forked worker). A set-up that fails
    ends the process with its reason on stderr, as a forked child's does."""
    limits = os.environ.pop(WORKER_LIMITS_ENV, None)
    if limits is None:
        return
    die_with_parent(expected_parent_from_environment())
    try:
        request = json.loads(limits)
        set_up_worker(request["max_memory_mb"], tuple(request["cpus"]))
    except (OSError, ValueError, KeyError, TypeError):
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(SETUP_FAILED)


def become_subreaper() -> bool:
    """Orphans of this process's descendants come to this process instead of init (Linux 3.4+); False elsewhere."""
    return _prctl(PR_SET_CHILD_SUBREAPER, 1)


def children(parent: int | None = None) -> set[int]:
    """The pids whose parent is ``parent`` (this process by default), from /proc; empty where there is no /proc."""
    parent = os.getpid() if parent is None else parent
    found: set[int] = set()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if entry.isdigit() and _parent_of(entry) == parent:
            found.add(int(entry))
    return found


def _parent_of(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:  # gone meanwhile
        return None
    fields = stat[stat.rfind(b")") + 2:].split()  # the name may hold spaces and parentheses: it ends at the last ')'
    return int(fields[1]) if len(fields) > 1 else None


def end_children(keep: frozenset[int] | set[int] = frozenset()) -> list[int]:
    """Kill and reap every child of this process except ``keep``, generation after generation (a killed daemon's
    own children come here next, this process being their subreaper); returns the pids ended."""
    ended: set[int] = set()
    for _ in range(MAX_SWEEPS):
        found = children() - keep - ended  # one the kernel has not let go of after REAP_WAIT_S is not waited twice
        if not found:
            break
        for pid in found:
            _kill(pid)
        for pid in found:
            _reap(pid)
        ended |= found
    return sorted(ended)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _reap(pid: int) -> None:
    """Wait (bounded) for a killed child to be gone, then collect it; one stuck in the kernel is left a zombie."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        try:
            select.select([fd], [], [], REAP_WAIT_S)
        finally:
            os.close(fd)
    else:  # no pidfd (Linux < 5.3): a short grace for the SIGKILL to land
        time.sleep(0.05)
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not ours after all (reaped elsewhere)
        pass
