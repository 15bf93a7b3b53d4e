"""A runner's name as a report shows it: with the release the version axis ran (``onnxruntime 1.31.0``) and the
configuration its row says it ran in, where the runner reports one (``report_label`` in its facts, see
``bench.plugin.Runner.facts``). TVM's rows say ``untuned`` or ``tuned: N trials``, so that no table, chart or
summary presents untuned TVM as TVM's speed. A model from PyTorch (``bench run --torch``) names the path it took,
its ``source_path``: "PyTorch -> ONNX -> openvino", "PyTorch -> ExecuTorch"."""

from __future__ import annotations

import json
from typing import Any

LABEL_FACT = "report_label"
BARE = "runner_bare"  # the runner's own name, kept beside its label
TORCH_PATH = "PyTorch -> "  # how every source_path of a model from PyTorch begins (RunnerSpec.source_path)


def _label_fact(facts: Any) -> str:
    if isinstance(facts, str):
        try:
            facts = json.loads(facts)
        except ValueError:
            return ""
    label = facts.get(LABEL_FACT) if isinstance(facts, dict) else None
    return label if isinstance(label, str) else ""


def runner_label(case: dict[str, Any]) -> str:
    """``tvm (untuned)`` for a row whose runner facts carry a label; ``onnxruntime 1.31.0`` for a row of the version
    axis (a release beside others: its own series); the runner's name otherwise. A model from PyTorch names its path
    instead of the runner: "PyTorch -> ONNX -> openvino", "PyTorch -> ExecuTorch"."""
    path = case.get("source_path")
    runner = path if isinstance(path, str) and path.startswith(TORCH_PATH) else case.get("runner") or "?"
    release = case.get("runtime_version_requested")
    if release and runner == (case.get(BARE) or runner):  # not yet labelled (with_runner_labels keeps the bare name)
        runner = f"{runner} {release}"
    label = _label_fact(case.get("runner_facts"))
    return f"{runner} ({label})" if label and not runner.endswith(f"({label})") else runner


def with_runner_labels(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with ``runner`` replaced by its label and the facts dropped (the report reads named columns only):
    every chart and table that names a runner then names its configuration too. The bare name stays in ``BARE``."""
    for case in cases:
        case[BARE] = case.get(BARE) or case.get("runner")
        case["runner"] = runner_label(case)
        case.pop("runner_facts", None)
    return cases


def bare_runners(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with their runners' bare names back: coverage is about what runs where, whatever its tuning (an
    unsupported TVM row has no label, and must share its cell with the untuned ones)."""
    return [{**c, "runner": c[BARE]} if c.get(BARE) else c for c in cases]
