"""MNN runner declaration. Imports nothing from MNN."""

from bench.plugin import RunnerSpec


class MnnSpec(RunnerSpec):
    name = "mnn"
    distribution = "MNN"
    module = "MNN"
    implementation = "bench.runners.mnn.runner:MnnRunner"
    install_hint = "pip install 'bench[mnn]'"
    devices = ("cpu",)
    precisions = ("fp32", "fp16")
    scenarios = ("latency",)
    model_format = "mnn"
    conversion = "ONNX -> MNN with the converter module inside the MNN wheel (never the mnnconvert script)"


SPEC = MnnSpec()
