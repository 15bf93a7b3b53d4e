"""README's notebook example, run as written against a real run's results, so it cannot drift."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
FAST = str(Path(__file__).parent / "fixtures" / "fast.toml")


def notebook_example() -> str:
    text = README.read_text()
    after = text.split("In a\nnotebook", 1)[1]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


@pytest.mark.slow  # real runs, ~10-30 s
def test_the_notebook_example_prints_the_scenario_table(bench_cli, tmp_path):
    code = notebook_example()
    assert "r.load(\"results\")" in code and "r.scenarios(df)" in code and code.count("\n") == 5  # five lines
    assert bench_cli("run", "--suite", FAST, "--models", "tiny_mlp,tiny_cnn", "--results", "results").returncode == 0
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "realtime, 1 thread" in done.stdout and "tiny_cnn" in done.stdout and "onnxruntime" in done.stdout
    assert "median_ms" in done.stdout or "tiny_mlp" in done.stdout
