"""torch.compile runner: the eager baseline's module compiled with inductor on CPU, in a real worker process.

What it pins down: the row matches the reference, the mode is recorded, compilation lands in the first inference
and so in the cold start (never in the timed loop), and the spec declares CPU and fp32 only without importing torch.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.runners.pytorch_compile import SPEC

pytestmark = pytest.mark.skipif(not SPEC.available().ok, reason=f"torch.compile unavailable: {SPEC.available().reason}")


def test_spec_imports_nothing_from_torch_and_offers_cpu_fp32():
    code = ("import sys; from bench.runners.pytorch_compile import SPEC; SPEC.available(); SPEC.detect_devices(); "
            "print(sorted({'torch', 'onnx2torch'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    assert SPEC.precisions == ("fp32",) and list(SPEC.detect_devices()) == ["cpu"]


@pytest.mark.slow  # inductor compiles C++ with g++: seconds even for a tiny CNN
def test_compilation_is_in_the_cold_start_and_the_mode_is_recorded(run_cases):
    [row] = run_cases(["pytorch_compile"], ["tiny_cnn"])
    assert row["status"] == "ok", row.get("error") or row.get("stderr_tail")
    assert row["accuracy_ok"] is True and row["cosine"] >= 0.9999 and row["precision_used"] == "fp32"
    compiled = json.loads(row["runner_facts"])["options"]["torch_compile"]
    assert compiled["backend"] == "inductor" and compiled["mode"] == "default" and compiled["graphs"] >= 1, compiled
    assert compiled["inductor_cache"].startswith("fresh") and compiled["precompiled_headers_in_fresh_folder"] is True
    # a fresh inductor cache: the first call traces and builds C++ kernels, a timed call only runs them
    assert row["first_inference_ms"] > 100 * row["median_ms"] and row["first_inference_ms"] > 200, row
    assert row["cold_start_ms"] >= row["first_inference_ms"] and row["timed_region"].startswith("compiled(*inputs)")
