"""Apache TVM runner declaration: the compiler the runtime comparisons started from. Imports nothing from tvm.

The ONNX file is imported with TVM's Relax ONNX frontend at the case's input shapes and compiled with LLVM for this
CPU (``tvm.compile``) in ``prepare``, so a cold start includes the compilation, as it does for a TVM user; the
compiled library is cached by model, TVM version, target and tuning database, and a later case only loads it.

Untuned, TVM's default CPU schedules leave convolutions slow (MobileNetV2: ~14x ONNX Runtime, FIELD.md), so every row
says which it was: ``untuned`` or ``tuned: N trials`` (``bench tune --runner tvm``, MetaSchedule, cached per model and
target), and the report shows that beside the runner's name.
"""

from __future__ import annotations

import importlib.util

from bench import extra_hint
from bench.plugin import Availability, RunnerSpec

# What the row and the report say about a TVM row that no tuning database covered (see bench/report/labels.py).
UNTUNED = "untuned"


class TvmSpec(RunnerSpec):
    name = "tvm"
    distribution = "apache-tvm"
    module = "tvm"
    implementation = "bench.runners.tvm.runner:TvmRunner"
    tuner = "bench.runners.tvm.tuning:tune"
    install_hint = extra_hint("tvm")
    devices = ("cpu",)  # the wheel has a CUDA runtime too, untested here (no GPU)
    # fp32 only: TVM computes a model in its own dtypes; fp16/int8 would need bench to rewrite the graph first
    precisions = ("fp32",)
    converted_precisions = ()  # tvm.compile runs in prepare (it needs the tuning records), cached there
    scenarios = ("latency",)
    model_format = "onnx"
    packages = ("apache-tvm-ffi", "xgboost-cpu")
    notes = ("compiles in prepare (cold start includes it), library cached; rows say `untuned` or `tuned: N trials` "
             "(`bench tune --runner tvm`, MetaSchedule, cached per model and target); not in `all` (a 100 MB wheel)")
    conversion = ("ONNX -> Relax (TVM's ONNX frontend, static input shapes) -> tvm.compile for LLVM on this CPU; the "
                  "shared library cached per model, TVM version, target and tuning records")

    def available(self) -> Availability:
        for module, what in (("tvm", "apache-tvm"), ("tvm_ffi", "apache-tvm-ffi")):
            if importlib.util.find_spec(module) is None:
                return Availability(False, f"not installed: {what} ({self.install_hint})")
        return Availability(True)


SPEC = TvmSpec()
