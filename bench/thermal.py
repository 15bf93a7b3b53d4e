"""Thermal zones, and waiting for a hot machine to cool before a case (``--cooldown-until``).

A phone or a fanless board slows itself when hot, so a case started hot times a slower machine than one
started cool. The zones are read from sysfs under ``root`` (a fixture tree in tests); a machine without zones
(most VMs) has no temperature, and the wait is then skipped, said once on the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.files import read_text

MAX_WAIT_S = 600.0  # the bound of --cooldown-max: a machine that never cools must not hold a run forever


def zones(root: Path = Path("/")) -> dict[str, float]:
    """Zone name (``type``, or the folder name) -> degrees C, for every zone that reads."""
    found: dict[str, float] = {}
    for folder in sorted((root / "sys/class/thermal").glob("thermal_zone*")):
        value = read_text(folder / "temp")
        if value and value.lstrip("-").isdigit():
            name = read_text(folder / "type") or folder.name
            found[name if name not in found else f"{name} ({folder.name})"] = int(value) / 1000.0
    return found


def hottest(root: Path = Path("/")) -> float | None:
    temps = zones(root).values()
    return max(temps) if temps else None


@dataclass(frozen=True)
class Cooldown:
    start_c: float | None  # the hottest zone when the case started
    waited_s: float
    reached: bool | None  # None: no threshold asked, or no zone to read


def cool_down(until_c: float | None, max_wait_s: float, root: Path = Path("/"), poll_s: float = 1.0,
              sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> Cooldown:
    """Wait until the hottest zone reads under ``until_c`` or ``max_wait_s`` passed; what it read last."""
    start = clock()
    temp = hottest(root)
    while until_c is not None and temp is not None and temp >= until_c and clock() - start < max_wait_s:
        sleep(min(poll_s, max(0.0, max_wait_s - (clock() - start))))
        temp = hottest(root)
    reached = None if until_c is None or temp is None else temp < until_c
    return Cooldown(temp, clock() - start, reached)
