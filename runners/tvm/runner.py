"""Apache TVM on CPU: the model compiled by ``tvm.compile`` (LLVM, this CPU) and run by the Relax VM.

``prepare`` compiles, or loads the cached library: the artifact key holds the model's sha256, TVM's version, the
target string, the input shapes and the tuning records' hash (``untuned`` without a database), so a new database, a
new TVM or another CPU compiles afresh. Caching needs a C compiler, which TVM calls to link the library
(``export_library``); without one every case compiles in memory and the row says why it was not cached.

Threads: TVM's own pool, sized by ``TVM_NUM_THREADS`` (read when the pool starts, so it is set before any TVM
runtime call) and read back with ``tvm.runtime.num_threads()``. Without it TVM takes half the logical cores.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import tvm
from tvm import relax
from tvm.support.cc import get_cc

from bench.case import Case
from bench.contract import OpTime
from bench.execution.convert import Conversion, cached_artifact
from bench.execution.graph import graph_io
from bench.plugin import Runner
from bench.runners.tvm import UNTUNED
from bench.runners.tvm.compile import compile_module, host_target, import_onnx
from bench.runners.tvm.database import Tuning, find, input_shapes, tuning_folder

LIBRARY, IO = "model.so", "io.json"
ARTIFACT_LAYOUT = 1  # bump when what the artifact folder holds changes
POOL_VARIABLES = ("TVM_BIND_THREADS", "TVM_THREAD_POOL_SPIN_COUNT")  # recorded as found: bench leaves TVM's defaults
DEFAULT_PIPELINE = "tvm.compile's default pipeline (TVM's default CPU schedules)"
TUNED_PIPELINE = "MetaSchedule's compile_relax: the database's schedules where it has them, the default ones elsewhere"
NO_COMPILER = ("not cached: TVM links its compiled library with a C compiler (export_library) and none was found "
               "(g++, gcc, clang or $CC): compiled in memory for every case")


NUMBERED = re.compile(r"\d+$")  # TVM names a second function of one kind fused_conv2d_add1: the kind is the op type
NO_OP = 0  # relax.VMInstrumentReturnKind.NO_OP: the instrument lets every call run


class CallTimer:
    """A Relax VM instrument (``vm.set_instrument``): the time of each Call instruction of ``run``, a compiled
    kernel or a VM builtin (allocation, shape checks), taken around the call in Python."""

    def __init__(self) -> None:
        self.run = 0
        self.times: list[OpTime] = []
        self._started: list[int] = []
        self._seen: dict[tuple[int, str], int] = {}

    def __call__(self, _func: Any, symbol: str, before_run: bool, _ret: Any, *_args: Any) -> int:
        now = time.perf_counter_ns()
        if before_run:
            self._started.append(now)
            return NO_OP
        symbol = str(symbol)
        nth = self._seen[(self.run, symbol)] = self._seen.get((self.run, symbol), 0) + 1
        node = symbol if nth == 1 else f"{symbol}#{nth}"  # one kernel called twice in a run: two nodes
        kind = "vm builtin" if symbol.startswith("vm.builtin.") else "compiled kernel"
        self.times.append(OpTime(run=self.run, node=node, op_type=NUMBERED.sub("", symbol).rstrip("_"),
                                 ms=(now - self._started.pop()) / 1e6, kernel=kind, precision=""))
        return NO_OP


def _outputs_of(result: Any) -> list:
    """The VM's result as a list of tensors: one tensor for a one-output graph, else an array of them."""
    return [result] if isinstance(result, tvm.runtime.Tensor) else list(result)


class TvmRunner(Runner):
    timed_region = "the Relax VM's main(*inputs) on tensors bound once; outputs copied to numpy after timing"

    def __init__(self, case: Case) -> None:
        super().__init__(case)
        os.environ["TVM_NUM_THREADS"] = str(case.threads)  # before the pool starts (at the first TVM call)
        self.tuning: Tuning | None = None
        self._covered: dict[str, int] | None = None  # tuned: the model's tasks, and how many the database covered

    def load(self, artifact: Path) -> None:
        # Nothing to parse here: a cached library needs no ONNX at all, a cache miss imports the model in prepare.
        self._onnx = artifact

    def prepare(self) -> None:
        target = host_target()
        self._target = str(target)
        self.tuning = find(self.case, self._target, tvm.__version__)
        options = {"target": self._target, "inputs": input_shapes(self.case), "layout": ARTIFACT_LAYOUT,
                   "passes": "DecomposeOpsForInference, then " + (TUNED_PIPELINE if self.tuning else DEFAULT_PIPELINE),
                   "tuning": self.tuning.summary() if self.tuning else UNTUNED}
        conversion = Conversion("tvm.compile", tvm.__version__, options)
        if get_cc() is None:
            library, self._io = self._compile(target), self._io_table()
            self.conversion = Conversion("tvm.compile", tvm.__version__, {**options, "cache": NO_COMPILER})
        else:
            folder, self.conversion = cached_artifact(self.case, conversion, lambda out: self._produce(target, out))
            library, self._io = tvm.runtime.load_module(str(folder / LIBRARY)), json.loads((folder / IO).read_text())
        self._library = library  # the profile pass makes a VM of its own over it
        self.vm = relax.VirtualMachine(library, tvm.cpu())
        self._main = self.vm["main"]

    def _compile(self, target: tvm.target.Target):
        database = tuning_folder(self.case, self._target, tvm.__version__) if self.tuning else None
        executable, self._covered = compile_module(import_onnx(self._onnx, self.case), target, database)
        return executable

    def _io_table(self) -> dict[str, Any]:
        io = graph_io(self._onnx)
        return {"inputs": list(io.inputs), "outputs": list(io.outputs), "covered": self._covered}

    def _produce(self, target: tvm.target.Target, out: Path) -> None:
        executable = self._compile(target)
        with tempfile.TemporaryDirectory(prefix="tvm-export-") as work:  # the linker's object files stay out
            executable.export_library(str(out / LIBRARY), workspace_dir=work)
        (out / IO).write_text(json.dumps(self._io_table()))  # with what the compilation applied, for cached runs

    def bind(self, inputs: dict[str, np.ndarray]) -> None:
        device = tvm.cpu()
        self._bound = [tvm.runtime.tensor(np.ascontiguousarray(inputs[name]), device) for name in self._io["inputs"]]
        self._result: Any = None

    def infer(self) -> None:
        self._result = self._main(*self._bound)

    def outputs(self) -> dict[str, np.ndarray]:
        tensors = _outputs_of(self._result)
        if len(tensors) != len(self._io["outputs"]):
            raise RuntimeError(f"TVM returned {len(tensors)} outputs for the graph's {len(self._io['outputs'])}")
        return {name: np.array(t.numpy(), copy=True) for name, t in zip(self._io["outputs"], tensors, strict=True)}

    def profile(self, inputs: dict[str, np.ndarray], runs: int) -> list[OpTime]:
        """TVM 0.27's one per-call hook, ``VirtualMachine.set_instrument``, on a second VM over the same library
        (the timed VM never had it): each Call instruction timed around the call."""
        vm = relax.VirtualMachine(self._library, tvm.cpu())
        timer = CallTimer()
        vm.set_instrument(timer)
        bound = [tvm.runtime.tensor(np.ascontiguousarray(inputs[name]), tvm.cpu()) for name in self._io["inputs"]]
        main = vm["main"]
        for run in range(runs):
            timer.run = run
            main(*bound)
        return timer.times

    def facts(self) -> dict[str, Any]:
        return {
            "runtime_version": tvm.__version__,
            "precision_used": "fp32",
            "precision_source": "the model's own dtypes: bench offers TVM fp32 only and rewrites nothing",
            "threads_used": tvm.runtime.num_threads(),
            "report_label": self._label(),
            "tuning": ({**self.tuning.summary(), "tuned_in_s": self.tuning.seconds, "applied": self._io["covered"]}
                       if self.tuning else "none: TVM's default schedules (bench tune --runner tvm makes a database)"),
            "target": self._target,
            "thread_pool": {name: os.environ.get(name, "TVM's default") for name in POOL_VARIABLES},
            "phases": "load: nothing; prepare: ONNX import + tvm.compile + export (or the cached library loaded), "
                      "then the Relax VM",
        }

    def _label(self) -> str:
        """``untuned``, ``tuned: N trials``, or with ``, M/K tasks`` where the database covered only part of them."""
        if not self.tuning:
            return UNTUNED
        covered = self._io.get("covered") or {}
        found, tasks = covered.get("tasks_with_records"), covered.get("tasks")
        return self.tuning.label + (f", {found}/{tasks} tasks" if found is not None and found != tasks else "")

    def close(self) -> None:
        self._bound, self._result = [], None
