"""bench: one honest benchmark for ONNX inference runtimes."""

__version__ = "0.1.0"
