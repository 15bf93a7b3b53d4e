"""A fork server: one process per run that has imported numpy and bench's worker, and no runtime, and forks each
case's worker from itself: a few milliseconds instead of a fresh interpreter's 0.25-0.3 s of start-up and imports.

Isolation stays that of a fresh process. The server imports only ``bench.execution.worker`` and the zoo's
modules (numpy, pydantic, bench; a test checks that no runtime is among its modules) and never runs a case; each
forked worker imports its runner and runtime itself and exits. Before the worker's ``main`` the child leads its
own session (the launcher kills its group at the deadline), dies with the server (which dies with the launcher:
both set their own death signal, see ``bench.containment``), has the case's address-space cap and CPUs, its stdin
on /dev/null and its stdout/stderr in the case folder. It ends with ``os._exit`` after the atexit handlers: a
runtime's teardown (unloading plugins, freeing pools) is not the case's cost. The server is a subreaper: a daemon
the case started comes to it when its parent ends, and is killed and reaped once the worker has been.

Protocol, one JSON line each way over the server's stdin/stdout: the server says ``{"ready"}`` once it has made
its imports; the launcher sends a :class:`ForkRequest` (``to_line``); the server reads it back with ``from_line``,
which checks every field, and answers ``{"refused": reason}`` to a malformed one (and goes on serving), else
``{"pid"}`` once the child is set up, and ``{"pid", "exit_code", "maxrss_kb"}`` once it has reaped it (``os.wait4``,
so the row's peak RSS is the worker's own) and ended what the case left behind. The launcher waits on the child
through a pidfd, as on a worker it spawned, and waits for each answer with a deadline: a server that misses one (or
refuses a request) is killed, and the launcher spawns workers from then on.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import IO, Any

from bench import containment, telemetry
from bench.containment import SETUP_FAILED
from bench.contract import SPAWNED_AT_ENV, WORKER_MODES

START_DEADLINE_S = 120.0  # its imports (numpy, pydantic, the worker): ~0.5 s here, tens of seconds under emulation
ANSWER_DEADLINE_S = 30.0  # a fork and a child's set-up, or a reap of a worker that has exited: milliseconds
# What every zoo case's parity and task steps import after the worker module (pydantic with them: ~0.1 s a case).
PRELOADED = ("bench.models.zoo", "bench.models.tasks")




class BadRequest(ValueError):
    """A request the server cannot act on: refused with this reason; the server goes on serving."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# Each field of a request -> (what it must be, its check): the server's side of the contract.
_FIELD_CHECKS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "mode": (f"one of {', '.join(WORKER_MODES)}", lambda v: v in WORKER_MODES),
    "case_file": ("a path", lambda v: isinstance(v, str) and v != ""),
    "out_dir": ("a path", lambda v: isinstance(v, str) and v != ""),
    "stdout": ("a path", lambda v: isinstance(v, str) and v != ""),
    "stderr": ("a path", lambda v: isinstance(v, str) and v != ""),
    "max_memory_mb": ("null or an integer >= 0", lambda v: v is None or (_is_int(v) and v >= 0)),
    "cpus": ("a list of CPU numbers", lambda v: isinstance(v, list) and all(_is_int(c) and c >= 0 for c in v)),
    "spawned_at_ns": ("an integer (time.time_ns())", lambda v: _is_int(v) and v >= 0),
}


@dataclass(frozen=True, kw_only=True)
class ForkRequest:
    """What the launcher asks of the server: fork one case's worker. Written (``to_line``) and read back
    (``from_line``) here only; the server checks every field before it forks, so a malformed request is refused
    with its reason instead of ending the server with a KeyError."""

    mode: str  # one of WORKER_MODES
    case_file: str
    out_dir: str
    stdout: str  # the case's log files, opened by the child as its fds 1 and 2
    stderr: str
    max_memory_mb: int | None  # the address-space cap, None for none
    cpus: tuple[int, ...]  # the case's CPUs, () for all
    spawned_at_ns: int  # the launcher's time.time_ns() at the request, for the worker's start-up phase

    def to_line(self) -> bytes:
        return (json.dumps({**asdict(self), "cpus": list(self.cpus)}) + "\n").encode()

    @classmethod
    def from_line(cls, line: bytes) -> ForkRequest:
        """The request on ``line``, every field checked; BadRequest naming the first that does not hold."""
        try:
            fields = json.loads(line)
        except ValueError:  # UnicodeDecodeError too
            raise BadRequest(f"fork request: not JSON: {line.strip()[:80]!r}") from None
        if not isinstance(fields, dict):
            raise BadRequest(f"fork request: expected a JSON object, got {type(fields).__name__}")
        if missing := [name for name in _FIELD_CHECKS if name not in fields]:
            raise BadRequest(f"fork request: missing {', '.join(missing)}")
        if unknown := sorted(set(fields) - set(_FIELD_CHECKS)):
            raise BadRequest(f"fork request: unknown key {', '.join(unknown)}")
        for name, (expected, holds) in _FIELD_CHECKS.items():
            if not holds(fields[name]):
                raise BadRequest(f"fork request: {name}: expected {expected}, got {json.dumps(fields[name])[:80]}")
        return cls(**{**fields, "cpus": tuple(fields["cpus"])})


def available() -> bool:
    """Forking needs fork and a pidfd (Linux 5.3+) to wait on a process that is not the launcher's child."""
    return sys.platform.startswith("linux") and hasattr(os, "fork") and hasattr(os, "pidfd_open")


# --- the server ----------------------------------------------------------------------------------------------

def _reply(message: dict[str, Any]) -> None:
    os.write(1, (json.dumps(message) + "\n").encode())


def _redirect(request: ForkRequest) -> None:
    for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, request.stdout, os.O_WRONLY | os.O_CREAT),
                            (2, request.stderr, os.O_WRONLY | os.O_CREAT)):
        opened = os.open(path, flags, 0o600)
        os.dup2(opened, fd)
        os.close(opened)
    sys.stdin = open(os.devnull)  # the server's buffered stdin holds its requests, not the case's


def _become_worker(request: ForkRequest, argv: list[str], server: int) -> None:
    os.setsid()  # its own session and process group, as Popen(start_new_session=True) gives a spawned worker
    _redirect(request)  # first: a failure of what follows lands in the case's stderr tail
    containment.die_with_parent(server)
    containment.set_up_worker(request.max_memory_mb, request.cpus)
    os.environ[SPAWNED_AT_ENV] = str(request.spawned_at_ns)
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


def _fork(worker: ModuleType, request: ForkRequest) -> int:
    """Fork a worker for ``request``; returns its pid once it is set up (or gone)."""
    ready_r, ready_w = os.pipe()
    server = os.getpid()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        code = SETUP_FAILED
        args = [request.mode, request.case_file, request.out_dir]
        try:
            _become_worker(request, [str(worker.__file__), *args], server)
            os.close(ready_w)
            code = worker.main(args)
        except BaseException:  # whatever happens, the child never returns into the server's loop
            traceback.print_exc()
        finally:
            _exit(code)
    os.close(ready_w)
    os.read(ready_r, 1)  # EOF when the child has closed it: set up, or dead
    os.close(ready_r)
    return pid


def serve() -> int:
    """The server's loop: a request in, a worker forked, its pid out, then its exit once reaped."""
    containment.die_with_parent(containment.expected_parent_from_environment())
    containment.become_subreaper()
    from bench.execution import worker  # everything a case shares, imported once

    for name in PRELOADED:
        importlib.import_module(name)

    _reply({"ready": os.getpid()})
    requests = sys.stdin.buffer
    while line := requests.readline():
        try:
            request = ForkRequest.from_line(line)
        except BadRequest as exc:
            _reply({"refused": str(exc)})
            continue
        pid = _fork(worker, request)
        _reply({"pid": pid})
        _, status, rusage = os.wait4(pid, 0)
        containment.end_children()  # the worker is reaped: any child left is one the case started
        _reply({"pid": pid, "exit_code": os.waitstatus_to_exitcode(status), "maxrss_kb": rusage.ru_maxrss})
    return 0


# --- the launcher's side ---------------------------------------------------------------------------------------

class ServerGone(OSError):
    """The server died, answered nonsense or missed a deadline; the launcher spawns workers itself from then on."""


@dataclass
class Forked:
    """A worker forked by the server: the launcher waits on ``pid`` through a pidfd, then asks the server."""

    pid: int
    server: ForkServer

    def reap(self) -> tuple[int | None, float | None]:
        """(exit code, peak RSS in MB) once the worker has exited; a server that died took its worker with it (and
        its peak with it: unknown, not 0); one that does not answer in time is killed, and the exit is unknown
        (None: the case's files are the evidence)."""
        try:
            reply = self.server.read(self.server.answer_deadline_s)
        except ServerSilent:
            self.server.give_up()
            return None, None
        except ServerGone:
            return -signal.SIGKILL, None
        return int(reply["exit_code"]), int(reply["maxrss_kb"]) / 1024.0

    def wait_fallback(self, timeout_s: float) -> bool:
        """Where no pidfd could be opened on the worker: the server's next answer is its reap (or its EOF), so wait
        for that pipe to have something to say. True while the worker still runs after ``timeout_s``."""
        try:
            return not self.server.answer_waiting(timeout_s)
        except ServerGone:  # a server given up on killed its workers with it
            return False

    def end_orphans(self) -> None:
        """Nothing left to do here: the server, their subreaper, ended them before it answered the reap."""


class ServerSilent(ServerGone):
    """The server did not answer within its deadline (stuck, stopped, or not a fork server at all)."""


class ServerRefused(ServerGone):
    """The server refused a request as malformed (a bug of the launcher's: the request is built in one place)."""


def _pipe(stream: IO[bytes] | None) -> IO[bytes]:
    """One of the server's pipes (stdin, stdout), which Popen(PIPE) always gives; ServerGone where it is closed."""
    if stream is None or stream.closed:
        raise ServerGone("the fork server's pipe is closed")
    return stream


class ForkServer:
    """The launcher's handle on a fork server, started on first use and again whenever the environment it was
    started with (telemetry switched off, plus whatever the user set) is no longer the one a worker would get.
    Every answer it owes has a deadline; a server that misses one is killed and ``failed`` stays set."""

    command: tuple[str, ...] = (sys.executable, "-m", "bench.forkserver")
    start_deadline_s = START_DEADLINE_S
    answer_deadline_s = ANSWER_DEADLINE_S

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._env: dict[str, str] | None = None
        self._pending = b""  # what the server has written past the last line read
        self.failed = not available()

    def __enter__(self) -> ForkServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self, env: dict[str, str]) -> None:
        """Start the server (no code of ours between its fork and exec: it sets its own death signal) and wait for
        its first answer."""
        self.close()
        self._proc = subprocess.Popen(
            self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            start_new_session=True, env={**env, containment.PARENT_ENV: str(os.getpid())},
        )
        self._env, self._pending = env, b""
        if "ready" not in self.read(self.start_deadline_s):
            raise ServerGone("the fork server's first answer was not ready")

    def fork(self, request: ForkRequest) -> Forked | None:
        """A worker forked for ``request``, or None where there is no server to be had (spawn it instead)."""
        if self.failed:
            return None
        env = telemetry.switched_off()
        try:
            if self._proc is None or self._env != env or self._proc.poll() is not None:
                self._start(env)
            return Forked(self._ask(request), self)
        except (OSError, ValueError, KeyError, TypeError):
            self.give_up()
            return None

    def _ask(self, request: ForkRequest) -> int:
        """Send ``request``; the forked worker's pid (ServerRefused where the server refused it)."""
        if self._proc is None:
            raise ServerGone("the fork server is gone")
        stdin = _pipe(self._proc.stdin)
        stdin.write(request.to_line())
        stdin.flush()
        reply = self.read(self.answer_deadline_s)
        if "refused" in reply:
            raise ServerRefused(f"the fork server refused the request: {reply['refused']}")
        return int(reply["pid"])

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs: its children are the workers in flight (``bench.ahead`` ends them)."""
        return self._proc.pid if self._proc is not None else None

    def give_up(self) -> None:
        """Once broken, every later case spawns its worker: no second guess mid-run."""
        self.failed = True
        self.close(kill=True)

    def read(self, deadline_s: float) -> dict[str, Any]:
        """The server's next answer, waited for at most ``deadline_s`` (ServerSilent past it; ServerGone at EOF)."""
        line = self._read_line(deadline_s)
        try:
            reply = json.loads(line)
        except ValueError as exc:
            raise ServerGone(f"the fork server answered {line[:80]!r}") from exc
        if not isinstance(reply, dict):
            raise ServerGone(f"the fork server answered {line[:80]!r}")
        return reply

    def _read_line(self, deadline_s: float) -> bytes:
        """Blocks in select() on the pipe, not in readline(), which has no deadline."""
        end = time.monotonic() + deadline_s
        while b"\n" not in self._pending:
            if not self.answer_waiting(max(0.0, end - time.monotonic())):
                raise ServerSilent(f"the fork server did not answer within {deadline_s:g} s")
            chunk = os.read(self._stdout_fd(), 65536)
            if not chunk:
                raise ServerGone("the fork server is gone")
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line

    def answer_waiting(self, timeout_s: float) -> bool:
        """Whether the server has something to say (a line, or its EOF) within ``timeout_s``: select() on its pipe."""
        if b"\n" in self._pending:
            return True
        ready, _, _ = select.select([self._stdout_fd()], [], [], timeout_s)
        return bool(ready)

    def _stdout_fd(self) -> int:
        if self._proc is None:
            raise ServerGone("the fork server is gone")
        return _pipe(self._proc.stdout).fileno()

    def close(self, kill: bool = False) -> None:
        """EOF on its stdin ends the server's loop (a case still in flight, after Ctrl-C mid-request: killed); one
        that does not end within 2 s, or that is given up on (``kill``), is killed, and its forked workers with it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            if not kill:
                proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            kill = True
        if kill:
            proc.kill()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # stuck in the kernel: Python reaps it later
                pass
        if proc.stdout is not None:
            proc.stdout.close()


if __name__ == "__main__":
    sys.exit(serve())
