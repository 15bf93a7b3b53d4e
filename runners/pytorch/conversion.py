"""ONNX -> ``torch.fx.GraphModule`` with onnx2torch, and the deadline-bound check that runs it in a subprocess.

Nothing is serialized: a converted module can only be saved whole with ``torch.save`` (pickle, which our threat
model forbids loading), and ``torch.export``/TorchScript would run another program than the eager module a PyTorch
user runs. onnx2torch takes about a second on ResNet-50, so the worker converts again in ``load``. The cached
artifact is the subprocess's report (``conversion.json``): proof, keyed by model sha256 and versions, that this
model converts, and the record of what it became.

Before converting, tensor-valued Constant nodes become initializers of the same name (the graph's meaning
unchanged): onnx2torch reads a Conv's weight only from the initializers, and Paddle's exports (PP-OCR) keep every
weight in a Constant node, so without this they fail at their first Conv.

``python -m bench.runners.pytorch.conversion MODEL.onnx OUT_DIR`` writes ``OUT_DIR/conversion.json``, or
``OUT_DIR/error.json`` (message and failed ops) and exits 1.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import sys
import types
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from bench.case import ModelRef
from bench.execution.convert import ConversionFailed
from bench.execution.variants import constants_to_initializers

# What is done to the ONNX graph before onnx2torch sees it: part of every PyTorch runner's conversion options.
PREPARE = "tensor-valued Constant nodes -> initializers"
# onnx2torch imports torchvision at import time for two ops only (nms.py, roialign.py).
TORCHVISION_OPS = ("NonMaxSuppression", "RoiAlign")


def _torchvision_placeholder() -> None:
    """Let ``import onnx2torch`` succeed without torchvision; models with its two ops are refused before
    converting (``convert_model``), so the placeholder's functions are never reached by a converted model."""

    def missing(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("torchvision is not installed")

    package, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
    ops.nms = ops.box_convert = ops.roi_align = missing  # type: ignore[attr-defined]
    package.ops = ops  # type: ignore[attr-defined]
    package.__bench_placeholder__ = True  # type: ignore[attr-defined]
    sys.modules["torchvision"], sys.modules["torchvision.ops"] = package, ops


def torchvision_state() -> str:
    """The torchvision version, or why a placeholder stands in (call before importing onnx2torch)."""
    why = ""
    if "torchvision" not in sys.modules:
        if importlib.util.find_spec("torchvision") is None:
            why = "absent"
        else:
            try:
                import torchvision  # noqa: F401
            except Exception as exc:  # a build for another torch fails at import (e.g. "torchvision::nms does not
                # exist" when a CUDA torchvision meets a CPU torch): onnx2torch would fail the same way
                why = f"broken ({type(exc).__name__}: {str(exc)[:120]})"
                for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
                    del sys.modules[name]
        if why:
            _torchvision_placeholder()
    module = sys.modules["torchvision"]
    if getattr(module, "__bench_placeholder__", False):
        return f"{why or 'absent'}: placeholder module, models with {' or '.join(TORCHVISION_OPS)} are refused"
    return importlib.metadata.version("torchvision")


def _hint(exc: Exception, graph: Any) -> str:
    """onnx2torch's KeyError names a tensor it expected among the initializers: say what makes it instead."""
    if not isinstance(exc, KeyError) or not exc.args:
        return ""
    producers = [node.op_type for node in graph.node if exc.args[0] in node.output]
    if not producers:
        return ""
    return (f" ({exc.args[0]!r} is the output of a {producers[0]} node; onnx2torch reads this input only from "
            "the graph's initializers)")


def _failed_node(tb: types.TracebackType | None) -> Any:
    """onnx2torch's converter loop keeps the node it is converting in ``onnx_node``: the innermost one wins."""
    node = None
    while tb is not None:
        candidate = tb.tb_frame.f_locals.get("onnx_node")
        if candidate is not None and hasattr(candidate, "operation_type"):
            node = candidate
        tb = tb.tb_next
    return node


def convert_model(path: Path) -> tuple[Any, dict[str, Any]]:
    """The eager module and a report of what was converted; ConversionFailed names the op that failed."""
    torchvision = torchvision_state()
    import onnx2torch

    model = onnx.load(str(path))
    moved = constants_to_initializers(model.graph)  # Paddle's exports keep weights in Constant nodes (see above)
    graph = model.graph
    ops = dict(sorted(Counter(node.op_type for node in graph.node).items()))
    if "placeholder" in torchvision:
        needs = [op for op in TORCHVISION_OPS if op in ops]
        if needs:
            raise ConversionFailed(f"onnx2torch converts {', '.join(needs)} with torchvision, which is not "
                                   "installed", ops=needs)
    try:
        module = onnx2torch.convert(model)
    except Exception as exc:  # onnx2torch raises NotImplementedError, KeyError, ValueError... per op converter
        node = _failed_node(exc.__traceback__)
        where = f" at node {node.name!r} (op {node.operation_type})" if node is not None else ""
        message = (f"onnx2torch {importlib.metadata.version('onnx2torch')} (the ONNX -> PyTorch bridge, not the "
                   f"runtime) failed{where}: {type(exc).__name__}: {exc}{_hint(exc, graph)}")
        raise ConversionFailed(message, ops=[node.operation_type] if node is not None else []) from None
    modules = Counter(type(m).__name__ for _, m in module.named_children())
    report = {"onnx_ops": ops, "torch_modules": dict(sorted(modules.items())), "torchvision": torchvision,
              "constants_moved_to_initializers": moved}
    return module, report


BRIDGE = "onnx2torch"  # the ONNX -> PyTorch bridge, named in every failure of its own


@dataclass
class SourceModule:
    """The torch module a PyTorch-side runner runs (eager, torch.compile, ExecuTorch, LiteRT's converter), and how
    to read the ONNX graph's outputs off its result: from the user's factory (``bench run --torch``), or from the
    ONNX file through the onnx2torch bridge."""

    module: Any
    report: dict[str, Any]
    input_names: list[str]  # in the order the module takes them
    pick: Callable[[Any], list[Any]]  # the module's result -> one tensor per name in output_names
    output_names: list[str]
    origin: str  # "factory" | "onnx2torch"

    def outputs(self, result: Any) -> dict[str, Any]:
        return dict(zip(self.output_names, self.pick(result), strict=True))


def source_module(model: ModelRef, onnx_path: Path) -> SourceModule:
    """The factory's own module when the model came from PyTorch (its state dict checked against the one the
    export was made from), else onnx2torch's conversion of ``onnx_path``. The one place a runner of torch modules
    gets its module from."""
    if model.torch_factory:
        return _factory_module(model)
    from bench.runners.pytorch.runner import graph_io

    module, report = convert_model(onnx_path)
    inputs, layout = graph_io(onnx_path)

    def pick(result: Any) -> list[Any]:
        per_node = (result,) if len({n for _, n, _ in layout}) == 1 else tuple(result)
        return [per_node[node] if index is None else per_node[node][index] for _, node, index in layout]

    return SourceModule(module, report, inputs, pick, [name for name, _, _ in layout], BRIDGE)


def _factory_module(model: ModelRef) -> SourceModule:
    import torch

    from bench.models.torchsource import FactoryError, FactoryRef, load_factory, state_sha256

    ref, export = FactoryRef.from_json(model.torch_factory), json.loads(model.torch_export or "{}")
    try:
        module, _, _ = load_factory(ref)
    except FactoryError as exc:
        raise ConversionFailed(f"the factory {ref.text} failed in this process: {exc}") from None
    state = state_sha256(module)
    if export.get("state_sha256") and state != export["state_sha256"]:
        raise ConversionFailed(f"the factory {ref.text} made other weights here than when the run was planned "
                               f"(state dict sha256 {state[:12]} != {export['state_sha256'][:12]}): seed its random "
                               "initialisation with torch's global seed, or load the weights from a file")
    report = {"source": "factory", "factory": ref.text, "module": type(module).__name__, "state_sha256": state}
    return SourceModule(module, report, [s.name for s in model.inputs], torch.utils._pytree.tree_leaves,
                        list(export.get("outputs") or ["output"]), "factory")


def main(argv: list[str]) -> int:
    path, out = Path(argv[0]), Path(argv[1])
    try:
        _, report = convert_model(path)
    except ConversionFailed as exc:
        (out / "error.json").write_text(json.dumps({"message": str(exc), "ops": exc.ops}))
        print(exc, file=sys.stderr)
        return 1
    (out / "conversion.json").write_text(json.dumps(report, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
