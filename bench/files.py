"""Files written whole or not at all, small files read where they may be absent, and first lines of messages:
the one place for each, used by the cache, the store, the worker, the references and the report."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(target: Path, write: Callable[[BinaryIO], object]) -> Path:
    """``write(f)`` into a hidden temp file beside ``target``, flushed and fsynced, then renamed over it and the
    folder fsynced: a reader (or a crash) sees the old file or the whole new one, never part of it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(target.parent)
    return target


def write_bytes_atomic(target: Path, data: bytes) -> Path:
    return write_atomic(target, lambda f: f.write(data))


def write_text_atomic(target: Path, text: str) -> Path:
    return write_bytes_atomic(target, text.encode("utf-8"))


def read_text(path: str | Path) -> str | None:
    """The file's text, stripped, or None where it cannot be read (absent, no permission, not a file)."""
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def first_line(value: BaseException | str | None, limit: int = 0) -> str:
    """The first line of an error or a message ("" for none; an exception without a message gives its type
    name), cut to ``limit`` characters with an ellipsis when ``limit`` is set: library errors can run to pages."""
    text = str(value).strip() if value is not None else ""
    line = text.splitlines()[0] if text else (type(value).__name__ if isinstance(value, BaseException) else "")
    return line if not limit or len(line) <= limit else line[: limit - 1] + "…"


NAME_MAX = 255  # bytes in one name of a path, on ext4, xfs, btrfs, tmpfs and most others


def os_reason(exc: OSError, path: str | Path | None = None) -> str:
    """An OS error as a user reads it. A name too long for the filesystem says which name, its length and the
    limit: the culprit is a name in ``path`` (or the error's own file), not the folder it would go in."""
    if exc.errno != errno.ENAMETOOLONG:
        return exc.strerror or str(exc)
    parts = Path(path or exc.filename or "").parts
    longest = max(parts, key=lambda part: len(os.fsencode(part)), default="")
    size = len(os.fsencode(longest))
    if size <= NAME_MAX:
        return f"the path is {len(os.fsencode(str(path or exc.filename)))} bytes, longer than the system allows"
    return f"the name {first_line(longest, 40)!r} is {size} bytes; the filesystem takes at most {NAME_MAX} a name"
