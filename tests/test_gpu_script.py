"""scripts/gpu-verify runs once, on a lent GPU machine with no network: its suite must be valid and need nothing
fetched, and the shell scripts must parse, long before anyone has a GPU to find out."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from bench.models.zoo import load_manifest
from bench.suite import parse_suite

SCRIPTS = Path(__file__).parent.parent / "scripts"


def test_the_scripts_parse():
    for name in ("gpu-verify", "gpu-wheels"):
        done = subprocess.run(["bash", "-n", str(SCRIPTS / name)], capture_output=True, text=True)
        assert done.returncode == 0, (name, done.stderr)


def test_the_verify_suite_is_valid_and_built_in_code():
    text = (SCRIPTS / "gpu-verify").read_text()
    toml = re.search(r"<<'TOML'\n(.*?)\nTOML\n", text, re.DOTALL).group(1)
    suite = parse_suite(toml, "scripts/gpu-verify")
    zoo = load_manifest()
    assert suite.models and all(zoo[m].source == "built" for m in suite.models)  # no pip download there
    assert "cuda" in suite.devices and {"fp16", "bf16"} <= set(suite.precisions)
