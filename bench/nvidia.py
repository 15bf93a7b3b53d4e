"""Is there an NVIDIA GPU with a driver, judged from /proc alone: no CUDA library is loaded, no runtime imported.

The kernel driver writes ``/proc/driver/nvidia/version`` when it is loaded and one folder per GPU under
``/proc/driver/nvidia/gpus/`` (named by PCI address, holding an ``information`` file with the model name).
Containers started with the NVIDIA container toolkit see the same files for the GPUs they were given.
Used by the tensorrt and pytorch specs; candidates for ``bench.envinfo`` once a third runner needs them.
"""

from __future__ import annotations

from pathlib import Path

from bench.plugin import Availability

PROC = Path("/proc/driver/nvidia")


def gpu_models(proc: Path = PROC) -> list[str]:
    """The model name of every GPU the driver lists, in PCI order ("NVIDIA H100 80GB HBM3")."""
    models = []
    for folder in sorted((proc / "gpus").glob("*")):
        try:
            info = (folder / "information").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
        models.append(fields.get("Model", "unknown").strip())
    return models


def cuda_device(proc: Path = PROC) -> Availability:
    """Whether this machine has an NVIDIA driver and at least one GPU, and if not, which is missing."""
    if not (proc / "version").exists():
        return Availability(False, f"no NVIDIA driver ({proc / 'version'} is absent)")
    if not gpu_models(proc):
        return Availability(False, f"no NVIDIA GPU (the driver lists none in {proc / 'gpus'})")
    return Availability(True)
