"""Helpers shared by the runner tests: the user's own small ONNX graphs, run through the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from onnx import helper, save

from bench.results import store
from bench.results.uri import Location

USER_SUITE = """
name = "{runner}-user-model"
models = ["tiny_cnn"]
runners = ["{runner}"]
threads = [1]
timeout_s = 120

[timing]
warmup_time_s = 0.02
min_time_s = 0.1
max_time_s = 0.5
"""


def _save_graph(path: Path, nodes, inputs, outputs, initializers=()) -> Path:
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, str(path))
    return path


@pytest.fixture
def save_graph():
    """``save_graph(path, nodes, inputs, outputs, initializers=())``: a one-off ONNX graph (opset 17, IR 8)."""
    return _save_graph


@pytest.fixture
def run_user_model(bench_cli):
    """``bench run --model PATH`` on one runner, for real, as a user would; returns the one row it stored."""

    def run(runner: str, path: Path, *args: str) -> dict:
        suite = path.with_name("suite.toml")
        suite.write_text(USER_SUITE.format(runner=runner))
        results = path.with_name("results")
        done = bench_cli("run", "--suite", str(suite), "--model", str(path), "--results", str(results), *args)
        assert done.returncode == 0, done.stderr
        rows = store.read_cases(Location.resolve(results)).to_pylist()
        assert len(rows) == 1
        return rows[0]

    return run
