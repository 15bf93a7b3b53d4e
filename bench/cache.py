"""The content-addressed cache: zoo models, reference outputs and (later) converted artifacts.

Default ``$XDG_CACHE_HOME/bench`` (``~/.cache/bench``), overridden by ``BENCH_CACHE_DIR`` or ``--cache-dir``.
Entries are verified by hash on every use; a corrupt or truncated one is rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def default_cache_dir() -> Path:
    if os.environ.get("BENCH_CACHE_DIR"):
        return Path(os.environ["BENCH_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bench"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified(path: Path, sha256: str) -> bool:
    """True when ``path`` exists and holds exactly the bytes with this hash."""
    return path.is_file() and sha256_file(path) == sha256
