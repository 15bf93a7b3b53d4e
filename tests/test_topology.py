"""Clusters, the cores axis and thermal waits, against fixture sysfs trees of real layouts (a 4+4 phone SoC, a
1+3+4 one, and an x86 VM that describes nothing), and the worker really pinned to the CPUs a case names."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench import thermal, topology
from bench.case import Case
from bench.contract import Status
from bench.envinfo import emulator
from bench.launcher import run_worker
from bench.plan import Overrides, _core_sets
from bench.suite import Suite

# (cpus, implementer, part, capacity, max kHz) per cluster
FOUR_FOUR = [((0, 1, 2, 3), "0x41", "0xd05", 446, 1_800_000), ((4, 5, 6, 7), "0x41", "0xd0b", 1024, 2_400_000)]
ONE_THREE_FOUR = [((0, 1, 2, 3), "0x41", "0xd46", 325, 2_016_000), ((4, 5, 6), "0x41", "0xd47", 870, 2_803_000),
                  ((7,), "0x41", "0xd48", 1024, 3_187_000)]


def _tree(root: Path, layout, governor: str = "schedutil", cur_fraction: float = 1.0, temps=()) -> Path:
    blocks = []
    for cpus, implementer, part, capacity, khz in layout:
        for cpu in cpus:
            folder = root / "sys/devices/system/cpu" / f"cpu{cpu}"
            (folder / "cpufreq").mkdir(parents=True)
            (folder / "cpu_capacity").write_text(f"{capacity}\n")
            (folder / "cpufreq/cpuinfo_max_freq").write_text(f"{khz}\n")
            (folder / "cpufreq/scaling_cur_freq").write_text(f"{int(khz * cur_fraction)}\n")
            (folder / "cpufreq/scaling_governor").write_text(f"{governor}\n")
            blocks.append(f"processor\t: {cpu}\nFeatures\t: fp asimd asimdhp asimddp\nCPU implementer\t: "
                          f"{implementer}\nCPU architecture: 8\nCPU part\t: {part}\n")
    (root / "proc").mkdir(parents=True)
    (root / "proc/cpuinfo").write_text("\n".join(blocks))
    for i, (kind, celsius) in enumerate(temps):
        zone = root / "sys/class/thermal" / f"thermal_zone{i}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(f"{int(celsius * 1000)}\n")
    return root


def test_a_4_plus_4_chip_is_big_and_little_with_its_core_names(tmp_path):
    root = _tree(tmp_path, FOUR_FOUR)
    found = topology.clusters(list(range(8)), root)
    assert [(c.name, c.cpus, c.parts, c.max_mhz, c.governor) for c in found] == [
        ("big", (4, 5, 6, 7), ("Cortex-A76",), 2400.0, "schedutil"),
        ("little", (0, 1, 2, 3), ("Cortex-A55",), 1800.0, "schedutil"),
    ]


def test_a_1_plus_3_plus_4_chip_has_a_prime_core(tmp_path):
    root = _tree(tmp_path, ONE_THREE_FOUR)
    names = {c.name: (c.cpus, c.parts) for c in topology.clusters(list(range(8)), root)}
    assert names == {"prime": ((7,), ("Cortex-X2",)), "big": ((4, 5, 6), ("Cortex-A710",)),
                     "little": ((0, 1, 2, 3), ("Cortex-A510",))}


def test_a_machine_that_describes_no_clusters_is_one_cluster_and_says_why_big_cannot_run(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t: avx2\n")
    assert [c.name for c in topology.clusters([0, 1], tmp_path)] == ["all"]
    assert topology.core_set("all", [0, 1], tmp_path) == ((0, 1), "")
    cpus, why = topology.core_set("little", [0, 1], tmp_path)
    assert cpus is None and "one cluster" in why and "'all' runs them all" in why


def test_only_the_cpus_this_process_may_use_are_grouped(tmp_path):
    root = _tree(tmp_path, FOUR_FOUR)
    assert topology.core_set("big", [0, 1, 6, 7], root) == ((6, 7), "")


def test_the_cores_axis_plans_each_cluster_with_all_meaning_its_size(tmp_path, monkeypatch):
    root = _tree(tmp_path, FOUR_FOUR)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    suite = Suite(name="s", models=["tiny_mlp"], threads=[1, "all"], cores=["all", "big", "little"])
    assert _core_sets(suite, Overrides(), root) == [
        ("all", (0, 1, 2, 3, 4, 5, 6, 7), 1, ""), ("all", (0, 1, 2, 3, 4, 5, 6, 7), 8, ""),
        ("big", (4, 5, 6, 7), 1, ""), ("big", (4, 5, 6, 7), 4, ""),
        ("little", (0, 1, 2, 3), 1, ""), ("little", (0, 1, 2, 3), 4, ""),
    ]


@pytest.fixture
def tiny_case(cache_dir) -> Case:
    from bench.plan import plan
    from bench.registry import Registry
    from bench.suite import TimingConfig

    suite = Suite(name="pin", models=["tiny_mlp"], runners=["onnxruntime"], timeout_s=120,
                  timing=TimingConfig(warmup_time_s=0.02, min_time_s=0.1, max_time_s=0.3))
    return plan(suite, "test", Overrides(), Registry.default(), cache_dir)[0].case


def test_cases_on_all_cores_keep_their_old_keys_and_a_cluster_is_in_the_key(tiny_case):
    assert tiny_case.key.endswith("/t1/latency")
    assert Case(**{**tiny_case.__dict__, "cores": "big", "cpus": (0,)}).key.endswith("/t1/latency/cbig")


def test_the_worker_runs_pinned_to_the_case_cpus(tiny_case):
    """A real worker (onnxruntime on a tiny model) reads its affinity back after its timed loop."""
    cpu = max(os.sched_getaffinity(0))
    outcome = run_worker(Case(**{**tiny_case.__dict__, "cores": "big", "cpus": (cpu,)}))
    assert outcome.status == Status.OK, outcome.error
    assert outcome.result.timing.cpus == (cpu,)


def test_throttling_is_the_lowest_current_over_top_frequency(tmp_path):
    root = _tree(tmp_path, FOUR_FOUR, cur_fraction=0.5)
    assert topology.frequency_ratio((4, 5), root) == pytest.approx(0.5)
    assert topology.frequency_ratio((4,), tmp_path / "nothing") is None


def test_cooldown_waits_until_the_hottest_zone_is_under_the_threshold(tmp_path):
    root = _tree(tmp_path, FOUR_FOUR, temps=[("cpu-big", 71.0), ("battery", 35.0)])
    assert thermal.zones(root) == {"cpu-big": 71.0, "battery": 35.0}
    now = [0.0]

    def sleep(s: float) -> None:  # the zone cools by 2 C a second
        now[0] += s
        (root / "sys/class/thermal/thermal_zone0/temp").write_text(f"{int((71.0 - 2 * now[0]) * 1000)}\n")

    cooled = thermal.cool_down(60.0, 300, root, poll_s=1.0, sleep=sleep, clock=lambda: now[0])
    assert cooled.reached is True and cooled.start_c < 60.0 and cooled.waited_s == pytest.approx(6.0)


def test_cooldown_is_bounded_and_says_it_did_not_cool(tmp_path):
    root = _tree(tmp_path, FOUR_FOUR, temps=[("cpu", 90.0)])
    now = [0.0]
    cooled = thermal.cool_down(60.0, 10, root, sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0])
    assert cooled.reached is False and cooled.waited_s == pytest.approx(10.0) and cooled.start_c == 90.0
    assert thermal.cool_down(60.0, 10, tmp_path / "no-zones").reached is None


def test_emulation_is_a_kernel_of_another_architecture(monkeypatch):
    texts = {"/proc/sys/kernel/arch": "x86_64"}
    monkeypatch.setattr("bench.envinfo.read_text", lambda path: texts.get(str(path)))
    monkeypatch.setenv("QEMU_CPU", "max")
    assert emulator("x86_64") is None
    texts["/proc/sys/kernel/arch"] = "aarch64"
    assert emulator("aarch64") is None and emulator("armv7l") is None  # 32-bit ARM runs natively on arm64
    texts["/proc/sys/kernel/arch"] = "x86_64"
    assert emulator("aarch64") == "a user-mode emulator on a x86_64 kernel, QEMU_CPU=max"
    texts["/proc/sys/fs/binfmt_misc/qemu-aarch64"] = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P"
    assert emulator("aarch64").startswith("aarch64-binfmt-P on a x86_64 kernel")


def test_a_run_records_the_topology(tmp_path):
    from bench import envinfo

    fields = envinfo._arch_fields("x86_64")
    clusters = json.loads(fields["cpu_clusters"])
    assert fields["emulated"] is False and clusters and clusters[0]["cpus"]
    assert len(json.loads(fields["cpu_cores"])) == len(os.sched_getaffinity(0))
