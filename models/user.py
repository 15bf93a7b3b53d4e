"""The user's own ONNX file: read its inputs from the graph, fix dynamic dimensions from ``--shape``.

A symbolic first dimension is taken as the batch axis (set by the suite's batch sizes, 1 when
``--shape`` fixes it); any other dimension left unknown is an error naming the input.
Generated values: floats in [-1, 1], integers in [0, 9], booleans at random.
Cases read bench's snapshot of the file and its external data in the cache (``snapshot.py``), never the user's path.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto

from bench.case import InputSpec, ModelRef
from bench.errors import UserError
from bench.execution.inputs import DTYPES
from bench.files import first_line, os_reason
from bench.models.macs import count_cost
from bench.models.snapshot import data_locations, model_sha256, snapshot

DIGITS = re.compile(r"[0-9]+")
RANGES = {"f": (-1.0, 1.0), "i": (0, 9), "u": (0, 9), "b": (0, 1)}


def parse_shapes(texts: list[str]) -> dict[str, tuple[int, ...]]:
    """``["input:1x3x224x224"]`` -> ``{"input": (1, 3, 224, 224)}``."""
    shapes = {}
    for text in texts:
        name, sep, dims = text.rpartition(":")
        parts = dims.lower().split("x")
        # ASCII digits only: int() would also take "1_6" (16) and other scripts' digits
        shape = tuple(int(d) for d in parts) if all(DIGITS.fullmatch(d) for d in parts) else ()
        if not sep or not name or not shape or min(shape) < 1:
            raise UserError(f"--shape {text!r}: expected NAME:DxDx... with positive integers, e.g. input:1x3x224x224")
        shapes[name] = shape
    return shapes


def _check_file(path: Path) -> None:
    try:
        path.stat()
    except FileNotFoundError:
        raise UserError(f"{path}: model file not found") from None
    except OSError as exc:  # a name over the filesystem's limit, say: the model's path is the culprit, nothing else
        raise UserError(f"{path}: cannot read the model file ({os_reason(exc, path)})") from None
    if path.is_dir():
        raise UserError(f"{path}: is a folder; --model takes one .onnx file")
    if not path.is_file():
        raise UserError(f"{path}: model file not found")


def _parse(file: Path, path: Path) -> onnx.ModelProto:
    """The graph in ``file`` (the user's ``path`` or bench's copy of it), external data not loaded; errors name
    ``path``."""
    try:
        model = onnx.load(str(file), load_external_data=False)
    except Exception as exc:  # protobuf raises its own DecodeError; any failure means "not ONNX"
        raise UserError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None
    if not model.graph.node:
        raise UserError(f"{path}: not an ONNX model (no graph nodes; truncated or another format?)")
    return model


def _model_files(path: Path, cache_dir: Path | None) -> tuple[Path, str, onnx.ModelProto]:
    """Where cases read the model, its sha256 and its graph: bench's copy in the cache (what is run is what was
    hashed), or with no cache (a dry run, which writes nothing) the user's file itself."""
    _check_file(path)
    if cache_dir is not None:
        return snapshot(path, cache_dir, lambda file: _parse(file, path))
    model = _parse(path, path)
    return path.resolve(), model_sha256(path, data_locations(model, path)), model


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in value.type.tensor_type.shape.dim]


def _dtype(value: onnx.ValueInfoProto, path: Path) -> np.dtype:
    if value.type.WhichOneof("value") != "tensor_type":
        raise UserError(f"{path}: input {value.name!r} is not a tensor; bench feeds tensor inputs only")
    elem = value.type.tensor_type.elem_type
    name = TensorProto.DataType.Name(elem) if elem in TensorProto.DataType.values() else str(elem)
    try:
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem))
    except (KeyError, TypeError, ValueError):
        dtype = None
    if dtype is None or dtype.name not in DTYPES:
        raise UserError(f"{path}: input {value.name!r} has element type {name}; bench generates {', '.join(DTYPES)}")
    return dtype


def _input_spec(value: onnx.ValueInfoProto, given: tuple[int, ...] | None, path: Path) -> InputSpec:
    dtype = _dtype(value, path)
    if not value.type.tensor_type.HasField("shape"):  # no shape at all, not a scalar: it was fed a 0-d array
        if given is None:
            raise UserError(f"{path}: input {value.name!r} has no shape in the model; give it with --shape "
                            f"{value.name}:DxD... (1x... if it is batched)")
        return InputSpec(value.name, tuple(given), dtype.name, *RANGES.get(dtype.kind, (0, 1)), None)
    dims = _dims(value)
    batch_axis = 0 if dims and not isinstance(dims[0], int) else None
    if given is not None:
        if len(given) != len(dims):
            raise UserError(f"{path}: --shape for input {value.name!r} has {len(given)} dims, the model has {dims}")
        if batch_axis == 0 and given[0] != 1:  # the batch is the suite's axis: it would run at those sizes instead
            raise UserError(f"{path}: --shape {value.name}:{'x'.join(map(str, given))} sets the batch axis (dim 0, "
                            f"{dims[0]!r} in the model) to {given[0]}; give it as 1 and the batch with "
                            f"--batch-sizes {given[0]}")
        dims = list(given)
    elif batch_axis == 0:
        dims[0] = 1
    unknown = [i for i, d in enumerate(dims) if not isinstance(d, int) or d < 1]
    if unknown:
        raise UserError(
            f"{path}: input {value.name!r} has unknown dimension(s) {dims}; give them with --shape {value.name}:..."
        )
    low, high = RANGES.get(dtype.kind, (0, 1))
    return InputSpec(value.name, tuple(dims), dtype.name, low, high, batch_axis)


def user_model(path: Path, shapes: dict[str, tuple[int, ...]], cache_dir: Path | None = None) -> ModelRef:
    """The user's model as cases see it; with ``cache_dir``, a snapshot of all its bytes in the cache."""
    onnx_path, sha256, model = _model_files(path, cache_dir)
    initializers = {t.name for t in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in initializers]
    unknown = set(shapes) - {v.name for v in inputs}
    if unknown:
        names = [v.name for v in inputs]
        raise UserError(f"{path}: --shape names input(s) {sorted(unknown)} not in the model; its inputs are {names}")
    specs = tuple(_input_spec(v, shapes.get(v.name), path) for v in inputs)
    try:  # shape inference: the first place a graph that parsed but does not hold together fails
        macs = count_cost(model, {s.name: list(s.shape) for s in specs}).macs
    except onnx.shape_inference.InferenceError as exc:
        raise UserError(f"{path}: not a valid ONNX graph ({first_line(exc, 200)})") from None
    return ModelRef(path.stem, str(onnx_path), sha256, specs, "user", macs=macs)
