"""ONNX Runtime runner declaration. Imports nothing from onnxruntime."""

from bench.plugin import RunnerSpec


class OnnxRuntimeSpec(RunnerSpec):
    name = "onnxruntime"
    distribution = "onnxruntime"
    module = "onnxruntime"
    implementation = "bench.runners.onnxruntime.runner:OnnxRuntimeRunner"
    install_hint = "pip install 'bench[onnxruntime]'"
    devices = ("cpu",)
    precisions = ("fp32",)
    scenarios = ("latency",)
    model_format = "onnx"


SPEC = OnnxRuntimeSpec()
