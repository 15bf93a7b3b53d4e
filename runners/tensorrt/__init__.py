"""TensorRT runner declaration. Imports nothing from tensorrt or CUDA: availability is judged from installed
package metadata and /proc (see ``nvidia.py``).

Precisions, as trtexec does them:
* fp32: TF32 turned off (``BuilderFlag.TF32`` is on by default and lets fp32 convolutions and matmuls run in TF32).
* fp16 / bf16 on TensorRT 10: weakly typed network with ``BuilderFlag.FP16`` / ``BF16`` (TensorRT picks fp16 where
  it is faster, like ``trtexec --fp16``); the layers' precisions are read back from the engine inspector.
* fp16 on TensorRT >= 11: networks are always strongly typed and the precision flags are gone, so the engine is
  built from an fp16 copy of the model (ONNX Runtime's float16 converter, fp32 inputs and outputs kept).
  bf16 has no such converter here: unsupported on TensorRT >= 11.
* int8: not offered. Implicit quantization with a calibrator is deprecated in TensorRT 10 and removed in 11; the
  supported route is an ONNX file with Q/DQ nodes, and the int8 QDQ variant bench makes for ONNX Runtime uses
  asymmetric uint8 activations, which TensorRT does not take (it needs symmetric int8). Not done without a GPU
  to check the result on.

One host thread enqueues and waits, so cases with threads > 1 are unsupported rather than duplicates.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from types import MappingProxyType

from bench import extra_hint
from bench.case import Case
from bench.nvidia import cuda_device
from bench.plugin import Availability, RunnerSpec

# The import name is always `tensorrt`; the distribution that provides it depends on the CUDA major version.
DISTRIBUTIONS = ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu11", "tensorrt-cu13-bindings",
                 "tensorrt-cu12-bindings", "tensorrt-cu11-bindings")
INSTALL_HINT = extra_hint("tensorrt")
INDEX_NOTE = "TensorRT's -libs wheels download from NVIDIA's own package index, which pip must reach"
CUDA_PYTHON_HINT = "pip install cuda-python (device buffers, streams and events; match the driver's CUDA major)"


def _module_present(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # the parent package is missing
        return False


def cuda_python_present() -> bool:
    return _module_present("cuda.bindings") or _module_present("cuda.cudart")  # >= 12.6 / older cuda-python


def strongly_typed_only(version: str | None) -> bool:
    """TensorRT 11 removed weak typing: BuilderFlag.FP16/BF16/INT8 no longer exist."""
    try:
        return version is not None and int(version.split(".")[0]) >= 11
    except ValueError:
        return False


class TensorRTSpec(RunnerSpec):
    name = "tensorrt"
    distribution = "tensorrt"
    module = "tensorrt"
    implementation = "bench.runners.tensorrt.runner:TensorRTRunner"
    install_hint = INSTALL_HINT
    devices = ("cuda",)
    precisions = ("fp32", "fp16", "bf16")
    scenarios = ("latency",)
    model_format = "tensorrt engine"
    packages = (*DISTRIBUTIONS, "cuda-python")
    notes = "not yet verified on a GPU; TensorRT's libraries come from NVIDIA's own index"
    precision_notes = MappingProxyType({
        "fp16": "BuilderFlag.FP16 (TensorRT 10), or a float16 ONNX variant on strongly typed TensorRT 11; layer "
                "precisions read back from the engine inspector",
        "bf16": "BuilderFlag.BF16 on GPUs of compute capability 8.0 and up (TensorRT 10 only)",
    })
    conversion = ("ONNX -> TensorRT engine with trt.OnnxParser + build_serialized_network in a subprocess, one "
                  "static optimization profile at the case's shapes; cached per model, TensorRT version, GPU, "
                  "precision and shapes")

    def version(self) -> str | None:
        for distribution in DISTRIBUTIONS:
            try:
                return importlib.metadata.version(distribution)
            except importlib.metadata.PackageNotFoundError:
                continue
        return None

    def available(self) -> Availability:
        if not _module_present(self.module):
            return Availability(False, f"not installed: tensorrt ({INSTALL_HINT}; {INDEX_NOTE})")
        if not cuda_python_present():
            return Availability(False, f"not installed: cuda-python ({CUDA_PYTHON_HINT})")
        return cuda_device()

    def detect_devices(self) -> dict[str, Availability]:
        return {"cuda": cuda_device()}

    def unsupported_reason(self, case: Case) -> str | None:
        if case.threads != 1:
            return "TensorRT runs on the GPU from one host thread (enqueue + synchronize); threads > 1 is the same case"
        if case.precision == "bf16" and strongly_typed_only(self.version()):
            return (f"TensorRT {self.version()} builds strongly typed networks only (no BuilderFlag.BF16) and bench "
                    "has no bf16 ONNX converter")
        return None


SPEC = TensorRTSpec()
