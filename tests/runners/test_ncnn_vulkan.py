"""ncnn on Vulkan: real ncnn on the Vulkan device this machine has (CI: Mesa's lavapipe, a software device that
`scripts/install test` installs), tiny models only (lavapipe runs MobileNetV2 in ~184 ms), checked against ORT fp32;
and, with the Vulkan loader pointed at no driver in a real `bench run`, unavailable rows that say why."""

from __future__ import annotations

import json
import os

import pytest

from bench import vulkan
from bench.results.uri import Location
from bench.runners.mnn import SPEC as MNN
from bench.runners.ncnn import SPEC

pytestmark = pytest.mark.skipif(not SPEC.available().ok, reason=f"ncnn runner unavailable: {SPEC.available().reason}")
DEVICES, NO_DEVICE = vulkan.devices()
WHY_NOT = f"no Vulkan device: {NO_DEVICE} (scripts/install test adds lavapipe as root on Debian)"
# CI (.ci/run sets BENCH_REQUIRE_VULKAN=1) must prove the Vulkan path: there a missing device fails, never skips.
if not DEVICES and os.environ.get("BENCH_REQUIRE_VULKAN") == "1":
    pytest.fail(f"BENCH_REQUIRE_VULKAN=1 but {WHY_NOT}", pytrace=False)
needs_vulkan = pytest.mark.skipif(not DEVICES, reason=WHY_NOT)
FP16_OPTIONS = ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic")


def facts(row: dict) -> dict:
    assert row["status"] == "ok", row.get("error") or row.get("stderr_tail")
    return json.loads(row["runner_facts"])


@needs_vulkan
def test_fp32_and_fp16_run_on_the_vulkan_device_read_back_and_match_the_reference(run_cases):
    rows = {r["precision"]: r for r in run_cases(["ncnn"], ["tiny_cnn"], precisions=["fp32", "fp16"],
                                                 devices=["vulkan"])}
    fp32, fp16 = facts(rows["fp32"]), facts(rows["fp16"])
    # fp32 on the GPU: every fp16 / bf16 switch off, as read back from net.opt after loading
    assert fp32["options"]["use_vulkan_compute"] is True
    assert not any(fp32["options"][name] for name in (*FP16_OPTIONS, "use_bf16_packed", "use_bf16_storage"))
    assert rows["fp32"]["accuracy_ok"] is True and rows["fp32"]["cosine"] >= 0.9999, rows["fp32"]["accuracy_reason"]
    assert rows["fp32"]["precision_used"] == "fp32"
    # fp16: storage and arithmetic on (the device supports them, as ncnn reported), read back
    assert all(fp16["options"][name] for name in FP16_OPTIONS) and fp16["options"]["use_vulkan_compute"] is True
    assert rows["fp16"]["accuracy_ok"] is True and rows["fp16"]["precision_used"] == "fp16"
    default = next(d for d in DEVICES if d["default"])
    for row, found in ((rows["fp32"], fp32), (rows["fp16"], fp16)):
        assert found["vulkan_device"]["name"] == default["name"] and found["vulkan_device"]["type"] == default["type"]
        assert row["software_device"] == (default["name"] if default["software"] else None)
        assert "uploads the inputs" in row["timed_region"] and "downloads the outputs" in found["transfers"]
        assert found["pipeline_cache"].startswith("not persisted: each process compiles")
        assert row["cold_start_ms"] >= row["prepare_ms"] > 0


@needs_vulkan
def test_the_runs_table_and_the_listing_name_each_vulkan_device(run_cases, tmp_path, bench_cli):
    run_cases(["ncnn"], ["tiny_mlp"], devices=["vulkan"])
    from bench.results import store

    runs = store.query(Location.resolve(tmp_path / "results"), "SELECT vulkan_devices FROM runs").to_pylist()
    recorded = json.loads(runs[0]["vulkan_devices"])
    assert [d["name"] for d in recorded] == [d["name"] for d in DEVICES]
    assert {"vendor", "type", "software", "api_version", "driver_version", "heap_budget_mb"} <= set(recorded[0])
    assert set(recorded[0]["support"]) >= {"fp16_storage", "fp16_arithmetic", "int8_storage", "int8_arithmetic"}
    listed = bench_cli("list", "runners")
    assert listed.returncode == 0, listed.stderr
    ncnn_line = next(line for line in listed.stdout.splitlines() if line.startswith("ncnn "))
    assert "cpu,vulkan" in ncnn_line and f"vulkan: 0 {DEVICES[0]['name']}" in ncnn_line


def test_without_a_vulkan_driver_the_rows_are_unavailable_and_say_why(bench_cli, tmp_path, monkeypatch):
    # The loader is installed (or not); pointed at no driver file, it finds no device, as on a machine without one
    monkeypatch.setenv("VK_ICD_FILENAMES", "/nonexistent")
    monkeypatch.setenv("VK_DRIVER_FILES", "/nonexistent")
    done = bench_cli("run", "--suite", "smoke", "--runners", "ncnn,mnn", "--devices", "cpu,vulkan", "--models",
                     "tiny_mlp", "--threads", "1", "--results", "out")
    assert "Traceback" not in done.stderr, done.stderr
    from bench.results import load

    rows = {(r["runner"], r["device"]): r for r in load(tmp_path / "out").to_dict("records")}
    assert rows[("ncnn", "cpu")]["status"] == "ok", rows[("ncnn", "cpu")]["error"]
    ncnn_gpu = rows[("ncnn", "vulkan")]
    assert ncnn_gpu["status"] == "unavailable"
    assert ("no Vulkan device" in ncnn_gpu["error"]) or (vulkan.LOADER in ncnn_gpu["error"]), ncnn_gpu["error"]
    mnn_gpu = rows[("mnn", "vulkan")]  # the PyPI wheel is CPU-only: the row says how to get a GPU build
    assert mnn_gpu["status"] == "unavailable"
    if MNN.available().ok:
        assert "no GPU backend" in mnn_gpu["error"] and "-DMNN_VULKAN=ON" in mnn_gpu["error"], mnn_gpu["error"]


def test_a_missing_loader_is_named():
    found, why = vulkan.probe(loader="libvulkan-not-here.so.1")
    assert found == [] and why.startswith("the Vulkan loader libvulkan-not-here.so.1 is missing")
    assert "apt-get install libvulkan1 mesa-vulkan-drivers" in why


def test_a_software_device_is_told_from_its_type_or_name():
    raw = {"index": 0, "name": "llvmpipe (LLVM 15.0.6, 256 bits)", "vendor_id": 0x10005, "device_id": 0,
           "type_code": 3, "api_version": 4206822, "driver_version": 1}
    assert vulkan.describe(raw) | {"type": "cpu", "vendor": "Mesa", "api_version": "1.3.230", "software": True} \
        == vulkan.describe(raw)
    swiftshader = {**raw, "name": "SwiftShader Device (Subzero)", "vendor_id": 0x1AE0, "type_code": 2}
    assert vulkan.describe(swiftshader)["software"] is True
    nvidia = {**raw, "name": "NVIDIA H100 80GB HBM3", "vendor_id": 0x10DE, "type_code": 0}
    assert vulkan.describe(nvidia)["software"] is False and vulkan.describe(nvidia)["type"] == "discrete"
