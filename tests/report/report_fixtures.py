"""Helpers for report and compare tests: rows to plant into real results, and a real browser.

Tests copy the real results (conftest.py's ``real_results``) and plant the rows they need with
``bench.results.store.write_case``, using a real row as the template. ``visit`` drives headless Chromium over the
DevTools protocol on a pipe (stdlib only) and reports what the page did.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.results import store
from bench.results.uri import Location

CHROMIUM_INSTALL = "apt-get update && apt-get install -y chromium"


def bench_report(results: Path, out: Path) -> subprocess.CompletedProcess:
    """``bench report`` as a user runs it, in a process of its own; checked to succeed."""
    done = subprocess.run([sys.executable, "-m", "bench", "report", "--results", str(results), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def copy_results(real: Path, target: Path) -> Path:
    shutil.copytree(real, target)
    return target


def template(results: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A real case row (ok, tiny_mlp, 1 thread) and its run's row, to plant variations of."""
    cases = store.read_cases(Location.resolve(results)).to_pylist()
    case = next(c for c in cases if c["model"] == "tiny_mlp" and c["threads"] == 1)
    run = store.query(Location.resolve(results), "SELECT * FROM runs WHERE run_id = ?", [case["run_id"]]).to_pylist()[0]
    return case, run


def samples(median_ms: float, n: int = 600, seed: int = 0, spread: float = 0.05) -> list[int]:
    """Lognormal latencies in ns around ``median_ms``: the shape real timings have."""
    rng = np.random.default_rng(seed)
    return (median_ms * 1e6 * rng.lognormal(0.0, spread, n)).astype(np.int64).tolist()


def stats_columns(ns: list[int]) -> dict[str, Any]:
    from bench.execution.stats import latency_stats

    return vars(latency_stats(np.asarray(ns)))


@dataclass
class Planter:
    """Writes case rows like ``base`` into ``results`` under one run id (with its runs row)."""

    results: Path
    base: dict[str, Any]
    run: dict[str, Any]
    run_id: str
    started: datetime
    index: int = 0
    env: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        run = {**self.run, **self.env, "run_id": self.run_id, "timestamp": self.started}
        run.pop("schema_version", None)
        store.write_run(Location.resolve(self.results), self.run_id, run)

    def case(self, failed: tuple[str, str | None] | None = None, **changes: Any) -> dict[str, Any]:
        """Plant an ok row like the template with ``changes``; or, with ``failed=(status, error)``, a failed one."""
        base = failed_row(self.base, *failed) if failed else self.base
        row = {**base, "run_id": self.run_id, "timestamp": self.started + timedelta(seconds=self.index)}
        if "samples_ns" in changes:
            row.update(stats_columns(changes["samples_ns"]))
        row.update(changes)
        parts = [row["model"], row["runner"], row["device"], row["precision"], f"b{row['batch']}",
                 f"t{row['threads']}", row["scenario"]]
        row["case_key"] = changes.get("case_key") or "/".join(str(p) for p in parts)
        row.pop("schema_version", None)
        row.pop("date", None)  # hive partition columns come back on read; they are not schema columns
        store.write_case(Location.resolve(self.results), self.run_id, self.started, self.index, row)
        self.index += 1
        return row


IDENTITY = ("suite", "model", "model_sha256", "model_source", "runner", "runner_version", "device", "precision",
            "batch", "threads", "scenario")


def failed_row(base: dict[str, Any], status: str, error: str | None, **changes: Any) -> dict[str, Any]:
    """A row with the identity columns of ``base`` and no measurements, as a failed case writes."""
    return {**{k: base[k] for k in IDENTITY}, "status": status, "error": error, **changes}


def planter(results: Path, run_id: str, when: datetime, template_from: Path | None = None, **env: Any) -> Planter:
    case, run = template(template_from or results)
    run.pop("date", None)
    return Planter(results, case, run, run_id, when, env=env)


NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


# --- headless Chromium over the DevTools protocol --------------------------------------------------------

def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not found and not os.environ.get("BENCH_SKIP_BROWSER"):
        pytest.fail(f"chromium not found on PATH: the report's browser test needs it. Install: {CHROMIUM_INSTALL} "
                    "(or set BENCH_SKIP_BROWSER=1 to skip it knowingly)", pytrace=False)
    if not found:
        pytest.skip("BENCH_SKIP_BROWSER is set and chromium is not installed")
    return found


@dataclass
class PageVisit:
    """What happened while a page loaded and a script ran in it."""

    errors: list[str]  # uncaught exceptions, console.error, error-level log entries (CSP violations too)
    dialogs: list[str]  # alert / confirm / prompt messages: an injected script would show up here
    requests: list[str]  # every URL the page asked for
    screenshot: bytes
    result: Any  # the value of the evaluated expression


class DevTools:
    """Minimal CDP client over --remote-debugging-pipe: JSON messages separated by NUL bytes."""

    def __init__(self, binary: str, profile: Path, width: int, height: int) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        to_browser_r, from_browser_w = _above_4(to_browser_r), _above_4(from_browser_w)
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions", "--remote-debugging-pipe",
                f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"]
        # The browser reads commands on fd 3 and writes replies on fd 4 (bash: dash allows no fd above 9).
        shell = f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w} {to_browser_r}<&- {from_browser_w}>&-'
        self.proc = subprocess.Popen(["bash", "-c", shell, binary, *args], pass_fds=(to_browser_r, from_browser_w),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.events: queue.Queue = queue.Queue()
        self._replies: dict[int, queue.Queue] = {}
        self._next = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._from_browser, 1 << 16):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                if "id" in message and message["id"] in self._replies:
                    self._replies[message["id"]].put(message)
                else:
                    self.events.put(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        self._next += 1
        reply: queue.Queue = queue.Queue()
        self._replies[self._next] = reply
        message = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        answer = reply.get(timeout=timeout)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
            self.proc.wait(timeout=10)
        except Exception:  # whatever went wrong, do not leave a browser behind
            pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        os.close(self._to_browser)


def _above_4(fd: int) -> int:
    """The same pipe end on a descriptor above 4, so redirecting it to 3 or 4 cannot clobber another."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return high


def visit(page: Path, expression: str, profile: Path, width: int = 1280, height: int = 2000,
          timeout: float = 60) -> PageVisit:
    """Load ``page`` in a fresh headless Chromium, evaluate ``expression`` (awaited), take a screenshot."""
    tools = DevTools(chromium_path(), profile, width, height)
    try:
        target = tools.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = tools.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            tools.send(f"{domain}.enable", session=session)
        tools.send("Emulation.setDeviceMetricsOverride",
                   {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
        tools.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        visit = PageVisit([], [], [], b"", None)
        _collect(tools, visit, session, until="Page.loadEventFired", timeout=timeout)
        answer = tools.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                 "returnByValue": True}, session=session)
        if "exceptionDetails" in answer:
            visit.errors.append(f"evaluate: {answer['exceptionDetails']}")
        visit.result = answer.get("result", {}).get("value")
        shot = tools.send("Page.captureScreenshot", {"format": "png"}, session=session)
        visit.screenshot = base64.b64decode(shot["data"])
        _collect(tools, visit, session, until=None, timeout=0.5)
        return visit
    finally:
        tools.close()


def _collect(tools: DevTools, visit: PageVisit, session: str, until: str | None, timeout: float) -> None:
    import time

    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            event = tools.events.get(timeout=left)
        except queue.Empty:
            break
        method, params = event.get("method"), event.get("params", {})
        if event.get("sessionId") not in (None, session):
            continue
        if method == "Runtime.exceptionThrown":
            visit.errors.append(json.dumps(params["exceptionDetails"])[:2000])
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            visit.errors.append(json.dumps(params.get("args"))[:2000])
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            visit.errors.append(params["entry"].get("text", "")[:2000])
        elif method == "Page.javascriptDialogOpening":
            visit.dialogs.append(params.get("message", ""))
            tools.send("Page.handleJavaScriptDialog", {"accept": True}, session=session)
        elif method == "Network.requestWillBeSent":
            visit.requests.append(params["request"]["url"])
        if method == until:
            return
    if until:
        raise TimeoutError(f"no {until} within {timeout} s")
