"""Build a TensorRT engine from ONNX, as ``trtexec --onnx=M --shapes=... [--fp16|--bf16] --noTF32`` would.

Run by the runner as a converter subprocess (deadline, own CUDA context, crash stays out of the worker)::

    python -m bench.runners.tensorrt.build MODEL.onnx OUT_DIR OPTIONS_JSON

Writes ``OUT_DIR/engine.plan`` and ``OUT_DIR/build.json`` (what the builder was given, read back from its config),
or ``OUT_DIR/error.json`` ({"kind": "conversion_failed" | "unsupported", "message", "ops"}) and exits 1.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import tensorrt as trt

from bench.runners.tensorrt.layers import parser_failure

ENGINE, BUILD_INFO, ERROR = "engine.plan", "build.json", "error.json"
FLAGS = {"fp16": "FP16", "bf16": "BF16"}  # weakly typed precisions (TensorRT 10); absent in TensorRT >= 11


class Refused(Exception):
    def __init__(self, kind: str, message: str, ops: list[str] | None = None) -> None:
        super().__init__(message)
        self.kind, self.ops = kind, ops or []


class Collector(trt.ILogger):
    """TensorRT's messages at WARNING and above, echoed to stderr and kept for the error report."""

    def __init__(self) -> None:
        trt.ILogger.__init__(self)
        self.messages: list[str] = []

    def log(self, severity: trt.ILogger.Severity, msg: str) -> None:
        if int(severity) <= int(trt.ILogger.Severity.WARNING):  # lower is more severe
            self.messages.append(f"{severity.name}: {msg}")
            print(msg, file=sys.stderr)


def parse(builder: trt.Builder, logger: Collector, onnx_path: Path) -> tuple[Any, Any]:
    network = builder.create_network(0)  # explicit batch is the only mode since TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # from the path: external weights next to it are found
        errors = [parser.get_error(i) for i in range(parser.num_errors)]
        message, ops = parser_failure([
            {"node": e.node_name(), "op": e.node_operator(), "code": str(e.code()).split(".")[-1], "desc": e.desc()}
            for e in errors
        ])
        raise Refused("conversion_failed", message, ops)
    return network, parser


def profile(builder: trt.Builder, network: Any, shapes: dict[str, list[int]]) -> Any | None:
    """One optimization profile with min = opt = max = the case's shapes, for the inputs with dynamic dims."""
    dynamic = False
    chosen = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        declared, shape = list(tensor.shape), shapes.get(tensor.name)
        if shape is None:
            raise Refused("conversion_failed", f"model input {tensor.name!r} has no benchmark shape")
        if len(declared) != len(shape) or any(d not in (-1, s) for d, s in zip(declared, shape, strict=True)):
            raise Refused("unsupported", f"input {tensor.name!r} is declared {declared} in the model; the case needs "
                          f"{shape}")
        if -1 in declared:
            dynamic = True
            chosen.set_shape(tensor.name, shape, shape, shape)
    return chosen if dynamic else None


def configure(builder: trt.Builder, options: dict[str, Any]) -> Any:
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options["workspace_bytes"])
    config.builder_optimization_level = options["builder_optimization_level"]
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # layer precisions readable; no runtime cost
    config.clear_flag(trt.BuilderFlag.TF32)  # on by default: fp32 convolutions and matmuls would run in TF32
    flag = FLAGS.get(options["precision"])
    if flag and options["weakly_typed"]:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    return config


def read_back(config: Any, network: Any) -> dict[str, Any]:
    flags = {name: config.get_flag(getattr(trt.BuilderFlag, name))
             for name in ("TF32", *FLAGS.values()) if hasattr(trt.BuilderFlag, name)}
    tensors = [network.get_input(i) for i in range(network.num_inputs)]
    tensors += [network.get_output(i) for i in range(network.num_outputs)]
    return {
        "flags": flags,
        "workspace_bytes": config.get_memory_pool_limit(trt.MemoryPoolType.WORKSPACE),
        "builder_optimization_level": config.builder_optimization_level,
        "profiling_verbosity": str(config.profiling_verbosity),
        "network_io": {t.name: {"shape": list(t.shape), "dtype": str(t.dtype)} for t in tensors},
    }


def build(onnx_path: Path, out: Path, options: dict[str, Any]) -> dict[str, Any]:
    logger = Collector()
    builder = trt.Builder(logger)
    network, _parser = parse(builder, logger, onnx_path)  # the parser must outlive the network's use
    config = configure(builder, options)
    chosen = profile(builder, network, options["shapes"])
    if chosen is not None:
        config.add_optimization_profile(chosen)
    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise Refused("conversion_failed", "build_serialized_network failed: " + " | ".join(logger.messages[-6:]))
    (out / ENGINE).write_bytes(bytes(serialized))
    return {**read_back(config, network), "build_s": time.perf_counter() - start, "tensorrt": trt.__version__,
            "profile": {k: [v, v, v] for k, v in options["shapes"].items()} if chosen is not None else None,
            "warnings": logger.messages[-20:]}


def main(argv: list[str]) -> int:
    onnx_path, out, options = Path(argv[0]), Path(argv[1]), json.loads(argv[2])
    try:
        info = build(onnx_path, out, options)
    except Refused as exc:
        (out / ERROR).write_text(json.dumps({"kind": exc.kind, "message": str(exc), "ops": exc.ops}))
        print(exc, file=sys.stderr)
        return 1
    (out / BUILD_INFO).write_text(json.dumps(info, indent=1, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
