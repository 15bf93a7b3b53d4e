"""`bench compare` on planted result sets: a 20% regression is flagged, a non-change is not, nothing is compared
across machines unless asked, a runtime upgrade is compared and named, and nothing compared fails the gate."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from report_fixtures import NOW, copy_results, planter, samples

from bench.cli import main
from bench.options import threshold
from bench.report.change import ALPHA, bootstrap_medians, classify
from bench.report.compare import Threshold
from bench.results import store
from bench.results.uri import Location

A = "tiny_mlp/onnxruntime/cpu/fp32/b1/t1/latency"
B = "tiny_cnn/onnxruntime/cpu/fp32/b1/t1/latency"


def make_set(folder: Path, real: Path, run_id: str, cases: dict[str, dict], days: int = 0, **env) -> Path:
    """A results folder with one run: per model, samples around ``ms`` (seeded), or a failed row."""
    p = planter(folder, run_id, NOW + timedelta(days=days), template_from=real, **env)
    for model, spec in cases.items():
        if "failed" in spec:
            p.case(model=model, failed=spec["failed"])
        else:
            extra = {k: v for k, v in spec.items() if k not in ("ms", "seed", "n", "spread")}
            ns = samples(spec["ms"], n=spec.get("n", 600), seed=spec["seed"], spread=spec.get("spread", 0.05))
            p.case(model=model, samples_ns=ns, **extra)
    return folder


def statuses(markdown: str) -> dict[str, str]:
    rows = [line.split(" | ") for line in markdown.splitlines() if line.startswith("| tiny")]
    return {r[0].removeprefix("| "): r[1].strip("*") for r in rows}


@pytest.fixture
def sets(real_results, tmp_path):
    def build(base: dict, new: dict, **new_env) -> tuple[Path, Path]:
        return (make_set(tmp_path / "base", real_results, "base-run", base),
                make_set(tmp_path / "new", real_results, "new-run", new, days=1, **new_env))

    return build


def test_planted_regression_is_flagged_and_nothing_else(sets, tmp_path):
    base, new = sets({"tiny_mlp": {"ms": 1.0, "seed": 1}, "tiny_cnn": {"ms": 2.0, "seed": 2}},
                     {"tiny_mlp": {"ms": 1.2, "seed": 3}, "tiny_cnn": {"ms": 2.0, "seed": 4}})
    md, js = tmp_path / "cmp.md", tmp_path / "cmp.json"
    done = subprocess.run([sys.executable, "-m", "bench", "compare", str(base), str(new), "--threshold", "5%",
                           "--markdown", str(md), "--json", str(js)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stdout == "" and done.stderr == ""  # the table went to the file; same machine, nothing to say
    text = md.read_text()
    assert statuses(text) == {A: "regressed", B: "unchanged"}
    assert "regressed 1, unchanged 1" in text
    row = next(line for line in text.splitlines() if line.startswith(f"| {A}"))
    change = float(row.split(" | ")[4].rstrip("%"))
    assert 15 < change < 25
    entries = json.loads(js.read_text())
    assert [e["name"] for e in entries] == [A, B]
    assert all(e["unit"] == "ms" and isinstance(e["value"], float) and e["range"].startswith("±") for e in entries)
    assert entries[0]["extra"].startswith("regressed; change +") and 1.1 < entries[0]["value"] < 1.3


def test_no_change_alone_exits_0(sets, capsys):
    base, new = sets({"tiny_cnn": {"ms": 2.0, "seed": 2}}, {"tiny_cnn": {"ms": 2.0, "seed": 4}})
    assert main(["compare", str(base), str(new)]) == 0
    assert statuses(capsys.readouterr().out) == {B: "unchanged"}


def test_threshold_decides_what_counts(sets, capsys):
    base, new = sets({"tiny_mlp": {"ms": 1.0, "seed": 1}, "tiny_cnn": {"ms": 2.0, "seed": 2}},
                     {"tiny_mlp": {"ms": 1.03, "seed": 3}, "tiny_cnn": {"ms": 1.6, "seed": 4}})
    assert main(["compare", str(base), str(new), "--threshold", "5%"]) == 0
    assert statuses(capsys.readouterr().out) == {A: "unchanged", B: "improved"}
    assert main(["compare", str(base), str(new), "--threshold", "1"]) == 1
    assert statuses(capsys.readouterr().out) == {A: "regressed", B: "improved"}


def test_few_noisy_samples_are_inconclusive_not_regressed(sets, capsys):
    noisy = {"n": 7, "spread": 0.6}
    base, new = sets({"tiny_mlp": {"ms": 1.0, "seed": 1, **noisy}}, {"tiny_mlp": {"ms": 1.3, "seed": 3, **noisy}})
    assert main(["compare", str(base), str(new)]) == 0
    out = capsys.readouterr().out
    assert statuses(out) == {A: "unchanged"} and "inconclusive" in out


def test_other_machine_is_not_compared_unless_allowed(sets, capsys):
    base, new = sets({"tiny_mlp": {"ms": 1.0, "seed": 1}}, {"tiny_mlp": {"ms": 1.2, "seed": 3}},
                     cpu_model="Some Other CPU")
    assert main(["compare", str(base), str(new)]) == 1  # nothing was compared: a gate must not pass on it
    captured = capsys.readouterr()
    assert statuses(captured.out) == {A: "env_differs"}
    assert "→ Some Other CPU" in captured.err and "--allow-env-diff" in captured.err
    assert "no common case could be compared (env_differs 1): nothing was compared" in captured.err
    assert main(["compare", str(base), str(new), "--allow-env-diff"]) == 1
    captured = capsys.readouterr()
    assert statuses(captured.out) == {A: "regressed"} and "env differs" in captured.out
    assert "cpu_model" in captured.err


def test_another_graph_under_the_same_name_is_not_compared(sets, capsys):
    base, new = sets({"tiny_mlp": {"ms": 1.0, "seed": 1}, "tiny_cnn": {"ms": 2.0, "seed": 2}},
                     {"tiny_mlp": {"ms": 1.5, "seed": 3, "model_sha256": "f" * 64}, "tiny_cnn": {"ms": 2.0, "seed": 4}})
    assert main(["compare", str(base), str(new)]) == 0  # 50% slower, but on other model bytes: no regression
    out = capsys.readouterr().out
    assert statuses(out) == {A: "env_differs", B: "unchanged"} and "model tiny_mlp changed (sha256 " in out


def upgraded(real: Path, tmp_path: Path, new_mlp_ms: float) -> tuple[Path, Path]:
    """Two nights of one machine: onnxruntime 1.32.0, then 1.33.0 with tiny_mlp at ``new_mlp_ms`` (was 1.0)."""
    base = make_set(tmp_path / "base", real, "base-run", {"tiny_mlp": {"ms": 1.0, "seed": 1},
                                                          "tiny_cnn": {"ms": 2.0, "seed": 2}},
                    packages=json.dumps({"onnxruntime": "1.32.0", "numpy": "2.0.0"}))
    new = make_set(tmp_path / "new", real, "new-run", {"tiny_mlp": {"ms": new_mlp_ms, "seed": 3},
                                                       "tiny_cnn": {"ms": 2.0, "seed": 4}},
                   days=1, packages=json.dumps({"onnxruntime": "1.33.0", "numpy": "2.0.0"}))
    return base, new


UPGRADE = "onnxruntime 1.32.0 → 1.33.0"


def test_a_runtime_upgrade_is_compared_and_its_regression_fails_naming_the_upgrade(real_results, tmp_path):
    base, new = upgraded(real_results, tmp_path, new_mlp_ms=3.0)
    md, js = tmp_path / "cmp.md", tmp_path / "cmp.json"
    done = subprocess.run([sys.executable, "-m", "bench", "compare", str(base), str(new), "--markdown", str(md),
                           "--json", str(js)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "onnxruntime: 1.32.0 → 1.33.0" in done.stderr and "--allow-env-diff" not in done.stderr
    text = md.read_text()
    assert statuses(text) == {A: "regressed", B: "unchanged"}
    row = next(line for line in text.splitlines() if line.startswith(f"| {A}"))
    assert re.search(rf"{UPGRADE}: (2\.9|3\.0|3\.1)\d*x slower", row), row
    assert f"{UPGRADE} |" in next(line for line in text.splitlines() if line.startswith(f"| {B}"))
    extra = {e["name"]: e["extra"] for e in json.loads(js.read_text())}
    assert extra[A].startswith("regressed; change +") and f"{UPGRADE}: " in extra[A] and "x slower" in extra[A]


def test_a_runtime_upgrade_without_a_regression_passes(real_results, tmp_path, capsys):
    base, new = upgraded(real_results, tmp_path, new_mlp_ms=1.0)
    assert main(["compare", str(base), str(new)]) == 0
    out = capsys.readouterr().out
    assert statuses(out) == {A: "unchanged", B: "unchanged"} and out.count(UPGRADE) == 2


@pytest.mark.parametrize(("new_ms", "code", "line"), [(3.0, 1, f"REGRESSED (likely cause: {UPGRADE})"),
                                                      (1.0, 0, "ok")])
def test_each_machine_compares_across_a_runtime_upgrade(real_results, tmp_path, capsys, new_ms, code, line):
    results = tmp_path / "fleet"
    for run_id, days, ms, version in [("a1", 1, 1.0, "1.32.0"), ("a2", 2, new_ms, "1.33.0")]:
        make_set(results, real_results, run_id, {"tiny_mlp": {"ms": ms, "seed": days}}, days=days,
                 machine_id="machine-a", packages=json.dumps({"onnxruntime": version}))
    out = tmp_path / "compare"
    assert main(["compare", "--each-machine", "--results", str(results), "--markdown-dir", str(out)]) == code
    assert capsys.readouterr().out.splitlines()[-1].endswith(f"a1 -> a2: {line}")
    assert UPGRADE in next(out.iterdir()).read_text()


def test_runs_without_case_rows_are_not_compared(real_results, tmp_path):
    """Both runs are in the runs table, their case files are gone: "no cases" must not pass a gate."""
    results = tmp_path / "results"
    make_set(results, real_results, "r1", {"tiny_mlp": {"ms": 1.0, "seed": 1}})
    make_set(results, real_results, "r2", {"tiny_mlp": {"ms": 1.0, "seed": 2}}, days=1)
    shutil.rmtree(results / "cases")
    done = subprocess.run([sys.executable, "-m", "bench", "compare", "r1", "r2", "--results", str(results)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr == ("bench compare: neither r1 (run r1) nor r2 (run r2) has a case row (are their case "
                           "files missing?): nothing was compared\n")


def test_broken_and_fixed(sets, capsys):
    base, new = sets({"tiny_mlp": {"ms": 1.0, "seed": 1}, "tiny_cnn": {"failed": ("crashed", "SIGSEGV")}},
                     {"tiny_mlp": {"failed": ("error", "boom")}, "tiny_cnn": {"ms": 2.0, "seed": 2}})
    assert main(["compare", str(base), str(new)]) == 1  # a case that stopped working fails the check
    assert statuses(capsys.readouterr().out) == {A: "broken", B: "fixed"}


def test_wrong_output_counts_as_broken(sets, capsys):
    base, new = sets({"tiny_mlp": {"ms": 1.0, "seed": 1}}, {"tiny_mlp": {"ms": 0.5, "seed": 3, "accuracy_ok": False}})
    assert main(["compare", str(base), str(new)]) == 1
    out = capsys.readouterr().out
    assert statuses(out) == {A: "broken"} and "(wrong output)" in out


def test_new_and_missing_cases(real_results, tmp_path, capsys):
    base = make_set(tmp_path / "b", real_results, "b", {"tiny_mlp": {"ms": 1.0, "seed": 1}})
    new = make_set(tmp_path / "n", real_results, "n", {"tiny_cnn": {"ms": 1.0, "seed": 1}}, days=1)
    assert main(["compare", str(base), str(new)]) == 1  # not one case in common: a gate must not pass it
    seen = capsys.readouterr()
    assert statuses(seen.out) == {A: "missing", B: "new"}
    assert f"no case of {base} is in {new} (1 missing, 1 new): nothing was compared" in seen.err
    both = make_set(tmp_path / "both", real_results, "both", {"tiny_mlp": {"ms": 1.0, "seed": 2},
                                                              "tiny_cnn": {"ms": 1.0, "seed": 2}}, days=2)
    assert main(["compare", str(base), str(both)]) == 0  # one case in common, unchanged; another new: fine


def test_run_ids_in_one_results_folder(real_results, tmp_path, capsys):
    results = copy_results(real_results, tmp_path / "results")
    real_run = store.query(Location.resolve(results), "SELECT run_id FROM runs").to_pylist()[0]["run_id"]
    make_set(results, real_results, "later", {"tiny_mlp": {"ms": 50.0, "seed": 1}}, days=30)
    assert main(["compare", real_run, real_run, "--results", str(results)]) == 0
    same = capsys.readouterr().out
    assert "unchanged 4" in same and "| 1 |" in same  # a run against itself: p = 1
    assert main(["compare", real_run, "later", "--results", str(results)]) == 1
    assert statuses(capsys.readouterr().out)[A] == "regressed"
    assert main(["compare", real_run, str(results), "--results", str(results)]) == 1  # folder: its latest run


def test_user_errors_are_one_line(bench_cli, real_results, capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, needle in [([str(empty), "b", "--results", str(real_results)], f"{empty}: a folder without results"),
                         (["a", "b", "--results", str(real_results), "--threshold", "lots"], "--threshold"),
                         (["a", "b", "--results", str(real_results), "--threshold=-5%"], "--threshold"),
                         (["nope", "b", "--results", str(real_results)], "'nope' is neither")]:
        assert main(["compare", *args]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, err
    done = bench_cli("compare", "a", "b", "--results", "nowhere")  # and as a user runs it
    assert done.returncode == 2 and "no results folder" in done.stderr and done.stderr.count("\n") == 1


def test_exact_bootstrap_equals_resampling():
    """The bootstrap draws each resample's median from its exact distribution; check it against doing it."""
    rng = np.random.default_rng(0)
    x = np.sort(rng.lognormal(0, 0.3, 101))
    exact = bootstrap_medians(x, np.random.default_rng(1), 40_000)
    brute = np.median(x[rng.integers(0, len(x), (40_000, len(x)))], axis=1)
    grid = np.quantile(x, np.linspace(0.3, 0.7, 41))
    gap = np.abs((exact[:, None] <= grid).mean(0) - (brute[:, None] <= grid).mean(0)).max()
    assert gap < 0.015


def test_classification_rules():
    t = 0.05
    assert classify(0.20, 0.15, 0.25, 1e-9, t) == ("regressed", "")
    assert classify(0.20, 0.04, 0.30, 1e-9, t)[0] == "unchanged"  # CI reaches below the threshold
    assert classify(0.20, 0.15, 0.25, ALPHA, t)[0] == "unchanged"  # not significant
    assert classify(-0.20, -0.25, -0.15, 1e-9, t) == ("improved", "")
    assert classify(0.03, 0.02, 0.04, 1e-9, t) == ("unchanged", "")  # real, but within the threshold
    assert threshold("5%") == threshold("5") == Threshold(0.05)


def test_each_machine_is_compared_with_its_own_previous_run_only(real_results, tmp_path, capsys):
    results = tmp_path / "fleet"
    for run_id, machine, days, ms in [("a1", "machine-a", 1, 1.0), ("a2", "machine-a", 2, 1.2),
                                      ("b1", "machine-b", 1, 5.0), ("b2", "machine-b", 2, 5.0),
                                      ("c1", "machine-c", 2, 0.5)]:
        make_set(results, real_results, run_id, {"tiny_mlp": {"ms": ms, "seed": days}}, days=days,
                 machine_id=machine, machine_label=f"label/{machine[-1]}")
    out = tmp_path / "compare"
    assert main(["compare", "--each-machine", "--results", str(results), "--markdown-dir", str(out)]) == 1
    printed = capsys.readouterr().out.splitlines()
    assert any(line.endswith("a1 -> a2: REGRESSED") for line in printed), printed
    assert any(line.endswith("b1 -> b2: ok") for line in printed) and not any("c1" in line for line in printed)
    tables = sorted(p.name for p in out.iterdir())
    assert len(tables) == 2 and all(name.startswith("label_") for name in tables), tables  # no "/" in a name
    assert statuses(next(p for p in out.iterdir() if "machine-a" in p.name).read_text())[A] == "regressed"


def test_each_machine_and_base_new_are_exclusive(real_results, capsys):
    for args in (["compare", "--each-machine", "a", "b"], ["compare", "a"], ["compare"]):
        assert main([*args, "--results", str(real_results)]) == 2
        assert "BASE and NEW, or --each-machine" in capsys.readouterr().err


def test_an_emulated_run_is_never_compared_even_when_allowed(sets, capsys):
    base, new = sets({"tiny_mlp": {"ms": 1.0, "seed": 1}}, {"tiny_mlp": {"ms": 3.0, "seed": 3}},
                     emulated=True, emulator="qemu-aarch64-static on a x86_64 kernel, QEMU_CPU=max")
    assert main(["compare", str(base), str(new), "--allow-env-diff"]) == 1  # a gate must not pass on it
    captured = capsys.readouterr()
    assert statuses(captured.out) == {A: "emulated"}
    assert "the new run was emulated (qemu-aarch64-static" in captured.err
    assert "every common case ran under emulation: nothing was compared" in captured.err


def test_a_case_on_a_software_device_is_never_compared_even_when_allowed(sets, capsys):
    lavapipe = "llvmpipe (LLVM 15.0.6, 256 bits)"
    base, new = sets({"tiny_mlp": {"ms": 1.0, "seed": 1, "software_device": lavapipe}},
                     {"tiny_mlp": {"ms": 3.0, "seed": 3, "software_device": lavapipe}})
    assert main(["compare", str(base), str(new), "--allow-env-diff"]) == 1  # a gate must not pass on it
    captured = capsys.readouterr()
    assert statuses(captured.out) == {A: "software"}
    assert f"ran on a software device ({lavapipe}): a functional check" in captured.out
    assert "every common case ran under emulation or on a software device: nothing was compared" in captured.err
