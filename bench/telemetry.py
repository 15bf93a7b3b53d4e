"""Runtimes' usage telemetry, switched off in every process bench starts: bench's own (``bench`` / ``python -m
bench``), and through the environment every worker, reference worker, converter and quantizer under it.

Each switch and why (checked on this project's machines; docs/SECURITY.md keeps the table):

* ``ORT_DISABLE_TELEMETRY=1``: ONNX Runtime 1.32 writes a device id and an event database under
  ``~/.cache/Microsoft/DeveloperTools/.onnxruntime/`` on import and resolves an events host a few seconds later;
  the variable must be set before ``import onnxruntime`` (``disable_telemetry_events()`` after it does not stop it).
* ``NNCF_CI=1``: NNCF's own opt-out (its telemetry goes through ``openvino_telemetry``, which the OpenVINO runner
  makes unimportable anyway).
* ``DO_NOT_TRACK=1``: the cross-tool convention, for any tool that honours it.
* ``MESA_SHADER_CACHE_DISABLE=true``: not telemetry, but the same rule (nothing written outside bench's cache):
  Mesa's Vulkan drivers (lavapipe, the software device ncnn's vulkan cases use in CI) write a shader cache under
  ``~/.cache/mesa_shader_cache`` as soon as a device is created (bench.vulkan's probe does), and a driver cache
  kept between runs would make a later Vulkan case's cold start warm unseen (its row says each process compiles).

OpenVINO's own event (``import openvino`` -> ``openvino.tools.ovc`` -> ``openvino_telemetry``) is stopped in the
runner itself, before the import (``bench/runners/openvino/runner.py``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

SWITCHES: Mapping[str, str] = {"ORT_DISABLE_TELEMETRY": "1", "NNCF_CI": "1", "DO_NOT_TRACK": "1",
                               "MESA_SHADER_CACHE_DISABLE": "true"}


def switched_off(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default: this process's) with every switch set, for a child process."""
    return {**(os.environ if environ is None else environ), **SWITCHES}


def switch_off(environ: MutableMapping[str, str] = os.environ) -> None:
    """Set every switch in this process's environment, before any runtime is imported."""
    environ.update(SWITCHES)
