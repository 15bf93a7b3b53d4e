"""OpenVINO runner declaration. Imports nothing from openvino.

Precisions: fp32, bf16 and fp16, each set with INFERENCE_PRECISION_HINT and read back from the compiled model.
Where the CPU cannot do the one asked, OpenVINO substitutes another silently. The declaration below predicts it
from the CPU's flags, as OpenVINO's CPU plugin decides it (``hasHardwareSupport`` in
src/plugins/intel_cpu/src/utils/precision_support.cpp: bf16 on x86 needs avx512_core or avx2_vnni_2, fp16 needs
avx512_core_fp16 or avx2_vnni_2; on ARM, fp16 needs FP16 SIMD), so such a case is an ``unsupported`` row before
it runs; the read-back in the worker stays as the guard where the two disagree (also ``unsupported``).

Devices: CPU only. The GPU and NPU plugins have other precision defaults and no thread limit, and no machine
here has either device to test them on.
"""

from __future__ import annotations

import importlib.util
from types import MappingProxyType

from bench import extra_hint
from bench.cpu import FEATURE_FLAGS, Cpu
from bench.plugin import Availability, PrecisionSupport, RunnerSpec
from bench.runners.openvino.recipe import TRANSFORMER_RULE

NNCF_HINT = extra_hint("openvino") + " (it brings nncf)"
# oneDNN's avx2_vnni_2 ISA (Sierra Forest, Arrow Lake, Lunar Lake) is avx_vnni + AVX-VNNI-INT8 + AVX-NE-CONVERT; Linux
# shows no /proc/cpuinfo flag for the last two, so on an avx_vnni CPU without AVX-512 the read-back decides.
AVX2_VNNI_2_MAYBE = (
    "avx_vnni: AVX2-VNNI-2 may give {p} conversions in AVX2 (its CPUID bits are not in /proc/cpuinfo), so the "
    "compiled model's read-back decides"
)


def _x86(precision: str, cpu: Cpu) -> PrecisionSupport:
    native = cpu.first("amx_fp16", "avx512_fp16") if precision == "fp16" else cpu.first("amx_bf16", "avx512_bf16")
    if native:
        accumulate = "" if native.startswith("amx") else " (oneDNN accumulates in f32 outside AMX)"
        return PrecisionSupport(f"{native}: {precision} kernels in OpenVINO's CPU plugin{accumulate}")
    avx512 = cpu.has_all(*FEATURE_FLAGS["x86"]["avx512"])
    if precision == "bf16" and avx512:
        return PrecisionSupport("avx512f: bf16 rounding emulated with AVX-512, arithmetic in fp32 (no avx512_bf16)")
    if "avx_vnni" in cpu.flags and not avx512:
        return PrecisionSupport(AVX2_VNNI_2_MAYBE.format(p=precision), tentative=True)
    needs = "AVX512-FP16" if precision == "fp16" else "AVX-512 (avx512f, avx512bw, avx512vl, avx512dq)"
    return PrecisionSupport(reason=(
        f"OpenVINO's CPU plugin honours {precision} only with {needs} or AVX2-VNNI-2; on this CPU the hint becomes "
        f"{'bf16 or f32' if precision == 'fp16' else 'f32'} silently: the row would hold other numbers"))


class OpenVinoSpec(RunnerSpec):
    name = "openvino"
    distribution = "openvino"
    module = "openvino"
    implementation = "bench.runners.openvino.runner:OpenVinoRunner"
    install_hint = extra_hint("openvino")
    devices = ("cpu",)
    precisions = ("fp32", "bf16", "fp16", "int8")
    converted_precisions = ("int8",)  # the NNCF-quantized IR; the others read the ONNX file at load
    scenarios = ("latency", "throughput", "server", "offline")
    model_format = "onnx"
    notes = ("precision read back from the compiled model; int8: NNCF post-training quantization on the shared "
             "calibration set, u8/i8 kernels read back; throughput with an async queue")
    precision_notes = MappingProxyType({
        "bf16": "INFERENCE_PRECISION_HINT=bf16 on the fp32 model; the compiled model's hint read back (OpenVINO "
                "substitutes f32 silently where the CPU lacks AVX-512)",
        "fp16": "INFERENCE_PRECISION_HINT=f16 on the fp32 model, read back as for bf16",
        "int8": "NNCF post-training quantization (nncf.quantize) to IR on the shared calibration set, "
                f"model_type TRANSFORMER (preset MIXED) where {TRANSFORMER_RULE}, else NNCF's default (preset "
                "PERFORMANCE), the recipe on the row; the rest forced f32 (hint f32, never int8+bf16); the runtime "
                "layers' u8/i8 precisions read back",
    })
    conversion = ("none: OpenVINO's ONNX frontend reads the file at load, with the case's input shapes made static; "
                  "int8: nncf.quantize to IR, cached")

    def precision_available(self, precision: str) -> Availability:
        if precision == "int8" and importlib.util.find_spec("nncf") is None:
            return Availability(False, f"int8 needs OpenVINO's quantizer NNCF, not installed: {NNCF_HINT}")
        return Availability(True)

    def cpu_precision(self, precision: str, cpu: Cpu) -> PrecisionSupport:
        if precision == "int8":
            return PrecisionSupport.accelerated_by(cpu, ("amx_int8", "avx512_vnni", "avx_vnni", "i8mm", "asimddp"),
                                                   "OpenVINO's int8 kernels (oneDNN / ACL)")
        if precision not in ("bf16", "fp16"):
            return PrecisionSupport()
        if cpu.arch == "x86":
            return _x86(precision, cpu)
        if cpu.arch == "arm64" and precision == "fp16":
            return PrecisionSupport.needs(  # with_cpu_neon_fp16(): HWCAP_FPHP | HWCAP_ASIMDHP
                cpu, ("asimdhp", "fphp"), "OpenVINO's ARM fp16 kernels (ARMv8.2 FP16)",
                "this ARM CPU has no ARMv8.2 FP16 (asimdhp / fphp): OpenVINO's CPU plugin would run f32 for f16")
        return PrecisionSupport(reason=f"OpenVINO's CPU plugin has no {precision} inference precision on {cpu.arch}")


SPEC = OpenVinoSpec()
