"""Seeded model inputs, generated before any timing starts."""

from __future__ import annotations

import numpy as np

from bench.case import InputSpec

DTYPES = {
    "float32": np.float32,
    "float16": np.float16,
    "float64": np.float64,
    "int64": np.int64,
    "int32": np.int32,
    "int8": np.int8,
    "uint8": np.uint8,
    "bool": np.bool_,
}


def make_input(spec: InputSpec, batch: int, rng: np.random.RandomState) -> np.ndarray:
    shape = spec.shape_at(batch)
    dtype = np.dtype(DTYPES[spec.dtype])
    if dtype.kind == "f":
        return rng.uniform(spec.low, spec.high, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.randint(0, 2, size=shape).astype(dtype)
    return rng.randint(int(spec.low), int(spec.high) + 1, size=shape).astype(dtype)


def make_inputs(specs: tuple[InputSpec, ...], batch: int, seed: int) -> dict[str, np.ndarray]:
    """Same seed, same specs -> same arrays on every machine (RandomState's stream is frozen)."""
    rng = np.random.RandomState(seed)
    # np.require keeps 0-d inputs 0-d (ascontiguousarray would make a scalar sample rate shape (1,))
    return {spec.name: np.require(make_input(spec, batch, rng), requirements="C") for spec in specs}
