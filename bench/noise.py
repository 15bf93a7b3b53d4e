"""Is this machine quiet enough to benchmark on? Readings and warnings, "unknown" where a probe is absent.

Nothing here changes the machine; it records what would make numbers noisy so that nobody believes them
by accident (and ``--strict`` refuses to run).
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field

import psutil

from bench import thermal
from bench.files import read_text

LOAD_PER_CPU_LIMIT = 0.5
BUSY_PROCESS_CPU_PERCENT = 20.0
HOT_CELSIUS = 85.0
SWAP_LIMIT_MB = 64.0
UNSTABLE_CV = 0.10  # coefficient of variation above which a case's samples are called unstable


@dataclass(frozen=True)
class NoiseReport:
    governors: list[str]
    turbo: str
    load_avg_1m: float
    busy_processes: list[str]
    max_temperature_c: float | None
    swap_used_mb: float
    warnings: list[str] = field(default_factory=list)


def governors() -> list[str]:
    found = {read_text(p) for p in glob.glob("/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor")}
    return sorted(g for g in found if g) or ["unknown"]


def turbo() -> str:
    no_turbo = read_text("/sys/devices/system/cpu/intel_pstate/no_turbo")
    if no_turbo is not None:
        return "off" if no_turbo == "1" else "on"
    boost = read_text("/sys/devices/system/cpu/cpufreq/boost")
    if boost is not None:
        return "on" if boost == "1" else "off"
    return "unknown"


def max_temperature() -> float | None:
    return thermal.hottest()


def busy_processes(sample_s: float = 0.2) -> list[str]:
    """Other processes using a noticeable share of a CPU over a short sample."""
    procs = [p for p in psutil.process_iter(["name"]) if p.pid != os.getpid()]
    for p in procs:
        try:
            p.cpu_percent(None)
        except psutil.Error:
            continue
    psutil.cpu_percent(sample_s)  # the sampling interval for the calls above
    busy = []
    for p in procs:
        try:
            if p.cpu_percent(None) >= BUSY_PROCESS_CPU_PERCENT:
                busy.append(f"{p.info['name']} (pid {p.pid})")
        except psutil.Error:
            continue
    return busy


def _warnings(r: NoiseReport, cpus: int) -> list[str]:
    warnings = []
    if r.governors != ["unknown"] and r.governors != ["performance"]:
        warnings.append(f"CPU frequency governor is {','.join(r.governors)}, not performance")
    if r.turbo == "on":
        warnings.append("turbo boost is on: clocks depend on temperature and load")
    if r.load_avg_1m > LOAD_PER_CPU_LIMIT * cpus:
        warnings.append(f"load average {r.load_avg_1m:.2f} on {cpus} CPUs")
    if r.busy_processes:
        warnings.append(f"busy processes: {', '.join(r.busy_processes[:5])}")
    if r.max_temperature_c is not None and r.max_temperature_c >= HOT_CELSIUS:
        warnings.append(f"thermal zone at {r.max_temperature_c:.0f} C")
    if r.swap_used_mb > SWAP_LIMIT_MB:
        warnings.append(f"{r.swap_used_mb:.0f} MB of swap in use")
    return warnings


def check(cpus: int) -> NoiseReport:
    report = NoiseReport(
        governors=governors(), turbo=turbo(), load_avg_1m=os.getloadavg()[0], busy_processes=busy_processes(),
        max_temperature_c=max_temperature(), swap_used_mb=psutil.swap_memory().used / 2**20,
    )
    return NoiseReport(**{**report.__dict__, "warnings": _warnings(report, cpus)})


def unstable(cv: float, stop_reason: str) -> bool:
    """Samples too spread to trust, or the median's interval never reached its target."""
    return cv > UNSTABLE_CV or stop_reason == "max_time"
