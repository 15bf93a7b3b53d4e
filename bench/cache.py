"""The content-addressed cache: zoo models, reference outputs and (later) converted artifacts.

Default ``$XDG_CACHE_HOME/bench`` (``~/.cache/bench``), overridden by ``BENCH_CACHE_DIR`` or ``--cache-dir``.
Entries are verified by hash on every use; a corrupt or truncated one is rebuilt, never used. The hashes beside an
entry are only as good as whoever wrote them, so the cache must be this user's alone (:func:`open_cache`, before
a command uses it): a folder another user owns or can write is refused, an entry one could have planted removed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench.files import os_reason


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


# Mode bits that let someone other than the owner write: a cache entry with either was never only ours.
OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH
# Top-level folders of the cache that bench itself never reads, left alone by the walk: scripts/arm64 keeps its
# Debian root in ``arm64/`` (whose /tmp is 1777 by design: removing it would break the emulated runs).
# The version axis's environments (``envs/``, bench.environments) hold links by design (a venv's bin/python): each is
# checked as a whole before use instead.
NOT_OURS = frozenset({"arm64", "envs"})


def ownership_problem(info: os.stat_result) -> str:
    """Why a file or folder with this ``stat`` could hold another user's bytes ("" when it cannot): the rule the
    schema template's folder follows too (``bench/results/store.py``)."""
    if info.st_uid != os.getuid():
        return f"owned by uid {info.st_uid}, not by you (uid {os.getuid()})"
    if info.st_mode & OTHERS_WRITE:
        who = " and ".join(w for w, bit in (("group", stat.S_IWGRP), ("others", stat.S_IWOTH)) if info.st_mode & bit)
        return f"writable by {who} (mode {stat.S_IMODE(info.st_mode):o})"
    return ""


def open_cache(cache_dir: Path) -> list[str]:
    """Make ``cache_dir`` ready for a command that reads and writes it, before anything in it is used: the folder
    must be this user's alone (else a ``UserError``); every entry another user could have made or changed is
    removed (returned as one note each: it is rebuilt when needed), and from here on nothing this process or its
    children create is writable by others. Entries checked once suffice: in a folder only we can write, nobody
    else can add or change one afterwards."""
    _check_root(cache_dir)
    os.umask(os.umask(0o077) | 0o022)  # converters, pip and TVM write entries too: they inherit it
    return [_remove_untrusted(path, why, cache_dir) for path, why in _untrusted_entries(cache_dir)]


def _user_error(message: str) -> Exception:
    from bench.errors import UserError  # here: workers import this module, and never pydantic

    return UserError(message)


def _unusable(flag: str, exc: OSError, cache_dir: Path) -> Exception:
    return _user_error(f"{flag}: cannot be the model cache ({os_reason(exc, cache_dir)}); give a writable folder "
                       "(or set BENCH_CACHE_DIR)")


def _check_root(cache_dir: Path) -> None:
    flag = f"--cache-dir {cache_dir}"
    try:
        cache_dir.mkdir(mode=0o700, parents=True)
    except FileExistsError:  # the usual case, or a file: judged below like any other
        pass
    except OSError as exc:
        raise _unusable(flag, exc, cache_dir) from None
    try:
        info = cache_dir.stat()  # a symlink the user made to a folder of theirs is fine: its target is judged
    except OSError as exc:
        raise _unusable(flag, exc, cache_dir) from None
    if not stat.S_ISDIR(info.st_mode):
        raise _user_error(f"{flag}: is a file, not a folder; give a writable folder (or set BENCH_CACHE_DIR)")
    problem = ownership_problem(info)
    if problem:
        fix = "chmod go-w it if only you wrote to it, or" if info.st_uid == os.getuid() else "use"
        raise _user_error(f"{flag}: {problem}; another user could plant converted models and references in it: "
                          f"{fix} a folder of your own (--cache-dir or BENCH_CACHE_DIR)")
    try:
        with tempfile.NamedTemporaryFile(dir=cache_dir, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise _unusable(flag, exc, cache_dir) from None


def _entry_problem(path: Path) -> str:
    try:
        info = path.lstat()
    except OSError:  # gone since it was listed: a concurrent run of ours renamed its temp entry
        return ""
    if not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)):
        return "not a plain file or folder (bench writes no links there)"
    return ownership_problem(info)


def _untrusted_entries(root: Path) -> Iterator[tuple[Path, str]]:
    """Every entry under ``root`` that is not plainly ours, outermost first (a folder's contents go with it)."""
    for folder, dirs, files in os.walk(root):  # never follows a link: a link is itself an untrusted entry
        if folder == str(root):
            dirs[:] = [d for d in dirs if d not in NOT_OURS]
        for name in [*dirs, *files]:
            problem = _entry_problem(Path(folder, name))
            if problem:
                if name in dirs:
                    dirs.remove(name)
                yield Path(folder, name), problem


def _remove_untrusted(path: Path, problem: str, root: Path) -> str:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise _user_error(f"model cache entry {path}: {problem}, so not trusted, and bench cannot remove it "
                          f"({os_reason(exc, path)}); remove it as its owner or root, or give another "
                          "--cache-dir") from None
    return f"model cache: removed {path.relative_to(root)} ({problem}): not trusted; it is rebuilt when needed"
