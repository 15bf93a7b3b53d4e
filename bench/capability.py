"""Which runner computes which reduced precision on which CPU: every declaration asked about the reference CPUs
(``bench.cpu.REFERENCE_CPUS``), as the table in docs/RESULTS.md. Generated, so the doc cannot drift from the code."""

from __future__ import annotations

from collections.abc import Mapping

from bench.cpu import REFERENCE_CPUS
from bench.plugin import RunnerSpec


def _cell(spec: RunnerSpec, precision: str, cpu_key: str) -> str:
    answer = spec.cpu_precision(precision, REFERENCE_CPUS[cpu_key])
    if not answer.ok:
        return "no"
    flag = (answer.feature or "").split(":")[0]
    word = "maybe" if answer.tentative else "yes"
    return f"{word} ({flag})" if flag and flag != "none" else word


def _reduced(specs: Mapping[str, RunnerSpec]) -> list[tuple[RunnerSpec, str]]:
    return [(s, p) for s in specs.values() if "cpu" in s.devices for p in s.precisions if p != "fp32"]


def precisions_markdown(specs: Mapping[str, RunnerSpec]) -> list[str]:
    """What each precision value means (``bench.case.PRECISIONS``), then how each runner makes and runs each
    reduced precision it offers (its spec's ``precision_notes``)."""
    from bench.case import PRECISIONS

    lines = ["## Precisions", "", "| precision | means |", "|---|---|"]
    lines += [f"| {name} | {meaning} |" for name, meaning in PRECISIONS.items()]
    lines += ["", "How each runner does it:", "", "| runner | precision | how |", "|---|---|---|"]
    lines += [f"| {s.name} | {p} | {s.precision_notes.get(p, '')} |" for s in specs.values() for p in s.precisions
              if p != "fp32"]
    return lines + [""]


def support_markdown(specs: Mapping[str, RunnerSpec]) -> list[str]:
    keys = list(REFERENCE_CPUS)
    lines = [
        "## Reduced precision on CPUs",
        "",
        "What each runner's declaration (`cpu_precision`, from the CPU's flags: `bench/cpu.py`) answers for these",
        "CPUs; `precision_feature` on a row is the feature named here, `cpu_precision_features` on the run the flags",
        "seen. Where a runtime can substitute a precision silently, the worker reads it back as well. The reasons",
        "say what was measured, and on which machine.",
        "",
        "| runner | precision | " + " | ".join(REFERENCE_CPUS[k].name for k in keys) + " |",
        "|---|---|" + "---|" * len(keys),
    ]
    rows = _reduced(specs)
    lines += [f"| {s.name} | {p} | " + " | ".join(_cell(s, p, k) for k in keys) + " |" for s, p in rows]
    lines += ["", "Why not, where not:", ""]
    for spec, precision in rows:
        reasons = dict.fromkeys(
            a.reason for a in (spec.cpu_precision(precision, REFERENCE_CPUS[k]) for k in keys) if a.reason)
        lines += [f"- **{spec.name} {precision}**: {reason}" for reason in reasons]
    return lines + [""]


def devices_markdown(specs: Mapping[str, RunnerSpec]) -> list[str]:
    """How each runner runs each device beyond the CPU (``RunnerSpec.device_notes``), and what a software device is."""
    lines = ["", "## Devices beyond the CPU", "", "| runner | device | how it runs, its precisions there |",
             "|---|---|---|"]
    lines += [f"| {name} | {device} | {note} |" for name, spec in specs.items()
              for device, note in spec.device_notes.items()]
    return lines + [
        "",
        "A **software device** is a Vulkan implementation that runs the GPU's work on the CPU: Mesa's lavapipe "
        "(named llvmpipe), Google's SwiftShader; Vulkan reports its type as `cpu`. CI runs ncnn's Vulkan path on "
        "lavapipe to check that it computes the right answer (parity against the ONNX Runtime fp32 reference, as on "
        "the CPU), but its timings measure the CPU emulating a GPU: such rows carry `software_device`, and like an "
        "emulated run's they are never ranked (report, scenario table) or compared (`bench compare` says "
        "`software`), with a note saying why. The runs table's `vulkan_devices` lists every Vulkan device found.",
    ]
