"""Only what pyproject.toml cannot say: the package list, so that every folder under runners/ (a runner's spec
and implementation) installs as bench.runners.NAME without being listed by hand."""

from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).parent
CORE = ["bench", "bench.execution", "bench.results", "bench.report", "bench.runners", "bench.models",
        "bench.models.builders", "bench.models.tasks", "bench.suites"]
RUNNERS = sorted(f"bench.runners.{init.parent.name}" for init in (ROOT / "runners").glob("*/__init__.py"))

setup(packages=CORE + RUNNERS)
