"""OpenVINO runner declaration. Imports nothing from openvino.

Precisions: fp32, bf16 and fp16 are all declared, and each is set with INFERENCE_PRECISION_HINT and read back
from the compiled model. Where the CPU cannot do the one asked (fp16 without AVX512-FP16, bf16 without AVX-512),
OpenVINO substitutes another silently; the runner then refuses the case, which becomes an ``error`` row that
names both precisions. The planner cannot know this without importing OpenVINO, so it is not ``unsupported``.

Devices: CPU only. The GPU and NPU plugins have other precision defaults and no thread limit, and no machine
here has either device to test them on.
"""

from bench.plugin import RunnerSpec


class OpenVinoSpec(RunnerSpec):
    name = "openvino"
    distribution = "openvino"
    module = "openvino"
    implementation = "bench.runners.openvino.runner:OpenVinoRunner"
    install_hint = "pip install 'bench[openvino]'"
    devices = ("cpu",)
    precisions = ("fp32", "bf16", "fp16")
    scenarios = ("latency", "throughput")
    model_format = "onnx"
    conversion = "none: OpenVINO's ONNX frontend reads the file at load, with the case's input shapes made static"


SPEC = OpenVinoSpec()
