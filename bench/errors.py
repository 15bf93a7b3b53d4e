"""Errors that are the user's to fix: the CLI prints them as one line and exits with code 2. Files are checked
against a pydantic model at the edge (suites, the zoo manifest) and a bad value becomes one such line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError


class UserError(Exception):
    """Bad input (a suite file, a flag, a model file). The message names the thing and what was expected."""


class Strict(BaseModel):
    """A file's table: unknown keys refused, no coercion of strings into numbers, frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


M = TypeVar("M", bound=BaseModel)


def _key_path(loc: tuple, data: Any) -> str:
    """The part of pydantic's error location that exists in the file (drops union tags like 'int')."""
    parts, node = [], data
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if not (in_dict or in_list):
            if isinstance(node, dict):  # a missing key: name it
                parts.append(part)
            break
        node = node[part]
        parts.append(part)
    return ".".join(str(p) for p in parts) or "(top level)"


def _describe(error: Mapping[str, Any], data: object) -> str:
    key = _key_path(error["loc"], data)
    if error["type"] == "extra_forbidden":
        return f"unknown key {key!r}"
    if error["type"] == "missing":
        return f"missing key {key!r}"
    return f"key {key!r}: {error['msg']} (got {error.get('input')!r})"


def validated(model: type[M], data: object, origin: str) -> M:
    """``data`` as a ``model``, or a UserError naming ``origin``, the key and what was expected."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise UserError(f"{origin}: {_describe(exc.errors()[0], data)}") from None
