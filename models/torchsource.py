"""A PyTorch model as the source (``bench run --torch FILE.py:FACTORY`` or ``--torch package.module:FACTORY``).

The factory is a function of no arguments that returns an ``nn.Module``, or ``(module, example_inputs)`` with a
tensor or a tuple of tensors. bench calls it only in child processes (the parent never imports torch or the
user's code), each time right after ``torch.manual_seed(0)``, so that randomly initialised weights are the same in
every process; the state dict's sha256 is taken where the model is planned and checked wherever it is made again.

Planning runs ``python -m bench.models.torchsource FACTORY SHAPES_JSON CACHE_DIR OUT_JSON`` with the suite's
deadline: it reads the inputs (names from ``--shape`` or from ``forward``'s parameters, shapes and dtypes from
``--shape`` or the example inputs), then exports the module once to ONNX with ``torch.onnx.export``, cached under
``<cache>/torch/<key>/`` where the key hashes the factory's file, the state dict, the inputs, the exporter's version
and its options. The ONNX runtimes run that export; PyTorch eager, torch.compile and ExecuTorch call the factory
again (``bench.runners.pytorch.conversion.source_module``). An export that fails is the ``conversion_failed`` row of
every ONNX runner, naming the exporter; a factory that cannot be called is the user's error, one line.

The inputs have no batch axis (the export is static): a case at another batch size is ``unsupported``; give the
batch in ``--shape``. Outputs are the module's result flattened (``torch.utils._pytree``), named ``output`` or
``output_0``, ``output_1``...: the export is given the same names, so every path's outputs meet the same reference,
the module's own fp32 output.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.case import InputSpec, ModelRef
from bench.errors import UserError
from bench.execution.inputs import DTYPES
from bench.files import first_line, write_text_atomic

EXPORTER = "torch.onnx.export"
# dynamo=True: the exporter PyTorch >= 2.9 uses by default (torch.export, then onnxscript's translation).
EXPORT_OPTIONS = {"dynamo": True, "external_data": False, "optimize": True}
SEED = 0  # torch.manual_seed before every call of the factory
RANGES = {"f": (-1.0, 1.0), "i": (0, 9), "u": (0, 9), "b": (0, 1)}
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
USER_ERROR_EXIT = 2


@dataclass(frozen=True)
class FactoryRef:
    """Where the factory is: a Python file (resolved to an absolute path) or a dotted module found from ``root``
    (the folder ``bench run`` was started in), and the function's name. ``text``: as the user gave it."""

    text: str
    attr: str
    file: str = ""
    module: str = ""
    root: str = ""

    @classmethod
    def parse(cls, text: str) -> FactoryRef:
        where, sep, attr = text.rpartition(":")
        if not sep or not where or not IDENTIFIER.fullmatch(attr):
            raise UserError(f"--torch {text!r}: expected FILE.py:FACTORY or package.module:FACTORY, e.g. "
                            "tests/fixtures/torch_cnn.py:make")
        if where.endswith(".py") or "/" in where:
            path = Path(where)
            if not path.is_file():
                raise UserError(f"--torch {text!r}: {where} is not a file")
            return cls(text, attr, file=str(path.resolve()))
        if not all(IDENTIFIER.fullmatch(part) for part in where.split(".")):
            raise UserError(f"--torch {text!r}: {where!r} is neither a .py file nor a dotted module name")
        return cls(text, attr, module=where, root=os.getcwd())

    @property
    def name(self) -> str:
        """The model's name on the rows: ``torch_cnn.make``."""
        stem = Path(self.file).stem if self.file else self.module.rpartition(".")[2]
        return f"{stem}.{self.attr}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FactoryRef:
        return cls(**json.loads(text))


# --- in a child process (torch imported) -------------------------------------------------------------------------


class FactoryError(Exception):
    """The factory cannot give bench a module: the user's error, said in one line by the parent."""


def _import(ref: FactoryRef) -> Any:
    if ref.file:
        folder = str(Path(ref.file).parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)  # the factory's own imports of its neighbours
        spec = importlib.util.spec_from_file_location(f"bench_torch_source_{Path(ref.file).stem}", ref.file)
        if spec is None or spec.loader is None:
            raise FactoryError(f"{ref.file} cannot be imported as Python")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    if ref.root not in sys.path:
        sys.path.insert(0, ref.root)
    return importlib.import_module(ref.module)


def load_factory(ref: FactoryRef) -> tuple[Any, tuple[Any, ...] | None, str]:
    """The factory's module (eval mode, fp32), its example inputs (or None), and the sha256 of its source file."""
    import torch

    try:
        code = _import(ref)
    except FactoryError:
        raise
    except Exception as exc:  # the user's code: any error it raises is theirs
        raise FactoryError(f"importing it failed: {type(exc).__name__}: {first_line(exc, 300)}") from None
    factory = getattr(code, ref.attr, None)
    if not callable(factory):
        raise FactoryError(f"no function {ref.attr!r} in {ref.file or ref.module}")
    torch.manual_seed(SEED)
    try:
        made = factory()
    except Exception as exc:
        raise FactoryError(f"{ref.attr}() raised {type(exc).__name__}: {first_line(exc, 300)}") from None
    module, example = made if isinstance(made, tuple) and len(made) == 2 else (made, None)
    if not isinstance(module, torch.nn.Module):
        raise FactoryError(f"{ref.attr}() returned {type(module).__name__}; expected an nn.Module or "
                           "(nn.Module, example_inputs)")
    if isinstance(example, torch.Tensor):
        example = (example,)
    if example is not None and not all(isinstance(t, torch.Tensor) for t in example):
        raise FactoryError(f"{ref.attr}()'s example inputs must be a tensor or a tuple of tensors")
    source = ref.file or inspect.getfile(code)
    return module.eval().float(), example, hashlib.sha256(Path(source).read_bytes()).hexdigest()


def state_sha256(module: Any) -> str:
    """The weights and buffers, by name, dtype, shape and bytes."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{name}|{array.dtype}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _forward_names(module: Any) -> list[str]:
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in inspect.signature(module.forward).parameters.values() if p.kind in kinds]


def _spec(name: str, shape: tuple[int, ...], dtype: str) -> InputSpec:
    if dtype not in DTYPES:
        raise FactoryError(f"input {name!r} is {dtype}; bench generates {', '.join(DTYPES)}")
    low, high = RANGES.get(dtype[0] if dtype != "bool" else "b", (0, 1))
    return InputSpec(name, tuple(shape), dtype, low, high, None)  # a static export: no batch axis


def input_specs(module: Any, example: tuple[Any, ...] | None, shapes: dict[str, tuple[int, ...]]) -> list[InputSpec]:
    """Names from forward's parameters (example inputs beyond them: input_N), shapes from --shape where given,
    else the example's; without example inputs every input forward needs must have a --shape."""
    params = _forward_names(module)
    if example is not None:
        names = [params[i] if i < len(params) else f"input_{i}" for i in range(len(example))]
        unknown = sorted(set(shapes) - set(names))
        if unknown:
            raise FactoryError(f"--shape names {unknown}, not inputs of forward{tuple(names)}")
        return [_spec(n, shapes.get(n, tuple(t.shape)), str(t.dtype).removeprefix("torch.")) for n, t in
                zip(names, example, strict=True)]
    unknown = sorted(set(shapes) - set(params))
    if unknown and params:
        raise FactoryError(f"--shape names {unknown}, not parameters of forward{tuple(params)}")
    names = [n for n in params if n in shapes] if params else list(shapes)
    if not names:
        raise FactoryError("no input shapes: give --shape NAME:1x3x224x224 for each input of forward, or return "
                           "(module, example_inputs) from the factory")
    needed = [p.name for p in inspect.signature(module.forward).parameters.values()
              if p.name in params and p.default is inspect.Parameter.empty and p.name not in shapes]
    if needed:
        raise FactoryError(f"forward needs {needed}: give --shape for each")
    return [_spec(n, shapes[n], "float32") for n in names]


def example_tensors(specs: tuple[InputSpec, ...] | list[InputSpec], seed: int = 0) -> tuple[Any, ...]:
    import torch

    from bench.execution.inputs import make_inputs

    arrays = make_inputs(tuple(specs), 1, seed)
    return tuple(torch.from_numpy(arrays[s.name]) for s in specs)


def output_names(result: Any) -> list[str]:
    import torch

    leaves = torch.utils._pytree.tree_leaves(result)
    return ["output"] if len(leaves) == 1 else [f"output_{i}" for i in range(len(leaves))]


def export_facts(options: dict[str, Any] | None = None) -> dict[str, Any]:
    import torch

    facts: dict[str, Any] = {"exporter": EXPORTER, "version": torch.__version__, "options": options or EXPORT_OPTIONS}
    if importlib.util.find_spec("onnxscript") is not None:
        facts["onnxscript"] = importlib.metadata.version("onnxscript")
    return facts


def _export(module: Any, specs: list[InputSpec], outputs: list[str], folder: Path) -> None:
    import torch

    with torch.no_grad():  # EXPORT_OPTIONS, spelled out for the type checker
        torch.onnx.export(module, example_tensors(specs), str(folder / "model.onnx"), verbose=False,
                          input_names=[s.name for s in specs], output_names=outputs, dynamo=True,
                          external_data=False, optimize=True)


def _cached_export(module: Any, specs: list[InputSpec], outputs: list[str], folder: Path) -> str:
    """The export in ``folder`` (made now if absent), its sha256; failures as the exporter said them."""
    done = folder / "export.json"
    if done.is_file():
        sha = json.loads(done.read_text())["sha256"]
        if (folder / "model.onnx").is_file() and _sha256(folder / "model.onnx") == sha:
            return sha
        shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
    try:
        _export(module, specs, outputs, tmp)
        sha = _sha256(tmp / "model.onnx")
        (tmp / "export.json").write_text(json.dumps({"sha256": sha, **export_facts()}))
        os.replace(tmp, folder)
    except OSError:
        if not done.is_file():  # another run moved the same export in between: theirs is as good
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return sha


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def probe_and_export(ref: FactoryRef, shapes: dict[str, tuple[int, ...]], cache_dir: Path, out: Path) -> None:
    """What planning needs, written to ``out`` before the export (a deadline that passes during the export still
    leaves the inputs) and again after it."""
    module, example, file_sha = load_factory(ref)
    specs = input_specs(module, example, shapes)
    with __import__("torch").no_grad():
        result = module(*example_tensors(specs))
    outputs = output_names(result)
    state = state_sha256(module)
    facts = export_facts()
    key = hashlib.sha256(json.dumps([file_sha, ref.attr, state, [asdict(s) for s in specs], facts],
                                    sort_keys=True).encode()).hexdigest()[:32]
    info = {"inputs": [asdict(s) for s in specs], "outputs": outputs, "state_sha256": state, "file_sha256": file_sha,
            "key": key, "module": type(module).__name__, "export": facts, "onnx": "", "export_error": ""}
    write_text_atomic(out, json.dumps(info))
    folder = cache_dir / "torch" / key
    try:
        _cached_export(module, specs, outputs, folder)
        info["onnx"] = str(folder / "model.onnx")
    except Exception as exc:  # torch.export and the ONNX translation raise many kinds: the rows say which
        info["export_error"] = f"{EXPORTER} (torch {facts['version']}, dynamo) failed: {_said(exc)}"
    write_text_atomic(out, json.dumps(info))


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _said(exc: BaseException) -> str:
    """The exporter's error and its cause (torch.onnx wraps torch.export's error in "step 1/3" prose), one line."""
    said = f"{type(exc).__name__}: {first_line(ANSI.sub('', str(exc)), 200)}"
    if exc.__cause__ is not None:
        said += f" (caused by {type(exc.__cause__).__name__}: {first_line(ANSI.sub('', str(exc.__cause__)), 300)})"
    return said


def main(argv: list[str]) -> int:
    ref, shapes = FactoryRef.from_json(argv[0]), {k: tuple(v) for k, v in json.loads(argv[1]).items()}
    try:
        probe_and_export(ref, shapes, Path(argv[2]), Path(argv[3]))
    except FactoryError as exc:
        print(f"--torch {ref.text}: {exc}", file=sys.stderr)
        return USER_ERROR_EXIT
    return 0


def module_outputs(model: ModelRef, samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The module's own fp32 eager outputs on ``samples``: the one reference every path of a PyTorch source is
    checked against (the reference worker calls it instead of ONNX Runtime)."""
    import numpy as np
    import torch

    ref, export = FactoryRef.from_json(model.torch_factory), json.loads(model.torch_export or "{}")
    module, _, _ = load_factory(ref)
    if export.get("state_sha256") and state_sha256(module) != export["state_sha256"]:
        raise FactoryError(f"{ref.text} made other weights than when the run was planned")
    torch.set_float32_matmul_precision("highest")
    outputs = []
    with torch.inference_mode():
        for inputs in samples:
            leaves = torch.utils._pytree.tree_leaves(module(*[torch.from_numpy(inputs[s.name]) for s in model.inputs]))
            names = export.get("outputs") or output_names(leaves)
            outputs.append({n: np.array(t.float().numpy(), copy=True) for n, t in zip(names, leaves, strict=True)})
    return outputs


# --- in bench's parent (no torch) --------------------------------------------------------------------------------


def _run_probe(ref: FactoryRef, shapes: dict[str, tuple[int, ...]], cache_dir: Path, timeout_s: float) -> dict:
    for module, what in (("torch", "torch"), ("onnxscript", "onnxscript, torch.onnx.export's ONNX translation")):
        if importlib.util.find_spec(module) is None:
            raise UserError(f"--torch {ref.text}: needs {what}, not installed (pip install 'onnx-inference-bench"
                            "[pytorch]', or scripts/install test)")
    with tempfile.TemporaryDirectory(prefix="bench-torch-") as work:
        out = Path(work) / "source.json"
        cmd = [sys.executable, "-m", "bench.models.torchsource", ref.to_json(), json.dumps(shapes), str(cache_dir),
               str(out)]
        try:
            done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                                  timeout=timeout_s, check=False, cwd=work)
        except subprocess.TimeoutExpired:
            done = None
        info = json.loads(out.read_text()) if out.is_file() else None
    said = first_line((done.stderr.strip().splitlines() or [""])[-1], 400) if done is not None else ""
    if done is not None and done.returncode == USER_ERROR_EXIT:
        raise UserError(said)
    if info is None:
        why = f"did not answer within {timeout_s:g} s" if done is None else f"failed ({done.returncode}): {said}"
        raise UserError(f"--torch {ref.text}: loading the factory in a subprocess {why}")
    if done is None and not info["onnx"]:
        info["export_error"] = f"{EXPORTER} passed its {timeout_s:g} s deadline"
    return info


def torch_model(ref: FactoryRef, shapes: dict[str, tuple[int, ...]], cache_dir: Path | None,
                timeout_s: float) -> ModelRef:
    """The factory's model as cases see it: its ONNX export's path (empty when the export failed, whose reason is
    in ``torch_export``) and sha256, its inputs. Without a cache (a dry run) nothing is called: inputs from --shape."""
    if cache_dir is None:
        specs = tuple(_spec(n, s, "float32") for n, s in shapes.items())
        return ModelRef(ref.name, "", "", specs, "torch", torch_factory=ref.to_json())
    info = _run_probe(ref, shapes, cache_dir, timeout_s)
    specs = tuple(InputSpec(**{**s, "shape": tuple(s["shape"])}) for s in info["inputs"])
    export = {**info["export"], "state_sha256": info["state_sha256"], "outputs": info["outputs"],
              "error": info["export_error"]}
    return ModelRef(ref.name, info["onnx"], info["key"], specs, "torch", macs=_macs(info["onnx"], specs),
                    torch_factory=ref.to_json(), torch_export=json.dumps(export, sort_keys=True))


def _macs(onnx_path: str, specs: tuple[InputSpec, ...]) -> int | None:
    if not onnx_path:
        return None
    import onnx

    from bench.models.macs import count_cost

    try:
        return count_cost(onnx.load(onnx_path), {s.name: list(s.shape) for s in specs}).macs
    except Exception:  # a count is a nicety; the export is what the runtimes need
        return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
