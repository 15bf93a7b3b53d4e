"""The CPU at hand, as flags: the one place every precision decision starts from.

A runner never asks which machine it is on; it asks a :class:`Cpu` whether it has a flag, and the same
question can be put to a CPU described by its flags alone. Tests feed the reference CPUs below to every
runner's declaration, so a branch for hardware this machine lacks is still exercised.

Flags are the kernel's names (``/proc/cpuinfo`` "flags" on x86, "Features" on ARM).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

X86_MACHINES = frozenset({"x86_64", "amd64", "i386", "i686", "x86"})
ARM64_MACHINES = frozenset({"aarch64", "arm64", "armv8l"})

# Precision-relevant features and the flags that provide each, by architecture. Recorded per run; the
# runners' declarations name the flag that let a reduced-precision case run.
FEATURE_FLAGS: dict[str, dict[str, tuple[str, ...]]] = {
    "x86": {
        "fp16": ("avx512_fp16", "amx_fp16"),
        "bf16": ("avx512_bf16", "amx_bf16"),
        "vnni": ("avx512_vnni", "avx_vnni", "amx_int8"),
        "amx": ("amx_tile", "amx_bf16", "amx_int8", "amx_fp16"),
        "avx512": ("avx512f", "avx512bw", "avx512vl", "avx512dq"),
    },
    "arm64": {
        "fp16": ("asimdhp",),
        "dotprod": ("asimddp",),
        "i8mm": ("i8mm",),
        "bf16": ("bf16",),
        "sve": ("sve", "sve2"),
    },
}
# What every Apple arm64 core has (macOS has no /proc/cpuinfo; sysctl names differ): ARMv8.4 and up.
APPLE_ARM64_FLAGS = frozenset({"asimd", "fphp", "asimdhp", "asimddp"})


def _cpuinfo_text() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpuinfo() -> dict[str, str]:
    """The first value of each /proc/cpuinfo key (the first core's, on Linux every core's flags agree)."""
    info: dict[str, str] = {}
    for line in _cpuinfo_text().splitlines():
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    return info


def cpu_flags() -> set[str]:
    """Every flag the CPU reports (x86 "flags", ARM "Features"); empty where /proc/cpuinfo is absent."""
    info = cpuinfo()
    return set((info.get("flags") or info.get("Features") or "").split())


def arch_family(machine: str) -> str:
    """"x86", "arm64", or the machine string itself for anything else."""
    machine = machine.lower()
    if machine in X86_MACHINES:
        return "x86"
    return "arm64" if machine in ARM64_MACHINES else machine


@dataclass(frozen=True)
class Cpu:
    """A CPU as its architecture family and flags; ``name`` only labels it in reason strings."""

    arch: str
    flags: frozenset[str]
    name: str = ""

    @classmethod
    def here(cls) -> Cpu:
        flags = frozenset(cpu_flags())
        if platform.system() == "Darwin" and arch_family(platform.machine()) == "arm64":
            flags |= APPLE_ARM64_FLAGS
        info = cpuinfo()
        return cls(arch_family(platform.machine()), flags, info.get("model name") or platform.machine())

    @classmethod
    def of(cls, machine: str, flags: str, name: str = "") -> Cpu:
        return cls(arch_family(machine), frozenset(flags.split()), name)

    def first(self, *flags: str) -> str | None:
        """The first of ``flags`` this CPU has, or None."""
        return next((f for f in flags if f in self.flags), None)

    def has_all(self, *flags: str) -> bool:
        return all(f in self.flags for f in flags)

    def feature(self, name: str) -> str | None:
        """The first flag providing feature ``name`` (see FEATURE_FLAGS) on this architecture, or None."""
        return self.first(*FEATURE_FLAGS.get(self.arch, {}).get(name, ()))

    def features(self) -> dict[str, list[str]]:
        """Every precision-relevant feature of this architecture with the flags present for it ([] if none)."""
        table = FEATURE_FLAGS.get(self.arch, {})
        return {name: [f for f in flags if f in self.flags] for name, flags in table.items()}

    def label(self) -> str:
        return f"{self.name or self.arch} ({self.arch})"


# CPUs the declarations are checked against (tests, and the generated table in docs/RESULTS.md). Flag lists are
# the precision-relevant part of real /proc/cpuinfo lines; the base ISA (sse*, avx, avx2, fma, f16c) is implied.
_X86_BASE = "sse4_2 avx f16c fma avx2 avx512f avx512dq avx512cd avx512bw avx512vl avx512_vnni avx512_bf16"
REFERENCE_CPUS: dict[str, Cpu] = {
    "intel-xeon-sapphire-rapids": Cpu.of(
        "x86_64", f"{_X86_BASE} avx_vnni avx512_fp16 amx_tile amx_bf16 amx_int8", "Intel Xeon (Sapphire Rapids)"),
    "amd-epyc-zen5": Cpu.of("x86_64", f"{_X86_BASE} avx_vnni", "AMD EPYC (Zen 5)"),
    "x86-avx2": Cpu.of("x86_64", "sse4_2 avx f16c fma avx2", "x86 with AVX2 only"),
    "arm-v8.2-fp16": Cpu.of(
        "aarch64", "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop "
        "asimddp", "ARMv8.2 (Cortex-A76)"),
    "arm-v8.0": Cpu.of("aarch64", "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid", "ARMv8.0 (Cortex-A53)"),
}
