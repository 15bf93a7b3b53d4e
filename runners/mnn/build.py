"""Which MNN library this process loaded, and which int8 kernels that build holds.

MNN picks its x86 int8 kernels at run time from what it was COMPILED with: the PyPI wheel is built without
``MNN_AVX512`` / ``MNN_AVX512_VNNI``, so on a CPU with AVX-512 VNNI its int8 still goes through AVX2's 16-bit
multiply-adds and is slower than its fp32 (MNN's FAQ says so). A source build with ``-DMNN_AVX512=ON
-DMNN_AVX512_VNNI=ON`` (docs/MNN_INT8.md) has the VNNI kernels.

How a build is read, without running it and without symbols (a release build may be stripped): its executable ELF
sections are scanned for the machine code of the VNNI instruction itself, ``vpdpbusd`` / ``vpdpbusds``. In its
AVX-512 (EVEX) form that is byte 0x62, then P0 with map 0F38 (``P0 & 0x0F == 0x02``), P1 with W=0 and prefix 66
(``P1 & 0x87 == 0x05``), any P2, then opcode 0x50 / 0x51; the AVX-VNNI (VEX) form is 0xC4, map 0F38
(``& 0x1F == 0x02``), W=0 and 66 (``& 0x83 == 0x01``), then 0x50 / 0x51. Checked against ``objdump -d``: equal
counts on ONNX Runtime 1.32 (1436 EVEX, 1107 VEX) and OpenVINO's CPU plugin (528, 160); MNN 3.6.1's wheel: 0.
The library is found in ``/proc/self/maps`` (the files mapped into this process whose name holds "mnn"), so a
source-built MNN installed in the venv is the one read and recorded.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

from bench.cpu import Cpu

ELF_MAGIC = b"\x7fELF"
SHF_EXECINSTR = 0x4
SHT_PROGBITS = 1
# candidate encodings; the bit tests in _vnni_count finish the match
EVEX_DPBUSD = re.compile(rb"\x62(?=(.)(.).[\x50\x51])", re.S)  # lookahead: overlapping candidates too
VEX_DPBUSD = re.compile(rb"\xc4(?=(.)(.)[\x50\x51])", re.S)
BUILD_FLAGS = "-DMNN_AVX512=ON -DMNN_AVX512_VNNI=ON"


def loaded_libraries(maps: Path = Path("/proc/self/maps")) -> list[Path]:
    """The MNN shared libraries mapped into this process (``import MNN`` first); [] where /proc is absent."""
    try:
        lines = maps.read_text().splitlines()
    except OSError:
        return []
    paths = {Path(line.split(maxsplit=5)[5]) for line in lines if len(line.split(maxsplit=5)) == 6}
    return sorted(p for p in paths if "mnn" in p.name.lower() and ".so" in p.name)


def executable_sections(data: bytes) -> list[bytes]:
    """The code sections of a 64-bit little-endian ELF file; [] for anything else."""
    if data[:4] != ELF_MAGIC or data[4] != 2 or data[5] != 1:
        return []
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    entsize, count = struct.unpack_from("<HH", data, 0x3A)
    sections = []
    for i in range(count):
        _, kind, flags, _, offset, size = struct.unpack_from("<IIQQQQ", data, shoff + i * entsize)
        if kind == SHT_PROGBITS and flags & SHF_EXECINSTR:
            sections.append(data[offset:offset + size])
    return sections


def vnni_instructions(path: Path) -> dict[str, int] | None:
    """How many ``vpdpbusd(s)`` instructions a library's code holds, AVX-512 and AVX (VEX) forms; None when it is
    not an ELF file this can read."""
    try:
        sections = executable_sections(path.read_bytes())
    except (OSError, struct.error):
        return None
    if not sections:
        return None
    evex = sum(1 for code in sections for m in EVEX_DPBUSD.finditer(code)
               if m.group(1)[0] & 0x0F == 0x02 and m.group(2)[0] & 0x87 == 0x05)
    vex = sum(1 for code in sections for m in VEX_DPBUSD.finditer(code)
              if m.group(1)[0] & 0x1F == 0x02 and m.group(2)[0] & 0x83 == 0x01)
    return {"avx512_vnni": evex, "avx_vnni": vex}


def library_facts() -> dict[str, Any]:
    """The loaded MNN libraries with the VNNI instructions found in each (recorded on every MNN row)."""
    return {"libraries": [{"path": str(p), "vnni_instructions": vnni_instructions(p)} for p in loaded_libraries()],
            "method": "vpdpbusd/vpdpbusds machine code counted in the libraries' executable ELF sections"}


def build_limit(facts: dict[str, Any], cpu: Cpu) -> str | None:
    """``build: ...`` when this CPU has AVX-512 VNNI and the loaded MNN build has no AVX-512 VNNI kernel (MNN's
    int8 VNNI kernels are AVX-512 ones); None when the build has them, the CPU lacks VNNI, or nothing was read."""
    if cpu.arch != "x86" or "avx512_vnni" not in cpu.flags:
        return None
    counts = [lib["vnni_instructions"] for lib in facts["libraries"] if lib["vnni_instructions"] is not None]
    if not counts or any(c["avx512_vnni"] for c in counts):
        return None
    names = ", ".join(Path(lib["path"]).name for lib in facts["libraries"])
    return (f"build: this MNN ({names}) has no AVX-512 VNNI int8 kernels (no vpdpbusd; int8 runs AVX2 16-bit "
            f"multiply-adds, slower than its fp32) on a CPU with avx512_vnni; a source build with {BUILD_FLAGS} "
            "has them (docs/MNN_INT8.md)")
