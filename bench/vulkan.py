"""Which Vulkan devices this machine has, as ncnn's wheel sees them: probed in a child process with a deadline.

bench's one Vulkan client is ncnn's wheel (built with Vulkan; it opens the loader, libvulkan.so.1, at run time). The
probe imports it in a child process, so that a broken driver (a hang or a crash in vkCreateInstance) costs the child,
never bench, and listing runners imports no runtime. What ncnn's Python ``GpuInfo`` exposes is recorded (name,
vendor id, driver and API versions, type: discrete / integrated / virtual / CPU); the fp16 / int8 / bf16 support that
ncnn prints on stderr when it creates its instance (``fp16-p/s/u/a=1/1/1/1``: packed, storage, uniform, arithmetic)
is read from there, the only place the wheel reports it; memory is ``VulkanDevice.get_heap_budget()`` (MiB).

A software device (Mesa's lavapipe, "llvmpipe"; Google's SwiftShader) runs the shaders on the CPU: its rows are
functional checks, like an emulated run's, and no report ranks or compares them.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import subprocess
import sys
from typing import Any

from bench.plugin import Availability

LOADER = "libvulkan.so.1"
PROBE_DEADLINE_S = 30.0
LOADER_HINT = "Debian: apt-get install libvulkan1 mesa-vulkan-drivers (lavapipe, a software device), or a GPU driver"
# VkPhysicalDeviceType, as ncnn's GpuInfo::type() numbers it (gpu.h: 0 discrete, 1 integrated, 2 virtual, 3 cpu)
TYPES = {0: "discrete", 1: "integrated", 2: "virtual", 3: "cpu"}
VENDORS = {0x10DE: "NVIDIA", 0x1002: "AMD", 0x8086: "Intel", 0x13B5: "ARM", 0x5143: "Qualcomm", 0x1010: "ImgTec",
           0x14E4: "Broadcom", 0x10005: "Mesa", 0x1AE0: "Google"}
SOFTWARE_NAMES = re.compile(r"llvmpipe|lavapipe|swiftshader", re.IGNORECASE)
# ncnn's line per device, e.g. "[0 llvmpipe (LLVM 15.0.6, 256 bits)]  fp16-p/s/u/a=1/1/1/1  int8-p/s/u/a=1/1/1/1"
SUPPORT_LINE = re.compile(r"^\[(\d+) .*\]\s+fp16-p/s/u/a=(\d)/(\d)/(\d)/(\d)\s+int8-p/s/u/a=(\d)/(\d)/(\d)/(\d)"
                          r"(?:\s+bf16-p/s=(\d)/(\d))?", re.MULTILINE)
SUPPORT_FIELDS = ("fp16_packed", "fp16_storage", "fp16_uniform", "fp16_arithmetic", "int8_packed", "int8_storage",
                  "int8_uniform", "int8_arithmetic", "bf16_packed", "bf16_storage")

# Runs in the child: the loader checked first (its absence is named), then ncnn's own enumeration.
PROBE = """
import ctypes, json, sys
try:
    ctypes.CDLL(sys.argv[1])
except OSError as exc:
    print(json.dumps({"loader": str(exc)}))
    raise SystemExit(0)
import ncnn
devices = []
for i in range(ncnn.get_gpu_count()):
    info = ncnn.get_gpu_info(i)
    devices.append({"index": i, "name": info.device_name(), "vendor_id": info.vendor_id(),
                    "device_id": info.device_id(), "type_code": info.type(), "api_version": info.api_version(),
                    "driver_version": info.driver_version(),
                    "heap_budget_mb": ncnn.get_gpu_device(i).get_heap_budget()})
print(json.dumps({"devices": devices, "default": ncnn.get_default_gpu_index() if devices else None}))
"""


def api_version(code: int) -> str:
    """VK_MAKE_API_VERSION's packing (variant 3 bits, major 7, minor 10, patch 12) as "1.3.230"."""
    return f"{(code >> 22) & 0x7F}.{(code >> 12) & 0x3FF}.{code & 0xFFF}"


def is_software(device: dict[str, Any]) -> bool:
    """A device whose "GPU" is the CPU: Vulkan's CPU type, or a software implementation named as such."""
    return device.get("type") == "cpu" or bool(SOFTWARE_NAMES.search(str(device.get("name", ""))))


def _support(stderr: str) -> dict[int, dict[str, bool]]:
    """Per device index, what ncnn printed it supports (packed / storage / uniform / arithmetic)."""
    found = {}
    for match in SUPPORT_LINE.finditer(stderr):
        values = match.groups()[1:]
        found[int(match.group(1))] = {k: v == "1" for k, v in zip(SUPPORT_FIELDS, values, strict=True)
                                      if v is not None}
    return found


def describe(raw: dict[str, Any], support: dict[str, bool] | str | None = None) -> dict[str, Any]:
    """A device as ncnn's GpuInfo gave it (``raw``: name, vendor_id, type_code, api_version ...) in words, with
    whether it is a software device and, where known, its fp16 / int8 / bf16 support."""
    device = {**raw, "type": TYPES.get(raw["type_code"], f"unknown ({raw['type_code']})"),
              "vendor": VENDORS.get(raw["vendor_id"], f"0x{raw['vendor_id']:04x}"),
              "api_version": api_version(raw["api_version"])}
    if support is not None:
        device["support"] = support
    device["software"] = is_software(device)
    return device


def _ncnn_said(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and not line.startswith("[")]
    return " | ".join(lines[:3])


def probe(python: str = sys.executable, loader: str = LOADER, deadline_s: float = PROBE_DEADLINE_S,
          ) -> tuple[list[dict[str, Any]], str]:
    """(devices, why none) from a child process: the devices ncnn sees, each described, and "" when there are any;
    else the reason (ncnn absent, the loader missing, no device, or the probe failing)."""
    if importlib.util.find_spec("ncnn") is None:
        return [], "ncnn is not installed (its wheel is bench's Vulkan client)"
    try:
        done = subprocess.run([python, "-c", PROBE, loader], capture_output=True, text=True, timeout=deadline_s)
    except subprocess.TimeoutExpired:
        return [], f"the Vulkan probe (ncnn in a child process) passed its {deadline_s:g} s deadline"
    try:
        answer = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return [], f"the Vulkan probe failed (exit code {done.returncode}): {_ncnn_said(done.stderr) or 'no output'}"
    if "loader" in answer:
        return [], f"the Vulkan loader {loader} is missing ({answer['loader']}): {LOADER_HINT}"
    support = _support(done.stderr)
    devices = [describe(d, support.get(d["index"], "unknown (ncnn printed none)")) for d in answer["devices"]]
    for device in devices:
        device["default"] = device["index"] == answer["default"]
    if not devices:
        said = _ncnn_said(done.stderr)
        return [], "no Vulkan device: the loader found no driver" + (f" (ncnn: {said})" if said else "")
    return devices, ""


@functools.cache
def devices() -> tuple[list[dict[str, Any]], str]:
    """``probe()`` once per process: the plan, the listing and the runs table ask the same question."""
    return probe()


def availability() -> Availability:
    """Whether ncnn sees a Vulkan device here, and if not, why."""
    found, why = devices()
    return Availability(bool(found), why)


def summary(device: dict[str, Any]) -> str:
    """One device in a line: "llvmpipe (LLVM 15.0.6, 256 bits) (Mesa, cpu, software)"."""
    kind = f"{device['vendor']}, {device['type']}" + (", software" if device["software"] else "")
    return f"{device['name']} ({kind})"
