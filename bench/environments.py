"""The version axis: one isolated Python environment per runtime release, made with uv before anything is timed.

A suite's ``versions`` (or ``--versions onnxruntime==1.31.0,1.32.0``) plans each case of a runner once per release
of its distribution (``Case.runtime_version``). Before the references, the conversions ahead and the timed cases,
``prepare`` makes each release's environment once: ``uv venv`` on bench's own interpreter, then ``uv pip install``
of the release and of the libraries the worker imports beside it, pinned to bench's own versions (numpy, onnx,
ml_dtypes), so that the runtime is all that differs between two releases' rows. bench itself goes in without
dependencies: a ``.pth`` file points the environment at the very source this process runs (its four packages,
wherever they are installed), so the worker there reads the same case and writes the same result as any other.

Environments live in the cache (``envs/<key>``), keyed by the requirements and the interpreter, with the resolved
packages (``uv pip freeze``) recorded beside them in ``bench-env.json``; a made one is reused without a network.
A case whose environment cannot be made (no uv, no package index reachable, a release that does not exist or does
not resolve) is an ``unavailable`` row that says why; nothing is downloaded once timing starts. The worker of a
versioned case is spawned on the environment's interpreter (the fork server is bench's interpreter): same
isolation, deadline and row as any case. Making an environment here is timed into the rows (``runtime_env_ms``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import launcher
from bench.cache import ownership_problem
from bench.contract import Status
from bench.files import write_text_atomic
from bench.plan import PlannedCase
from bench.registry import Registry

FOLDER = "envs"  # under the cache
UV_CACHE = ".uv"  # uv's own cache, under FOLDER
RECORD = "bench-env.json"  # what was asked and what was resolved, written last: an environment without it is unmade
# What bench's worker imports beside a runtime, pinned to bench's own versions: numpy and onnx everywhere, pydantic
# (bench.errors) and Pillow with matplotlib's fonts for a zoo model's parity inputs and task scores.
WORKER_PACKAGES = ("numpy", "onnx", "ml_dtypes", "pydantic", "pillow", "matplotlib")
BENCH_PACKAGES = ("bench", "bench.runners", "bench.models", "bench.suites")  # setup's package-dir: four roots
MAKE_TIMEOUT_S = 600.0  # one uv command; a cold install of a runtime wheel is seconds on a reachable index
# What uv says when it cannot reach an index (its resolver's errors otherwise name the package or the version)
NO_INDEX_MARKERS = ("failed to fetch", "error sending request", "connect", "dns error", "network", "offline",
                    "timed out", "certificate")


@dataclass(frozen=True)
class Release:
    """One release of a runner's distribution, as the version axis asks for it."""

    distribution: str
    version: str
    extras: tuple[str, ...] = ()  # the runner's environment_extras: installed without dependencies

    def __str__(self) -> str:
        return f"{self.distribution}=={self.version}"

    def requirements(self) -> list[str]:
        """The release, and the worker's own libraries at the versions bench runs with."""
        return [str(self), *(f"{name}=={importlib.metadata.version(name)}" for name in WORKER_PACKAGES)]

    def without_dependencies(self) -> list[str]:
        """The runner's extras at the versions installed beside bench (one not installed here is left out: the
        case then says what it says here)."""
        return [f"{name}=={version}" for name in self.extras if (version := _installed(name))]


def _installed(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class Environment:
    """A release's environment: its interpreter (None where it could not be made, and why), and what making it
    took in this run (None: found made)."""

    python: str | None
    reason: str = ""
    made_ms: float | None = None


def base_interpreter() -> str:
    """The interpreter bench's own venv was made from: the environments are made on it too."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def env_key(release: Release) -> str:
    """The cache key of a release's environment: its requirements, the interpreter and the platform."""
    identity = {"requirements": release.requirements(), "no_deps": release.without_dependencies(),
                "python": sys.version, "interpreter": base_interpreter(),
                "platform": platform.platform(), "machine": platform.machine()}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]


def env_folder(cache_dir: Path, release: Release) -> Path:
    return cache_dir / FOLDER / f"{release.distribution}-{release.version}-{env_key(release)}"


def _python(folder: Path) -> Path:
    return folder / "bin" / "python"


def _made(folder: Path) -> bool:
    """The environment is complete (its record was written last) and only ours (cache.NOT_OURS: the cache's walk
    leaves envs/ alone, for a venv holds links)."""
    try:
        return ((folder / RECORD).is_file() and _python(folder).exists()
                and not ownership_problem(folder.stat()) and not ownership_problem((folder / "bin").stat()))
    except OSError:
        return False


def uv_command() -> str | None:
    """uv beside bench's interpreter (installed into its venv by scripts/install), else on PATH."""
    beside = Path(sys.executable).parent / "uv"
    return str(beside) if beside.is_file() else shutil.which("uv")


class MakeFailed(Exception):
    """uv could not make the environment; the message is the row's reason."""


def _uv(args: list[str], logs: Path, env: dict[str, str]) -> str:
    """Run uv with a deadline (its process group killed past it); its output, or MakeFailed with its last line."""
    child = launcher.spawn(args, launcher.Logs(logs), env)
    ended = launcher.wait(child, MAKE_TIMEOUT_S, launcher.Logs(logs))
    output = logs.read_text(errors="replace")
    if ended.how is launcher.Ending.TIMED_OUT:
        raise MakeFailed(f"uv took over {MAKE_TIMEOUT_S:g} s")
    if ended.returncode != 0:
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        first = next((line for line in lines if line.lower().startswith("error")), "")
        raise MakeFailed(" / ".join(dict.fromkeys(filter(None, [first, *lines[-1:]])))
                         or f"uv exited with code {ended.returncode}")
    return output


def _bench_source_module() -> str:
    """A module for the environment's site-packages that imports bench's four packages from where this process
    imports them (an editable checkout or an installed copy alike), installed by a .pth line."""
    parents = {}
    for name in BENCH_PACKAGES:
        spec = importlib.util.find_spec(name)
        assert spec and spec.submodule_search_locations, name  # bench's own packages: always there
        parents[name] = str(Path(list(spec.submodule_search_locations)[0]).parent)
    return (
        '"""bench, without its dependencies: the source the benchmarking process runs (bench.environments)."""\n'
        "import importlib.machinery\nimport sys\n\n"
        f"PARENTS = {json.dumps(parents, indent=1)}\n\n\n"
        "class BenchSource:\n"
        "    @classmethod\n"
        "    def find_spec(cls, name, path=None, target=None):\n"
        "        parent = PARENTS.get(name)\n"
        "        return importlib.machinery.PathFinder.find_spec(name, [parent]) if parent else None\n\n\n"
        "sys.meta_path.insert(0, BenchSource)\n"
    )


def _site_packages(folder: Path) -> Path:
    return folder / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def uv_environment(folder: Path) -> dict[str, str]:
    """uv's environment: never a Python download, and its cache in bench's cache (``envs/.uv``, beside the
    environments, so that uv hardlinks from it and nothing lands outside bench's cache) unless UV_CACHE_DIR names
    another."""
    return {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "VIRTUAL_ENV": str(folder),
            "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR") or str(folder.parent / UV_CACHE)}


def _make(release: Release, folder: Path, uv: str) -> None:
    """Make the environment in ``folder`` (a fresh temporary one, renamed into place by the caller)."""
    env = uv_environment(folder)
    with tempfile.TemporaryDirectory(prefix="bench-env-") as tmp:
        logs = Path(tmp, "uv.log")
        _uv([uv, "venv", "--quiet", "--relocatable", "--python", base_interpreter(), str(folder)], logs, env)
        _uv([uv, "pip", "install", "--quiet", "--no-progress", "--python", str(_python(folder)),
             *release.requirements()], logs, env)
        if extras := release.without_dependencies():
            _uv([uv, "pip", "install", "--quiet", "--no-progress", "--no-deps", "--python", str(_python(folder)),
                 *extras], logs, env)
        site = _site_packages(folder)
        (site / "_bench_source.py").write_text(_bench_source_module())
        (site / "_bench_source.pth").write_text("import _bench_source\n")
        frozen = _uv([uv, "pip", "freeze", "--python", str(_python(folder))], logs, env)
    resolved = [line.strip() for line in frozen.splitlines() if "==" in line or " @ " in line]  # not uv's notes
    record = {"requirements": release.requirements(), "resolved": resolved, "interpreter": base_interpreter()}
    write_text_atomic(folder / RECORD, json.dumps(record, indent=1) + "\n")


def _why(release: Release, failure: str) -> str:
    if any(marker in failure.lower() for marker in NO_INDEX_MARKERS):
        return (f"{release}: no package index reachable to make its environment, and none is cached (uv: {failure}); "
                "nothing is downloaded once timing starts")
    return f"{release}: uv could not make its environment ({failure})"


def ensure(release: Release, cache_dir: Path) -> Environment:
    """The release's environment: found made in the cache, else made now (and timed), else why not."""
    folder = env_folder(cache_dir, release)
    if _made(folder):
        return Environment(str(_python(folder)))
    uv = uv_command()
    if uv is None:
        return Environment(None, f"{release}: uv is not installed, so no environment can be made for it "
                                 "(pip install uv; scripts/install installs it)")
    shutil.rmtree(folder, ignore_errors=True)  # an unfinished or untrusted one
    making = folder.with_name(f".making-{folder.name}-{os.getpid()}")
    shutil.rmtree(making, ignore_errors=True)
    making.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        _make(release, making, uv)
        making.rename(folder)
    except MakeFailed as exc:
        return Environment(None, _why(release, str(exc)))
    except OSError as exc:
        if not _made(folder):  # another run renamed the same environment into place first: use it
            return Environment(None, f"{release}: its environment could not be written ({exc})")
    finally:
        shutil.rmtree(making, ignore_errors=True)
    return Environment(str(_python(folder)), made_ms=(time.monotonic() - started) * 1e3)


@dataclass(frozen=True)
class Environments:
    """The environments a run's versioned cases run in, by release; ``mark`` puts their making on the rows."""

    made: dict[Release, Environment]

    def mark(self, case_release: Release | None, row: dict[str, Any]) -> dict[str, Any]:
        """``row`` with what making its environment took in this run, and an error in place of a timing whose
        worker read back another release than the one asked for (a row must never carry another's label)."""
        environment = self.made.get(case_release) if case_release else None
        if environment is None:
            return row
        if environment.made_ms is not None:
            row = {**row, "runtime_env_ms": environment.made_ms}
        read = row.get("runner_version")
        if case_release and row.get("status") == Status.OK and read and not same_release(read, case_release.version):
            return {**row, "status": Status.ERROR,
                    "error": f"asked for {case_release}, but the worker's runtime says {read}: its environment does "
                             "not hold the release asked for, so the timing is not the release's"}
        return row


def same_release(read: str, asked: str) -> bool:
    """A runtime's own version string names the release asked for (PEP 440 equality, a local label such as
    "+cpu" aside), else the same text."""
    try:
        from packaging.version import Version

        return Version(Version(read).public) == Version(Version(asked).public)
    except Exception:  # packaging missing, or a version string it cannot read
        return read == asked


def release_of(planned: PlannedCase, registry: Registry) -> Release | None:
    spec = registry.specs.get(planned.case.runner)
    if spec is None or not planned.case.runtime_version:
        return None
    return Release(spec.distribution, planned.case.runtime_version, spec.environment_extras)


def prepare(planned: Sequence[PlannedCase], done: set[str], registry: Registry,
            say: Callable[[str], None]) -> tuple[list[PlannedCase], Environments]:
    """Make every environment the cases still to run need, once each, before anything is timed; the plan back with
    each versioned case on its environment's interpreter, or unavailable with the reason."""
    wanted = {r: Path(p.case.cache_dir) for p in planned
              if not p.skip_status and p.case.key not in done and (r := release_of(p, registry))}
    if not wanted:
        return list(planned), Environments({})
    started = time.monotonic()
    made = {release: ensure(release, cache_dir) for release, cache_dir in wanted.items()}
    new = sum(e.made_ms is not None for e in made.values())
    failed = sum(e.python is None for e in made.values())
    unavailable = f", {failed} unavailable (their cases say why)" if failed else ""
    say(f"runtime environments in {time.monotonic() - started:.0f} s: {new} made, "
        f"{len(made) - new - failed} already made{unavailable}")
    return [_on_environment(p, made.get(r) if (r := release_of(p, registry)) else None) for p in planned], \
        Environments(made)


def _on_environment(p: PlannedCase, environment: Environment | None) -> PlannedCase:
    if p.skip_status or environment is None:
        return p
    if environment.python is None:
        return dataclasses.replace(p, skip_status=Status.UNAVAILABLE, skip_reason=environment.reason)
    return dataclasses.replace(p, case=dataclasses.replace(p.case, python=environment.python))
