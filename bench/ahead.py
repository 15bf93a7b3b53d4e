"""Conversions ahead of the timed phase: each artifact a model's cases need made once, several at a time, before
any of them is timed.

A first run on an empty cache used to convert and quantize inside each case's worker, one case after another,
while the machine's other cores sat idle. ``bench run`` now makes each distinct artifact first, in a worker of its
own (``bench.execution.worker``'s ``convert`` mode: the runner's ``convert`` and nothing else) with the case's
isolation, memory cap and deadline, as many at a time as the run may use CPUs. Nothing is timed meanwhile: the
cases run one by one afterwards, as before, and find their artifact in the cache (``conversion_cached``, and
``conversion_ahead_ms``: what making it took here). The run makes one model's artifacts, then times that model's
cases, then goes on to the next model (``by_model``): the first model's answer comes after its own conversions,
not after the whole zoo's (on the mobile suite about 11 s more in all than one pass for every model, for a first
answer minutes sooner).

The pass only fills the cache, so a case's row is what it would have been without it: a refusal is recorded beside
the artifact (``<key>.failed.json``) and the case says it again; a crash, a deadline or a kill is never recorded,
and the case converts again in its own worker. Cases share an artifact when they differ only in what no conversion
reads (``NOT_CONVERTED``); a spec's ``converted_precisions`` leaves out the cases that convert nothing.

Each slot has a fork server of its own (a server forks one worker at a time): the run's, and one more per extra
slot, ended after each pass so that nothing of it stays beside a timed case (``Slots``). One whose server fails
stops taking conversions: those left are made by their cases, as without the pass. Interrupted, the pass kills the
workers in flight, process group and all, before it lets the interruption through.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from bench import containment, envinfo, forkserver
from bench.case import Case, TimingPolicy
from bench.contract import Status, WorkerOutcome
from bench.forkserver import ForkServer
from bench.launcher import run_worker
from bench.plan import PlannedCase
from bench.registry import Registry

# Case fields that no conversion reads (the cache key, bench/execution/convert.py, is the model's sha256, the
# converter, its version and its options, which read the precision, device, batch, seed and the model's inputs;
# ExecuTorch's lowering uses the threads for its own speed only): cases differing only in these share an
# artifact. A field missing here costs a second conversion, never a wrong one.
NOT_CONVERTED: dict[str, Any] = {"threads": 0, "scenario": "", "timing": TimingPolicy(), "cores": "all", "cpus": (),
                                 "task_samples": None}
WAKE_S = 0.5  # how often the waiting parent wakes: a signal handler runs only between its waits
STOP_WAIT_S = 10.0  # for the slots to see their killed workers exit and return, once interrupted


def artifact_signature(case: Case) -> str:
    """What ``case``'s conversion depends on, as one string: equal for cases that share an artifact."""
    return dataclasses.replace(case, **NOT_CONVERTED).to_json()


@dataclass(frozen=True)
class Made:
    """What the pass learned of one artifact."""

    status: str
    convert_ms: float | None  # the conversion's time where this pass made the artifact, else None
    error: str = ""


@dataclass(frozen=True)
class AheadConversions:
    """The pass's outcome, by artifact; ``mark`` puts it on the rows of the cases that used its artifacts."""

    made: dict[str, Made]

    def mark(self, case: Case, row: dict[str, Any]) -> dict[str, Any]:
        """``row`` with ``conversion_ahead_ms`` where its case found in the cache an artifact this pass made (a case
        that converted itself, or read an earlier run's artifact, says nothing of the pass)."""
        made = self.made.get(artifact_signature(case))
        if made is None or made.convert_ms is None or row.get("conversion_cached") is not True:
            return row
        return {**row, "conversion_ahead_ms": made.convert_ms}


def conversion_jobs(planned: Sequence[PlannedCase], done: set[str], registry: Registry) -> list[Case]:
    """One case per artifact that the cases still to run will need, in plan order, unpinned: a conversion may
    use any CPU the run may use (the cases' own ``cpus`` pin what is timed)."""
    jobs: dict[str, Case] = {}
    for p in planned:
        spec = registry.specs.get(p.case.runner)
        if p.skip_status or p.case.key in done or spec is None or not spec.converts(p.case.precision):
            continue
        if p.case.python:  # another release's worker is spawned, and a spawned worker's launcher ends every child
            continue  # it did not have (the other slots' too): such a case converts in its own worker
        jobs.setdefault(artifact_signature(p.case), dataclasses.replace(p.case, cpus=()))
    return list(jobs.values())


def _made(outcome: WorkerOutcome | None) -> Made:
    if outcome is None:
        return Made("not run", None, "left to its cases")
    facts = outcome.result.facts if outcome.result and outcome.result.facts else None
    made_here = outcome.status == Status.OK and facts is not None and facts.conversion_cached is False
    convert_ms = facts.details.get("convert_ms") if made_here and facts else None
    return Made(str(outcome.status), convert_ms, outcome.error)


def by_model(planned: Sequence[PlannedCase]) -> Iterator[list[PlannedCase]]:
    """The plan in its order, cut where the model changes: what the run converts ahead and then times, in turn."""
    for _, group in itertools.groupby(planned, key=lambda p: p.case.model.name):
        yield list(group)


class Slots:
    """Where the pass's conversions run: the run's fork server and one more per extra slot, as many as the run may
    use CPUs (the pass runs once per model)."""

    def __init__(self, server: ForkServer, count: int | None = None) -> None:
        count = max(1, count or envinfo.cpus_allowed())
        if not forkserver.available():  # a spawned worker's launcher ends every child it did not have: one at a time
            count = 1
        self.servers = [server, *(ForkServer() for _ in range(count - 1))]

    def __enter__(self) -> Slots:
        return self

    def __exit__(self, *exc: object) -> None:
        self.rest()

    def rest(self) -> None:
        """End the extra slots' servers (the run's own is the run's to close): between passes nothing of the pass's
        stays beside a timed case; each starts again on its next conversion."""
        for server in self.servers[1:]:
            server.close()


def convert_ahead(
    planned: Sequence[PlannedCase], done: set[str], registry: Registry, slots: Slots, say: Callable[[str], None],
) -> AheadConversions:
    """Make every artifact the cases to run need, as many at a time as there are ``slots``."""
    jobs = conversion_jobs(planned, done, registry)
    if not jobs:
        return AheadConversions({})
    servers = slots.servers[:len(jobs)]
    models = ", ".join(dict.fromkeys(job.model.name for job in jobs))
    say(f"{models}: converting {len(jobs)} artifact{'s' * (len(jobs) != 1)} ahead of timing, "
        f"{len(servers)} at a time")
    started = time.monotonic()
    try:
        outcomes = _in_order(jobs, servers[0]) if len(servers) == 1 else _in_parallel(jobs, servers)
    finally:
        slots.rest()
    made = {artifact_signature(job): _made(outcome) for job, outcome in zip(jobs, outcomes, strict=True)}
    say(_summary(made, time.monotonic() - started))
    return AheadConversions(made)


def _summary(made: dict[str, Made], seconds: float) -> str:
    new = sum(m.convert_ms is not None for m in made.values())
    failed = [m for m in made.values() if m.status != Status.OK]
    line = f"converted ahead in {seconds:.0f} s: {new} made, {len(made) - new - len(failed)} already cached"
    return line + (f", {len(failed)} failed (their cases say why)" if failed else "")


def _in_order(jobs: list[Case], server: ForkServer) -> list[WorkerOutcome | None]:
    """One at a time, in this thread: an interruption kills the worker in flight as it does a case's."""
    return [run_worker(job, mode="convert", server=server) for job in jobs]


def _in_parallel(jobs: list[Case], servers: list[ForkServer]) -> list[WorkerOutcome | None]:
    outcomes: list[WorkerOutcome | None] = [None] * len(jobs)
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(len(jobs)):
        todo.put(index)
    stop = threading.Event()
    threads = [threading.Thread(target=_slot, args=(jobs, todo, outcomes, server, stop), daemon=True,
                                name=f"convert-ahead-{n}") for n, server in enumerate(servers)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(WAKE_S)
    except BaseException:  # SIGTERM / Ctrl-C: no conversion may outlive the run
        stop.set()
        _end_workers(servers)
        deadline = time.monotonic() + STOP_WAIT_S
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        raise
    return outcomes


def _slot(jobs: list[Case], todo: queue.SimpleQueue[int], outcomes: list[WorkerOutcome | None], server: ForkServer,
          stop: threading.Event) -> None:
    """Take conversions until none is left, the pass is stopped or this slot's fork server has failed (a spawned
    worker's launcher ends every child it did not have before, the other slots' included: never here)."""
    while not stop.is_set() and not server.failed:
        try:
            index = todo.get_nowait()
        except queue.Empty:
            return
        try:
            outcomes[index] = run_worker(jobs[index], mode="convert", server=server)
        except Exception:  # a full disk for the case folder, say: the cases convert for themselves
            return


def _end_workers(servers: list[ForkServer]) -> None:
    """Kill the process group of every worker in flight (each leads its own: its converter is in it); the slots
    then see their worker exit and return."""
    for server in servers:
        pid = server.pid
        for worker in containment.children(pid) if pid else ():
            try:
                os.killpg(worker, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
