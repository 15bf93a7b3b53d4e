"""Conversion from ONNX to a runtime's own format: cached, deadline-bound, and a result when it fails.

Artifacts live in the shared cache under ``artifacts/<runner>/<key>/``, where the key hashes the model's
sha256, the converter's name and version, and the conversion options. A finished artifact folder holds a
``MANIFEST.json`` with the sha256 of every file; a folder whose files no longer match is rebuilt. Each case used
to hash its artifact's files again (MNN fp32 12 ms a case, more for a large model); ``VERIFIED.json`` keeps each
file's size, mtime, ctime and inode as they were when its hash last matched, and while they are the same the hash
is not recomputed (a write, a copy or a ``touch`` changes the ctime). A conversion
the converter refused is recorded beside it, as ``<key>.failed.json``, and the next case of that key is the same
``conversion_failed`` row without running the converter again (``bench run --retry-failed`` forgets the records);
a converter stopped by something other than the model (its deadline, a kill, memory, a full disk) is never
recorded.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.cache import sha256_file
from bench.case import Case
from bench.contract import Conversion, ConversionFailed
from bench.files import write_text_atomic

MESSAGE_LINES = 12


class ConverterInterrupted(ConversionFailed):
    """The converter did not finish for a reason outside the model: its deadline, a kill (the OOM killer, bench's
    deadline, an interrupted run), the machine's memory or disk. A ``conversion_failed`` row like any other, but
    never recorded as the model's failure: the next case tries again."""


# Signals that say who stopped a converter, not what it made of the model: SIGKILL (the OOM killer, a deadline),
# SIGTERM / SIGINT / SIGHUP (an interrupted run), SIGBUS (a mapped file whose disk filled up). A converter's own
# crash (SIGSEGV, SIGABRT, SIGFPE, SIGILL) happens again on the same model, and is recorded.
NOT_THE_MODEL = frozenset({signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGBUS})
# What a converter (or a runner's message) says when the machine, not the model, stopped it.
MACHINE_TROUBLE = re.compile(r"No space left on device|ENOSPC|Disk quota exceeded|MemoryError|std::bad_alloc|"
                             r"Cannot allocate memory|out of memory", re.IGNORECASE)
FAILED_SUFFIX = ".failed.json"
VERIFIED = "VERIFIED.json"  # each file's stat as it was when its sha256 last matched MANIFEST.json


def artifact_key(case: Case, converter: str, version: str, options: dict[str, Any]) -> str:
    blob = json.dumps([case.model.sha256, converter, version, options], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _intact(folder: Path) -> bool:
    manifest = folder / "MANIFEST.json"
    if not manifest.is_file():
        return False
    try:
        files = json.loads(manifest.read_text())
        if _unchanged_since_verified(folder, files):
            return True
        if not all(sha256_file(folder / name) == digest for name, digest in files.items()):
            return False
    except (OSError, ValueError):
        return False
    _record_verified(folder, files)
    return True


def _stat(path: Path) -> list[int]:
    # ctime as well as mtime: a process can set a file's mtime back, never its ctime
    s = path.stat()
    return [s.st_size, s.st_mtime_ns, s.st_ctime_ns, s.st_ino]


def _unchanged_since_verified(folder: Path, files: dict[str, str]) -> bool:
    try:
        verified = json.loads((folder / VERIFIED).read_text())
        return set(verified) == set(files) and all(_stat(folder / name) == verified[name] for name in files)
    except (OSError, ValueError, TypeError):
        return False


def _record_verified(folder: Path, files: dict[str, str]) -> None:
    try:
        write_text_atomic(folder / VERIFIED, json.dumps({name: _stat(folder / name) for name in files}))
    except OSError:  # a read-only cache: the next case hashes again, nothing worse
        pass


def cached_artifact(
    case: Case, conversion: Conversion, produce: Callable[[Path], None]
) -> tuple[Path, Conversion]:
    """The artifact folder for ``case``; ``produce(tmp_folder)`` fills it when absent or corrupt. When the
    converter refused this key before, that refusal again (``ConversionFailed``), and ``produce`` is not run."""
    runner_dir = Path(case.cache_dir) / "artifacts" / case.runner
    folder = runner_dir / artifact_key(case, conversion.converter, conversion.converter_version, conversion.options)
    if _intact(folder):
        return folder, Conversion(**{**conversion.__dict__, "cached": True})
    failure = folder.with_name(folder.name + FAILED_SUFFIX)
    _raise_recorded(failure)
    runner_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=runner_dir))
    try:
        produce(tmp)
        files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        if not files or any((tmp / n).stat().st_size == 0 for n in files):
            raise ConversionFailed("the converter reported success but wrote no usable files")
        (tmp / "MANIFEST.json").write_text(json.dumps(files, indent=1))
        _record_verified(tmp, files)  # just hashed; a rename of their folder leaves the files' stat as it is
        _move_into_place(tmp, folder)
    except ConversionFailed as exc:
        if not isinstance(exc, ConverterInterrupted) and not MACHINE_TROUBLE.search(str(exc)):
            _record_failure(failure, exc, conversion)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder, conversion


def _move_into_place(tmp: Path, folder: Path) -> None:
    """``tmp`` becomes ``folder``, replacing a corrupt one. Two conversions of one key may run at once (``bench run``
    converts ahead of timing, several at a time, and two cases can share an artifact): the first one in place
    stays, the other's files are dropped (``tmp`` is removed by the caller)."""
    if _intact(folder):
        return
    shutil.rmtree(folder, ignore_errors=True)
    try:
        os.replace(tmp, folder)
    except OSError as exc:  # the other conversion moved its folder in between
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not _intact(folder):
            raise


def _record_failure(failure: Path, exc: ConversionFailed, conversion: Conversion) -> None:
    record = {"message": str(exc), "ops": exc.ops, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              **conversion.facts()}
    try:
        write_text_atomic(failure, json.dumps(record, indent=1, default=str))
    except OSError:  # a full disk, say: the failure is still the row's; only the next case tries again
        pass


def _raise_recorded(failure: Path) -> None:
    """The recorded refusal, said the same way, and where it came from. A record that cannot be read is ignored:
    the conversion is tried again and a new record replaces it."""
    try:
        record = json.loads(failure.read_text())
        message, ops, date = str(record["message"]), [str(op) for op in record["ops"]], str(record["date"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    raise ConversionFailed(f"{message} (cached failure from {date}; delete {failure} or run with --retry-failed "
                           "to try again)", ops=ops)


def forget_failures(cache_dir: Path) -> int:
    """Remove every recorded conversion failure under ``cache_dir`` (``bench run --retry-failed``); how many."""
    records = list((cache_dir / "artifacts").glob(f"*/*{FAILED_SUFFIX}"))
    for record in records:
        record.unlink(missing_ok=True)
    return len(records)


# A converter may take this share of the case's deadline: the rest is the worker's, to load, time, check, write.
CONVERSION_SHARE = 0.8


def converter_deadline(case: Case, part: float = 1.0) -> float:
    """Seconds one converter subprocess may run: ``part`` of the conversion share of the case's deadline (a runner
    with several converter steps splits it between them), and never under a second."""
    return max(1.0, CONVERSION_SHARE * part * case.timeout_s)


def run_converter(cmd: list[str], timeout_s: float, cwd: Path | None = None) -> str:
    """Run a converter command (argument list, never a shell string) with a deadline; returns its output."""
    try:  # same process group as the worker: killing the worker at its deadline kills the converter too
        done = subprocess.run(
            cmd, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
            timeout=timeout_s, check=False,
        )
    except subprocess.TimeoutExpired:
        raise ConverterInterrupted(f"converter passed its {timeout_s:g} s deadline: {cmd[0]}") from None
    output = (done.stdout or "") + (done.stderr or "")
    if done.returncode != 0:
        how = f"signal {-done.returncode}" if done.returncode < 0 else f"exit code {done.returncode}"
        stopped = -done.returncode in NOT_THE_MODEL or MACHINE_TROUBLE.search(output)
        raise (ConverterInterrupted if stopped else ConversionFailed)(
            f"{Path(cmd[0]).name} failed ({how}): {excerpt(output)}")
    return output


def run_converter_with_account(cmd: list[str], timeout_s: float, folder: Path, cwd: Path | None = None) -> str:
    """:func:`run_converter` for bench's own converter processes, which write ``folder/error.json`` (message and
    ops) when they fail: that account, not the process's exit status, is the row's reason."""
    try:
        return run_converter(cmd, timeout_s, cwd)
    except ConversionFailed as exc:
        error = folder / "error.json"
        if error.exists():
            said = json.loads(error.read_text())
            raise type(exc)(said["message"], ops=said["ops"]) from None  # an interrupted one stays so
        raise


def run_case_converter(case: Case, module: str, src: Path, folder: Path, *extra: str) -> str:
    """bench's own converter module run as ``python -m MODULE CASE_JSON SRC OUT_DIR [EXTRA...]`` in a scratch folder,
    with the case's converter deadline; its account (error.json) is the reason when it fails."""
    with tempfile.TemporaryDirectory() as work:
        case_file = Path(work) / "case.json"
        case_file.write_text(case.to_json())
        cmd = [sys.executable, "-m", module, str(case_file), str(src), str(folder), *extra]
        return run_converter_with_account(cmd, converter_deadline(case), folder, cwd=Path(work))


def cached_by_case_converter(case: Case, conversion: Conversion, module: str, src: Path,
                             *extra: str) -> tuple[Path, Conversion]:
    """``cached_artifact`` for ``case``, made (when absent) by bench's converter ``module`` in a subprocess
    (:func:`run_case_converter`)."""

    def produce(folder: Path) -> None:
        run_case_converter(case, module, src, folder, *extra)

    return cached_artifact(case, conversion, produce)


def excerpt(text: str, count: int = MESSAGE_LINES) -> str:
    """The first lines and the last: converters echo their options first and say what failed last."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > count:
        lines = [*lines[:3], "...", *lines[-(count - 3):]]
    return " | ".join(lines)


def first_lines(text: str, count: int = MESSAGE_LINES) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(lines[:count])
