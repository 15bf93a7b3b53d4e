"""The CPU's cores as the kernel describes them: which core is which (ARM part names), how they group into
clusters (prime / big / little), what each cluster's governor and top frequency are, and whether a core runs
under its top frequency right now (throttling).

Everything is read from sysfs and /proc under ``root`` (``/`` on a machine; a fixture tree in tests), so a
phone's 1+3+4 layout is tested on an x86 box. A CPU the kernel does not describe (no ``cpu_capacity``, no
cpufreq: most x86 VMs) is one cluster, "all", and says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from bench.files import read_text

# (implementer, part) from /proc/cpuinfo -> the core's name (Arm's and vendors' MIDR values).
ARM_PARTS = {
    ("0x41", "0xd03"): "Cortex-A53", ("0x41", "0xd04"): "Cortex-A35", ("0x41", "0xd05"): "Cortex-A55",
    ("0x41", "0xd07"): "Cortex-A57", ("0x41", "0xd08"): "Cortex-A72", ("0x41", "0xd09"): "Cortex-A73",
    ("0x41", "0xd0a"): "Cortex-A75", ("0x41", "0xd0b"): "Cortex-A76", ("0x41", "0xd0c"): "Neoverse-N1",
    ("0x41", "0xd0d"): "Cortex-A77", ("0x41", "0xd40"): "Neoverse-V1", ("0x41", "0xd41"): "Cortex-A78",
    ("0x41", "0xd44"): "Cortex-X1", ("0x41", "0xd46"): "Cortex-A510", ("0x41", "0xd47"): "Cortex-A710",
    ("0x41", "0xd48"): "Cortex-X2", ("0x41", "0xd49"): "Neoverse-N2", ("0x41", "0xd4d"): "Cortex-A715",
    ("0x41", "0xd4e"): "Cortex-X3", ("0x41", "0xd4f"): "Neoverse-V2", ("0x41", "0xd80"): "Cortex-A520",
    ("0x41", "0xd81"): "Cortex-A720", ("0x41", "0xd82"): "Cortex-X4", ("0x41", "0xd84"): "Neoverse-V3",
    ("0x41", "0xd87"): "Cortex-A725", ("0x41", "0xd85"): "Cortex-X925",
    ("0x51", "0x800"): "Kryo 2xx Gold", ("0x51", "0x801"): "Kryo 2xx Silver", ("0x51", "0x804"): "Kryo 4xx Gold",
    ("0x51", "0x805"): "Kryo 4xx Silver", ("0x61", "0x022"): "Apple M1 Icestorm",
    ("0x61", "0x023"): "Apple M1 Firestorm", ("0xc0", "0xac3"): "Ampere-1",
}
CORE_SETS = ("all", "big", "little", "prime")  # what a suite's `cores` axis may name


@dataclass(frozen=True)
class Core:
    cpu: int
    part: str  # "Cortex-A76", "unknown (0x41:0xd99)", or "" where the kernel names no part (x86)
    capacity: int | None  # /sys/.../cpu_capacity: the scheduler's relative speed, 1024 = fastest
    max_khz: int | None


@dataclass(frozen=True)
class Cluster:
    name: str  # prime / big / little, or "all" when every core is alike
    cpus: tuple[int, ...]
    parts: tuple[str, ...]
    capacity: int | None
    max_mhz: float | None
    governor: str | None

    def as_dict(self) -> dict:
        return asdict(self)


def _int(path: Path) -> int | None:
    text = read_text(path)
    return int(text) if text and text.strip().isdigit() else None


def _cpu_dir(root: Path, cpu: int) -> Path:
    return root / "sys/devices/system/cpu" / f"cpu{cpu}"


def _part_names(cpuinfo: str) -> dict[int, str]:
    """processor number -> part name, from ARM /proc/cpuinfo blocks (x86 blocks carry no part)."""
    names: dict[int, str] = {}
    for block in cpuinfo.split("\n\n"):
        fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in block.splitlines())}
        if fields.get("processor", "").isdigit() and "CPU part" in fields:
            key = (fields.get("CPU implementer", "").lower(), fields["CPU part"].lower())
            names[int(fields["processor"])] = ARM_PARTS.get(key, f"unknown ({key[0]}:{key[1]})")
    return names


def cores(cpus: list[int], root: Path = Path("/")) -> list[Core]:
    parts = _part_names(read_text(root / "proc/cpuinfo") or "")
    return [Core(cpu, parts.get(cpu, ""), _int(_cpu_dir(root, cpu) / "cpu_capacity"),
                 _int(_cpu_dir(root, cpu) / "cpufreq/cpuinfo_max_freq")) for cpu in cpus]


def _names(count: int) -> list[str]:
    """Cluster names, fastest first: 1 -> all; 2 -> big, little; 3+ -> prime, big..., little."""
    if count == 1:
        return ["all"]
    if count == 2:
        return ["big", "little"]
    return ["prime"] + ["big"] * (count - 2) + ["little"]


def clusters(cpus: list[int], root: Path = Path("/")) -> list[Cluster]:
    """``cpus`` grouped by (capacity, top frequency), fastest first; the middle groups of a 4+ cluster chip
    together form "big"."""
    groups: dict[tuple[int, int], list[Core]] = {}
    for core in cores(cpus, root):
        groups.setdefault((core.capacity or 0, core.max_khz or 0), []).append(core)
    ordered = [groups[k] for k in sorted(groups, reverse=True)]
    merged: dict[str, list[Core]] = {}
    for name, group in zip(_names(len(ordered)), ordered, strict=True):
        merged.setdefault(name, []).extend(group)
    return [_cluster(name, group, root) for name, group in merged.items()]


def _cluster(name: str, group: list[Core], root: Path) -> Cluster:
    top = max(group, key=lambda c: (c.capacity or 0, c.max_khz or 0))
    governor = read_text(_cpu_dir(root, group[0].cpu) / "cpufreq/scaling_governor")
    return Cluster(name, tuple(c.cpu for c in group), tuple(dict.fromkeys(c.part for c in group if c.part)),
                   top.capacity, top.max_khz / 1000 if top.max_khz else None, governor.strip() if governor else None)


def core_set(name: str, cpus: list[int], root: Path = Path("/")) -> tuple[tuple[int, ...] | None, str]:
    """The CPUs a ``cores`` value names here, or ``(None, why not)``. "all" is every CPU this process may use;
    "big" / "little" / "prime" need a chip whose kernel tells its clusters apart."""
    if name == "all":
        return tuple(cpus), ""
    found = clusters(cpus, root)
    for cluster in found:
        if cluster.name == name:
            return cluster.cpus, ""
    if len(found) == 1:
        return None, (f"cores {name!r}: this machine's {len(cpus)} CPUs form one cluster (no cpu_capacity or "
                      "cpufreq difference tells big from little cores); 'all' runs them all")
    return None, f"cores {name!r}: this machine has clusters {', '.join(c.name for c in found)}"


def frequency_ratio(cpus: tuple[int, ...] | list[int], root: Path = Path("/")) -> float | None:
    """The lowest current / top frequency over ``cpus`` now (1.0 = every core at its top; under load, less means
    throttled or capped), or None where cpufreq tells neither."""
    ratios = []
    for cpu in cpus:
        now = _int(_cpu_dir(root, cpu) / "cpufreq/scaling_cur_freq")
        top = _int(_cpu_dir(root, cpu) / "cpufreq/cpuinfo_max_freq")
        if now and top:
            ratios.append(now / top)
    return min(ratios) if ratios else None
