"""The environment a run ran in, captured once per run. Every probe says "unknown" rather than fail."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

import bench
from bench import thermal, topology, vulkan
from bench.cpu import Cpu, arch_family, cpu_flags, cpuinfo
from bench.files import read_text

# Flags that change which kernels a runtime picks; the rest of /proc/cpuinfo's list is noise here.
ISA_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni", "avx512_bf16",
    "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8", "amx_fp16", "asimd", "asimdhp", "asimddp", "sve",
    "sve2", "i8mm", "bf16", "fphp",
)
# Beside every runner's own distributions (its spec's distribution and packages): what every run depends on.
CORE_PACKAGES = ("onnx", "numpy", "pyarrow", "duckdb")


def cpu_model() -> str:
    info = cpuinfo()
    return info.get("model name") or info.get("Hardware") or _part_summary() or platform.processor() or "unknown"


def _part_summary() -> str:
    """ARM's /proc/cpuinfo names no model, only each core's part: "4x Cortex-A55 + 4x Cortex-A76"."""
    parts = [c.part for c in topology.cores(list(range(os.cpu_count() or 1))) if c.part]
    return " + ".join(f"{parts.count(p)}x {p}" for p in dict.fromkeys(parts))


def kernel_arch() -> str | None:
    """The kernel's own architecture. Under qemu-user, uname reports the emulated one; this file is not emulated."""
    return read_text("/proc/sys/kernel/arch")


def emulator(machine: str) -> str | None:
    """What runs this process's instructions when the kernel is of another architecture (qemu-user through
    binfmt_misc, typically), or None when the CPU runs them itself."""
    kernel = kernel_arch()
    if not kernel or arch_family(kernel) == arch_family(machine):
        return None
    if arch_family(kernel) == "arm64" and machine.startswith("arm"):  # 32-bit ARM code runs natively on arm64
        return None
    handler = read_text(f"/proc/sys/fs/binfmt_misc/qemu-{machine}") or ""
    interpreter = next((line.split()[1] for line in handler.splitlines() if line.startswith("interpreter ")), "")
    name = Path(interpreter).name or "a user-mode emulator"
    cpu = f", QEMU_CPU={os.environ['QEMU_CPU']}" if os.environ.get("QEMU_CPU") else ""
    return f"{name} on a {kernel} kernel{cpu}"


def soc_model() -> str | None:
    for path in ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model"):
        model = read_text(path)
        if model:
            return model.rstrip("\x00")
    return None


def isa_flags() -> list[str]:
    present = cpu_flags()
    return [f for f in ISA_FLAGS if f in present]


def _packages() -> list[str]:
    from bench.registry import Registry

    runners = [name for spec in Registry.default().specs.values() for name in (spec.distribution, *spec.packages)]
    return list(dict.fromkeys([*runners, *CORE_PACKAGES]))


def package_versions() -> dict[str, str]:
    versions = {}
    for name in _packages():
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def git_commit() -> str | None:
    source = Path(bench.__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def machine_id() -> str:
    """A stable, non-reversible id: two machines of the same model differ, one machine stays the same."""
    seed = read_text("/etc/machine-id") or platform.node()
    parts = [seed, cpu_model(), str(psutil.cpu_count()), str(psutil.virtual_memory().total)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def gpus() -> list[dict[str, Any]]:
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:  # NVML raises its own error types when no driver is loaded
        return []
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        return [_gpu(pynvml, i, driver) for i in range(pynvml.nvmlDeviceGetCount())]
    finally:
        pynvml.nvmlShutdown()


def _gpu(pynvml: Any, index: int, driver: str) -> dict[str, Any]:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    return {
        "index": index,
        "name": pynvml.nvmlDeviceGetName(handle),
        "memory_mb": pynvml.nvmlDeviceGetMemoryInfo(handle).total // 2**20,
        "driver": driver,
    }


def cpus_allowed() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _arch_fields(machine: str) -> dict[str, Any]:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    emulated_by = emulator(machine)
    return {
        "kernel_arch": kernel_arch(),
        "emulated": emulated_by is not None,
        "emulator": emulated_by,
        "soc_model": soc_model(),
        "cpu_cores": json.dumps([dataclasses.asdict(c) for c in topology.cores(cpus)]),
        "cpu_clusters": json.dumps([c.as_dict() for c in topology.clusters(cpus)]),
        "thermal_zones": json.dumps(thermal.zones(), sort_keys=True),
    }


def capture() -> dict[str, Any]:
    """One row for the runs table."""
    uname = platform.uname()
    return {
        "bench_version": bench.__version__,
        "git_commit": git_commit(),
        "machine_id": machine_id(),
        "cpu_model": cpu_model(),
        "cpu_arch": uname.machine,
        **_arch_fields(uname.machine),
        "cores_physical": psutil.cpu_count(logical=False),
        "cores_logical": psutil.cpu_count(logical=True),
        "cpus_allowed": cpus_allowed(),
        "isa_flags": isa_flags(),
        "cpu_precision_features": json.dumps(Cpu.here().features(), sort_keys=True),
        "memory_gb": psutil.virtual_memory().total / 2**30,
        "os": platform.platform(),
        "kernel": uname.release,
        "python": sys.version.split()[0],
        "packages": json.dumps(package_versions(), sort_keys=True),
        "gpus": json.dumps(gpus()),
        "vulkan_devices": json.dumps(vulkan_devices()),
    }


def vulkan_devices() -> list[dict[str, Any]] | dict[str, str]:
    """Each Vulkan device ncnn sees, or why there is none."""
    found, why = vulkan.devices()
    return found if found else {"why": why}
