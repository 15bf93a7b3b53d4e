"""Names in "package.module:attribute" form resolved to objects: runner implementations (in the worker), the
zoo's model builders and task scorers. Its own module so that models/ depends on no part of the plugin interface."""

from __future__ import annotations

import importlib
from typing import Any


def load_object(path: str) -> Any:
    """Resolve "package.module:attribute"."""
    module_name, _, attr = path.partition(":")
    return getattr(importlib.import_module(module_name), attr)
