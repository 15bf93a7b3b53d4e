"""PyTorch eager on cpu or cuda: the onnx2torch module called on tensors made before timing.

Precision is set, never inherited: fp32 turns every fp32-math switch PyTorch has to "ieee" (by default cuDNN
convolutions on Ampere and newer run in TF32, ``torch.backends.cudnn.conv.fp32_precision == "tf32"``, and oneDNN
may use bf16 for fp32 when told to), and reads them back. bf16/fp16 cast the module and the float inputs; the
dtypes of the parameters and of the outputs are read back, and a module that does not run through in that dtype
(onnx2torch keeps a ``Cast(to=FLOAT)`` as fp32, which then meets bf16 tensors) is an ``unsupported`` row.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.contract import OpTime
from bench.cpu import Cpu
from bench.execution.convert import (
    Conversion,
    ConversionFailed,
    cached_artifact,
    converter_deadline,
    run_converter_with_account,
)
from bench.execution.graph import GraphIO, load_graph
from bench.plugin import Runner, Unsupported
from bench.runners.pytorch import cpu_precision_support
from bench.runners.pytorch.conversion import BRIDGE, PREPARE, source_module

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DTYPE_NAMES = {str(dtype): name for name, dtype in DTYPES.items()}  # "torch.float32": "fp32"
# torch >= 2.9: one fp32 precision per backend and op family; "ieee" is plain fp32 (no TF32, no bf16 inside).
FP32_SWITCHES = ("cuda.matmul", "cudnn.conv", "cudnn.rnn", "mkldnn.matmul", "mkldnn.conv", "mkldnn.rnn")


def _switch(path: str) -> Any:
    obj: Any = torch.backends
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def set_fp32_math() -> dict[str, Any]:
    """Full fp32 arithmetic for every fp32 op on every backend; returns the switches as read back."""
    if hasattr(torch.backends.cudnn, "conv") and hasattr(torch.backends.cudnn.conv, "fp32_precision"):
        for path in FP32_SWITCHES:
            _switch(path).fp32_precision = "ieee"
        return {f"{path}.fp32_precision": _switch(path).fp32_precision for path in FP32_SWITCHES}
    # torch < 2.9 (mixing these with the API above is an error in newer torch, so only one of them is used)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    return {"cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision()}


def graph_io(path: Path) -> tuple[list[str], list[tuple[str, int, int | None]]]:
    """Input names in the order onnx2torch's module takes them, and for each graph output where it sits in the
    module's result: onnx2torch returns one value per distinct producing node (a tuple when several), and a
    node with several outputs gives all of them as a tuple."""
    graph = load_graph(path)
    inputs = list(GraphIO.of(graph).inputs)
    producer = {out: (i, k, len(node.output)) for i, node in enumerate(graph.node) for k, out in enumerate(node.output)}
    missing = [o.name for o in graph.output if o.name not in producer]
    if missing:
        raise ConversionFailed(f"graph outputs {missing} are not produced by a node; onnx2torch cannot return them")
    nodes = list(dict.fromkeys(producer[o.name][0] for o in graph.output))
    layout = []
    for o in graph.output:
        node, index, count = producer[o.name]
        layout.append((o.name, nodes.index(node), index if count > 1 else None))
    return inputs, layout


RUN_MARK = "bench run "  # the record_function around each profiled call


class PyTorchRunner(Runner):
    timed_region = (
        "module(*inputs): the onnx2torch GraphModule called eagerly on tensors made on the device before timing, "
        "inside torch.inference_mode() entered once in prepare; outputs stay torch tensors; on cuda also "
        "torch.cuda.synchronize()"
    )

    def convert(self, onnx_path: Path) -> Path:
        """Check in a subprocess, with a deadline, that onnx2torch converts the model; cache the report. A model
        from a PyTorch factory converts nothing: the worker calls the factory in ``load``."""
        if self.case.model.torch_factory:
            self.conversion = Conversion("none: the factory's own module", torch.__version__,
                                         {"source": json.loads(self.case.model.torch_factory)["text"]})
            return onnx_path
        versions = {"onnx2torch": importlib.metadata.version("onnx2torch"), "torch": torch.__version__}

        def produce(folder: Path) -> None:
            cmd = [sys.executable, "-m", "bench.runners.pytorch.conversion", str(onnx_path), str(folder)]
            # a check, not a build: half the deadline
            run_converter_with_account(cmd, converter_deadline(self.case, part=0.5), folder)

        options = {"mode": "eager GraphModule, converted again in the worker (not serialized)",
                   "prepare": PREPARE, **versions}
        conversion = Conversion("onnx2torch", versions["onnx2torch"], options)
        _, self.conversion = cached_artifact(self.case, conversion, produce)
        return onnx_path

    def load(self, artifact: Path) -> None:
        # Threads first: set_num_interop_threads fails once any inter-op work has started.
        torch.set_num_interop_threads(1)
        torch.set_num_threads(self.case.threads)
        self.source = source_module(self.case.model, artifact)
        self.module, self.report, self.input_names = self.source.module, self.source.report, self.source.input_names
        self.module.eval()

    def _device(self) -> torch.device:
        if self.case.device == "cpu":
            reason = cpu_precision_support(self.case.precision, Cpu.here()).reason or self._onednn_reason()
            if reason:
                raise Unsupported(reason)
            return torch.device("cpu")
        if not torch.cuda.is_available():
            raise Unsupported(f"torch {torch.__version__} sees no CUDA device (built for CUDA {torch.version.cuda})")
        # not torch.cuda.is_bf16_supported(): by default it also says yes where bf16 is only emulated
        if self.case.precision == "bf16" and torch.cuda.get_device_capability(0) < (8, 0):
            raise Unsupported(f"{torch.cuda.get_device_name(0)} has no native bf16 (needs compute capability >= 8.0)")
        return torch.device("cuda", 0)

    def _onednn_reason(self) -> str | None:
        """Ask PyTorch's oneDNN too (a private check; where absent, the cpuinfo flags decide alone)."""
        check = {"bf16": "_is_mkldnn_bf16_supported", "fp16": "_is_mkldnn_fp16_supported"}.get(self.case.precision)
        supported = getattr(torch.ops.mkldnn, check, None) if check else None
        if supported is not None and not supported():
            return f"PyTorch's oneDNN reports no native {self.case.precision} support on this CPU"
        return None

    def prepare(self) -> None:
        self.device = self._device()
        self.dtype = DTYPES[self.case.precision]
        self.fp32_math = set_fp32_math()
        torch.backends.cudnn.benchmark = False  # PyTorch's default, stated: cuDNN picks algorithms by heuristics
        self.module.to(device=self.device, dtype=self.dtype)
        self.parameter_dtypes = Counter(str(t.dtype) for t in [*self.module.parameters(), *self.module.buffers()])
        self._inference = torch.inference_mode()
        self._inference.__enter__()
        self._sync = torch.cuda.synchronize if self.device.type == "cuda" else None
        if self.dtype != torch.float32:
            self._check_dtype_runs_through()

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.array(array, copy=True)).to(self.device)
        return tensor.to(self.dtype) if tensor.is_floating_point() else tensor

    def _check_dtype_runs_through(self) -> None:
        """One inference on zeros (in prepare, so first_inference_ms is then warm for bf16/fp16 cases)."""
        zeros = [np.zeros(s.shape_at(self.case.batch), dtype=s.dtype) for s in self._specs()]
        try:
            result = self.module(*[self._tensor(z) for z in zeros])
        except RuntimeError as exc:
            why = (" (onnx2torch, the ONNX -> PyTorch bridge, keeps explicit casts to float32, which then meet the "
                   "cast module)") if self.source.origin == BRIDGE else ""
            raise Unsupported(f"the module does not run in {self.case.precision}: {exc}{why}") from None
        floats = {str(t.dtype) for t in self._flatten(result) if t.is_floating_point()}
        if floats - {str(self.dtype)}:
            raise Unsupported(f"asked {self.case.precision} but outputs come out as {sorted(floats)}: part of the "
                              "module runs in another precision")

    def _specs(self) -> list[Any]:
        specs = {s.name: s for s in self.case.model.inputs}
        return [specs[name] for name in self.input_names]

    @staticmethod
    def _flatten(result: Any) -> list[torch.Tensor]:
        if isinstance(result, torch.Tensor):
            return [result]
        return [t for item in result for t in PyTorchRunner._flatten(item)]

    def bind(self, inputs: dict[str, np.ndarray]) -> None:
        self._args = [self._tensor(inputs[name]) for name in self.input_names]
        if self._sync:
            self._sync()

    def infer(self) -> None:
        self._result = self.module(*self._args)
        if self._sync:
            self._sync()

    def outputs(self) -> dict[str, np.ndarray]:
        arrays = {}
        for name, tensor in self.source.outputs(self._result).items():
            if tensor.is_floating_point():
                tensor = tensor.float()
            arrays[name] = np.array(tensor.cpu().numpy(), copy=True)
        return arrays

    def profile(self, inputs: dict[str, np.ndarray], runs: int) -> list[OpTime]:
        """``torch.profiler`` over ``runs`` calls, each inside a record_function of its own: a node is an aten op the
        graph calls (``aten::conv2d#2``: the second in the call), its kernel the innermost op that took most of it
        (``aten::mkldnn_convolution``). Named by op, not by ONNX node: recording each module by name through
        forward hooks added about a fifth to every op's time. CPU times (on cuda the calls are synchronized, so a
        node's time holds its wait)."""
        self.bind(inputs)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for run in range(runs):
                with torch.profiler.record_function(f"{RUN_MARK}{run}"):
                    self.infer()
        return [op for event in prof.events() if event.name.startswith(RUN_MARK) for op in self._ops_of(event)]

    def _ops_of(self, run_event: Any) -> list[OpTime]:
        run = int(run_event.name.removeprefix(RUN_MARK))
        precision = DTYPE_NAMES.get(str(self.dtype), "")
        seen: Counter[str] = Counter()
        ops = []
        for child in run_event.cpu_children:
            seen[child.name] += 1
            node = child.name if seen[child.name] == 1 else f"{child.name}#{seen[child.name]}"
            innermost = child  # down the calls that took most of their caller's time: the kernel that did the work
            while innermost.cpu_children:
                longest = max(innermost.cpu_children, key=lambda e: e.cpu_time_total)
                if 2 * longest.cpu_time_total < innermost.cpu_time_total:
                    break
                innermost = longest
            ops.append(OpTime(run=run, node=node, op_type=child.name, ms=child.cpu_time_total / 1000,
                              kernel=innermost.name if innermost is not child else "", precision=precision))
        return ops

    def _precision_used(self) -> str:
        floats = {k for k in self.parameter_dtypes if k in DTYPE_NAMES}
        used = floats | {str(t.dtype) for t in self._flatten(self._result) if t.is_floating_point()}
        if len(used) != 1:
            return "mixed: " + ",".join(sorted(used))
        name = used.pop()
        return DTYPE_NAMES.get(name, name)

    def facts(self) -> dict[str, Any]:
        device = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
        return {
            "runtime_version": torch.__version__,
            "precision_used": self._precision_used(),
            "precision_source": "dtypes of the module's parameters and buffers and of the last outputs",
            "threads_used": torch.get_num_threads(),
            "phases": ("load: the factory's module, made again in the worker" if self.source.origin != BRIDGE else
                       "convert: onnx2torch in a subprocess with a deadline, its report cached; load: onnx2torch "
                       "again in the worker (nothing serialized)") + "; prepare: module.to(device, dtype)" + (
                " + one inference on zeros to check the dtype runs through" if self.dtype != torch.float32 else ""),
            "parameter_dtypes": dict(sorted(self.parameter_dtypes.items())),
            "conversion_report": self.report,
            "module_source": self.source.origin,  # factory: the user's PyTorch code; onnx2torch: the bridge
            "options": {
                "device": device,
                "dtype": str(self.dtype),
                "num_threads": torch.get_num_threads(),
                "num_interop_threads": torch.get_num_interop_threads(),
                "fp32_math": self.fp32_math,
                "cudnn_benchmark": torch.backends.cudnn.benchmark,
                "inference_mode": torch.is_inference_mode_enabled(),
                "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                "torch_compile": False,
            },
            "torch_cuda": torch.version.cuda,
            "onnx2torch_version": importlib.metadata.version("onnx2torch"),
        }

    def close(self) -> None:
        if hasattr(self, "_inference"):
            self._inference.__exit__(None, None, None)
