"""Text for ``list runners | suites | models``. Reads declarations only: no runtime is imported."""

from __future__ import annotations

from pathlib import Path

from bench import vulkan
from bench.cache import default_cache_dir
from bench.cpu import Cpu
from bench.models.zoo import cached_cost, load_manifest
from bench.registry import Registry
from bench.suite import builtin_suites, parse_suite


def _columns(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _on_this_cpu(spec, cpu: Cpu) -> str:
    """The declared precisions the runner computes on this CPU (from its flags), or - for GPU-only runners."""
    if "cpu" not in spec.devices:
        return "-"
    return ",".join(p for p in spec.precisions if spec.cpu_precision(p, cpu).ok)


def runners() -> str:
    cpu = Cpu.here()
    rows = [["runner", "status", "version", "devices", "precisions", "on this cpu", "reason"]]
    for name, spec in sorted(Registry.default().specs.items()):
        available = spec.available()
        devices = spec.detect_devices() if available.ok else {}
        present = [d for d, a in devices.items() if a.ok]
        if not available.ok:
            status, reason = "not installed" if spec.installable else "not installable", available.reason
        elif not present:
            status, reason = "no device", "; ".join(f"{d}: {a.reason}" for d, a in devices.items())
        else:
            status, reason = "available", _vulkan(devices)
        rows.append([name, status, spec.version() or "-", ",".join(present or spec.devices),
                     ",".join(spec.precisions), _on_this_cpu(spec, cpu), reason])
    return _columns(rows)


def _vulkan(devices: dict) -> str:
    """For a runner that offers the vulkan device: the Vulkan devices found (ncnn's view), or why it has none."""
    if "vulkan" not in devices:
        return ""
    if not devices["vulkan"].ok:
        return f"vulkan: {devices['vulkan'].reason}"
    found, _ = vulkan.devices()
    software = " (software: a CPU doing the GPU's work; its rows are functional checks, never ranked)"
    return "vulkan: " + "; ".join(f"{d['index']} {vulkan.summary(d)}, Vulkan {d['api_version']}" for d in found) + (
        software if any(d["software"] for d in found) else "")


def suites() -> str:
    rows = [["suite", "models", "runners", "description"]]
    for name, text in sorted(builtin_suites().items()):
        suite = parse_suite(text, f"suites/{name}.toml")
        rows.append([name, str(len(suite.models)), ",".join(suite.runners), suite.description])
    return _columns(rows)


def _si(value: int | None) -> str:
    if value is None:
        return "-"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.2f}{unit}"
    return str(value)


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a cache path too long for the filesystem, say: not cached, and the listing goes on
        return False


def models(cache: Path | None = None) -> str:
    """The zoo; parameters and MACs show once `bench models build` has put a model in the cache."""
    cache = cache or default_cache_dir()
    rows = [["model", "task", "source", "params", "MACs", "inputs", "cached"]]
    for name, m in sorted(load_manifest().items()):
        inputs = " ".join(f"{i.name}:{'x'.join(map(str, i.shape)) or 'scalar'}:{i.dtype}" for i in m.inputs)
        cost = cached_cost(m, cache) or {}
        cached = "yes" if _exists(m.cache_path(cache)) else "no"
        rows.append([name, m.task, m.source, _si(cost.get("params")), _si(cost.get("macs")), inputs, cached])
    return _columns(rows)
