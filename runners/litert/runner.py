"""LiteRT on cpu: the ``.tflite`` (converted, or the one the model's wheel ships) run by ``ai_edge_litert``'s
Interpreter with its default XNNPACK delegate, inputs set before timing.

What is read back, not assumed: the precision from the file's tensor types (an int8 case whose file holds no int8
tensor is refused); how much of the graph XNNPACK took (the interpreter's nodes: the DELEGATE nodes and the builtin
ops left beside them); the threads from the thread pool XNNPACK started in this process (the Python API has no
getter for the count it was given).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from bench.cache import sha256_file
from bench.execution.calibration import CALIBRATION_SAMPLES, calibration_inputs, calibration_sha256
from bench.execution.convert import Conversion, cached_by_case_converter
from bench.execution.graph import graph_io
from bench.plugin import Runner, Unsupported
from bench.runners.litert import INT8_OPTIONS, shipped_tflite

SIGNATURE = "serving_default"
SHIPPED = "shipped .tflite"
INTEGER_TYPES = ("int8", "uint8", "int16")


def _tasks() -> set[str]:
    """This process's threads, from /proc (empty where there is none)."""
    try:
        return set(os.listdir("/proc/self/task"))
    except OSError:
        return set()


def left_to_builtins(ops: list[dict[str, Any]], graph_outputs: set[int]) -> list[dict[str, Any]]:
    """The model's ops that no delegate took. The interpreter lists every original node and, after them, one
    DELEGATE node per partition (its inputs and outputs are the partition's boundary); the execution plan itself is
    not exposed. An op is left when it writes a tensor that a delegate reads, or a graph output, that no delegate
    writes; then, going back, every op that writes a tensor a left op reads."""
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    model_ops = [op for op in ops if op["op_name"] != "DELEGATE"]
    written = {int(t) for d in delegates for t in d["outputs"]}
    wanted = ({int(t) for d in delegates for t in d["inputs"]} | graph_outputs) - written
    left: dict[int, dict[str, Any]] = {}
    while True:
        found = [op for op in model_ops if op["index"] not in left and wanted & {int(t) for t in op["outputs"]}]
        if not found:
            return sorted(left.values(), key=lambda op: op["index"])
        for op in found:
            left[op["index"]] = op
            wanted |= {int(t) for t in op["inputs"] if t >= 0} - written


def _base(name: str) -> str:
    """A tensor name without its TF decorations: 'serving_default_input_2:0' -> 'input_2'."""
    return name.split(":")[0].removeprefix(f"{SIGNATURE}_")


class LiteRTRunner(Runner):
    timed_region = ("interpreter.invoke(): the .tflite through LiteRT's Interpreter, XNNPACK delegate (and any ops "
                    "left to LiteRT's builtin kernels), inputs set before timing (int8: quantized with the file's "
                    "input scales before timing, outputs dequantized after)")
    no_profiler = ("LiteRT's Python Interpreter has no per-op profiler (its op profiling is the C++ benchmark_model "
                   "tool's, outside this process)")

    # ---- conversion -----------------------------------------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        # versions from the package metadata: importing torch here would add it to every LiteRT worker's memory
        from bench.runners.pytorch.conversion import PREPARE

        options: dict[str, Any] = {
            "path": "ONNX -> onnx2torch -> litert_torch.convert -> .tflite", "precision": self.case.precision,
            "prepare": PREPARE, "torch": importlib.metadata.version("torch"),
            "onnx2torch": importlib.metadata.version("onnx2torch"),
            "static_input_shapes": {s.name: list(s.shape_at(self.case.batch)) for s in self.case.model.inputs},
        }
        if self.case.precision == "int8":
            options |= {**INT8_OPTIONS, "torchao": importlib.metadata.version("torchao"),
                        "calibration_samples": CALIBRATION_SAMPLES,
                        "calibration_sha256": calibration_sha256(calibration_inputs(self.case))}
        return options

    def convert(self, onnx_path: Path) -> Path:
        """A shipped .tflite as it is; otherwise litert-torch in a subprocess with a deadline, cached."""
        self._onnx = onnx_path
        shipped = shipped_tflite(self.case)
        if shipped:
            path = Path(shipped)
            self.conversion = Conversion(SHIPPED, "none", {"file": path.name, "sha256": sha256_file(path),
                                                           "note": "the same trained model as the ONNX file, as its "
                                                                   "wheel ships it: nothing converted"})
            self.export: dict[str, Any] | None = None
            return path

        conversion = Conversion("litert-torch", importlib.metadata.version("litert-torch"), self._options())
        folder, self.conversion = cached_by_case_converter(self.case, conversion, "bench.runners.litert.convert",
                                                           onnx_path)
        self.export = json.loads((folder / "export.json").read_text())
        return folder / "model.tflite"

    # ---- running --------------------------------------------------------------------------------------------

    def load(self, artifact: Path) -> None:
        self._artifact = artifact
        self._tasks_before = _tasks()
        # XNNPACK is applied as the default delegate when the tensors are allocated (prepare)
        self.interpreter = Interpreter(model_path=str(artifact), num_threads=self.case.threads)
        details = self.interpreter.get_tensor_details()
        self._types = Counter(np.dtype(t["dtype"]).name for t in details)
        self._tensor_names = {t["index"]: t["name"] for t in details}
        if self.case.precision == "int8" and not any(self._types[t] for t in INTEGER_TYPES):
            raise Unsupported(f"the int8 .tflite holds no integer tensor ({dict(self._types)}): the quantizer "
                              "annotated nothing, so an int8 row would be a float row")

    def prepare(self) -> None:
        self.interpreter.allocate_tensors()  # the XNNPACK delegate takes its partitions and packs weights here
        self._pool = len(_tasks() - self._tasks_before)
        # litert-torch writes a serving_default signature; a shipped file may have none: its graph's own tensors
        signature = self.interpreter._get_full_signature_list().get(SIGNATURE) or {
            "inputs": {d["name"]: d["index"] for d in self.interpreter.get_input_details()},
            "outputs": {d["name"]: d["index"] for d in self.interpreter.get_output_details()}}
        self._inputs = self._io_map(signature["inputs"], "inputs")
        self._outputs = self._io_map(signature["outputs"], "outputs")
        details = {d["index"]: d for d in self.interpreter.get_tensor_details()}
        self._quant = {index: details[index]["quantization"] for index in [*self._inputs.values(),
                                                                            *self._outputs.values()]}

    def _io_map(self, tensors: dict[str, int], kind: str) -> dict[str, int]:
        """ONNX input/output name -> the .tflite tensor index. Converted: litert-torch's args_i / output_i follow
        the export's order; shipped: the same names (less TF's decorations), else the same positions."""
        names = list(tensors)
        if self.export is not None:
            if kind == "inputs":
                return {name: tensors[f"args_{i}"] for i, name in enumerate(self.export["input_names"])}
            return {name: tensors[f"output_{leaf}"] for name, leaf in self.export["output_leaves"].items()}
        io = graph_io(self._onnx)
        onnx_names = list(io.inputs if kind == "inputs" else io.outputs)
        # tf2onnx keeps TF's tensor names ("StatefulPartitionedCall:2"), which the .tflite's tensors carry too, while
        # its signature names the outputs anew ("contour"): the tensors' own names first, exactly
        own = {self._tensor_names[index]: index for index in tensors.values()}
        if all(n in own for n in onnx_names):
            return {n: own[n] for n in onnx_names}
        by_base = {_base(n): n for n in names}
        bases = [_base(n) for n in onnx_names]
        if len(by_base) == len(names) and len(set(bases)) == len(bases) and all(b in by_base for b in bases):
            return {n: tensors[by_base[b]] for n, b in zip(onnx_names, bases, strict=True)}
        if len(onnx_names) != len(names):
            raise Unsupported(f"the shipped .tflite has {len(names)} {kind}, the ONNX file {len(onnx_names)}")
        return dict(zip(onnx_names, tensors.values(), strict=True))  # in the order the file lists them

    def bind(self, inputs: dict[str, np.ndarray]) -> None:
        self._set = []
        for name, index in self._inputs.items():
            self._set.append((index, self._to_file_type(index, inputs[name])))
        for index, array in self._set:
            self.interpreter.set_tensor(index, array)

    def _to_file_type(self, index: int, array: np.ndarray) -> np.ndarray:
        detail = next(d for d in self.interpreter.get_input_details() if d["index"] == index)
        dtype = np.dtype(detail["dtype"])
        scale, zero = self._quant[index]
        if dtype.name in INTEGER_TYPES and scale:
            info = np.iinfo(dtype)
            return np.clip(np.round(array / scale) + zero, info.min, info.max).astype(dtype)
        return np.ascontiguousarray(array, dtype=dtype)

    def infer(self) -> None:
        self.interpreter.invoke()

    def outputs(self) -> dict[str, np.ndarray]:
        result = {}
        for name, index in self._outputs.items():
            value = np.array(self.interpreter.get_tensor(index), copy=True)
            scale, zero = self._quant[index]
            if value.dtype.name in INTEGER_TYPES and scale:
                value = ((value.astype(np.float32) - zero) * scale).astype(np.float32)
            result[name] = value
        return result

    # ---- what ran ------------------------------------------------------------------------------------------

    def _precision_used(self) -> str:
        """int8 where the file holds integer tensors (the float ones beside them are counted in tensor_types), else
        the float types it holds."""
        if any(self._types[t] for t in INTEGER_TYPES):
            return "int8"
        floats = sorted(t for t in self._types if t.startswith(("float", "bfloat")))
        return "fp32" if floats in (["float32"], []) else "mixed: " + ",".join(floats)

    def _delegation(self) -> dict[str, Any]:
        """How much of the graph XNNPACK took, from the interpreter's nodes after it did: the DELEGATE nodes it
        added, and the builtin ops still run beside them (see :func:`left_to_builtins`)."""
        ops = self.interpreter._get_ops_details()
        delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
        graph_outputs = {d["index"] for d in self.interpreter.get_output_details()}
        left = left_to_builtins(ops, graph_outputs)
        kinds = Counter(op["op_name"] for op in ops if op["op_name"] != "DELEGATE")
        left_kinds = Counter(op["op_name"] for op in left)
        state = "none" if not delegates else "partial" if left else "full"
        return {"delegation": state, "delegate": "XNNPACK (LiteRT's default CPU delegate)",
                "delegate_nodes": len(delegates), "delegated_ops": sum(kinds.values()) - len(left),
                "builtin_ops": len(left), "builtin_op_kinds": dict(sorted(left_kinds.items())),
                "model_op_kinds": dict(sorted(kinds.items()))}

    def facts(self) -> dict[str, Any]:
        threads = self._pool + 1 if self._pool else 1
        return {
            "runtime_version": importlib.metadata.version("ai-edge-litert"),
            "precision_used": self._precision_used(),
            "precision_source": "the .tflite's tensor types, read from the interpreter",
            "tensor_types": dict(sorted(self._types.items())),
            "threads_used": threads,
            "threads_source": (f"num_threads={self.case.threads} given to the Interpreter; read back as the calling "
                               f"thread + {self._pool} threads XNNPACK's pool started in allocate_tensors"),
            "phases": "convert: onnx2torch + litert-torch in a subprocess, cached (or the shipped .tflite); load: "
                      "Interpreter(model_path, num_threads); prepare: allocate_tensors (XNNPACK delegate applied)",
            **self._delegation(),
            "source": SHIPPED if self.export is None else "converted",
        }

    def close(self) -> None:
        self.__dict__.pop("interpreter", None)
