"""Where the time goes: the per-op profile pass's tables (``--profile``; rows of the store's ``ops`` table).

Each runtime names its ops in its own words (ONNX Runtime ``Conv``, OpenVINO ``Convolution``, MNN
``ConvolutionDepthwise``, TVM ``fused_conv2d_add_relu``, PyTorch ``Conv2d``), and fuses differently, so ops are
compared across runtimes by family (:func:`family`: the first family whose word the op type holds, a fused op counted
with its heaviest part). Pure functions from rows to :class:`~bench.report.views.Table`, like ``views``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from bench.report.views import Row, Table, case_label

TOP_OPS = 5  # per case, in the report and summary.md
TOP_MOVED = 10  # ops named by bench compare
# Family -> words an op type holds (lower case), checked in this order: "fused_conv2d_add" is a Conv, "MatMulAdd" a
# MatMul. Whatever matches none keeps its own name.
FAMILIES = (
    ("Conv", ("conv", "deconv")),
    ("MatMul", ("matmul", "gemm", "fullyconnected", "innerproduct", "linear", "dense", "addmm", "bmm")),
    ("Pool", ("pool", "reducemean", "mean")),
    ("Softmax", ("softmax",)),
    ("Norm", ("norm",)),
    ("Activation", ("relu", "clip", "sigmoid", "swish", "gelu", "silu", "tanh", "hardswish", "prelu", "elu")),
    ("Elementwise", ("add", "mul", "sub", "div", "eltwise", "binary")),
    ("Layout", ("reorder", "reshape", "transpose", "concat", "raster", "permute", "split", "slice", "flatten",
                "squeeze", "gather", "cvt", "cast", "copy")),
    ("Memory", ("alloc", "null_value", "check_tensor", "match_shape")),
)


def family(op_type: str) -> str:
    """The family ``op_type`` belongs to across runtimes ("Convolution", "Conv2d", "fused_conv2d_add" -> Conv)."""
    lowered = op_type.lower().replace("_", "").replace("convert", "cvt")  # a type conversion is no convolution
    for name, words in FAMILIES:
        if any(word.replace("_", "") in lowered for word in words):
            return name
    return op_type


def _pct(share: Any) -> str:
    return f"{share:.0%}" if isinstance(share, float) else "?"


def top_ops(cases: list[Row], ops: list[Row], top: int = TOP_OPS) -> Table:
    """Per profiled case, its ``top`` nodes by share, with how much of the case's median the ops account for."""
    cols = ("model", "case", "rank", "node", "op_type", "kernel", "op_precision", "median_ms", "share",
            "profile_coverage", "profile_agrees", "case_key")
    by_case = _by_case(ops)
    rows = []
    for c in cases:
        for op in by_case.get((c.get("run_id"), c.get("case_key")), [])[:top]:
            rows.append((c.get("model"), case_label(c), op["rank"], op["node"], op["op_type"], op["kernel"],
                         op["op_precision"], op["median_ms"], op["share"], c.get("profile_coverage"),
                         c.get("profile_agrees"), c.get("case_key")))
    return Table("ops_top", cols, rows, note=_note(cases))


def _by_case(ops: list[Row]) -> dict[tuple[Any, Any], list[Row]]:
    groups: dict[tuple[Any, Any], list[Row]] = defaultdict(list)
    for op in ops:
        groups[(op.get("run_id"), op.get("case_key"))].append(op)
    return {key: sorted(rows, key=lambda o: o.get("rank") or 0) for key, rows in groups.items()}


def _note(cases: list[Row]) -> str:
    """Why profiled cases have no ops, or disagree with their median: said once per reason."""
    notes = sorted({f"{c.get('runner')}: {c['profile_note']}" for c in cases if c.get("profile_note")})
    return "; ".join(notes)


def op_families(cases: list[Row], ops: list[Row]) -> Table:
    """Per model and op family, its share of each profiled case's time, runtimes side by side ("Conv 61% on ncnn,
    48% on onnxruntime"), families by their largest share first."""
    cols = ("model", "family", "shares", "runners")
    labels = {(c.get("run_id"), c.get("case_key")): c for c in cases}
    shares: dict[tuple[Any, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for op in ops:
        case = labels.get((op.get("run_id"), op.get("case_key")))
        if case is None or not isinstance(op.get("share"), float):
            continue
        who = f"{case.get('runner')} {case.get('precision')} t{case.get('threads')}"
        shares[(case.get("model"), family(op.get("op_type") or "?"))][who] += op["share"]
    rows = []
    for (model, fam), by_case in shares.items():
        ordered = sorted(by_case.items(), key=lambda kv: -kv[1])
        text = f"{fam} " + ", ".join(f"{_pct(s)} on {who}" for who, s in ordered)
        rows.append((model, fam, text, len(ordered), max(by_case.values())))
    rows.sort(key=lambda r: (str(r[0]), -r[4]))  # per model, the family with the largest share first
    return Table("op_types", cols, [r[:4] for r in rows], note=_note(cases))


def moved_ops(base: list[Row], new: list[Row], top: int = TOP_MOVED) -> Table:
    """The ops whose median moved most between two runs' profiles of the same case key (by absolute ms), largest
    first; a node in one run only is listed as appeared or gone."""
    cols = ("case_key", "node", "op_type", "base_ms", "new_ms", "change_ms", "change")
    before = {(o["case_key"], o["node"]): o for o in base}
    after = {(o["case_key"], o["node"]): o for o in new}
    keys_in_both_runs = {o["case_key"] for o in base} & {o["case_key"] for o in new}
    rows = []
    for key in sorted(set(before) | set(after)):
        if key[0] not in keys_in_both_runs:
            continue
        b, a = before.get(key), after.get(key)
        b_ms, a_ms = (b or {}).get("median_ms"), (a or {}).get("median_ms")
        change = "gone" if a is None else "appeared" if b is None else f"{(a_ms - b_ms) / b_ms:+.0%}" if b_ms else "?"
        delta = (a_ms or 0.0) - (b_ms or 0.0)
        rows.append((key[0], key[1], (a or b or {}).get("op_type"), b_ms, a_ms, delta, change))
    rows.sort(key=lambda r: -abs(r[5]))
    return Table("ops_moved", cols, rows[:top])
