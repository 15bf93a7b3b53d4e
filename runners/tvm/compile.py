"""ONNX -> Relax -> a compiled TVM library, shared by the runner (in the worker) and the tuner (in ``bench tune``'s
subprocess), so that what is tuned is exactly what is compiled. Imports tvm.

Calls checked with TVM 0.27 (FIELD.md): the target must be a dict (``"llvm -mcpu=native"`` is refused), and
MetaSchedule wants ``num-cores`` in it. Tuning extracts its tasks from the module after the same fusion passes that
``compile_relax`` runs before it applies the database, so the database's workloads match the compiled ones.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import onnx
import tvm
from tvm import relax
from tvm.relax import pipeline
from tvm.relax.frontend.onnx import from_onnx
from tvm.relax.frontend.onnx.onnx_frontend import OnnxOpConverter
from tvm.s_tir import meta_schedule as ms

from bench.case import Case
from bench.execution.convert import ConversionFailed, excerpt
from bench.runners.tvm.database import RECORDS, WORKLOAD, input_shapes

UNSUPPORTED_OPS = re.compile(r"operators are not supported for frontend ONNX: (.+)")
FAILED_OP = re.compile(r"Error converting operator (\w+)")


def cores() -> int:
    """The cores this process may use: what the suites' threads = "all" means."""
    return len(os.sched_getaffinity(0))


def host_target() -> tvm.target.Target:
    """LLVM for this CPU's micro-architecture, as TVM detects it: what a run compiles for, and the database key's
    target. Without num-cores, so that a worker pinned to some cores still finds the database tuned for this CPU."""
    return tvm.target.Target({"kind": "llvm", "mcpu": tvm.target.codegen.llvm_get_system_cpu()})


def tuning_target(target: tvm.target.Target) -> tvm.target.Target:
    """``target`` with the num-cores MetaSchedule needs (this process's cores unless it names them)."""
    if "num-cores" in target.attrs:
        return target
    return tvm.target.Target({**target.export(), "num-cores": cores()})


def import_onnx(path: Path, case: Case) -> tvm.IRModule:
    """The model as a Relax module at the case's static input shapes; a refusal names the ops TVM lacks."""
    shapes = input_shapes(case)
    printed = io.StringIO()  # the frontend prints "Error converting operator X" before it re-raises
    try:
        with contextlib.redirect_stdout(printed):
            mod = from_onnx(onnx.load(str(path)), shape_dict={n: s["shape"] for n, s in shapes.items()},
                            dtype_dict={n: s["dtype"] for n, s in shapes.items()}, keep_params_in_input=False)
    except tvm.error.OpNotImplemented as exc:
        found = UNSUPPORTED_OPS.search(str(exc))
        ops = sorted(op.strip() for op in found.group(1).split(",")) if found else []
        raise ConversionFailed(f"TVM's ONNX frontend has no converter for {', '.join(ops) or exc}", ops) from None
    except Exception as exc:  # a converter of one op that cannot handle this use of it
        op = _failing_op(exc, printed.getvalue())
        where = f" converting {op}" if op else ""
        raise ConversionFailed(f"TVM's ONNX frontend failed{where}: {type(exc).__name__}: {excerpt(str(exc), 6)}",
                               [op] if op else []) from None
    return relax.transform.DecomposeOpsForInference()(mod)


def _failing_op(exc: Exception, printed: str) -> str | None:
    """The ONNX op whose converter raised: the innermost converter class on the traceback (TVM names each after its
    op; subgraphs of If convert without the frontend's own message), else the op the frontend printed."""
    found = None
    tb = exc.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("cls")
        if isinstance(owner, type) and issubclass(owner, OnnxOpConverter):
            found = owner.__name__
        tb = tb.tb_next
    printed_op = FAILED_OP.search(printed)
    return found or (printed_op.group(1) if printed_op else None)


def fused_for_tuning(mod: tvm.IRModule, target: tvm.target.Target) -> tvm.IRModule:
    """The passes ``ms.relax_integration.compile_relax`` runs before applying a database (its own comment says
    so), for the task extraction."""
    passes = [*pipeline.library_dispatch_passes(target), relax.transform.LegalizeOps(),
              relax.transform.AnnotateTIROpPattern(), relax.transform.FoldConstant(), relax.transform.FuseOps(),
              relax.transform.FuseTIR()]
    return tvm.transform.Sequential(passes)(mod)


def covered(records, mod: tvm.IRModule, target: tvm.target.Target) -> dict[str, int]:
    """How many of the model's tuning tasks the database has a schedule for: what the compilation applies (a
    database whose workloads do not match would leave the model untuned while the row said tuned)."""
    tasks = ms.relax_integration.extract_tasks(fused_for_tuning(mod, target), target)
    found = sum(records.query_tuning_record(t.dispatched[0], target, t.task_name) is not None for t in tasks)
    return {"tasks": len(tasks), "tasks_with_records": found}


def compile_module(mod: tvm.IRModule, target: tvm.target.Target, database: Path | None):
    """``tvm.compile`` with TVM's default CPU schedules, or with a MetaSchedule database's tuned ones; returns the
    executable and, when tuned, how many of the model's tasks the database covered."""
    try:
        if database is None:
            return tvm.compile(mod, target=target), None
        records = ms.database.JSONDatabase(str(database / WORKLOAD), str(database / RECORDS), allow_missing=False)
        return ms.relax_integration.compile_relax(records, mod, target, params=None), covered(records, mod, target)
    except Exception as exc:
        raise ConversionFailed(f"tvm.compile failed: {type(exc).__name__}: {excerpt(str(exc), 6)}") from None
