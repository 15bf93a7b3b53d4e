"""The child side of bench's converters of torch modules (ExecuTorch's lowering, LiteRT's litert-torch): what
both do in their subprocess around their own step: which output is which, whose failure it was, and the account
(``error.json``) the parent reads (``bench.execution.convert.run_case_converter``)."""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.case import Case
from bench.execution.calibration import at_batch, calibration_inputs
from bench.execution.convert import ConversionFailed
from bench.execution.inputs import make_inputs
from bench.runners.pytorch.conversion import BRIDGE, SourceModule
from bench.runners.pytorch.runner import graph_io


def output_leaves(module: torch.nn.Module, args: tuple, path: Path) -> dict[str, int]:
    """Graph output name -> its index among the program's flat outputs (the pytree leaves of the module's
    result: onnx2torch returns one value per producing node, a tuple for a node with several outputs)."""
    _, layout = graph_io(path)
    with torch.no_grad():
        result = module(*args)
    leaves = torch.utils._pytree.tree_leaves(result)
    per_node = (result,) if len({n for _, n, _ in layout}) == 1 else tuple(result)
    where = {id(leaf): i for i, leaf in enumerate(leaves)}
    return {name: where[id(per_node[node] if index is None else per_node[node][index])]
            for name, node, index in layout}


@dataclass
class Traceable:
    """A source module made ready for torch.export at the case's inputs: its example arguments, which of the
    program's flat outputs is which graph output, and the constant shapes made static (the bridge's modules)."""

    module: torch.nn.Module
    report: dict[str, Any]
    names: list[str]  # the inputs, in the order the module takes them
    args: tuple
    leaves: dict[str, int]
    made_static: list[str]


def traceable(source: SourceModule, case: Case, src: Path) -> Traceable:
    module, names = source.module.eval(), source.input_names
    inputs = make_inputs(case.model.inputs, case.batch, case.seed)
    args = tuple(torch.from_numpy(inputs[name]) for name in names)
    if source.origin == BRIDGE:
        # only now: it imports onnx2torch, which needs convert_model's torchvision placeholder in place first
        from bench.runners.executorch.static import bake_constant_shapes

        leaves, baked = output_leaves(module, args, src), bake_constant_shapes(module)
    else:  # the factory's result, flattened as the program's outputs are
        leaves, baked = {name: i for i, name in enumerate(source.output_names)}, []
    return Traceable(module, source.report, names, args, leaves, baked)


def calibrate(prepared: Callable[..., Any], case: Case, names: list[str]) -> None:
    """A PT2E-prepared module through the shared calibration set (every int8 quantizer's, its hash on the row)."""
    for sample in calibration_inputs(case):
        batch = at_batch(sample, case)
        prepared(*[torch.from_numpy(batch[name]) for name in names])


def bridge_module(tb: Any) -> str | None:
    """The innermost onnx2torch module being traced when export failed (say OnnxSlice, whose forward calls
    .numpy() on its inputs), from the frames' ``self``."""
    found = None
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if isinstance(owner, torch.nn.Module) and type(owner).__module__.startswith("onnx2torch."):
            found = type(owner).__name__
        tb = tb.tb_next
    return found


def first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:400] if lines else "(no message)"


Step = Callable[[Case, Path, Path], dict[str, Any]]


def converter_main(argv: list[str], step: Step, facts_file: str, failed: Callable[[str | None], str]) -> int:
    """``python -m MODULE CASE_JSON SRC_ONNX OUT_DIR``: ``step`` writes its file into OUT_DIR and returns its facts
    (written to ``facts_file``); any failure becomes ``error.json``, ``failed(bridge module or None)`` saying
    whose it was when it is not already a ``ConversionFailed``, and exit 1."""
    case, src, out = Case.from_json(Path(argv[0]).read_text()), Path(argv[1]), Path(argv[2])
    torch.set_num_threads(max(1, case.threads))
    try:
        facts = step(case, src, out)
    except Exception as exc:  # torch.export, quantization and lowering raise many kinds: the row says which
        where = None if isinstance(exc, ConversionFailed) else bridge_module(exc.__traceback__)
        said = exc if isinstance(exc, ConversionFailed) else ConversionFailed(
            f"{failed(where)}: {type(exc).__name__}: {first_line(exc)}", ops=[where] if where else [])
        (out / "error.json").write_text(json.dumps({"message": str(said), "ops": said.ops}))
        traceback.print_exc(limit=8, file=sys.stderr)
        return 1
    (out / facts_file).write_text(json.dumps(facts, indent=1, sort_keys=True))
    return 0
