"""Suite files (TOML) parsed into a validated object at the edge; the core never sees raw strings.

Example::

    name = "smoke"
    models = ["tiny_mlp", "tiny_cnn"]
    runners = ["onnxruntime"]      # or ["*"]: every runner bench knows
    devices = ["cpu"]
    precisions = ["fp32"]
    batch_sizes = [1]
    threads = [1, "all"]           # "all": every CPU this process may use
    scenarios = ["latency"]
    timeout_s = 60

    [versions]                     # the version axis: these releases, each in an environment of its own
    onnxruntime = ["1.30.0", "1.31.0"]

    [timing]
    min_time_s = 0.3
    max_time_s = 2.0

    [loadgen]                      # the server and offline scenarios (MLPerf LoadGen)
    p99_ms = 100                   # the server's p99 latency bound, for every model ...
    p99_ms_by_model = { resnet50 = 200 }   # ... but these
    min_duration_s = 1.0           # each LoadGen trial, at least
    search_time_s = 60             # a server case starts no trial of its search past this (at most timeout_s / 2)
"""

from __future__ import annotations

import os
import stat
import sys
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from bench.case import LoadGenPolicy, Precision, Scenario, TimingPolicy
from bench.errors import Strict, UserError, validated

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DAY_S = 24 * 3600  # upper bounds: past them a value is a typo, and 1e308 seconds overflows the clock
MAX_ITERATIONS = 10**8
# The bounds a suite file and the command line share (bench.options): past them a value is a typo, and
# 3000000000 threads overflowed the row writer's int32 column after the case had run
MAX_THREADS = 4096
MAX_BATCH = 65536
MAX_TIMEOUT_S = 7 * DAY_S
# A distribution's name and a release as PEP 508 / 440 write them: nothing else reaches uv's command line.
DISTRIBUTION = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
RELEASE = r"^[0-9][0-9A-Za-z.+!-]*$"
DEFAULT_TIMEOUT_S = 300.0  # a case's deadline when the suite names none (bench.case.DEFAULT_TIMEOUT_S says why three)


class TimingConfig(Strict):
    warmup_time_s: float = Field(0.2, ge=0, le=DAY_S, allow_inf_nan=False)
    warmup_iterations: int = Field(3, ge=0, le=MAX_ITERATIONS)
    min_iterations: int = Field(10, ge=1, le=MAX_ITERATIONS)
    min_time_s: float = Field(1.0, ge=0, le=DAY_S, allow_inf_nan=False)
    max_time_s: float = Field(10.0, gt=0, le=DAY_S, allow_inf_nan=False)
    target_rel_ci: float = Field(0.01, gt=0, lt=1)

    @model_validator(mode="after")
    def _min_within_max(self) -> TimingConfig:
        if self.min_time_s > self.max_time_s:
            raise ValueError(f"min_time_s ({self.min_time_s:g}) is above max_time_s ({self.max_time_s:g})")
        return self

    def policy(self) -> TimingPolicy:
        return TimingPolicy(**self.model_dump())


class LoadGenConfig(Strict):
    """The ``[loadgen]`` table: the server scenario's p99 bound (per model, with a default) and each LoadGen
    trial's minimum length; the server's search for its highest VALID QPS is bounded by ``search_time_s``."""

    p99_ms: float = Field(100.0, gt=0, le=DAY_S * 1000, allow_inf_nan=False)
    p99_ms_by_model: dict[str, Annotated[float, Field(gt=0, le=DAY_S * 1000, allow_inf_nan=False)]] = {}
    min_duration_s: float = Field(1.0, gt=0, le=DAY_S, allow_inf_nan=False)
    min_queries: int = Field(500, ge=1, le=MAX_ITERATIONS)
    search_time_s: float = Field(60.0, gt=0, le=MAX_TIMEOUT_S, allow_inf_nan=False)

    def policy(self, model: str, timeout_s: float) -> LoadGenPolicy:
        """``model``'s policy; its search within half the case's deadline (``timeout_s``, a suite's or --timeout's),
        for the search runs inside the case's worker, after the model's load and before its parity check."""
        return LoadGenPolicy(p99_bound_ms=self.p99_ms_by_model.get(model, self.p99_ms),
                             min_duration_s=self.min_duration_s, min_queries=self.min_queries,
                             search_time_s=min(self.search_time_s, timeout_s / 2))


class Suite(Strict):
    name: str
    description: str = ""
    models: list[str] = Field(min_length=1)
    runners: list[str] = Field(["*"], min_length=1)
    devices: list[str] = Field(["cpu"], min_length=1)
    precisions: list[Precision] = Field(["fp32"], min_length=1)
    batch_sizes: list[Annotated[int, Field(ge=1, le=MAX_BATCH)]] = Field([1], min_length=1)
    threads: list[Annotated[int, Field(ge=1, le=MAX_THREADS)] | Literal["all"]] = Field([1], min_length=1)
    scenarios: list[Scenario] = Field(["latency"], min_length=1)
    # Which cores a case runs on (bench.topology): all, or one cluster of a big.LITTLE chip, the worker pinned to
    # it and "all" threads meaning its size. What ncnn's powersave and MNN's power mode are for, done alike for all.
    cores: list[Literal["all", "big", "little", "prime"]] = Field(["all"], min_length=1)
    timeout_s: float = Field(DEFAULT_TIMEOUT_S, gt=0, le=MAX_TIMEOUT_S, allow_inf_nan=False)
    seed: int = 0
    # How many of a real model's labelled samples task accuracy scores (default: all its set has, e.g. 200 OCR
    # crops); fewer for a slow machine or an emulated one. Each row says how many it scored (task_n).
    task_samples: int | None = Field(None, ge=1, le=100_000)
    # The version axis (bench.environments): per runner's distribution, the releases to run side by side, each in
    # an environment of its own made before timing; a runner not named runs on the release installed beside bench.
    versions: dict[Annotated[str, Field(pattern=DISTRIBUTION)],
                   Annotated[list[Annotated[str, Field(pattern=RELEASE)]], Field(min_length=1)]] = {}
    # After each case's timed loop and parity, a per-op pass with the runtime's own profiler (bench.execution.profile;
    # --profile does the same): the ops table, and the pass's cost in profile_ms
    profile: bool = False
    timing: TimingConfig = TimingConfig()
    loadgen: LoadGenConfig = LoadGenConfig()

    @field_validator("versions")
    @classmethod
    def _releases_once(cls, versions: dict[str, list[str]]) -> dict[str, list[str]]:
        for distribution, releases in versions.items():
            repeated = sorted({r for r in releases if releases.count(r) > 1})
            if repeated:
                raise ValueError(f"{distribution}: listed more than once: {', '.join(repeated)}")
        return versions

    @field_validator("models", "runners", "devices", "precisions", "batch_sizes", "threads", "scenarios", "cores")
    @classmethod
    def _listed_once(cls, values: list) -> list:
        repeated = sorted({str(v) for v in values if values.count(v) > 1})
        if repeated:  # each would plan (and run) the same cases twice
            raise ValueError(f"listed more than once: {', '.join(repeated)}")
        return values


def parse_suite(text: str, origin: str) -> Suite:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{origin}: TOML syntax error: {exc}") from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise UserError(f"{origin}: TOML nested too deeply to be a suite file") from None
    return validated(Suite, data, origin)


MAX_SUITE_BYTES = 1 << 20  # a suite file is a few hundred bytes; the cap bounds a read of /dev/zero or a huge file


def read_suite_file(path: Path) -> str:
    """The text of the suite file at ``path``: a regular file of at most 1 MiB of UTF-8, else one line naming it.
    Opened without blocking, so a named pipe is refused at once instead of waiting for a writer."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise UserError(f"{path}: not a regular file (a device, a pipe or a folder); a suite is a .toml file")
            data = f.read(MAX_SUITE_BYTES + 1)
    except OSError as exc:
        raise UserError(f"{path}: cannot read suite file ({exc.strerror or exc})") from None
    if len(data) > MAX_SUITE_BYTES:
        raise UserError(f"{path}: larger than {MAX_SUITE_BYTES // (1 << 20)} MiB; a suite file is a short TOML file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 at byte {exc.start} (0x{data[exc.start]:02x}); TOML files are UTF-8, "
                        "save it as UTF-8") from None


def with_axes(suite: Suite, **axes: list | dict | None) -> Suite:
    """``suite`` with the command line's values replacing its axes (``--precisions`` replaces ``precisions``),
    each checked as a suite file's would be; an error names the flag."""
    for name, values in axes.items():
        if values is not None:
            suite = validated(Suite, {**suite.model_dump(), name: values}, f"--{name.replace('_', '-')}")
    return suite


def builtin_suites() -> dict[str, str]:
    """Suite name -> TOML text of the suites shipped with bench."""
    folder = resources.files("bench.suites")
    return {p.name[:-5]: p.read_text() for p in folder.iterdir() if p.name.endswith(".toml")}


def load_suite(name_or_path: str) -> Suite:
    """A shipped suite by name, or a suite file by path."""
    builtin = builtin_suites()
    if name_or_path in builtin:
        return parse_suite(builtin[name_or_path], f"suites/{name_or_path}.toml")
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        return parse_suite(read_suite_file(path), str(path))
    raise UserError(f"unknown suite {name_or_path!r}; known suites: {', '.join(sorted(builtin))}, or a .toml path")
