"""ExecuTorch runner declaration: PyTorch's own on-device runtime, XNNPACK delegate. Imports nothing from torch.

The ONNX file goes through onnx2torch (as for the PyTorch runner), ``torch.export`` and
``to_edge_transform_and_lower`` with the ``XnnpackPartitioner`` to a ``.pte`` program, made once per model, shapes
and precision in the conversion cache (``lower.py``). The worker runs it with ``executorch.runtime``. How much of
the graph the delegate took is a fact on every row (``runner_facts.delegation``: full, partial or none, with op
counts): a partially delegated model runs its other ops on ExecuTorch's portable kernels, a different thing.

Precisions: fp32; int8 with XNNPACK's PT2E quantizer (symmetric, per-channel weights) calibrated on the shared
calibration set, an int8 row only where quantized ops are in the program.
"""

from __future__ import annotations

import importlib.util
from types import MappingProxyType

from bench import extra_hint
from bench.cpu import Cpu
from bench.plugin import Availability, PrecisionSupport, RunnerSpec

NEEDS = (("torch", "torch"), ("onnx2torch", "the ONNX -> PyTorch converter onnx2torch"),
         ("executorch", "executorch"))


class ExecuTorchSpec(RunnerSpec):
    name = "executorch"
    distribution = "executorch"
    module = "executorch"
    implementation = "bench.runners.executorch.runner:ExecuTorchRunner"
    install_hint = extra_hint("executorch")
    devices = ("cpu",)
    precisions = ("fp32", "int8")
    scenarios = ("latency",)
    model_format = "onnx"
    torch_module_path = "ExecuTorch"
    packages = ("torch", "onnx2torch", "torchao")
    notes = ("PyTorch's deployment runtime, XNNPACK delegate; how much of the graph was delegated is on every row; "
             "not in `all` (torch is large)")
    precision_notes = MappingProxyType({
        "int8": "PT2E with XNNPACKQuantizer (symmetric int8, per-channel weights) on the shared calibration set, "
                "lowered to XNNPACK; the quantize ops in the program counted (none: the row is not int8)",
    })
    conversion = ("ONNX -> onnx2torch -> torch.export -> to_edge_transform_and_lower(XnnpackPartitioner) -> .pte, "
                  "cached (int8: PT2E quantization before lowering)")

    def available(self) -> Availability:
        for module, what in NEEDS:
            if importlib.util.find_spec(module) is None:
                return Availability(False, f"not installed: {what} ({self.install_hint})")
        return Availability(True)

    def precision_available(self, precision: str) -> Availability:
        if precision == "int8" and importlib.util.find_spec("torchao") is None:
            return Availability(False, f"int8 needs the PT2E quantization flow in torchao, not installed "
                                       f"({self.install_hint})")
        return Availability(True)

    def cpu_precision(self, precision: str, cpu: Cpu) -> PrecisionSupport:
        if precision == "int8":
            return PrecisionSupport.accelerated_by(cpu, ("avx512_vnni", "avx_vnni", "i8mm", "asimddp"),
                                                   "XNNPACK's qs8 kernels")
        return PrecisionSupport()


SPEC = ExecuTorchSpec()
