"""Reading what TensorRT built, without TensorRT: the engine inspector's JSON and the parser's errors.

With ``ProfilingVerbosity.DETAILED`` the inspector describes every layer of the engine, e.g.::

    {"Layers": [{"Name": "conv1 + relu1", "LayerType": "CaskConvolution",
                 "Outputs": [{"Name": "x", "Dimensions": [1, 64, 112, 112],
                              "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}], ...}],
     "Bindings": ["input", "output"]}

(at lower verbosity the layers are bare names, and no precision can be read).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

# Datatype words in "Format/Datatype" strings, longest first so that "FP16" never matches inside another word.
DATATYPE = re.compile(r"\b(FP32|FP16|BF16|FP8|FP4|Int64|Int32|Int8|Int4|UInt8|Bool|Float|Half)\b", re.IGNORECASE)
NAMES = {"fp32": "fp32", "float": "fp32", "fp16": "fp16", "half": "fp16", "bf16": "bf16", "fp8": "fp8", "fp4": "fp4",
         "int64": "int64", "int32": "int32", "int8": "int8", "int4": "int4", "uint8": "uint8", "bool": "bool"}
# Layers that only change a tensor's layout or type: counted apart, they are not where the arithmetic happens.
FORMAT_ONLY = {"Reformat", "NoOp"}
REDUCED = ("fp16", "bf16", "fp8", "fp4", "int8", "int4")


def _datatype(io: dict[str, Any]) -> str:
    match = DATATYPE.search(str(io.get("Format/Datatype", "")))
    return NAMES[match.group(1).lower()] if match else "unknown"


def layer_precisions(info: dict[str, Any]) -> dict[str, int]:
    """How many compute layers write each datatype (a layer's first output's type stands for its precision).
    Empty when the engine was built without DETAILED profiling verbosity."""
    counts: Counter[str] = Counter()
    for layer in info.get("Layers", []):
        if not isinstance(layer, dict) or layer.get("LayerType") in FORMAT_ONLY or not layer.get("Outputs"):
            continue
        counts[_datatype(layer["Outputs"][0])] += 1
    return dict(sorted(counts.items()))


def precision_problem(asked: str, counts: dict[str, int]) -> str | None:
    """Why an engine with these layer precisions is not an honest ``asked`` engine, or None if it is."""
    if not counts:
        return "the engine inspector lists no layer details (built without ProfilingVerbosity.DETAILED?)"
    reduced = {k: v for k, v in counts.items() if k in REDUCED}
    if asked == "fp32" and reduced:
        return f"an fp32 engine has reduced-precision layers: {reduced}"
    if asked != "fp32" and not counts.get(asked):
        return (f"TensorRT chose no {asked} kernel for any layer ({counts}): a {asked} row would time an engine that "
                f"computes in other precisions")
    return None


def parser_failure(errors: list[dict[str, str]]) -> tuple[str, list[str]]:
    """One message and the failed ONNX ops from the parser's errors ({"node", "op", "code", "desc"} each)."""
    parts = [f"node {e['node']!r} (op {e['op']}): {e['code']}: {e['desc']}" if e.get("op") else
             f"{e['code']}: {e['desc']}" for e in errors]
    ops = list(dict.fromkeys(e["op"] for e in errors if e.get("op")))
    return "TensorRT ONNX parser: " + " | ".join(parts), ops
