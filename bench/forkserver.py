"""A fork server: one process per run that has imported numpy and bench's worker, and no runtime, and forks each
case's worker from itself: a few milliseconds instead of a fresh interpreter's 0.25-0.3 s of start-up and imports.

Isolation stays that of a fresh process. The server imports only ``bench.execution.worker`` and the zoo's
modules (numpy, pydantic, bench; a test checks that no runtime is among its modules) and never runs a case; each
forked worker imports its runner and runtime itself and exits. Before the worker's ``main`` the child leads its
own session (the launcher kills its group at the deadline), dies with the server (which dies with the launcher),
has the case's address-space cap and CPUs, its stdin on /dev/null and its stdout/stderr in the case folder. It
ends with ``os._exit`` after the atexit handlers: a runtime's teardown (unloading plugins, freeing pools) is not
the case's cost.

Protocol, one JSON line each way over the server's stdin/stdout: the launcher sends ``{"mode", "case_file",
"out_dir", "stdout", "stderr", "max_memory_mb", "cpus", "spawned_at_ns"}``; the server answers ``{"pid"}`` once
the child is set up, and ``{"pid", "exit_code", "maxrss_kb"}`` once it has reaped it (``os.wait4``, so the row's
peak RSS is the worker's own). The launcher waits on the child through a pidfd, as on a worker it spawned.
"""

from __future__ import annotations

import atexit
import ctypes
import importlib
import json
import os
import resource
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from bench import telemetry
from bench.contract import SPAWNED_AT_ENV

PR_SET_PDEATHSIG = 1
SETUP_FAILED = 70  # the child could not be set up as a worker (EX_SOFTWARE)
# What every zoo case's parity and task steps import after the worker module (pydantic with them: ~0.1 s a case).
PRELOADED = ("bench.models.zoo", "bench.models.tasks")


def available() -> bool:
    """Forking needs fork and a pidfd (Linux 5.3+) to wait on a process that is not the launcher's child."""
    return sys.platform.startswith("linux") and hasattr(os, "fork") and hasattr(os, "pidfd_open")


def _die_with_parent() -> None:
    """Linux: SIGKILL when the parent dies (a killed run leaves no worker, and no server, running on)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def worker_setup(max_memory_mb: int | None, cpus: tuple[int, ...] = ()) -> Callable[[], None]:
    """What a worker process does before the worker runs (exec'd or forked): tie it to its parent, cap its address
    space (RLIMIT_AS) so an allocation past ``--max-memory`` fails inside the worker instead of swapping the machine,
    and pin it to the case's cores, so every thread it ever starts (numpy's and the runtime's pools) inherits them."""
    limit = max_memory_mb * 1024 * 1024 if max_memory_mb else None

    def setup() -> None:
        _die_with_parent()
        if limit:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        if cpus:
            os.sched_setaffinity(0, cpus)

    return setup


# --- the server ----------------------------------------------------------------------------------------------

def _reply(message: dict[str, Any]) -> None:
    os.write(1, (json.dumps(message) + "\n").encode())


def _redirect(request: dict[str, Any]) -> None:
    for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, request["stdout"], os.O_WRONLY | os.O_CREAT),
                            (2, request["stderr"], os.O_WRONLY | os.O_CREAT)):
        opened = os.open(path, flags, 0o600)
        os.dup2(opened, fd)
        os.close(opened)
    sys.stdin = open(os.devnull)  # noqa: SIM115  # the server's buffered stdin holds its requests, not the case's


def _become_worker(request: dict[str, Any], argv: list[str]) -> None:
    os.setsid()  # its own session and process group, as Popen(start_new_session=True) gives a spawned worker
    _redirect(request)  # first: a failure of what follows lands in the case's stderr tail
    worker_setup(request["max_memory_mb"], tuple(request["cpus"]))()
    os.environ[SPAWNED_AT_ENV] = str(request["spawned_at_ns"])
    sys.argv = argv  # what a spawned worker's sys.argv would hold
    import numpy as np

    np.random.seed()  # a fresh interpreter's global generator is not the server's copy


def _exit(code: int) -> None:
    """Flush, run the atexit handlers (weakref finalizers: a runner's temp folders), skip the teardown."""
    try:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def _fork(worker: ModuleType, request: dict[str, Any]) -> int:
    """Fork a worker for ``request``; returns its pid once it is set up (or gone)."""
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        code = SETUP_FAILED
        args = [request["mode"], request["case_file"], request["out_dir"]]
        try:
            _become_worker(request, [worker.__file__, *args])
            os.close(ready_w)
            code = worker.main(args)
        except BaseException:  # noqa: BLE001  # whatever happens, the child never returns into the server's loop
            traceback.print_exc()
        finally:
            _exit(code)
    os.close(ready_w)
    os.read(ready_r, 1)  # EOF when the child has closed it: set up, or dead
    os.close(ready_r)
    return pid


def serve() -> int:
    """The server's loop: a request in, a worker forked, its pid out, then its exit once reaped."""
    from bench.execution import worker  # everything a case shares, imported once

    for name in PRELOADED:
        importlib.import_module(name)

    requests = sys.stdin.buffer
    while line := requests.readline():
        pid = _fork(worker, json.loads(line))
        _reply({"pid": pid})
        _, status, rusage = os.wait4(pid, 0)
        _reply({"pid": pid, "exit_code": os.waitstatus_to_exitcode(status), "maxrss_kb": rusage.ru_maxrss})
    return 0


# --- the launcher's side ---------------------------------------------------------------------------------------

class ServerGone(OSError):
    """The server died or answered nonsense; the launcher spawns workers itself from then on."""


@dataclass
class Forked:
    """A worker forked by the server: the launcher waits on ``pid`` through a pidfd, then asks the server."""

    pid: int
    server: ForkServer

    def reap(self) -> tuple[int, float | None]:
        """(exit code, peak RSS in MB) once the worker has exited; a server that died took its worker with it (and
        its peak with it: unknown, not 0)."""
        try:
            reply = self.server.read()
        except ServerGone:
            return -signal.SIGKILL, None
        return int(reply["exit_code"]), int(reply["maxrss_kb"]) / 1024.0


class ForkServer:
    """The launcher's handle on a fork server, started on first use and again whenever the environment it was
    started with (telemetry switched off, plus whatever the user set) is no longer the one a worker would get."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._env: dict[str, str] | None = None
        self.failed = not available()

    def __enter__(self) -> ForkServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self, env: dict[str, str]) -> None:
        self.close()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.forkserver"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent, env=env,
        )
        self._env = env

    def fork(self, request: dict[str, Any]) -> Forked | None:
        """A worker forked for ``request``, or None where there is no server to be had (spawn it instead)."""
        if self.failed:
            return None
        env = telemetry.switched_off()
        try:
            if self._proc is None or self._env != env or self._proc.poll() is not None:
                self._start(env)
            self._proc.stdin.write((json.dumps(request) + "\n").encode())
            self._proc.stdin.flush()
            return Forked(int(self.read()["pid"]), self)
        except (OSError, ValueError, KeyError):
            self.failed = True  # once broken, every later case spawns its worker: no second guess mid-run
            self.close()
            return None

    def read(self) -> dict[str, Any]:
        line = self._proc.stdout.readline() if self._proc else b""
        if not line:
            raise ServerGone("the fork server is gone")
        try:
            return json.loads(line)
        except ValueError as exc:
            raise ServerGone(f"the fork server answered {line[:80]!r}") from exc

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.stdin.close()  # EOF: the loop ends (a case still in flight, after Ctrl-C mid-request: killed)
            proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        finally:
            proc.stdout.close()


if __name__ == "__main__":
    sys.exit(serve())
