"""Writes an arm64 /proc/cpuinfo for the emulated root (scripts/arm64), from what the emulated CPU reports.

qemu-user shows the host's x86 /proc/cpuinfo to the guest, and onnxruntime's cpuinfo library crashes reading it
once /sys is mounted. The features come from the auxiliary vector (getauxval), which qemu fills from the CPU model
it emulates (QEMU_CPU), so a runtime reading /proc/cpuinfo and one calling getauxval agree. The implementer and
part are 0: an emulated CPU is no core anyone ships, and bench records the run as emulated.

Run with the root's own python (aarch64): ``python3 scripts/arm64_cpuinfo.py CORES``.
"""

from __future__ import annotations

import ctypes
import sys

AT_HWCAP, AT_HWCAP2 = 16, 26
# Bit -> name, as the Linux kernel prints them (arch/arm64/kernel/cpuinfo.c, uapi/asm/hwcap.h).
HWCAP = ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop "
         "sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg").split()
HWCAP2 = ("dcpodp sve2 sveaes svepmull svebitperm svesha3 svesm4 flagm2 frint svei8mm svef32mm svef64mm svebf16 "
          "i8mm bf16 dgh rng bti mte ecv afp rpres mte3 sme smei16i64 smef64f64 smei8i32 smef16f32 smeb16f32 "
          "smef32f32 smefa64 wfxt ebf16 sveebf16").split()


def features() -> list[str]:
    libc = ctypes.CDLL(None)
    libc.getauxval.restype = ctypes.c_ulong
    libc.getauxval.argtypes = [ctypes.c_ulong]
    names = []
    for key, table in ((AT_HWCAP, HWCAP), (AT_HWCAP2, HWCAP2)):
        bits = libc.getauxval(key)
        names += [name for bit, name in enumerate(table) if bits >> bit & 1]
    return names


def cpuinfo(cores: int) -> str:
    block = ("processor\t: {n}\nBogoMIPS\t: 0.00\nFeatures\t: " + " ".join(features())
             + "\nCPU implementer\t: 0x00\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0x000\n"
             "CPU revision\t: 0\n\n")
    return "".join(block.format(n=n) for n in range(cores))


if __name__ == "__main__":
    sys.stdout.write(cpuinfo(int(sys.argv[1])))
