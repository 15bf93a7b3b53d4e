"""Conversion from ONNX to a runtime's own format: cached, deadline-bound, and a result when it fails.

Artifacts live in the shared cache under ``artifacts/<runner>/<key>/``, where the key hashes the model's
sha256, the converter's name and version, and the conversion options. A finished artifact folder holds a
``MANIFEST.json`` with the sha256 of every file; a folder whose files no longer match is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.cache import sha256_file
from bench.case import Case
from bench.contract import Conversion, ConversionFailed

MESSAGE_LINES = 12


def artifact_key(case: Case, converter: str, version: str, options: dict[str, Any]) -> str:
    blob = json.dumps([case.model.sha256, converter, version, options], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _intact(folder: Path) -> bool:
    manifest = folder / "MANIFEST.json"
    if not manifest.is_file():
        return False
    try:
        files = json.loads(manifest.read_text())
        return all(sha256_file(folder / name) == digest for name, digest in files.items())
    except (OSError, ValueError):
        return False


def cached_artifact(
    case: Case, conversion: Conversion, produce: Callable[[Path], None]
) -> tuple[Path, Conversion]:
    """The artifact folder for ``case``; ``produce(tmp_folder)`` fills it when absent or corrupt."""
    runner_dir = Path(case.cache_dir) / "artifacts" / case.runner
    folder = runner_dir / artifact_key(case, conversion.converter, conversion.converter_version, conversion.options)
    if _intact(folder):
        return folder, Conversion(**{**conversion.__dict__, "cached": True})
    runner_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=runner_dir))
    try:
        produce(tmp)
        files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        if not files or any((tmp / n).stat().st_size == 0 for n in files):
            raise ConversionFailed("the converter reported success but wrote no usable files")
        (tmp / "MANIFEST.json").write_text(json.dumps(files, indent=1))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder, conversion


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
        raise ConversionFailed(f"converter passed its {timeout_s:g} s deadline: {cmd[0]}") from None
    output = (done.stdout or "") + (done.stderr or "")
    if done.returncode != 0:
        how = f"signal {-done.returncode}" if done.returncode < 0 else f"exit code {done.returncode}"
        raise ConversionFailed(f"{Path(cmd[0]).name} failed ({how}): {excerpt(output)}")
    return output


def run_converter_with_account(cmd: list[str], timeout_s: float, folder: Path, cwd: Path | None = None) -> str:
    """:func:`run_converter` for bench's own converter processes, which write ``folder/error.json`` (message and
    ops) when they fail: that account, not the process's exit status, is the row's reason."""
    try:
        return run_converter(cmd, timeout_s, cwd)
    except ConversionFailed:
        error = folder / "error.json"
        if error.exists():
            said = json.loads(error.read_text())
            raise ConversionFailed(said["message"], ops=said["ops"]) from None
        raise


def excerpt(text: str, count: int = MESSAGE_LINES) -> str:
    """The first lines and the last: converters echo their options first and say what failed last."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > count:
        lines = [*lines[:3], "...", *lines[-(count - 3):]]
    return " | ".join(lines)


def first_lines(text: str, count: int = MESSAGE_LINES) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(lines[:count])
