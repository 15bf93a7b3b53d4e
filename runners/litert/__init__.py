"""LiteRT (TensorFlow Lite) runner declaration: the runtime most Android apps ship, XNNPACK its default CPU
delegate. Imports nothing from ai_edge_litert, litert_torch or torch.

The interpreter is the ``ai-edge-litert`` wheel (22 MB, in ``all``). There is no ONNX -> .tflite converter without
TensorFlow (onnx2tf 1.x needs it, 2.5 GB, and downloads a test image on every conversion of an image model), so
bench takes the path it already has: ONNX -> onnx2torch (the PyTorch runner's bridge) -> ``litert-torch`` (+1.1 GB
with jax, no TensorFlow), in the ``litert-convert`` extra, not in ``all`` (torch is large). A model whose wheel
ships the same trained model as a ``.tflite`` (``ModelRef.alternates``) runs that file at fp32: no conversion at
all, parity still against the ONNX file's fp32 reference.

Precisions: fp32; int8, full-integer (int8 inputs, outputs and kernels) through litert-torch's PT2E quantizer
calibrated on the shared calibration set; fp16 is declared so that its rows say why they do not run (see
``FP16_EVIDENCE``). Every row reads the precision back from the ``.tflite``'s tensor types.
"""

from __future__ import annotations

import importlib.util
from types import MappingProxyType

from bench import extra_hint
from bench.case import Case
from bench.cpu import Cpu
from bench.plugin import Availability, PrecisionSupport, RunnerSpec

# Converting ONNX to .tflite: what must be importable, and how to get it.
CONVERT_EXTRA = "litert-convert"
CONVERTER_NEEDS = (("litert_torch", "litert-torch"), ("torch", "torch"), ("onnx2torch", "onnx2torch"))
# Measured on an AMD EPYC (avx512_bf16, f16c, no avx512_fp16), ai-edge-litert 2.3.0, 1 thread: a 5-convolution net
# whose .tflite got fp16 weights (ai-edge-quantizer's float casting: fp16 weights + DEQUANTIZE ops) ran no faster
# (73-81 vs 67 ms) and matched fp32 arithmetic on the fp16-rounded weights to 1.4e-7 (fp32 vs torch: 1.1e-7).
FP16_EVIDENCE = (
    "LiteRT's XNNPACK delegate computes fp32 from an fp16-weights .tflite: it turns the fp16 weights back into fp32 "
    "(measured on an AMD EPYC: outputs equal to fp32 arithmetic on the fp16-rounded weights to 1.4e-7, no faster); "
    "XNNPACK computes fp16 only on ARMv8.2 FP16 cores for a model marked for fp16 accumulation or with its FORCE_FP16 "
    "flag, which neither litert-torch nor the Python Interpreter sets: an fp16 row would be an fp32-arithmetic row"
)

# litert-torch's own PT2E recipe for LiteRT's int8 kernels: symmetric int8, weights per output channel, static
# activations per tensor (the full-integer .tflite XNNPACK's qs8 kernels run).
INT8_OPTIONS = {"quantizer": "litert_torch PT2EQuantizer (prepare_pt2e / convert_pt2e)",
                "config": "get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)",
                "recipe": "PT2E with litert-torch's PT2EQuantizer: int8 symmetric, weights per output channel, "
                          "activations per tensor, static (calibrated); full-integer .tflite (int8 inputs and outputs)"}


def shipped_tflite(case: Case) -> str | None:
    """The ``.tflite`` the model's wheel ships (the same trained model as its ONNX file), when the case runs it:
    fp32 only, for a reduced precision is a conversion of its own."""
    if case.precision != "fp32":
        return None
    return dict(case.model.alternates).get("tflite")


class LiteRTSpec(RunnerSpec):
    name = "litert"
    distribution = "ai-edge-litert"
    module = "ai_edge_litert"
    implementation = "bench.runners.litert.runner:LiteRTRunner"
    install_hint = extra_hint("litert")
    devices = ("cpu",)
    precisions = ("fp32", "fp16", "int8")
    scenarios = ("latency",)
    model_format = "tflite"
    torch_module_path = "LiteRT"  # a model from PyTorch (bench run --torch) converts from its own module
    packages = ("litert-torch", "onnx2torch", "torch")
    notes = ("LiteRT's Interpreter with its default XNNPACK delegate, whether the graph was fully delegated on every "
             f"row; ONNX -> .tflite through onnx2torch and litert-torch: `{extra_hint(CONVERT_EXTRA)}` (not in "
             "`all`: torch and jax are large); a model's own shipped .tflite runs unconverted")
    precision_notes = MappingProxyType({
        "fp16": "not run: " + FP16_EVIDENCE,
        "int8": "full-integer .tflite (int8 inputs, outputs, weights and activations): litert-torch's PT2EQuantizer "
                "(symmetric int8, weights per output channel, activations per tensor, static) calibrated on the "
                "shared calibration set; inputs quantized before timing, outputs dequantized after; read back from "
                "the file's tensor types",
    })
    conversion = ("ONNX -> onnx2torch -> litert-torch (torch.export, its own lowering; no TensorFlow) -> .tflite, "
                  "cached (int8: PT2E quantization before converting); a shipped .tflite runs as it is")
    # fp32 reads a shipped .tflite without converting, but most models have none: every precision converts
    converted_precisions = None

    def cpu_precision(self, precision: str, cpu: Cpu) -> PrecisionSupport:
        if precision == "fp16":
            return PrecisionSupport(reason=FP16_EVIDENCE)
        if precision == "int8":
            return PrecisionSupport.accelerated_by(cpu, ("avx512_vnni", "avx_vnni", "i8mm", "asimddp"),
                                                   "XNNPACK's qs8 kernels")
        return PrecisionSupport()

    def case_available(self, case: Case) -> Availability:
        if shipped_tflite(case):
            return Availability(True)
        for module, what in CONVERTER_NEEDS:
            if importlib.util.find_spec(module) is None:
                return Availability(False, f"converting ONNX to .tflite (ONNX -> onnx2torch -> litert-torch) needs "
                                           f"{what}, not installed: {extra_hint(CONVERT_EXTRA)}")
        return Availability(True)


SPEC = LiteRTSpec()
