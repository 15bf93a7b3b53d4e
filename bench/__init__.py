"""bench: one honest benchmark for ONNX inference runtimes."""

__version__ = "0.1.0"
# The name on PyPI: "bench" there is an unrelated package from 2015. The import name and the command stay bench.
DISTRIBUTION = "onnx-inference-bench"


def extra_hint(extra: str) -> str:
    """How to install bench with one runtime's extra."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"
