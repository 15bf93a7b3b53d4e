"""The user's model as bench's own copy: every byte a runtime reads, checked, copied into the cache and hashed.

A model saved with external data is its ``.onnx`` file plus the files its tensors' ``location`` names, relative to
the model's folder. All of them are the model's identity (:func:`model_sha256`): a weight changed in
``model.onnx.data`` is another model, with its own fp32 reference and converted artifacts. A location that leaves the
folder (``..``, an absolute path, a symbolic link) is refused before any runtime sees it: some converters read
whatever it names (a secret two folders up ended up inside a cached MNN artifact), others silently read zeros.

:func:`snapshot` copies the model and its data files into ``cache/user/<sha256>/`` and hashes the copy, so every
case and the fp32 reference read the bytes that were hashed, whatever happens to the user's files during the run.
(Not the zoo's ``onnx/``: a user's copy of a zoo model, under another name, must not replace the zoo's folder.)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

import onnx
from onnx import AttributeProto, TensorProto

from bench.cache import sha256_file
from bench.errors import UserError

COPY_BLOCK = 1 << 20


def _tensors(graph: onnx.GraphProto) -> Iterator[TensorProto]:
    """Every tensor a runtime may load: initializers, Constant values, sparse tensors, and those of subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == AttributeProto.TENSOR:
                yield attr.t
            elif attr.type == AttributeProto.TENSORS:
                yield from attr.tensors
            elif attr.type == AttributeProto.GRAPH:
                yield from _tensors(attr.g)
            elif attr.type == AttributeProto.GRAPHS:
                for subgraph in attr.graphs:
                    yield from _tensors(subgraph)


def _outside_why(location: str, base: Path) -> str:
    """Why ``location`` is not a file inside ``base`` that bench may read ("" when it is)."""
    pure = PurePosixPath(location)
    if "\0" in location:
        return "not a file name (it holds a NUL)"
    if pure.is_absolute():
        return "an absolute path"
    if ".." in pure.parts:
        return "a path out of the model's folder ('..')"
    target = base / location
    if target.is_symlink():
        return "a symbolic link"
    try:
        inside = target.resolve().is_relative_to(base.resolve())
    except (OSError, RuntimeError):  # Python < 3.13 raises RuntimeError on a loop of symbolic links
        return "behind a loop of symbolic links"
    return "" if inside else "behind a symbolic link that leads out of the model's folder"


def data_locations(model: onnx.ModelProto, path: Path) -> tuple[str, ...]:
    """The external-data files of ``model`` (read from ``path``), sorted; a location outside the model's folder or
    a missing file is a ``UserError`` naming the model, the tensor and the location."""
    base, locations = path.parent, set()
    for tensor in _tensors(model.graph):
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        why = _outside_why(location, base) if location else "missing"
        if why:
            raise UserError(f"{path}: tensor {tensor.name!r} has its external data at {location!r}, {why}; bench "
                            "reads external data only from files inside the model's folder")
        if not (base / location).is_file():
            raise UserError(f"{base / location}: external data file of tensor {tensor.name!r} not found")
        locations.add(location)
    return tuple(sorted(locations))


def model_sha256(onnx_file: Path, locations: tuple[str, ...]) -> str:
    """The model's identity: the ``.onnx`` file's sha256 alone when it has no external data (as every model had
    before external data counted, so history stays comparable), else a digest over that and each data file's
    (location, sha256), in sorted order."""
    own = sha256_file(onnx_file)
    if not locations:
        return own
    pairs = [[location, sha256_file(onnx_file.parent / location)] for location in sorted(locations)]
    return hashlib.sha256(json.dumps([own, pairs]).encode()).hexdigest()


def _copy(source: Path, target: Path, follow: bool = True) -> None:
    """``source``'s bytes into a new file ``target``; with ``follow=False`` a symbolic link put at ``source`` since
    it was checked is refused by the kernel (ELOOP), not followed."""
    if target.exists():  # two spellings of one location ("w.bin", "./w.bin"): copied once
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(source, os.O_RDONLY | (0 if follow else os.O_NOFOLLOW))
    except OSError as exc:  # the user's file, not the cache: named as such
        raise UserError(f"{source}: cannot be read ({exc.strerror or exc})") from None
    with open(fd, "rb") as src, open(target, "xb") as dst:
        shutil.copyfileobj(src, dst, COPY_BLOCK)


def _intact(onnx_file: Path, locations: tuple[str, ...], sha256: str) -> bool:
    try:
        return onnx_file.is_file() and model_sha256(onnx_file, locations) == sha256
    except OSError:  # a data file missing from an older or damaged copy
        return False


def _install(tmp: Path, folder: Path, onnx_name: str, locations: tuple[str, ...], sha256: str) -> None:
    """The checked copy in ``tmp`` becomes ``folder``, unless a concurrent run put the same bytes there first."""
    shutil.rmtree(folder, ignore_errors=True)
    try:
        os.replace(tmp, folder)
    except OSError:  # not empty: another run installed its copy in between
        if not _intact(folder / onnx_name, locations, sha256):
            raise


def snapshot(path: Path, cache_dir: Path, parse: Callable[[Path], onnx.ModelProto]
             ) -> tuple[Path, str, onnx.ModelProto]:
    """Copy the model at ``path`` and its external data into ``cache_dir/user/<sha256>/``; returns the copy's
    ``.onnx`` path, its sha256 and its graph (``parse(file)``, external data not loaded). What is checked and
    hashed is the copy, so a file replaced in the user's folder meanwhile cannot be run under another's hash."""
    root = cache_dir / "user"
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-user-", dir=root))
    try:
        copy = tmp / path.name
        _copy(path, copy)
        model = parse(copy)
        locations = data_locations(model, path)
        for location in locations:
            _copy(path.parent / location, tmp / location, follow=False)
        sha256 = model_sha256(copy, locations)
        kept = root / sha256 / path.name
        if not _intact(kept, locations, sha256):
            _install(tmp, kept.parent, path.name, locations, sha256)
        return kept.absolute(), sha256, model
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
