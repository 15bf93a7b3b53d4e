"""ncnn runner declaration. Imports nothing from ncnn."""

from bench.plugin import RunnerSpec


class NcnnSpec(RunnerSpec):
    name = "ncnn"
    distribution = "ncnn"
    module = "ncnn"
    implementation = "bench.runners.ncnn.runner:NcnnRunner"
    install_hint = "pip install 'bench[ncnn]'"
    devices = ("cpu",)
    precisions = ("fp32", "fp16")
    scenarios = ("latency",)
    model_format = "ncnn"
    conversion = "ONNX -> ncnn with the pnnx wheel's native converter binary (no torch)"


SPEC = NcnnSpec()
