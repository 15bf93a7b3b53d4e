"""Every runner's precision declaration, asked about CPUs this machine is not: the flags go in, the answer comes out.

The expected answers are the runtimes' own rules (see each runner's declaration for the source it follows), so a
branch for hardware that no test machine has is exercised here, and a test elsewhere never needs that hardware.
"""

from __future__ import annotations

import json

import pytest

from bench import envinfo
from bench.cpu import REFERENCE_CPUS, Cpu
from bench.plan import Overrides, plan
from bench.registry import Registry
from bench.suite import Suite

SPR, ZEN5, AVX2, ARM82, ARM80 = (REFERENCE_CPUS[k] for k in (
    "intel-xeon-sapphire-rapids", "amd-epyc-zen5", "x86-avx2", "arm-v8.2-fp16", "arm-v8.0"))
ALL = {SPR, ZEN5, AVX2, ARM82, ARM80}

# (runner, precision) -> the reference CPUs on which it computes in that precision.
EXPECTED = {
    ("onnxruntime", "fp32"): ALL,
    ("onnxruntime", "fp16"): {ARM82},  # MLAS fp16 kernels are arm64-only
    ("onnxruntime", "int8"): ALL,
    ("openvino", "fp32"): ALL,
    ("openvino", "bf16"): {SPR, ZEN5},  # avx512_core (native with avx512_bf16 / amx_bf16); none on ARM
    ("openvino", "fp16"): {SPR, ARM82},  # avx512_fp16 on x86; ARMv8.2 FP16 on ARM. The AMD has no avx512_fp16
    ("openvino", "int8"): ALL,  # NNCF-quantized u8/i8 kernels everywhere (dot products where the CPU has them)
    ("ncnn", "fp32"): ALL,
    ("ncnn", "fp16"): {ARM82},  # x86 is fp16 storage only, AVX512-FP16 included
    ("ncnn", "int8"): ALL,  # the CPU can; VNNI / i8mm / dot-product only make it faster
    ("mnn", "fp32"): ALL,
    ("mnn", "fp16"): {ARM82},  # Arm82Backend only
    ("mnn", "int8"): ALL,
    ("mnn", "int8_weights"): ALL,  # float kernels: the weights are dequantized at load
    ("pytorch", "fp32"): ALL,
    ("pytorch", "bf16"): {SPR, ZEN5},  # native bf16 only (avx512_bf16 / amx_bf16; ARM's bf16 flag)
    ("pytorch", "fp16"): {SPR, ARM82},  # native fp16 only (avx512_fp16; asimdhp)
    ("pytorch_compile", "fp32"): ALL,
    ("executorch", "fp32"): ALL,
    ("executorch", "int8"): ALL,  # XNNPACK's quantized kernels on every CPU it runs on
    ("litert", "fp32"): ALL,
    ("litert", "fp16"): set(),  # XNNPACK computes fp32 from fp16 weights; fp16 arithmetic needs flags bench can't set
    ("litert", "int8"): ALL,  # XNNPACK's qs8 kernels, as for ExecuTorch
    ("tvm", "fp32"): ALL,
    ("tnn", "fp32"): ALL,  # known, not installable (bench/known.py): declared as TNN documents it, never run
    ("tnn", "fp16"): {ARM82},  # TNN's fp16 kernels are ARMv8.2 ones
    ("tnn", "int8"): ALL,
}
CPU_SPECS = {name: spec for name, spec in Registry.default().specs.items() if "cpu" in spec.devices}
OPENVINO = CPU_SPECS["openvino"].available()


def test_every_cpu_runner_and_precision_has_an_expectation():
    declared = {(name, p) for name, spec in CPU_SPECS.items() for p in spec.precisions}
    assert declared == set(EXPECTED), declared ^ set(EXPECTED)


@pytest.mark.parametrize(("runner", "precision"), sorted(EXPECTED))
def test_the_declaration_answers_each_reference_cpu(runner, precision):
    spec = CPU_SPECS[runner]
    for cpu in ALL:
        answer = spec.cpu_precision(precision, cpu)
        assert answer.ok == (cpu in EXPECTED[runner, precision]), (runner, precision, cpu.label(), answer)
        if not answer.ok:
            assert answer.reason and answer.feature is None
        elif precision == "fp32":
            assert answer.feature is None
        else:  # names the flag that lets it run (and the flag is this CPU's), or says there is none
            flag = answer.feature.split(":")[0]
            assert flag in cpu.flags or flag == "none", (runner, precision, cpu.label(), answer.feature)


def test_answers_depend_on_the_flags_alone():
    for spec in CPU_SPECS.values():
        for precision in spec.precisions:
            for cpu in ALL:
                twin = Cpu(cpu.arch, frozenset(cpu.flags), name="another name")
                assert spec.cpu_precision(precision, cpu) == spec.cpu_precision(precision, twin)


def test_openvino_leaves_avx2_vnni_2_to_the_read_back():
    """AVX-NE-CONVERT and AVX-VNNI-INT8 have no /proc/cpuinfo flag: an AVX-VNNI CPU without AVX-512 may run fp16."""
    arrow_lake = Cpu.of("x86_64", "sse4_2 avx f16c fma avx2 avx_vnni", "Arrow Lake")
    for precision in ("bf16", "fp16"):
        answer = CPU_SPECS["openvino"].cpu_precision(precision, arrow_lake)
        assert answer.ok and answer.tentative and answer.feature.startswith("avx_vnni:")
    assert not CPU_SPECS["openvino"].cpu_precision("fp16", ZEN5).tentative


def test_mnn_needs_both_fp16_flags_on_linux_arm():
    only_asimdhp = Cpu(ARM82.arch, ARM82.flags - {"fphp"})
    assert not CPU_SPECS["mnn"].cpu_precision("fp16", only_asimdhp).ok
    assert CPU_SPECS["openvino"].cpu_precision("fp16", only_asimdhp).ok  # OpenVINO takes either


def test_precision_features_name_what_each_cpu_has():
    assert SPR.features() == {"fp16": ["avx512_fp16"], "bf16": ["avx512_bf16", "amx_bf16"],
                              "vnni": ["avx512_vnni", "avx_vnni", "amx_int8"], "amx": ["amx_tile", "amx_bf16",
                              "amx_int8"], "avx512": ["avx512f", "avx512bw", "avx512vl", "avx512dq"]}
    assert ZEN5.features()["fp16"] == [] and ZEN5.features()["bf16"] == ["avx512_bf16"]
    assert ARM82.features() == {"fp16": ["asimdhp"], "dotprod": ["asimddp"], "i8mm": [], "bf16": [], "sve": []}
    assert ARM80.features()["fp16"] == []


def test_the_runs_table_records_this_cpus_precision_features():
    recorded = json.loads(envinfo.capture()["cpu_precision_features"])
    assert recorded == Cpu.here().features()


@pytest.mark.skipif(not OPENVINO.ok, reason=f"the planner marks every openvino case unavailable: {OPENVINO.reason}")
@pytest.mark.parametrize(("cpu", "unsupported"), [(SPR, set()), (ZEN5, {"fp16"}), (AVX2, {"bf16", "fp16"})])
def test_the_plan_asks_the_declaration_about_the_cpu_it_plans_for(cpu, unsupported, cache_dir):
    suite = Suite(name="t", models=["tiny_cnn"], runners=["openvino"], precisions=["fp32", "bf16", "fp16"])
    planned = {p.case.precision: p for p in plan(suite, "t", Overrides(), Registry.default(), cache_dir,
                                                 build_models=False, cpu=cpu)}
    assert {k for k, p in planned.items() if p.skip_status == "unsupported"} == unsupported
    for precision, p in planned.items():
        answer = CPU_SPECS["openvino"].cpu_precision(precision, cpu)
        assert p.precision_feature == answer.feature and p.skip_reason == (answer.reason or "")
