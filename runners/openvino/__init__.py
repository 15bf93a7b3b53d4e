"""OpenVINO runner declaration. Imports nothing from openvino."""

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


SPEC = OpenVinoSpec()
