"""torch.compile (inductor) on cpu: the PyTorch runner's module, compiled, called on the same tensors.

Everything but the call is the eager runner's (conversion, threads, fp32 switches, inference mode, outputs).
Inductor's cache is a fresh temp folder per case (``TORCHINDUCTOR_CACHE_DIR`` and the worker's temp dir, set before
anything compiles, removed in ``close``): the first inference compiles from scratch, precompiled headers included,
and nothing lands in the user's /tmp/torchinductor_* or home. Read back after compiling: how many graphs dynamo
made and where it broke them (onnx2torch's modules read shape tensors with ``.tolist()``, which can split the
graph), and inductor's settings that change the code.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections import Counter
from typing import Any

import torch

from bench.contract import OpTime
from bench.plugin import NoProfiler
from bench.runners.pytorch.runner import PyTorchRunner

MODE = None  # torch.compile's default mode; "reduce-overhead" is CUDA graphs, "max-autotune" benchmarks kernels
INDUCTOR_SETTINGS = ("freezing", "cpp_wrapper", "max_autotune", "fx_graph_cache", "fx_graph_remote_cache",
                     "autotune_local_cache")


class PyTorchCompileRunner(PyTorchRunner):
    timed_region = (
        "compiled(*inputs): torch.compile(module, backend='inductor') of the onnx2torch GraphModule, on tensors "
        "made before timing, inside torch.inference_mode(); compiled by the first (cold) inference, never in the "
        "timed loop"
    )

    def load(self, artifact) -> None:
        self.inductor_cache = tempfile.mkdtemp(prefix="bench-inductor-")
        # removed in close, or at the worker's exit when a failed case never reaches close
        self._remove_cache = weakref.finalize(self, shutil.rmtree, self.inductor_cache, ignore_errors=True)
        self._previous_tempdir = tempfile.tempdir
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = self.inductor_cache  # before torch._inductor reads it
        # Inductor keeps precompiled headers in a global folder under the temp dir on purpose (codecache.py:
        # _HEADER_DIR, fixed when torch._inductor.codecache is first imported): point the temp dir into the fresh
        # folder too, or a later case would start with the headers an earlier one built.
        tempfile.tempdir = self.inductor_cache
        super().load(artifact)

    def prepare(self) -> None:
        super().prepare()
        torch._dynamo.reset()
        self.compiled = torch.compile(self.module, backend="inductor", mode=MODE)

    def infer(self) -> None:
        self._result = self.compiled(*self._args)

    def profile(self, inputs: dict[str, Any], runs: int) -> list[OpTime]:
        # The eager pass's module hooks would make dynamo compile again, and the compiled graph is one region to
        # the profiler: its per-op times would be another runner's (pytorch's, eager), not this one's.
        raise NoProfiler("torch.compile runs the graph as inductor's fused kernels, which bench does not map back to "
                         "ONNX nodes; the pytorch runner profiles the eager module")

    def _compile_facts(self) -> dict[str, Any]:
        from torch._dynamo.utils import counters
        from torch._inductor import codecache, config

        breaks = Counter({str(reason)[:160]: n for reason, n in counters["graph_break"].items()})
        return {
            "backend": "inductor", "mode": MODE or "default", "fullgraph": False, "dynamic": None,
            "graphs": int(counters["stats"]["unique_graphs"]),
            "graph_breaks": sum(breaks.values()), "graph_break_reasons": dict(breaks.most_common(5)),
            "inductor": {name: getattr(config, name, None) for name in INDUCTOR_SETTINGS},
            "cxx": config.cpp.cxx[1] if isinstance(config.cpp.cxx, tuple) else config.cpp.cxx,
            "inductor_cache": "fresh temp folder per case, removed after (cold start compiles from scratch)",
            "precompiled_headers_in_fresh_folder": codecache._HEADER_DIR.startswith(self.inductor_cache),
        }

    def facts(self) -> dict[str, Any]:
        facts = super().facts()
        facts["options"]["torch_compile"] = self._compile_facts()
        facts["phases"] += ("; first inference: dynamo tracing + inductor compilation (C++ built with g++), so "
                            "cold start includes it")
        return facts

    def close(self) -> None:
        super().close()
        if hasattr(self, "_remove_cache"):
            tempfile.tempdir = self._previous_tempdir  # the worker may still make temp files after close
            self._remove_cache()
