"""The child side of bench's converters of torch modules (ExecuTorch's lowering, LiteRT's litert-torch): what
both do in their subprocess around their own step: which output is which, whose failure it was, and the account
(``error.json``) the parent reads (``bench.execution.convert.run_case_converter``)."""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bench.case import Case
from bench.execution.convert import ConversionFailed
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
